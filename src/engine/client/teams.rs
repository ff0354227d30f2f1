//! LiteLLM's team API, as far as a role that owns a team needs it: create, update and delete
//! the team, make users members (so their member budget is recorded), and read the spend.
//!
//! Facts this follows (LiteLLM 1.108, measured): `/team/new` is not an upsert (an existing id
//! is a 400); `/team/update` is partial but replaces `metadata` whole, so updates never send it;
//! a `null` limit on update removes it; `/team/delete` deletes every key of the team at once;
//! `/team/member_add` creates a missing user and answers 400 `team_member_already_in_team` for
//! a member.

use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::error::{ApiError, invalid};
use super::http::Retry;
use super::parse::{litellm_message, opt_string};
use super::{Client, parse_timestamp};

const OP_TEAM_NEW: &str = "/team/new";
const OP_TEAM_UPDATE: &str = "/team/update";
const OP_TEAM_DELETE: &str = "/team/delete";
const OP_TEAM_INFO: &str = "/team/info";
const OP_MEMBER_ADD: &str = "/team/member_add";

/// The limits a role puts on its team. Every field is sent, `null` included, so a limit the
/// role no longer sets is removed from the team.
#[derive(Serialize, Default, Clone, Debug, PartialEq)]
pub struct TeamLimits {
    /// Models the team's keys may call (empty: all).
    pub models: Vec<String>,
    /// Spend cap of all keys of the team together, in USD.
    pub max_budget: Option<f64>,
    /// When the team's spend resets.
    pub budget_duration: Option<String>,
    /// Requests per minute of all keys together.
    pub rpm_limit: Option<i64>,
    /// Tokens per minute of all keys together.
    pub tpm_limit: Option<i64>,
    /// Spend cap of each member (all of that user's keys in the team), in USD.
    pub team_member_budget: Option<f64>,
    /// When each member's spend resets.
    pub team_member_budget_duration: Option<String>,
    /// Requests per minute of each member.
    pub team_member_rpm_limit: Option<i64>,
    /// Tokens per minute of each member.
    pub team_member_tpm_limit: Option<i64>,
}

/// A team's spend and limits, as `/team/info` reports them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TeamUsage {
    /// Spend so far in the current window (LiteLLM writes it 10–15 s after the calls).
    pub spend: f64,
    /// The team's cap.
    pub max_budget: Option<f64>,
    /// When the spend next resets (RFC 3339), if it resets.
    pub budget_reset_at: Option<String>,
    /// Members other than LiteLLM's own `default_user_id`, with their spend.
    pub members: Vec<MemberUsage>,
    /// Keys of the team that have not expired by `now` (deleted keys are not listed).
    pub live_keys: usize,
}

/// One member's spend in a team.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemberUsage {
    /// The LiteLLM user.
    pub user_id: String,
    /// Spend of all of the user's keys in the team.
    pub spend: f64,
    /// The member's cap, if any.
    pub max_budget: Option<f64>,
}

/// LiteLLM's own member of every team created with the master key.
const LITELLM_DEFAULT_USER: &str = "default_user_id";

impl Client {
    /// Creates team `team_id` (`POST /team/new`). An existing id is an error: ids are never
    /// reused, since LiteLLM keeps the spend of a deleted team in memory under its id.
    pub async fn create_team(
        &self,
        team_id: &str,
        team_alias: &str,
        limits: &TeamLimits,
        metadata: Map<String, Value>,
    ) -> Result<(), ApiError> {
        let mut body = team_body(team_id, limits);
        body.insert("team_alias".into(), json!(team_alias));
        body.insert("metadata".into(), Value::Object(metadata));
        // Not repeated after a dropped connection: the caller deletes by id if it may exist.
        self.team_call(OP_TEAM_NEW, Value::Object(body), Retry::Never)
            .await
            .map(drop)
    }

    /// Sets the team's limits to `limits` (`POST /team/update`), leaving its metadata alone.
    pub async fn update_team(&self, team_id: &str, limits: &TeamLimits) -> Result<(), ApiError> {
        let body = Value::Object(team_body(team_id, limits));
        self.team_call(OP_TEAM_UPDATE, body, Retry::Once)
            .await
            .map(drop)
    }

    /// Deletes the team and with it every key it holds (`POST /team/delete`). `Ok(false)` when
    /// LiteLLM has no such team.
    pub async fn delete_team(&self, team_id: &str) -> Result<bool, ApiError> {
        let url = self.route(OP_TEAM_DELETE)?;
        let rb = self
            .request(Method::POST, &url)
            .json(&json!({ "team_ids": [team_id] }));
        let (status, body) = self.exchange(OP_TEAM_DELETE, rb, Retry::Once).await?;
        if status == StatusCode::NOT_FOUND && is_team_not_found(&body) {
            return Ok(false);
        }
        let _: Map<String, Value> = self.expect_success(OP_TEAM_DELETE, status, &body)?;
        Ok(true)
    }

    /// Makes `user_id` a member of the team (`POST /team/member_add`), creating the LiteLLM
    /// user if it does not exist; a member already is one.
    pub async fn add_member(&self, team_id: &str, user_id: &str) -> Result<(), ApiError> {
        let url = self.route(OP_MEMBER_ADD)?;
        let rb = self.request(Method::POST, &url).json(&json!({
            "team_id": team_id,
            "member": [{ "user_id": user_id, "role": "user" }],
        }));
        let (status, body) = self.exchange(OP_MEMBER_ADD, rb, Retry::Once).await?;
        if status == StatusCode::BAD_REQUEST && is_already_member(&body) {
            return Ok(());
        }
        let _: Map<String, Value> = self.expect_success(OP_MEMBER_ADD, status, &body)?;
        Ok(())
    }

    /// The team's spend, limits and members (`GET /team/info`); `Ok(None)` when LiteLLM has no
    /// such team. Keys count as live until `now` passes their expiry.
    pub async fn team_usage(
        &self,
        team_id: &str,
        now: std::time::SystemTime,
    ) -> Result<Option<TeamUsage>, ApiError> {
        let url = self.route(OP_TEAM_INFO)?;
        let rb = self
            .request(Method::GET, &url)
            .query(&[("team_id", team_id)]);
        let (status, body) = self.exchange(OP_TEAM_INFO, rb, Retry::Once).await?;
        if status == StatusCode::NOT_FOUND && is_team_not_found(&body) {
            return Ok(None);
        }
        let obj: Map<String, Value> = self.expect_success(OP_TEAM_INFO, status, &body)?;
        team_usage(&obj, now).map(Some)
    }

    async fn team_call(
        &self,
        op: &'static str,
        body: Value,
        retry: Retry,
    ) -> Result<Map<String, Value>, ApiError> {
        let url = self.route(op)?;
        let rb = self.request(Method::POST, &url).json(&body);
        let (status, answer) = self.exchange(op, rb, retry).await?;
        self.expect_success(op, status, &answer)
    }

    /// A route under the base URL. Team and catalogue calls are rare (role writes, a user's
    /// first key), so their URLs are not kept parsed.
    pub(super) fn route(&self, op: &str) -> Result<Url, ApiError> {
        Url::parse(&format!("{}{op}", self.base_url()))
            .map_err(|e| ApiError::InvalidConfig(format!("base_url with {op}: {e}")))
    }
}

fn team_body(team_id: &str, limits: &TeamLimits) -> Map<String, Value> {
    let mut body = match serde_json::to_value(limits) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    body.insert("team_id".into(), json!(team_id));
    body
}

fn is_team_not_found(body: &[u8]) -> bool {
    litellm_message(body).is_some_and(|m| m.contains("Team not found"))
}

fn is_already_member(body: &[u8]) -> bool {
    litellm_message(body).is_some_and(|m| m.contains("already in team"))
}

fn team_usage(obj: &Map<String, Value>, now: std::time::SystemTime) -> Result<TeamUsage, ApiError> {
    let Some(Value::Object(info)) = obj.get("team_info") else {
        return Err(invalid(OP_TEAM_INFO, "missing `team_info` object"));
    };
    let members = obj
        .get("team_memberships")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .filter_map(Value::as_object)
                .filter_map(|row| {
                    let user_id = opt_string(row, "user_id")?;
                    (user_id != LITELLM_DEFAULT_USER).then(|| MemberUsage {
                        user_id,
                        spend: row.get("spend").and_then(Value::as_f64).unwrap_or(0.0),
                        max_budget: row
                            .get("litellm_budget_table")
                            .and_then(|b| b.get("max_budget"))
                            .and_then(Value::as_f64),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let live_keys = obj
        .get("keys")
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter(|k| {
                    k.get("expires")
                        .and_then(Value::as_str)
                        .and_then(parse_timestamp)
                        .is_none_or(|at| at > now)
                })
                .count()
        })
        .unwrap_or(0);
    Ok(TeamUsage {
        spend: info.get("spend").and_then(Value::as_f64).unwrap_or(0.0),
        max_budget: info.get("max_budget").and_then(Value::as_f64),
        budget_reset_at: opt_string(info, "budget_reset_at"),
        members,
        live_keys,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn updates_send_every_limit_so_removed_ones_are_cleared_and_never_metadata() {
        let body = team_body(
            "t1",
            &TeamLimits {
                max_budget: Some(1.5),
                ..TeamLimits::default()
            },
        );
        assert_eq!(body["team_id"], "t1");
        assert_eq!(body["max_budget"], 1.5);
        for cleared in [
            "rpm_limit",
            "tpm_limit",
            "budget_duration",
            "team_member_budget",
        ] {
            assert_eq!(body[cleared], Value::Null, "{cleared}");
        }
        assert!(!body.contains_key("metadata"));
    }

    #[test]
    fn usage_reads_the_real_answer_shape() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let answer = json!({
            "team_id": "t1",
            "team_info": {"spend": 0.74, "max_budget": 0.5, "budget_reset_at": "2026-12-03T00:00:00Z"},
            "keys": [
                {"token": "a", "expires": "2030-01-01T00:00:00+00:00"},
                {"token": "b", "expires": "2020-01-01T00:00:00+00:00"},
                {"token": "c", "expires": null}
            ],
            "team_memberships": [
                {"user_id": "default_user_id", "spend": 0.0},
                {"user_id": "alice", "spend": 0.37, "litellm_budget_table": {"max_budget": 0.5}}
            ]
        });
        let Value::Object(obj) = answer else {
            unreachable!()
        };
        let usage = team_usage(&obj, now).unwrap();
        assert_eq!(usage.spend, 0.74);
        assert_eq!(usage.max_budget, Some(0.5));
        assert_eq!(
            usage.budget_reset_at.as_deref(),
            Some("2026-12-03T00:00:00Z")
        );
        assert_eq!(usage.live_keys, 2, "the expired key does not count");
        assert_eq!(
            usage.members,
            [MemberUsage {
                user_id: "alice".into(),
                spend: 0.37,
                max_budget: Some(0.5)
            }]
        );
        assert!(team_usage(&Map::new(), now).is_err());
    }

    #[test]
    fn litellm_answers_that_mean_done_are_recognised() {
        let missing = br#"{"detail":{"error":"Team not found, passed team_id=x"}}"#;
        assert!(is_team_not_found(missing));
        let member = br#"{"error":{"message":"All users are already in team. Existing members=[]","type":"team_member_already_in_team","code":"400"}}"#;
        assert!(is_already_member(member));
        assert!(!is_already_member(
            br#"{"error":{"message":"Team not found"}}"#
        ));
    }
}

//! The LiteLLM team a role owns: how role-wide and per-person limits are enforced.
//!
//! A key's own `max_budget` caps one lease; whoever may read `creds/<role>` again gets a fresh
//! budget. Limits that hold for the role are LiteLLM's team limits, which count the spend and
//! rate of every key of the team together, across renewals, revocations and re-issues (spend
//! stays with the team when its keys are deleted). Per-person limits are the team's member
//! defaults, which count all keys one LiteLLM user holds in the team.
//!
//! Rules this module keeps (LiteLLM 1.108, measured):
//! - A role that sets any `role_*` or `user_*` limit owns a team, created with the first such
//!   write and kept in step with the role on every write. Its id is new for each incarnation of
//!   the role ([`alias::team`]): LiteLLM keeps a deleted team's spend in memory under its id.
//! - Creating the team is guarded like an issue: a WAL entry first (so nothing changes in
//!   LiteLLM before a storage write succeeded, and an HA standby forwards the request), then
//!   `/team/new`, then the role, then the WAL entry goes. Rollback deletes a team no role names.
//! - Deleting the team would delete its keys at once, so a role that is deleted, or stops
//!   setting limits, retires its team (`retired-teams/<id>`), and tidy deletes it once none of
//!   its keys is live.
//! - A user is made a member before its first key in the team, so its spend is recorded in the
//!   database and not only in one proxy's memory.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::engine::alias;
use crate::engine::client::{Client, TeamLimits};
use crate::engine::error::{Error, Result};
use crate::engine::layout;
use crate::engine::path_roles::Role;
use crate::engine::schema;
use crate::engine::stamps::{self, Mount};
use crate::framework::{FieldData, Request, Storage, WalEntry, wal};

/// WAL kind guarding a team between `/team/new` and the role that names it.
pub const WAL_KIND: &str = "litellm_team";

/// The WAL payload of a team creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamWal {
    /// The role being written.
    pub role: String,
    /// The team being created for it.
    pub team_id: String,
}

/// A team no role uses any more, kept until its keys are gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetiredTeam {
    /// The role that owned it.
    pub role: String,
    /// Unix seconds when it was retired.
    pub retired_at: u64,
}

/// Role-wide (`role_*`) and per-person (`user_*`) limits, as a role stores them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleLimits {
    /// Spend cap of all the role's keys together, in USD.
    #[serde(default)]
    pub role_max_budget: Option<f64>,
    /// When the role's spend resets (LiteLLM window).
    #[serde(default)]
    pub role_budget_duration: Option<String>,
    /// Requests per minute of all the role's keys together.
    #[serde(default)]
    pub role_rpm_limit: Option<i64>,
    /// Tokens per minute of all the role's keys together.
    #[serde(default)]
    pub role_tpm_limit: Option<i64>,
    /// Spend cap of all keys one user holds under the role, in USD.
    #[serde(default)]
    pub user_max_budget: Option<f64>,
    /// When each user's spend resets.
    #[serde(default)]
    pub user_budget_duration: Option<String>,
    /// Requests per minute of each user.
    #[serde(default)]
    pub user_rpm_limit: Option<i64>,
    /// Tokens per minute of each user.
    #[serde(default)]
    pub user_tpm_limit: Option<i64>,
}

/// The role fields of [`RoleLimits`], for error messages.
const ROLE_FIELDS: &str =
    "role_max_budget, role_budget_duration, role_rpm_limit and role_tpm_limit";
const USER_FIELDS: &str =
    "user_max_budget, user_budget_duration, user_rpm_limit and user_tpm_limit";

impl RoleLimits {
    /// Whether any limit is set: then the role owns a team.
    pub fn any(&self) -> bool {
        self.role_wide() || self.per_user()
    }

    /// Whether a role-wide limit is set.
    fn role_wide(&self) -> bool {
        self.role_max_budget.is_some()
            || self.role_budget_duration.is_some()
            || self.role_rpm_limit.is_some()
            || self.role_tpm_limit.is_some()
    }

    /// Whether a per-person limit is set: then every key needs a user, made a member first.
    pub fn per_user(&self) -> bool {
        self.user_max_budget.is_some()
            || self.user_budget_duration.is_some()
            || self.user_rpm_limit.is_some()
            || self.user_tpm_limit.is_some()
    }

    /// Applies the fields present in `d`; an empty duration or a negative number clears
    /// nothing and is refused, `-` values are 400s naming the field.
    pub fn apply(
        &mut self,
        d: &FieldData,
        check_window: impl Fn(&str, &str) -> Result<()>,
    ) -> Result<()> {
        for (name, slot) in [
            ("role_max_budget", &mut self.role_max_budget),
            ("user_max_budget", &mut self.user_max_budget),
        ] {
            if let Some(budget) = d.float(name) {
                if budget < 0.0 {
                    return Err(Error::invalid(format!("{name} must be zero or more")));
                }
                *slot = Some(budget);
            }
        }
        for (name, slot) in [
            ("role_rpm_limit", &mut self.role_rpm_limit),
            ("role_tpm_limit", &mut self.role_tpm_limit),
            ("user_rpm_limit", &mut self.user_rpm_limit),
            ("user_tpm_limit", &mut self.user_tpm_limit),
        ] {
            if let Some(limit) = d.int(name) {
                if limit < 0 {
                    return Err(Error::invalid(format!("{name} must be zero or more")));
                }
                *slot = Some(limit);
            }
        }
        for (name, slot) in [
            ("role_budget_duration", &mut self.role_budget_duration),
            ("user_budget_duration", &mut self.user_budget_duration),
        ] {
            if let Some(window) = d.str(name) {
                let window = window.trim();
                *slot = if window.is_empty() {
                    None
                } else {
                    check_window(name, window)?;
                    Some(window.to_string())
                };
            }
        }
        Ok(())
    }

    /// The team's limits for a role with `models`.
    pub fn team_limits(&self, models: &[String]) -> TeamLimits {
        TeamLimits {
            models: models.to_vec(),
            max_budget: self.role_max_budget,
            budget_duration: self.role_budget_duration.clone(),
            rpm_limit: self.role_rpm_limit,
            tpm_limit: self.role_tpm_limit,
            team_member_budget: self.user_max_budget,
            team_member_budget_duration: self.user_budget_duration.clone(),
            team_member_rpm_limit: self.user_rpm_limit,
            team_member_tpm_limit: self.user_tpm_limit,
        }
    }

    /// The limits as a role read shows them.
    pub fn to_json(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}

/// Checks what the limits need of the rest of the (merged) role.
pub fn validate(role: &Role) -> Result<()> {
    if role.limits.any() && (role.team_id.is_some() || role.team_id_template.is_some()) {
        return Err(Error::invalid(format!(
            "the role's limits ({ROLE_FIELDS}, {USER_FIELDS}) are enforced through a LiteLLM team the role owns, \
             so the role cannot also put its keys into team_id or team_id_template: clear one or the other"
        )));
    }
    if role.limits.per_user() && role.user_id.is_none() && role.user_id_template.is_none() {
        return Err(Error::invalid(format!(
            "{USER_FIELDS} limit each LiteLLM user, so the role needs user_id or user_id_template"
        )));
    }
    Ok(())
}

/// Stores role `name`, creating, updating or retiring its team so that LiteLLM enforces what
/// the role says. `before` is the stored role, if any; `role` is what the write makes of it.
pub async fn store(
    client: Option<&Client>,
    req: &Request,
    name: &str,
    before: Option<&Role>,
    mut role: Role,
) -> Result<()> {
    let key = layout::role(name);
    let owned = before.and_then(|b| b.team.clone());
    match (owned, role.limits.any()) {
        (None, false) => Ok(schema::store(&req.storage, &key, &role, false).await?),
        (None, true) => {
            let client = client.ok_or(Error::NotConfigured)?;
            let team_id = alias::team(name);
            let wal_id = create(client, req, name, &team_id, &role).await?;
            role.team = Some(team_id);
            // Should this fail, the WAL entry stays and rollback deletes the team no role names.
            schema::store(&req.storage, &key, &role, false).await?;
            // The role names the team now; a WAL entry left behind is harmless (rollback finds
            // the role naming the team and keeps it).
            if let Err(e) = wal::delete(&req.storage, &wal_id).await {
                tracing::warn!(error = %e, "could not drop a team WAL entry; rollback will");
            }
            Ok(())
        }
        (Some(team_id), true) => {
            role.team = Some(team_id.clone());
            schema::store(&req.storage, &key, &role, false).await?;
            let client = client.ok_or(Error::NotConfigured)?;
            client
                .update_team(&team_id, &role.limits.team_limits(&role.models))
                .await
                .map_err(|e| {
                    Error::litellm(
                        "the role was saved, but LiteLLM could not update the limits of its team",
                        e,
                    )
                    .noted("; write the role again".into())
                })
        }
        (Some(team_id), false) => {
            role.team = None;
            retire(&req.storage, name, &team_id, req.now).await?;
            Ok(schema::store(&req.storage, &key, &role, false).await?)
        }
    }
}

/// Records that `team_id` is no longer used by role `name`; tidy deletes it once its keys are
/// gone.
pub async fn retire(storage: &Storage, name: &str, team_id: &str, now: SystemTime) -> Result<()> {
    let retired = RetiredTeam {
        role: name.to_string(),
        retired_at: now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    Ok(schema::store(storage, &layout::retired_team(team_id), &retired, false).await?)
}

/// The WAL entry, then `/team/new`; returns the WAL entry's id. On failure the team is deleted
/// again (it may exist when the answer was lost) and the WAL entry dropped once that worked.
async fn create(
    client: &Client,
    req: &Request,
    name: &str,
    team_id: &str,
    role: &Role,
) -> Result<String> {
    let guard = TeamWal {
        role: name.to_string(),
        team_id: team_id.to_string(),
    };
    let wal_id = wal::put(&req.storage, WAL_KIND, &guard, req.now).await?;
    let mut metadata = Map::new();
    metadata.insert(stamps::ROLE.into(), json!(name));
    Mount::of(req).apply(&mut metadata);
    let team_alias = format!("{}{name}", req.mount_point);
    let limits = role.limits.team_limits(&role.models);
    let Err(e) = client
        .create_team(team_id, &team_alias, &limits, metadata)
        .await
    else {
        return Ok(wal_id);
    };
    let cleaned = !e.may_have_reached_server() || client.delete_team(team_id).await.is_ok();
    if cleaned && let Err(d) = wal::delete(&req.storage, &wal_id).await {
        tracing::warn!(error = %d, "could not drop a team WAL entry; rollback will");
    }
    Err(Error::litellm(
        "LiteLLM could not create the role's team",
        e,
    ))
}

/// Undoes a team creation that never reached its role: deletes the team unless the role names
/// it.
pub async fn rollback(client: Result<Client>, req: &Request, entry: &WalEntry) -> Result<()> {
    let TeamWal { role, team_id } = match entry.decode() {
        Ok(wal) => wal,
        Err(e) => {
            tracing::warn!(error = %e, "dropping an unreadable team WAL entry");
            return Ok(());
        }
    };
    let stored = Role::load(&req.storage, &role).await?;
    if stored.and_then(|r| r.team).as_deref() == Some(team_id.as_str()) {
        return Ok(());
    }
    client?
        .delete_team(&team_id)
        .await
        .map_err(|e| Error::litellm(format!("LiteLLM could not roll back team {team_id}"), e))?;
    tracing::info!(role = %role, team_id = %team_id, "rolled back a team whose role was never stored");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Field;
    use crate::framework::FieldType;

    static FIELDS: &[Field] = &[
        Field::new("role_max_budget", FieldType::Float, ""),
        Field::new("role_budget_duration", FieldType::String, ""),
        Field::new("role_rpm_limit", FieldType::Int, ""),
        Field::new("role_tpm_limit", FieldType::Int, ""),
        Field::new("user_max_budget", FieldType::Float, ""),
        Field::new("user_budget_duration", FieldType::String, ""),
        Field::new("user_rpm_limit", FieldType::Int, ""),
        Field::new("user_tpm_limit", FieldType::Int, ""),
    ];

    fn apply(limits: &mut RoleLimits, input: Value) -> Result<()> {
        let Value::Object(map) = input else {
            unreachable!()
        };
        let d = FieldData::parse(FIELDS, map).map_err(Error::from)?;
        limits.apply(&d, |name, window| {
            if window == "bad" {
                Err(Error::invalid(format!("{name} {window:?} is invalid")))
            } else {
                Ok(())
            }
        })
    }

    #[test]
    fn limits_map_onto_the_team_and_its_member_defaults() {
        let mut limits = RoleLimits::default();
        assert!(!limits.any());
        apply(
            &mut limits,
            json!({"role_max_budget": 5, "role_rpm_limit": 60, "user_max_budget": "0.5", "user_budget_duration": "1d"}),
        )
        .unwrap();
        assert!(limits.any() && limits.per_user());
        let team = limits.team_limits(&["fake-gpt".into()]);
        assert_eq!(team.max_budget, Some(5.0));
        assert_eq!(team.rpm_limit, Some(60));
        assert_eq!(team.tpm_limit, None);
        assert_eq!(team.team_member_budget, Some(0.5));
        assert_eq!(team.team_member_budget_duration.as_deref(), Some("1d"));
        assert_eq!(team.models, ["fake-gpt"]);
        apply(&mut limits, json!({"user_budget_duration": ""})).unwrap();
        assert_eq!(limits.user_budget_duration, None, "empty clears");
    }

    #[test]
    fn bad_limits_are_400s_naming_the_field() {
        for (input, field) in [
            (json!({"role_max_budget": -1}), "role_max_budget"),
            (json!({"user_max_budget": -0.5}), "user_max_budget"),
            (json!({"role_rpm_limit": -1}), "role_rpm_limit"),
            (json!({"user_tpm_limit": -3}), "user_tpm_limit"),
            (
                json!({"role_budget_duration": "bad"}),
                "role_budget_duration",
            ),
        ] {
            let err = apply(&mut RoleLimits::default(), input.clone()).unwrap_err();
            assert!(err.to_string().contains(field), "{input}: {err}");
            assert!(matches!(err, Error::Invalid(_)), "{input}: {err:?}");
        }
    }

    #[test]
    fn an_owned_team_excludes_a_fixed_team_and_per_user_limits_need_a_user() {
        let limited = RoleLimits {
            role_max_budget: Some(1.0),
            ..RoleLimits::default()
        };
        let fixed_team = Role {
            limits: limited.clone(),
            team_id: Some("ops".into()),
            ..Role::default()
        };
        let err = validate(&fixed_team).unwrap_err().to_string();
        assert!(
            err.contains("team_id") && err.contains("role_max_budget"),
            "{err}"
        );
        let templated = Role {
            limits: limited.clone(),
            team_id_template: Some("t-{{identity.entity.name}}".into()),
            ..Role::default()
        };
        assert!(validate(&templated).is_err());
        assert!(
            validate(&Role {
                limits: limited,
                ..Role::default()
            })
            .is_ok()
        );

        let per_user = RoleLimits {
            user_max_budget: Some(0.5),
            ..RoleLimits::default()
        };
        let err = validate(&Role {
            limits: per_user.clone(),
            ..Role::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("user_id_template"), "{err}");
        assert!(
            validate(&Role {
                limits: per_user,
                user_id_template: Some("{{identity.entity.name}}".into()),
                ..Role::default()
            })
            .is_ok()
        );
    }
}

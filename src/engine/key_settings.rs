//! A role's `key_settings` (every `/key/generate` field the typed role fields do not cover) and
//! the checks a role write makes against LiteLLM before the role is stored.
//!
//! - `key_settings` is a JSON object merged into each `/key/generate` of the role (the typed
//!   fields win). Names the engine sets itself ([`RESERVED`]) are refused.
//! - A write that changes what a key of the role is made with (key_settings or a typed key
//!   field) while key_settings are set makes one throwaway key with those settings and deletes
//!   it at once, so that an enterprise-only or invalid setting fails the write with LiteLLM's
//!   message, not the first `creds` read. Guarded like an issue: the WAL entry (the issue kind,
//!   which rollback undoes by alias) is written first, so nothing changes in LiteLLM before a
//!   storage write of the request succeeded, and it goes once the role is stored.
//! - A write that changes `models` checks them against the proxy's catalogue
//!   ([`path_models`](crate::engine::path_models)).
//!
//! Both checks are skipped with `verify=false`, and, with a warning, while the mount has no
//! config yet (roles may be written before config).
//!
//! How LiteLLM's refusals surface (1.108.7 community edition, measured): most enterprise-only
//! fields (`guardrails`, `tags`, `allowed_passthrough_routes`) are 403s and wrong types 422s:
//! the write is a 400 quoting LiteLLM. `model_max_budget` is a 500 whose message says
//! "enterprise license": also a 400, since retrying cannot help. Some settings
//! (`permissions.get_spend_routes`, a `budget_id` that does not exist) are a bare 500
//! "Internal Server Error": that cannot be told from a failing proxy, so it stays a 502 (which
//! clients retry) with a note saying what it may mean.

use serde_json::{Map, Value, json};

use crate::engine::alias;
use crate::engine::client::{ApiError, Client};
use crate::engine::error::{Error, Result};
use crate::engine::key_owner::KeyOwner;
use crate::engine::path_models;
use crate::engine::path_roles::Role;
use crate::engine::secret_key::{self, IssueWal};
use crate::engine::stamps::Stamps;
use crate::framework::{Field, FieldData, FieldType, Request, wal};

/// The `key_settings` role field.
pub const FIELD: Field = Field::new(
    "key_settings",
    FieldType::Object,
    "JSON object of further /key/generate fields for every key of the role, e.g. {\"soft_budget\": 5, \"model_rpm_limit\": {\"gpt-4o\": 10}, \"allowed_routes\": [\"/chat/completions\"], \"aliases\": {...}, \"object_permission\": {...}}. Fields the engine sets (key, key_alias, duration, metadata, team_id, user_id, models, max_budget, budget_duration, tpm_limit, rpm_limit, max_parallel_requests, key_type) are refused. A write makes one test key with them (deleted at once), so LiteLLM's refusal (e.g. an enterprise-only field) fails the write. {} clears.",
);

/// The `verify` role field.
pub const VERIFY_FIELD: Field = Field::new(
    "verify",
    FieldType::Bool,
    "Check the role against LiteLLM before storing it: models must be served by the proxy (see the models path), and key_settings are tried on a test key. false skips both, e.g. while LiteLLM is down. Not stored.",
);

/// `/key/generate` fields the engine sets itself: refused in `key_settings`.
pub const RESERVED: [&str; 13] = [
    "key",
    "key_alias",
    "duration",
    "metadata",
    "team_id",
    "user_id",
    "models",
    "max_budget",
    "budget_duration",
    "tpm_limit",
    "rpm_limit",
    "max_parallel_requests",
    "key_type",
];

/// Bytes `key_settings` may take as JSON: they travel with every key issued.
const MAX_BYTES: usize = 16 * 1024;

/// How long a test key lives in LiteLLM should deleting it fail (rollback deletes it too).
const PROBE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(60);

/// The `key_settings` of the request, checked; `None` when the request does not set them.
pub fn parse(d: &FieldData) -> Result<Option<Map<String, Value>>> {
    let Some(settings) = d.object("key_settings") else {
        return Ok(None);
    };
    let reserved: Vec<&str> = settings
        .keys()
        .map(String::as_str)
        .filter(|k| RESERVED.contains(k))
        .collect();
    if !reserved.is_empty() {
        return Err(Error::invalid(format!(
            "key_settings may not set {}: the engine sets them itself (use the role's own fields for models and the per-key limits)",
            reserved.join(", ")
        )));
    }
    let size = serde_json::to_vec(settings).map_or(usize::MAX, |v| v.len());
    if size > MAX_BYTES {
        return Err(Error::invalid(format!(
            "key_settings is too large: {size} bytes of JSON, at most {MAX_BYTES}"
        )));
    }
    Ok(Some(settings.clone()))
}

/// Checks key_settings against the rest of the (merged) role.
pub fn validate(role: &Role) -> Result<()> {
    // Measured on 1.108.7: a key of type llm_api is stored with allowed_routes
    // ["llm_api_routes"] whatever it asked for, so the setting would be dropped silently.
    if role.key_settings.contains_key("allowed_routes") && role.key_type != "default" {
        return Err(Error::invalid(format!(
            "key_settings.allowed_routes needs key_type default: LiteLLM replaces the routes of a {} key with its type's own",
            role.key_type
        )));
    }
    Ok(())
}

/// What a key of `role` is made with, apart from who asks and when.
fn key_shape(role: &Role) -> Value {
    json!([
        role.key_settings,
        role.models,
        role.max_budget,
        role.budget_duration,
        role.tpm_limit,
        role.rpm_limit,
        role.max_parallel_requests,
        role.key_type,
    ])
}

/// What a write has checked against LiteLLM, and what it must undo once the role is stored.
#[derive(Default)]
pub struct Checked {
    /// The WAL entry guarding the test key, deleted once the role is stored.
    wal_id: Option<String>,
    /// Said to the caller, e.g. that nothing could be checked.
    pub warnings: Vec<String>,
}

impl Checked {
    /// Drops the test key's WAL entry (the key is gone already). Best effort: an entry left
    /// behind makes rollback delete a key by an alias nothing has.
    pub async fn finish(self, req: &Request) -> Vec<String> {
        if let Some(id) = &self.wal_id
            && let Err(e) = wal::delete(&req.storage, id).await
        {
            tracing::warn!(error = %e, "could not drop a test key's WAL entry; rollback will");
        }
        self.warnings
    }
}

/// Which checks a write of `role` (stored as `before`) makes against LiteLLM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    /// The models changed: check them against the catalogue.
    pub models: bool,
    /// What keys are made with changed while key_settings are set: try a test key.
    pub probe: bool,
}

impl Wanted {
    /// The checks this write asks for (none with `verify=false`).
    pub fn of(req: &Request, before: Option<&Role>, role: &Role) -> Wanted {
        if !req.data.bool("verify").unwrap_or(true) {
            return Wanted::default();
        }
        let default = Role::default();
        let before = before.unwrap_or(&default);
        Wanted {
            models: !role.models.is_empty() && role.models != before.models,
            probe: !role.key_settings.is_empty() && key_shape(role) != key_shape(before),
        }
    }

    /// Whether any check needs LiteLLM.
    pub fn any(self) -> bool {
        self.models || self.probe
    }
}

/// Makes the `wanted` checks of `role` against LiteLLM (see the module doc), before it is
/// stored. `client` is `None` while the mount has no config: nothing is checked then.
pub async fn check(
    client: Option<&Client>,
    req: &Request,
    name: &str,
    role: &Role,
    wanted: Wanted,
) -> Result<Checked> {
    let mut checked = Checked::default();
    if !wanted.any() {
        return Ok(checked);
    }
    let Some(client) = client else {
        checked.warnings.push(
            "the role's models and key_settings were not checked against LiteLLM: config is not written yet".into(),
        );
        return Ok(checked);
    };
    if wanted.models {
        checked
            .warnings
            .extend(path_models::check(client, &role.models).await?);
    }
    if wanted.probe {
        checked.wal_id = Some(try_key(client, req, name, role).await?);
    }
    Ok(checked)
}

/// Makes a test key as `creds/<name>` would (without team and user, which may depend on the
/// caller) and deletes it. Returns the WAL entry's id, to drop once the role is stored.
async fn try_key(client: &Client, req: &Request, name: &str, role: &Role) -> Result<String> {
    let key_alias = alias::issued(&role.key_alias_prefix, name);
    let guard = IssueWal {
        key_alias: key_alias.clone(),
        token_id: None,
    };
    let wal_id = wal::put(&req.storage, secret_key::WAL_KIND, &guard, req.now).await?;
    let request = role.generate_request(
        key_alias.clone(),
        None,
        PROBE_LIFETIME,
        KeyOwner::default(),
        &Stamps::of(name, req),
    );
    match client.generate_with(&request, &role.key_settings).await {
        Ok(key) => {
            client
                .delete_keys(std::slice::from_ref(&key.token))
                .await
                .map_err(|e| {
                    Error::litellm(
                        format!("key_settings: LiteLLM made the test key {key_alias} but could not delete it"),
                        e,
                    )
                    .noted("; the role was not stored: write it again (rollback deletes the test key)".into())
                })?;
            Ok(wal_id)
        }
        Err(e) => {
            // A failed answer may still have made the key (a timeout after LiteLLM acted).
            let gone = !e.may_have_reached_server()
                || client
                    .delete_aliases(std::slice::from_ref(&key_alias))
                    .await
                    .is_ok();
            if gone && let Err(d) = wal::delete(&req.storage, &wal_id).await {
                tracing::warn!(error = %d, "could not drop a test key's WAL entry; rollback will");
            }
            Err(refusal(e))
        }
    }
}

/// How a failed test key reaches the caller (see the module doc).
fn refusal(e: ApiError) -> Error {
    const CONTEXT: &str =
        "key_settings: LiteLLM did not accept a test key with the role's settings";
    match &e {
        ApiError::Status {
            status: 500,
            message,
            ..
        } if message.to_ascii_lowercase().contains("enterprise") => {
            Error::invalid(format!("{CONTEXT} (an enterprise-only setting): {e}"))
        }
        ApiError::Status { status: 500, .. } => Error::litellm(CONTEXT, e).noted(
            "; LiteLLM answers some invalid or enterprise-only settings (e.g. permissions.get_spend_routes, a budget_id that does not exist) with a bare 500: if this persists, check LiteLLM's log and the settings, or write verify=false to store the role unchecked".into(),
        ),
        _ => Error::litellm(CONTEXT, e),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;
    use crate::engine::client::GenerateKeyRequest;

    static FIELDS: &[Field] = &[FIELD];

    fn data(settings: Value) -> Result<Option<Map<String, Value>>> {
        let d = FieldData::parse(
            FIELDS,
            Map::from_iter([("key_settings".to_string(), settings)]),
        )
        .map_err(Error::from)?;
        parse(&d)
    }

    #[test]
    fn reserved_names_are_every_field_the_engine_sends() {
        let full = GenerateKeyRequest {
            key: crate::engine::client::ChosenKey::random(),
            key_alias: "a".into(),
            duration: Some("1s".into()),
            max_budget: Some(1.0),
            budget_duration: Some("1d".into()),
            tpm_limit: Some(1),
            rpm_limit: Some(1),
            max_parallel_requests: Some(1),
            team_id: Some("t".into()),
            user_id: Some("u".into()),
            key_type: Some("default".into()),
            ..GenerateKeyRequest::default()
        };
        let Ok(Value::Object(sent)) = serde_json::to_value(&full) else {
            panic!("a generate request is an object");
        };
        let mut sent: Vec<&str> = sent.keys().map(String::as_str).collect();
        let mut reserved = RESERVED.to_vec();
        sent.sort_unstable();
        reserved.sort_unstable();
        assert_eq!(sent, reserved);
    }

    #[test]
    fn reserved_names_are_refused_by_name_and_others_kept() {
        let err = data(json!({"soft_budget": 1, "team_id": "x", "duration": "1h"}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("key_settings") && err.contains("duration, team_id"),
            "{err}"
        );
        let kept = data(json!({"soft_budget": 1, "allowed_routes": ["/v1/models"]}))
            .unwrap()
            .unwrap();
        assert_eq!(kept["soft_budget"], 1);
        assert!(data(json!({})).unwrap().unwrap().is_empty());
        let big = data(json!({"aliases": {"a": "x".repeat(MAX_BYTES)}}))
            .unwrap_err()
            .to_string();
        assert!(big.contains("key_settings is too large"), "{big}");
        // Not an object: the field schema refuses it, naming the field.
        let err = data(json!("soft_budget=1")).unwrap_err().to_string();
        assert!(err.contains("key_settings"), "{err}");
    }

    #[test]
    fn enterprise_500s_are_the_callers_and_bare_500s_stay_502() {
        let status = |status, message: &str| ApiError::Status {
            op: "/key/generate",
            status,
            message: message.into(),
        };
        let enterprise = refusal(status(
            500,
            "Invalid model_max_budget: You must have an enterprise license to set model_max_budget.",
        ));
        assert!(matches!(enterprise, Error::Invalid(_)), "{enterprise:?}");
        assert!(enterprise.to_string().contains("model_max_budget"));
        let bare = refusal(status(500, "{'error': 'Internal Server Error.'}"));
        assert!(
            matches!(&bare, Error::Noted { error, .. } if matches!(**error, Error::LiteLlm { .. })),
            "{bare:?}"
        );
        assert!(bare.to_string().contains("verify=false"));
        let refused = refusal(status(403, "Enterprise users: guardrails"));
        assert!(matches!(refused, Error::LiteLlm { .. }));
        assert!(refused.to_string().starts_with("key_settings:"));
    }
}

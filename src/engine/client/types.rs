//! The wire model: what the client sends to LiteLLM and what it makes of the answers.

use std::fmt;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::parse::{parse_timestamp, token_hash};

/// Body of `POST /key/generate`.
///
/// Serialized as the plain JSON object LiteLLM expects (it silently ignores unknown fields
/// and `{"json": …}` envelopes, so the field names here matter). `None` fields are omitted.
#[derive(Serialize, Default, Clone, Debug, PartialEq)]
pub struct GenerateKeyRequest {
    /// The secret, when the caller chose it; `None` lets LiteLLM make one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<ChosenKey>,
    /// Alias; must be unique among live keys (LiteLLM answers 400 otherwise). Omitted if empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key_alias: String,
    /// Lifetime as `"<n>s"` (see [`duration_string`](super::duration_string)); `None` = never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Allowed models; empty = all models of the proxy.
    pub models: Vec<String>,
    /// Spend limit in USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_budget: Option<f64>,
    /// Spend-reset window such as `30d`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_duration: Option<String>,
    /// Tokens per minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm_limit: Option<i64>,
    /// Requests per minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm_limit: Option<i64>,
    /// Concurrent requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_parallel_requests: Option<i64>,
    /// LiteLLM team that owns the key (spend attribution).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    /// LiteLLM user that owns the key (spend attribution).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Free-form metadata stored with the key.
    pub metadata: Map<String, Value>,
    /// `default`, `llm_api`, `management` or `read_only`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
}

/// A secret key chosen by the plugin rather than by LiteLLM: `sk-` and 256 random bits in
/// base64url (LiteLLM's own keys carry 128). Its hash is known before the key exists, so the
/// key can be recorded before it is created. It must be fresh: asked for an existing secret,
/// LiteLLM answers 200 with the request echoed but leaves the existing row as it was. Neither
/// `Debug` nor an error prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct ChosenKey(String);

impl ChosenKey {
    /// A fresh key from the system's CSPRNG; `None` if that fails (let LiteLLM choose then).
    pub fn random() -> Option<ChosenKey> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).ok()?;
        Some(ChosenKey(format!("sk-{}", URL_SAFE_NO_PAD.encode(bytes))))
    }

    /// The secret itself, for a static role that must store it before the key exists.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash LiteLLM will store the key under (see [`token_hash`]).
    pub fn token(&self) -> String {
        token_hash(&self.0)
    }
}

impl Serialize for ChosenKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl fmt::Debug for ChosenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChosenKey([redacted])")
    }
}

/// A freshly generated key. `Debug` never prints the secret.
#[derive(Clone, PartialEq)]
pub struct GeneratedKey {
    /// The secret `sk-…` key: hand it to the caller, never store or log it.
    pub key: String,
    /// SHA-256 hex of `key` (LiteLLM's `token`): the key's stable identifier.
    pub token: String,
    /// The alias LiteLLM stored.
    pub key_alias: Option<String>,
    /// Expiry as LiteLLM reported it (ISO-8601); `None` = never expires.
    pub expires: Option<String>,
}

impl GeneratedKey {
    /// [`expires`](Self::expires) as a point in time, if present and parseable.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires.as_deref().and_then(parse_timestamp)
    }
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("key", &"[redacted]")
            .field("token", &self.token)
            .field("key_alias", &self.key_alias)
            .field("expires", &self.expires)
            .finish()
    }
}

/// The expiry LiteLLM stored after a `/key/update`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyExpiry {
    /// As reported, e.g. `2026-11-22T08:08:04.300000+00:00`; `None` = never expires.
    pub expires: Option<String>,
    /// The same instant parsed.
    pub expires_at: Option<SystemTime>,
}

/// Outcome of a delete call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    /// LiteLLM deleted at least one of the given keys (it does not say which).
    Some,
    /// None of the given keys exists any more (LiteLLM's 404 `No keys found`); for a revoke
    /// this is success.
    NoneFound,
}

/// Lifecycle state of a key, as `/key/info` reports it (or derived the same way).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyStatus {
    /// Usable.
    Active,
    /// Past its `expires`.
    Expired,
    /// Blocked (`/key/block`).
    Revoked,
    /// Deleted; LiteLLM still answers from its archive of deleted keys.
    Deleted,
    /// A status this client does not know (from a newer LiteLLM).
    Other(String),
}

/// What `/key/info` tells about a key. Fields LiteLLM omits or sends with an unexpected
/// type are left empty rather than failing the whole lookup.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyInfo {
    /// The alias.
    pub key_alias: Option<String>,
    /// Expiry as reported; `None` = never expires.
    pub expires: Option<String>,
    /// The same instant parsed.
    pub expires_at: Option<SystemTime>,
    /// Lifecycle state.
    pub status: KeyStatus,
    /// Allowed models (empty = all).
    pub models: Vec<String>,
    /// Stored metadata.
    pub metadata: Map<String, Value>,
    /// Spend limit.
    pub max_budget: Option<f64>,
    /// Spend-reset window.
    pub budget_duration: Option<String>,
    /// Spend so far.
    pub spend: Option<f64>,
    /// Tokens per minute.
    pub tpm_limit: Option<i64>,
    /// Requests per minute.
    pub rpm_limit: Option<i64>,
    /// Concurrent requests.
    pub max_parallel_requests: Option<i64>,
    /// Owning team.
    pub team_id: Option<String>,
    /// Owning user.
    pub user_id: Option<String>,
    /// `default`, `llm_api`, …
    pub key_type: Option<String>,
    /// Whether the key is blocked.
    pub blocked: bool,
    /// When the key was deleted (archived keys only).
    pub deleted_at: Option<String>,
}

/// One entry of [`Client::list_aliases`](super::Client::list_aliases).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedKey {
    /// SHA-256 hex of the key.
    pub token: String,
    /// The alias.
    pub key_alias: String,
    /// Stored metadata (the plugin's `vault_*` stamps among it).
    pub metadata: Map<String, Value>,
    /// Expiry; `None` = never expires (or not reported).
    pub expires_at: Option<SystemTime>,
    /// Creation time, if reported.
    pub created_at: Option<SystemTime>,
}

/// The caller's own key, as [`Client::self_info`](super::Client::self_info) reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnKey {
    /// SHA-256 hex of the key the client authenticates with.
    pub token: String,
    /// What LiteLLM stores about it.
    pub info: KeyInfo,
    /// Routes the key is limited to; empty = whatever its type and its owner's role allow.
    pub allowed_routes: Vec<String>,
    /// When the key was created, as reported.
    pub created_at: Option<String>,
    /// The same instant parsed.
    pub created_at_time: Option<SystemTime>,
}

/// The fields of a `/key/generate` answer the client reads. LiteLLM answers with the whole
/// key row (about 80 fields); serde skips the others without building them.
#[derive(Deserialize)]
pub(super) struct GenerateAnswer {
    #[serde(default, deserialize_with = "present")]
    pub(super) key: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub(super) token: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub(super) key_alias: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub(super) expires: Option<Value>,
}

/// The field of a `/key/update` answer the client reads.
#[derive(Deserialize)]
pub(super) struct UpdateAnswer {
    #[serde(default, deserialize_with = "present")]
    pub(super) expires: Option<Value>,
}

/// The field of a `/key/delete` answer the client reads.
#[derive(Deserialize)]
pub(super) struct DeleteAnswer {
    #[serde(default, deserialize_with = "present")]
    pub(super) deleted_keys: Option<Value>,
}

/// `Some` whenever the field is present, `null` included (a plain `Option` would turn `null`
/// into `None`); absent fields get `None` from `#[serde(default)]`.
pub(super) fn present<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

pub(super) fn into_string(value: Option<Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::client::duration_string;

    #[test]
    fn generate_request_skips_unset_fields() {
        let req = GenerateKeyRequest {
            key_alias: "a".into(),
            duration: Some(duration_string(90)),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&req).ok(),
            Some(serde_json::json!({"key_alias":"a","duration":"90s","models":[],"metadata":{}}))
        );
    }

    #[test]
    fn answers_keep_null_apart_from_absent_and_skip_other_fields() {
        let answer: UpdateAnswer =
            serde_json::from_str(r#"{"expires":null,"router_settings":{"a":[1,2]}}"#).unwrap();
        assert_eq!(answer.expires, Some(Value::Null));
        let answer: UpdateAnswer = serde_json::from_str(r#"{"spend":0.0}"#).unwrap();
        assert_eq!(answer.expires, None);
        let answer: GenerateAnswer =
            serde_json::from_str(r#"{"key":"sk-x","models":[],"expires":"2026-11-22T10:00:00Z"}"#)
                .unwrap();
        assert_eq!(into_string(answer.key).as_deref(), Some("sk-x"));
        assert_eq!(into_string(answer.key_alias), None);
        assert!(into_string(answer.expires).is_some());
    }

    #[test]
    fn chosen_keys_are_long_random_and_never_printed() {
        let (Some(a), Some(b)) = (ChosenKey::random(), ChosenKey::random()) else {
            panic!("the CSPRNG failed");
        };
        assert_ne!(a, b);
        let Value::String(secret) = serde_json::to_value(&a).unwrap() else {
            panic!("a chosen key serializes to a string");
        };
        // `sk-` + 32 bytes in unpadded base64url: LiteLLM wants `sk-` and at least 16 chars.
        let body = secret.strip_prefix("sk-").unwrap();
        assert_eq!(body.len(), 43);
        assert!(
            body.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(a.token(), token_hash(&secret));
        let req = GenerateKeyRequest {
            key: Some(a),
            ..Default::default()
        };
        assert!(!format!("{req:?}").contains(body));
        assert_eq!(
            serde_json::to_value(&req).unwrap()["key"],
            Value::String(secret)
        );
    }
}

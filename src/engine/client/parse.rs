//! Reading LiteLLM's answers: timestamps in all the forms it writes, error messages of
//! LiteLLM and FastAPI, key rows, and the redaction every quoted body passes through.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use super::OP_INFO;
use super::error::{ApiError, invalid};
use super::types::{KeyInfo, KeyStatus, OwnKey};

/// Lowercase hex SHA-256 of a key: the `token` under which LiteLLM stores it.
pub fn token_hash(key: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest.as_ref() {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A LiteLLM `duration` value for whole seconds: `"<n>s"`. LiteLLM rejects a bare number.
pub fn duration_string(secs: u64) -> String {
    format!("{secs}s")
}

/// Replaces secrets in text quoted from LiteLLM: every exact occurrence of one of `secrets`
/// becomes `[redacted]`, and every `sk-` key longer than 12 characters becomes
/// `sk-...<last 4>` (LiteLLM's own short form, which it prints itself).
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if text.contains(secret) {
            text = text.replace(secret, "[redacted]");
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(pos) = rest.find("sk-") {
        let (before, from_key) = rest.split_at(pos);
        out.push_str(before);
        let len = from_key
            .char_indices()
            .skip(3)
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .map_or(from_key.len(), |(i, _)| i);
        let (token, after) = from_key.split_at(len);
        if token.len() > 12 {
            out.push_str("sk-...");
            out.push_str(token.get(token.len() - 4..).unwrap_or_default());
        } else {
            out.push_str(token);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Parses the timestamps LiteLLM emits: `…Z` (generate, list), `…+00:00` (info, update),
/// or naive (assumed UTC). Any `±HH:MM` offset is honoured.
pub fn parse_timestamp(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let bytes = s.as_bytes();
    let n = bytes.len();
    // `YYYY-MM-DDTHH:MM:SS` is 19 bytes; an offset needs at least that before it.
    if n >= 25 && matches!(bytes[n - 6], b'+' | b'-') && bytes[n - 3] == b':' {
        let base = s.get(..n - 6)?;
        let hours = std::str::from_utf8(&bytes[n - 5..n - 3])
            .ok()?
            .parse::<u64>()
            .ok()?;
        let minutes = std::str::from_utf8(&bytes[n - 2..])
            .ok()?
            .parse::<u64>()
            .ok()?;
        let offset = Duration::from_secs(hours * 3600 + minutes * 60);
        let local = humantime::parse_rfc3339_weak(base).ok()?;
        // Local time = UTC + offset, so UTC = local - offset.
        return if bytes[n - 6] == b'+' {
            local.checked_sub(offset)
        } else {
            local.checked_add(offset)
        };
    }
    humantime::parse_rfc3339_weak(s).ok()
}

/// The message of a LiteLLM (`{"error":{"message"}}`) or FastAPI (`{"detail": …}`) error body.
pub(super) fn litellm_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    if let Some(error) = value.get("error") {
        return match error {
            Value::String(s) => Some(s.clone()),
            Value::Object(e) => e.get("message").map(|m| match m {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            _ => None,
        };
    }
    match value.get("detail")? {
        Value::String(s) => Some(s.clone()),
        // Validation errors: [{"type","loc","msg"}, …] → "body.duration: Input should be …".
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|item| {
                    let msg = item.get("msg").and_then(Value::as_str).unwrap_or("invalid");
                    match item.get("loc").and_then(Value::as_array) {
                        Some(loc) if !loc.is_empty() => {
                            let loc: Vec<String> = loc
                                .iter()
                                .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
                                .collect();
                            format!("{}: {msg}", loc.join("."))
                        }
                        _ => msg.to_owned(),
                    }
                })
                .collect();
            Some(parts.join("; "))
        }
        other => Some(other.to_string()),
    }
}

/// Whether a 404 body is LiteLLM saying "no such key" (`{"error": {"type": "not_found_error"
/// | message "Key not found…"}}`), as opposed to a 404 from something in front of it (e.g.
/// FastAPI's `{"detail": "Not Found"}` for a wrong path prefix).
pub(super) fn is_litellm_key_not_found(body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let Some(error) = value.get("error") else {
        return false;
    };
    let field = |name: &str| error.get(name).and_then(Value::as_str).unwrap_or_default();
    field("type") == "not_found_error"
        || field("message")
            .to_ascii_lowercase()
            .contains("key not found")
}

pub(super) fn key_info(info: &Map<String, Value>, now: SystemTime) -> KeyInfo {
    let expires = opt_string(info, "expires");
    let expires_at = expires.as_deref().and_then(parse_timestamp);
    let blocked = info
        .get("blocked")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let deleted_at = opt_string(info, "deleted_at");
    // LiteLLM 1.108 reports `status`; derive it the same way for proxies that do not.
    let status = match opt_string(info, "status").as_deref() {
        Some("active") => KeyStatus::Active,
        Some("expired") => KeyStatus::Expired,
        Some("revoked") => KeyStatus::Revoked,
        Some("deleted") => KeyStatus::Deleted,
        Some(other) => KeyStatus::Other(other.to_owned()),
        None if deleted_at.is_some() => KeyStatus::Deleted,
        None if blocked => KeyStatus::Revoked,
        None if expires_at.is_some_and(|at| at <= now) => KeyStatus::Expired,
        None => KeyStatus::Active,
    };
    KeyInfo {
        key_alias: opt_string(info, "key_alias"),
        expires,
        expires_at,
        status,
        models: info
            .get("models")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        metadata: info
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        max_budget: info.get("max_budget").and_then(Value::as_f64),
        budget_duration: opt_string(info, "budget_duration"),
        spend: info.get("spend").and_then(Value::as_f64),
        tpm_limit: info.get("tpm_limit").and_then(Value::as_i64),
        rpm_limit: info.get("rpm_limit").and_then(Value::as_i64),
        max_parallel_requests: info.get("max_parallel_requests").and_then(Value::as_i64),
        team_id: opt_string(info, "team_id"),
        user_id: opt_string(info, "user_id"),
        key_type: opt_string(info, "key_type"),
        blocked,
        deleted_at,
    }
}

/// Parses a `/key/info` answer about the caller's own key, checking that it is about
/// `expected_token` (LiteLLM echoes the hash of the key it looked up in `key`).
pub(super) fn own_key(
    obj: &Map<String, Value>,
    expected_token: &str,
    now: SystemTime,
) -> Result<OwnKey, ApiError> {
    let Some(Value::Object(info)) = obj.get("info") else {
        return Err(invalid(OP_INFO, "missing `info` object"));
    };
    if let Some(Value::String(echoed)) = obj.get("key")
        && !echoed.eq_ignore_ascii_case(expected_token)
    {
        return Err(invalid(OP_INFO, "the answer is about a different key"));
    }
    let created_at = opt_string(info, "created_at");
    Ok(OwnKey {
        token: expected_token.to_owned(),
        info: key_info(info, now),
        allowed_routes: info
            .get("allowed_routes")
            .and_then(Value::as_array)
            .map(|routes| {
                routes
                    .iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        created_at_time: created_at.as_deref().and_then(parse_timestamp),
        created_at,
    })
}

pub(super) fn opt_string(obj: &Map<String, Value>, field: &str) -> Option<String> {
    obj.get(field).and_then(Value::as_str).map(str::to_owned)
}

pub(super) fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn redact_shortens_long_keys_and_removes_secrets() {
        let master = "sk-local-0123456789abcdef";
        let text =
            format!("bad key {master} and sk-sPViGGjrpUUH1oTN0SjYHw, short sk-...jYHw sk-abc");
        let out = redact(&text, &[master]);
        assert!(!out.contains(master));
        assert!(!out.contains("sPViGGjrpUUH1oTN0SjYHw"));
        assert!(out.contains("sk-...jYHw"));
        assert!(out.contains("sk-abc"));
        assert!(out.contains("[redacted]"));
        // A master key that is not `sk-` shaped is still caught.
        assert_eq!(
            redact("x=hunter2hunter2", &["hunter2hunter2"]),
            "x=[redacted]"
        );
        // Multi-byte text around keys must not panic.
        assert_eq!(redact("é sk-ééééééééééééé", &[]), "é sk-ééééééééééééé");
        assert_eq!(redact("sk-", &[]), "sk-");
    }

    #[test]
    fn timestamps_in_all_litellm_forms() {
        let z = parse_timestamp("2026-11-22T08:07:03.891396Z");
        let off = parse_timestamp("2026-11-22T08:07:03.891396+00:00");
        let naive = parse_timestamp("2026-11-22T08:07:03.891396");
        assert!(z.is_some());
        assert_eq!(z, off);
        assert_eq!(z, naive);
        assert_eq!(
            parse_timestamp("2026-11-22T10:07:03.891396+02:00"),
            z,
            "offsets are applied"
        );
        assert_eq!(parse_timestamp("2026-11-22T06:07:03.891396-02:00"), z);
        // Python leaves a zero fraction out: LiteLLM's creation times (whole milliseconds)
        // come without one once in a thousand keys.
        let whole = parse_timestamp("2026-11-22T08:07:03Z");
        assert!(whole.is_some());
        assert_eq!(parse_timestamp("2026-11-22T08:07:03+00:00"), whole);
        assert_eq!(parse_timestamp("2026-11-22T08:07:03"), whole);
        assert_eq!(parse_timestamp("2026-11-22T10:07:03+02:00"), whole);
        assert_eq!(parse_timestamp("never"), None);
        assert_eq!(parse_timestamp("2026-11-22T08:07:03.891396+0é:00"), None);
        assert_eq!(parse_timestamp(""), None);
    }

    #[test]
    fn error_messages_from_all_shapes() {
        let litellm = br#"{"error":{"message":"{'error': 'No keys found'}","type":"internal_server_error","param":null,"code":"404"}}"#;
        assert_eq!(
            litellm_message(litellm).as_deref(),
            Some("{'error': 'No keys found'}")
        );
        let fastapi = br#"{"detail":[{"type":"list_type","loc":["body","keys"],"msg":"Input should be a valid list"}]}"#;
        assert_eq!(
            litellm_message(fastapi).as_deref(),
            Some("body.keys: Input should be a valid list")
        );
        let detail = br#"{"detail":"Virtual key is not allowed to call this route."}"#;
        assert_eq!(
            litellm_message(detail).as_deref(),
            Some("Virtual key is not allowed to call this route.")
        );
        assert_eq!(litellm_message(b"<html>"), None);
    }

    #[test]
    fn status_derivation_without_status_field() {
        let now = SystemTime::now();
        let info = |v: Value| key_info(v.as_object().unwrap_or(&Map::new()), now).status;
        assert_eq!(info(serde_json::json!({})), KeyStatus::Active);
        assert_eq!(
            info(serde_json::json!({"blocked": true})),
            KeyStatus::Revoked
        );
        assert_eq!(
            info(serde_json::json!({"expires": "2000-01-01T00:00:00Z"})),
            KeyStatus::Expired
        );
        assert_eq!(
            info(serde_json::json!({"deleted_at": "2000-01-01T00:00:00Z", "blocked": true})),
            KeyStatus::Deleted
        );
        assert_eq!(
            info(serde_json::json!({"status": "paused"})),
            KeyStatus::Other("paused".into())
        );
    }

    #[test]
    fn own_key_parses_the_real_answer_shape() {
        let hash = token_hash("sk-own-admin-key-0123456789");
        let answer = serde_json::json!({
            "key": hash,
            "info": {
                "key_name": "sk-...6789",
                "key_alias": "vault-admin",
                "user_id": "vault-admin-user",
                "key_type": "default",
                "models": [],
                "metadata": {"owner": "vault"},
                "allowed_routes": ["/key/generate", "/key/list"],
                "expires": null,
                "created_at": "2026-11-22T08:46:30.585000+00:00",
                "status": "active"
            }
        });
        let own = own_key(
            answer.as_object().unwrap_or(&Map::new()),
            &hash,
            SystemTime::now(),
        );
        let own = own.map_err(|e| e.to_string());
        assert!(own.is_ok(), "{own:?}");
        if let Ok(own) = own {
            assert_eq!(own.token, hash);
            assert_eq!(own.info.key_alias.as_deref(), Some("vault-admin"));
            assert_eq!(own.info.user_id.as_deref(), Some("vault-admin-user"));
            assert_eq!(own.info.expires, None);
            assert_eq!(own.allowed_routes, vec!["/key/generate", "/key/list"]);
            assert_eq!(
                own.created_at_time,
                parse_timestamp("2026-11-22T08:46:30.585Z")
            );
        }
    }

    #[test]
    fn own_key_refuses_answers_about_another_key_or_without_info() {
        let mine = token_hash("sk-mine-0123456789abcdef");
        let theirs = serde_json::json!({"key": token_hash("sk-other"), "info": {}});
        let obj = theirs.as_object().cloned().unwrap_or_default();
        assert!(matches!(
            own_key(&obj, &mine, SystemTime::now()),
            Err(ApiError::InvalidResponse { .. })
        ));
        let bare = serde_json::json!({"key": mine});
        let obj = bare.as_object().cloned().unwrap_or_default();
        assert!(matches!(
            own_key(&obj, &mine, SystemTime::now()),
            Err(ApiError::InvalidResponse { .. })
        ));
        // A proxy that does not echo the key is taken at its word.
        let silent = serde_json::json!({"info": {"allowed_routes": "not a list"}});
        let obj = silent.as_object().cloned().unwrap_or_default();
        let own = own_key(&obj, &mine, SystemTime::now()).map_err(|e| e.to_string());
        assert_eq!(own.map(|o| o.allowed_routes), Ok(Vec::new()));
    }
}

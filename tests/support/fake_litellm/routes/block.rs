//! `POST /key/block` and `/key/unblock`.

use super::super::*;

pub(crate) fn block(
    shared: &Shared,
    obj: &Map<String, Value>,
    blocked: bool,
    now: SystemTime,
) -> Reply {
    let key = match obj.get("key") {
        Some(Value::String(k)) => k.clone(),
        None => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"detail": [validation("missing", &["body", "key"], "Field required")]}),
            );
        }
        Some(_) => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"detail": [validation("string_type", &["body", "key"], "Input should be a valid string")]}),
            );
        }
    };
    if !is_valid_api_key(&key) {
        return (
            StatusCode::BAD_REQUEST,
            litellm_error(
                StatusCode::BAD_REQUEST,
                "Invalid key format.",
                "bad_request_error",
                json!("key"),
            ),
        );
    }
    let token = if key.starts_with("sk-") {
        sha256_hex(&key)
    } else {
        key
    };
    let mut db = shared.db();
    let Some(record) = db.live.get_mut(&token) else {
        return not_found("Key not found.", "key");
    };
    record.blocked = Some(blocked);
    record.updated_at = to_millis(now);
    let mut out = row_json(record, TimeStyle::Z);
    out.insert("token".into(), json!(token));
    (StatusCode::OK, Value::Object(out))
}

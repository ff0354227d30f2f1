//! `GET /key/info`.

use super::super::*;

pub(crate) fn info(
    shared: &Shared,
    caller: &Caller,
    query: &HashMap<String, String>,
    now: SystemTime,
) -> Reply {
    let asked = query.get("key").filter(|k| !k.is_empty()).cloned();
    let (echo, token) = match (&asked, caller) {
        (Some(k), _) => (
            k.clone(),
            if k.starts_with("sk-") {
                sha256_hex(k)
            } else {
                k.clone()
            },
        ),
        (None, Caller::Virtual(own)) => (own.token.clone(), own.token.clone()),
        (None, Caller::Master) => return not_found("Key not found in database", "key"),
    };
    if let Caller::Virtual(own) = caller
        && own.token != token
        && !shared.is_admin_key(own)
    {
        return (
            StatusCode::FORBIDDEN,
            litellm_error(
                StatusCode::FORBIDDEN,
                "You are not allowed to access this key's info. Your role=unknown",
                "auth_error",
                Value::Null,
            ),
        );
    }
    let db = shared.db();
    let (record, status) = if let Some(k) = db.live.get(&token) {
        (k, live_status(k, now))
    } else if let Some(k) = db.deleted.get(&token) {
        (k, "deleted")
    } else {
        return not_found("Key not found in database", "key");
    };
    let mut out = row_json(record, TimeStyle::Offset);
    if let Some(deleted_at) = record.deleted_at {
        out.insert("deleted_at".into(), json!(fmt_offset(deleted_at)));
        out.insert("deleted_by".into(), json!("default_user_id"));
        out.insert(
            "deleted_by_api_key".into(),
            json!("litellm_proxy_master_key"),
        );
        out.insert("blocked".into(), json!(record.blocked.unwrap_or(false)));
    }
    out.insert("status".into(), json!(status));
    (StatusCode::OK, json!({"key": echo, "info": out}))
}

pub(crate) fn live_status(k: &KeyRecord, now: SystemTime) -> &'static str {
    if k.blocked == Some(true) {
        "revoked"
    } else if k.expires.is_some_and(|e| e < now) {
        "expired"
    } else {
        "active"
    }
}

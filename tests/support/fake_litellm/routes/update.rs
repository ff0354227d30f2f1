//! `POST /key/update`.

use super::super::*;

pub(crate) fn update(shared: &Shared, obj: &Map<String, Value>, now: SystemTime) -> Reply {
    let f = match parse_fields(obj) {
        Ok(f) => f,
        Err(reply) => return reply,
    };
    let lookup_alias = if f.key.is_none() {
        f.key_alias.clone().flatten()
    } else {
        None
    };
    if f.key.is_none() && lookup_alias.is_none() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [validation("value_error", &["body"], "Value error, either key or key_alias must be provided")]}),
        );
    }
    if let Err(reply) = check_budgets(&f) {
        return reply;
    }
    // `""` leaves the expiry alone, `null`/`"-1"` removes it, anything else is recomputed.
    let new_expires: Option<Option<SystemTime>> = match &f.duration {
        None => None,
        Some(None) => Some(None),
        Some(Some(d)) if d.is_empty() => None,
        Some(Some(d)) if d == "-1" => Some(None),
        Some(Some(d)) => match duration_seconds(d, now) {
            Ok(secs) => Some(Some(to_millis(now + Duration::from_secs(secs)))),
            Err(message) => {
                return (
                    StatusCode::BAD_REQUEST,
                    json!({"error": {"message": format!("Authentication Error, {message}"), "type": "auth_error", "param": "None", "code": "400"}}),
                );
            }
        },
    };

    let mut db = shared.db();
    let token = match (&f.key, &lookup_alias) {
        (Some(key), _) => {
            let token = if key.starts_with("sk-") {
                sha256_hex(key)
            } else {
                key.clone()
            };
            if !db.live.contains_key(&token) {
                return not_found("Key not found.", "key");
            }
            token
        }
        (None, Some(alias)) => match db.by_alias(alias) {
            Some(k) => k.token.clone(),
            None => {
                return not_found(
                    &format!("Key not found. No key with key_alias='{alias}'."),
                    "key_alias",
                );
            }
        },
        (None, None) => return not_found("Key not found.", "key"),
    };
    // With `key` given, `key_alias` is a rename and must stay unique.
    if f.key.is_some()
        && let Some(Some(alias)) = &f.key_alias
        && db.alias_taken(alias, Some(&token))
    {
        return duplicate_alias(alias);
    }
    if f.key.is_some()
        && let Some(alias) = &f.key_alias
    {
        db.set_alias(&token, alias.clone());
    }
    let Some(record) = db.live.get_mut(&token) else {
        return not_found("Key not found.", "key");
    };
    if let Some(expires) = new_expires {
        record.expires = expires;
    }
    if let Some(models) = &f.models {
        record.models = models.clone();
    }
    if let Some(v) = f.max_budget {
        record.max_budget = v;
    }
    if let Some(v) = &f.budget_duration {
        record.budget_duration = v.clone();
    }
    if let Some(v) = f.tpm_limit {
        record.tpm_limit = v;
    }
    if let Some(v) = f.rpm_limit {
        record.rpm_limit = v;
    }
    if let Some(v) = f.max_parallel_requests {
        record.max_parallel_requests = v;
    }
    if let Some(v) = &f.team_id {
        record.team_id = v.clone();
    }
    if let Some(v) = &f.user_id {
        record.user_id = v.clone();
    }
    // Replaces the whole dict, as LiteLLM does: callers must re-send all metadata.
    if let Some(m) = &f.metadata {
        record.metadata = m.clone();
    }
    if let Some(t) = &f.key_type {
        record.key_type = t.clone();
    }
    if let Some(b) = f.blocked {
        record.blocked = b;
    }
    record.updated_at = to_millis(now);
    let mut out = row_json(record, TimeStyle::Offset);
    out.insert(
        "key".into(),
        json!(f.key.clone().unwrap_or_else(|| token.clone())),
    );
    out.insert("token".into(), json!(token));
    (StatusCode::OK, Value::Object(out))
}

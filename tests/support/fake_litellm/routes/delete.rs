//! `POST /key/delete`.

use super::super::*;

pub(crate) fn delete(shared: &Shared, obj: &Map<String, Value>, now: SystemTime) -> Reply {
    let mut errors = Vec::new();
    let mut list = |name: &str| -> Option<Vec<String>> {
        match obj.get(name)? {
            Value::Null => None,
            Value::Array(items) => Some(
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            ),
            _ => {
                errors.push(validation(
                    "list_type",
                    &["body", name],
                    "Input should be a valid list",
                ));
                None
            }
        }
    };
    let keys = list("keys");
    let aliases = list("key_aliases");
    if !errors.is_empty() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "detail": errors }),
        );
    }
    let non_empty = |l: &Option<Vec<String>>| l.as_ref().is_some_and(|l| !l.is_empty());
    if !non_empty(&keys) && !non_empty(&aliases) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [validation("value_error", &["body"], "Value error, At least one of 'keys' or 'key_aliases' must be provided.")]}),
        );
    }
    let deleted_at = to_millis(now);
    let mut db = shared.db();
    // When `keys` is present (even empty) LiteLLM ignores `key_aliases`.
    let (echo, tokens): (Vec<String>, Vec<String>) = match keys {
        Some(keys) => {
            let tokens = keys
                .iter()
                .map(|k| {
                    if k.starts_with("sk-") {
                        sha256_hex(k)
                    } else {
                        k.clone()
                    }
                })
                .collect();
            (keys, tokens)
        }
        None => {
            let aliases = aliases.unwrap_or_default();
            let tokens = aliases
                .iter()
                .filter_map(|a| db.by_alias.get(a))
                .flatten()
                .cloned()
                .collect();
            (aliases, tokens)
        }
    };
    let mut removed = 0;
    for token in tokens {
        if let Some(mut record) = db.remove(&token) {
            record.deleted_at = Some(deleted_at);
            record.updated_at = deleted_at;
            db.deleted.insert(token, record);
            removed += 1;
        }
    }
    if removed == 0 {
        return dict_error(StatusCode::NOT_FOUND, "No keys found");
    }
    (StatusCode::OK, json!({ "deleted_keys": echo }))
}

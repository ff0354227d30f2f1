//! `GET /key/list`.

use super::super::*;

pub(crate) fn list(shared: &Shared, query: &HashMap<String, String>, now: SystemTime) -> Reply {
    let mut errors = Vec::new();
    let mut int_param = |name: &str, default: u64, min: u64, max: Option<u64>| -> u64 {
        let Some(raw) = query.get(name) else {
            return default;
        };
        match raw.trim().parse::<u64>() {
            Ok(v) if v < min => {
                errors.push(validation(
                    "greater_than_equal",
                    &["query", name],
                    &format!("Input should be greater than or equal to {min}"),
                ));
                default
            }
            Ok(v) if max.is_some_and(|m| v > m) => {
                errors.push(validation(
                    "less_than_equal",
                    &["query", name],
                    &format!(
                        "Input should be less than or equal to {}",
                        max.unwrap_or_default()
                    ),
                ));
                default
            }
            Ok(v) => v,
            Err(_) => {
                errors.push(validation(
                    "int_parsing",
                    &["query", name],
                    "Input should be a valid integer, unable to parse string as an integer",
                ));
                default
            }
        }
    };
    let page = int_param("page", 1, 1, None);
    let size = int_param("size", 10, 1, Some(100));
    if !errors.is_empty() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "detail": errors }),
        );
    }
    let flag = |name: &str| {
        query
            .get(name)
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on"))
    };
    let full = flag("return_full_object");
    let substring = flag("substring_matching");
    let filter = |name: &str| query.get(name).filter(|v| !v.is_empty());

    let db = shared.db();
    let status_filter = filter("status").map(String::as_str);
    let source: Vec<&KeyRecord> = if status_filter == Some("deleted") {
        db.deleted.values().collect()
    } else {
        db.live.values().collect()
    };
    let mut matched: Vec<&KeyRecord> = source
        .into_iter()
        .filter(|k| match filter("key_alias") {
            None => true,
            Some(want) => k.key_alias.as_ref().is_some_and(|a| {
                if substring {
                    a.to_lowercase().contains(&want.to_lowercase())
                } else {
                    a == want
                }
            }),
        })
        .filter(|k| filter("key_hash").is_none_or(|h| &k.token == h))
        .filter(|k| filter("user_id").is_none_or(|u| k.user_id.as_ref() == Some(u)))
        .filter(|k| filter("team_id").is_none_or(|t| k.team_id.as_ref() == Some(t)))
        .filter(|k| match status_filter {
            None | Some("deleted") => true,
            Some(s) => live_status(k, now) == s,
        })
        .filter(|k| match filter("expires").map(String::as_str) {
            Some("expired") => k.expires.is_some_and(|e| e < now),
            Some("active") => k.expires.is_none_or(|e| e >= now),
            _ => true,
        })
        .collect();
    // Newest first, like LiteLLM's default sort; `sort_order=asc` (with `sort_by=created_at`,
    // the only column the plugin sorts by) gives oldest first.
    if filter("sort_order").is_some_and(|o| o.eq_ignore_ascii_case("asc")) {
        matched.sort_by_key(|k| k.seq);
    } else {
        matched.sort_by_key(|k| std::cmp::Reverse(k.seq));
    }
    let total = matched.len() as u64;
    let total_pages = total.div_ceil(size);
    let start = usize::try_from((page - 1).saturating_mul(size)).unwrap_or(usize::MAX);
    let keys: Vec<Value> = matched
        .into_iter()
        .skip(start)
        .take(usize::try_from(size).unwrap_or(100))
        .map(|k| {
            if full {
                let mut row = row_json(k, TimeStyle::Z);
                row.insert("token".into(), json!(k.token));
                Value::Object(row)
            } else {
                json!(k.token)
            }
        })
        .collect();
    (
        StatusCode::OK,
        json!({"keys": keys, "total_count": total, "current_page": page, "total_pages": total_pages}),
    )
}

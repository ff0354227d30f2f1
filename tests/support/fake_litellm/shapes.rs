//! JSON shapes: LiteLLM's and Python/FastAPI's error bodies, key rows, responses.

use super::*;

/// Parses a JSON-object body the way FastAPI + LiteLLM answer malformed ones.
pub(crate) fn with_object(body: &Bytes, f: impl FnOnce(&Map<String, Value>) -> Reply) -> Reply {
    if body.iter().all(u8::is_ascii_whitespace) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [validation("missing", &["body"], "Field required")]}),
        );
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => f(&obj),
        // LiteLLM's handlers crash on non-object JSON before validating it.
        Ok(_) => (StatusCode::INTERNAL_SERVER_ERROR, unhandled_exception()),
        Err(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error"}]}),
        ),
    }
}

pub(crate) fn validation(kind: &str, loc: &[&str], msg: &str) -> Value {
    json!({"type": kind, "loc": loc, "msg": msg})
}

pub(crate) fn litellm_error(status: StatusCode, message: &str, kind: &str, param: Value) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": status.as_u16().to_string()}})
}

/// LiteLLM's `HTTPException(detail={"error": msg})`: the message is the dict's Python repr.
pub(crate) fn dict_error(status: StatusCode, message: &str) -> Reply {
    (
        status,
        litellm_error(
            status,
            &format!("{{'error': {}}}", py_repr(message)),
            "internal_server_error",
            Value::Null,
        ),
    )
}

pub(crate) fn not_found(message: &str, param: &str) -> Reply {
    (
        StatusCode::NOT_FOUND,
        litellm_error(
            StatusCode::NOT_FOUND,
            message,
            "not_found_error",
            json!(param),
        ),
    )
}

/// Python's `repr()` of a str: single quotes unless the text contains one.
pub(crate) fn py_repr(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\'', "\\'"))
    }
}

#[derive(Clone, Copy)]
pub(crate) enum TimeStyle {
    /// `…000Z` (generate, list, block)
    Z,
    /// `…000+00:00` (info, update)
    Offset,
}

/// The stored row as LiteLLM serializes it (without `token`/`key`, which callers add).
pub(crate) fn row_json(k: &KeyRecord, style: TimeStyle) -> Map<String, Value> {
    let t = |ts: SystemTime| match style {
        TimeStyle::Z => fmt_z(ts),
        TimeStyle::Offset => fmt_offset(ts),
    };
    let value = json!({
        "key_name": k.key_name,
        "key_alias": k.key_alias,
        "spend": k.spend,
        "max_budget": k.max_budget,
        "expires": k.expires.map(t),
        "models": k.models,
        "aliases": {},
        "config": {},
        "user_id": k.user_id,
        "team_id": k.team_id,
        "max_parallel_requests": k.max_parallel_requests,
        "metadata": k.metadata,
        "tpm_limit": k.tpm_limit,
        "rpm_limit": k.rpm_limit,
        "budget_duration": k.budget_duration,
        "allowed_cache_controls": [],
        "allowed_routes": if k.key_type == "llm_api" { json!(["llm_api_routes"]) } else if k.key_type == "management" { json!(["management_routes"]) } else { json!([]) },
        "key_type": k.key_type,
        "permissions": {},
        "blocked": k.blocked,
        "created_at": t(k.created_at),
        "created_by": "default_user_id",
        "updated_at": t(k.updated_at),
        "updated_by": "default_user_id",
    });
    match value {
        Value::Object(mut map) => {
            map.extend(k.extra.clone());
            map
        }
        _ => Map::new(),
    }
}

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    raw_response(status, "application/json", value.to_string())
}

pub(crate) fn raw_response(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

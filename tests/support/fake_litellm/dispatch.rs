//! Request handling: counting, faults, authentication and routing to the route modules.

use super::*;

pub(crate) type Reply = (StatusCode, Value);

/// Who is calling.
pub(crate) enum Caller {
    Master,
    Virtual(Box<KeyRecord>),
}

pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let (op, allowed) = match path {
        "/key/generate" => (Op::Generate, Method::POST),
        "/key/update" => (Op::Update, Method::POST),
        "/key/delete" => (Op::Delete, Method::POST),
        "/key/info" => (Op::Info, Method::GET),
        "/key/list" => (Op::List, Method::GET),
        "/key/block" | "/key/unblock" => (Op::Block, Method::POST),
        "/v1/models" | "/models" => (Op::Models, Method::GET),
        "/model/info" => (Op::ModelInfo, Method::GET),
        "/team/new" => (Op::TeamNew, Method::POST),
        "/team/update" => (Op::TeamUpdate, Method::POST),
        "/team/delete" => (Op::TeamDelete, Method::POST),
        "/team/info" => (Op::TeamInfo, Method::GET),
        "/team/member_add" => (Op::MemberAdd, Method::POST),
        "/health/liveliness" | "/health/liveness" | "/health/readiness" => {
            (Op::Health, Method::GET)
        }
        _ => return json_response(StatusCode::NOT_FOUND, &json!({"detail": "Not Found"})),
    };
    if method != allowed {
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"detail": "Method Not Allowed"}),
        );
    }
    shared.count(op);

    let fault = shared.take_fault(op);
    match &fault {
        Fault::Status(code) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return json_response(
                status,
                &litellm_error(
                    status,
                    "fault injected by FakeLiteLlm",
                    "internal_server_error",
                    Value::Null,
                ),
            );
        }
        Fault::Body { status, body } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return raw_response(status, "application/json", body.clone());
        }
        Fault::NonJson => {
            return raw_response(
                StatusCode::OK,
                "text/html",
                "<html><body><h1>502 Bad Gateway</h1></body></html>".to_owned(),
            );
        }
        Fault::Reset => {
            conn.0.kill();
            return raw_response(StatusCode::OK, "text/plain", String::new());
        }
        Fault::None | Fault::Truncated | Fault::Delay(_) | Fault::LoseResponse => {}
    }

    let query = Query::<HashMap<String, String>>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let (status, value) = if op == Op::Health {
        health(path)
    } else {
        match authenticate(&shared, &headers) {
            Err(reply) => reply,
            Ok(caller) => route(&shared, op, path, &caller, &query, &body),
        }
    };

    match fault {
        Fault::Delay(d) => tokio::time::sleep(d).await,
        Fault::LoseResponse => {
            conn.0.kill();
            return raw_response(StatusCode::OK, "text/plain", String::new());
        }
        Fault::Truncated => {
            // The connection lets half of the body out, then closes under the full
            // Content-Length.
            let full = value.to_string();
            conn.0
                .truncate_body_to
                .store(full.len() / 2, Ordering::SeqCst);
            return raw_response(status, "application/json", full);
        }
        _ => {}
    }
    if is_unhandled_exception(status, &value) {
        // uvicorn drops the keep-alive connection after an unhandled exception's 500, without
        // a `Connection: close`; a client that reuses it at once gets a reset.
        conn.0
            .truncate_body_to
            .store(value.to_string().len(), Ordering::SeqCst);
    }
    json_response(status, &value)
}

pub(crate) fn unhandled_exception() -> Value {
    json!({"error": {"message": "Internal server error", "type": "internal_server_error"}})
}

pub(crate) fn is_unhandled_exception(status: StatusCode, value: &Value) -> bool {
    status == StatusCode::INTERNAL_SERVER_ERROR && *value == unhandled_exception()
}

pub(crate) fn route(
    shared: &Shared,
    op: Op,
    path: &str,
    caller: &Caller,
    query: &HashMap<String, String>,
    body: &Bytes,
) -> Reply {
    if let Caller::Virtual(key) = caller
        && !shared.is_admin_key(key)
        && let Some(reply) = virtual_key_route_check(key, op, path)
    {
        return reply;
    }
    let now = shared.now();
    match op {
        Op::Generate => with_object(body, |obj| generate(shared, obj, now)),
        Op::Update => with_object(body, |obj| update(shared, obj, now)),
        Op::Delete => with_object(body, |obj| delete(shared, obj, now)),
        Op::Block => with_object(body, |obj| block(shared, obj, path == "/key/block", now)),
        Op::Info => info(shared, caller, query, now),
        Op::List => list(shared, query, now),
        Op::Models => models(shared, caller),
        Op::ModelInfo => model_info(shared, caller),
        Op::TeamNew => with_object(body, |obj| team_new(shared, obj)),
        Op::TeamUpdate => with_object(body, |obj| team_update(shared, obj)),
        Op::TeamDelete => with_object(body, |obj| team_delete(shared, obj, now)),
        Op::TeamInfo => team_info(shared, query),
        Op::MemberAdd => with_object(body, |obj| member_add(shared, obj)),
        Op::Health | Op::Any => health(path),
    }
}

pub(crate) fn health(path: &str) -> Reply {
    if path == "/health/readiness" {
        (
            StatusCode::OK,
            json!({"status": "healthy", "db": "connected"}),
        )
    } else {
        (StatusCode::OK, json!("I'm alive!"))
    }
}

/// LiteLLM's `user_api_key_auth`, for the cases the plugin can meet.
pub(crate) fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<Caller, Reply> {
    let header_str = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let strip_bearer = |v: &str| -> Option<String> {
        let lower = v.to_ascii_lowercase();
        ["bearer ", "basic "]
            .iter()
            .find(|p| lower.starts_with(*p))
            .and_then(|p| v.get(p.len()..))
            .map(|rest| rest.trim().to_owned())
    };
    let presented = if let Some(v) = header_str("authorization") {
        match strip_bearer(v) {
            Some(k) => k,
            None => {
                return Err(auth_error(
                    "Authentication Error, Malformed API Key passed in. Ensure Key has `Bearer ` prefix.",
                    "auth_error",
                    "None",
                ));
            }
        }
    } else if let Some(v) = header_str("x-litellm-api-key").or_else(|| header_str("api-key")) {
        strip_bearer(v).unwrap_or_else(|| v.to_owned())
    } else {
        String::new()
    };
    if presented.is_empty() {
        return Err(auth_error(
            "Authentication Error, No api key passed in.",
            "auth_error",
            "None",
        ));
    }
    if presented == shared.master_key {
        return Ok(Caller::Master);
    }
    let invalid = || {
        auth_error(
            "Authentication Error, Invalid API key provided.",
            "token_not_found_in_db",
            "key",
        )
    };
    if !presented.starts_with("sk-") {
        return Err(invalid());
    }
    let token = sha256_hex(&presented);
    let Some(key) = shared.db().live.get(&token).cloned() else {
        return Err(invalid());
    };
    if key.blocked == Some(true) {
        return Err(auth_error(
            "Authentication Error, Key is blocked. Update via `/key/unblock` if you're an admin.",
            "auth_error",
            "None",
        ));
    }
    let now = shared.now();
    if let Some(expires) = key.expires.filter(|e| *e < now) {
        let message = format!(
            "Authentication Error - Expired Key. Key Expiry time {} and current time {}",
            py_datetime(expires),
            py_datetime(now)
        );
        let param = format!(
            "sk-...{}",
            token
                .get(token.len().saturating_sub(4)..)
                .unwrap_or_default()
        );
        return Err(auth_error(&message, "expired_key", &param));
    }
    Ok(Caller::Virtual(Box::new(key)))
}

pub(crate) fn auth_error(message: &str, kind: &str, param: &str) -> Reply {
    (
        StatusCode::UNAUTHORIZED,
        json!({"error": {"message": message, "type": kind, "param": param, "code": "401"}}),
    )
}

/// What a non-admin virtual key may do on each route.
pub(crate) fn virtual_key_route_check(key: &KeyRecord, op: Op, path: &str) -> Option<Reply> {
    let management = matches!(
        op,
        Op::Generate | Op::Update | Op::Delete | Op::Info | Op::List | Op::Block
    );
    if key.key_type == "llm_api" && management {
        return Some((
            StatusCode::FORBIDDEN,
            json!({"detail": format!(
                "Virtual key is not allowed to call this route. Only allowed to call routes: ['llm_api_routes']. Tried to call route: {path}"
            )}),
        ));
    }
    match op {
        Op::Generate | Op::Update | Op::Delete | Op::Block => Some((
            StatusCode::UNAUTHORIZED,
            json!({"error": {
                "message": format!("Authentication Error, Only proxy admin can be used to generate, delete, update info for new keys/users/teams. Route={path}. Your role=unknown. Your user_id=*******"),
                "type": "auth_error", "param": "None", "code": "401"
            }}),
        )),
        Op::List => Some((
            StatusCode::FORBIDDEN,
            litellm_error(
                StatusCode::FORBIDDEN,
                "You are not authorized to access this endpoint. No 'user_id' is associated with your API key.",
                "bad_request_error",
                json!("user_id"),
            ),
        )),
        _ => None,
    }
}

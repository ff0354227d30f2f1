//! The fake's fidelity: identical raw requests sent to every target of the tier
//! ([`crate::targets`]) and the answers compared with what LiteLLM 1.108.7 says. The engine
//! tier checks the fake alone; the end-to-end tier compiles this same file and checks the fake
//! and the real proxy side by side.

use serde_json::{Value, json};
use vault_plugin_secrets_litellm::engine::client::GenerateKeyRequest;

use crate::support::secs_from_now;
use crate::support::target::{litellm, unique_alias};
use crate::targets;

/// Identical raw requests to fake and real; the answers (status + error message/type or
/// FastAPI detail) must match. Without a real proxy the fake is checked against the values
/// observed on LiteLLM 1.108.7.
#[tokio::test]
async fn conformance_of_raw_answers() {
    let ts = targets();
    // No connection reuse: both servers drop the connection after an unhandled-exception
    // 500 (the `[1]` body), which would fail the next request on a pooled connection.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("http");
    let block_unknown = format!(r#"{{"key":"{}"}}"#, "a".repeat(64));
    // (method, path, auth, body, expected status, expected comparable answer)
    let cases: Vec<Case> = vec![
        (
            "GET",
            "/key/list",
            Auth::None,
            None,
            401,
            litellm(
                "Authentication Error, No api key passed in.",
                "auth_error",
                json!("None"),
                401,
            ),
        ),
        (
            "GET",
            "/key/list",
            Auth::NoBearer,
            None,
            401,
            litellm(
                "Authentication Error, Malformed API Key passed in. Ensure Key has `Bearer ` prefix.",
                "auth_error",
                json!("None"),
                401,
            ),
        ),
        (
            "GET",
            "/key/list",
            Auth::Wrong,
            None,
            401,
            litellm(
                "Authentication Error, Invalid API key provided.",
                "token_not_found_in_db",
                json!("key"),
                401,
            ),
        ),
        (
            "GET",
            "/key/list?size=0",
            Auth::Master,
            None,
            422,
            json!({"detail": [{"type": "greater_than_equal", "loc": ["query", "size"], "msg": "Input should be greater than or equal to 1"}]}),
        ),
        (
            "GET",
            "/key/list?size=101",
            Auth::Master,
            None,
            422,
            json!({"detail": [{"type": "less_than_equal", "loc": ["query", "size"], "msg": "Input should be less than or equal to 100"}]}),
        ),
        (
            "GET",
            "/key/list?page=0",
            Auth::Master,
            None,
            422,
            json!({"detail": [{"type": "greater_than_equal", "loc": ["query", "page"], "msg": "Input should be greater than or equal to 1"}]}),
        ),
        (
            "GET",
            "/key/info?key=abc",
            Auth::Master,
            None,
            404,
            litellm(
                "Key not found in database",
                "not_found_error",
                json!("key"),
                404,
            ),
        ),
        (
            "GET",
            "/key/info",
            Auth::Master,
            None,
            404,
            litellm(
                "Key not found in database",
                "not_found_error",
                json!("key"),
                404,
            ),
        ),
        (
            "POST",
            "/key/delete",
            Auth::Master,
            Some(r#"{"keys":[]}"#),
            422,
            json!({"detail": [{"type": "value_error", "loc": ["body"], "msg": "Value error, At least one of 'keys' or 'key_aliases' must be provided."}]}),
        ),
        (
            "POST",
            "/key/delete",
            Auth::Master,
            Some("{}"),
            422,
            json!({"detail": [{"type": "value_error", "loc": ["body"], "msg": "Value error, At least one of 'keys' or 'key_aliases' must be provided."}]}),
        ),
        (
            "POST",
            "/key/delete",
            Auth::Master,
            Some(r#"{"keys":"abc"}"#),
            422,
            json!({"detail": [{"type": "list_type", "loc": ["body", "keys"], "msg": "Input should be a valid list"}]}),
        ),
        (
            "POST",
            "/key/delete",
            Auth::Master,
            Some(r#"{"keys":["nonexistent-hash"]}"#),
            404,
            litellm(
                "{'error': 'No keys found'}",
                "internal_server_error",
                Value::Null,
                404,
            ),
        ),
        (
            "POST",
            "/key/delete",
            Auth::Master,
            Some(r#"{"keys":[],"key_aliases":["x"]}"#),
            404,
            litellm(
                "{'error': 'No keys found'}",
                "internal_server_error",
                Value::Null,
                404,
            ),
        ),
        (
            "POST",
            "/key/delete",
            Auth::Master,
            Some("[1]"),
            500,
            json!({"error": {"message": "Internal server error", "type": "internal_server_error"}}),
        ),
        (
            "POST",
            "/key/delete",
            Auth::Master,
            Some(""),
            422,
            json!({"detail": [{"type": "missing", "loc": ["body"], "msg": "Field required"}]}),
        ),
        (
            "DELETE",
            "/key/delete",
            Auth::Master,
            None,
            405,
            json!({"detail": "Method Not Allowed"}),
        ),
        (
            "POST",
            "/key/update",
            Auth::Master,
            Some(r#"{"duration":"5s"}"#),
            422,
            json!({"detail": [{"type": "value_error", "loc": ["body"], "msg": "Value error, either key or key_alias must be provided"}]}),
        ),
        (
            "POST",
            "/key/update",
            Auth::Master,
            Some(r#"{"key":"abc","duration":"5s"}"#),
            404,
            litellm("Key not found.", "not_found_error", json!("key"), 404),
        ),
        (
            "POST",
            "/key/update",
            Auth::Master,
            Some(r#"{"key_alias":"nope-x","duration":"5s"}"#),
            404,
            litellm(
                "Key not found. No key with key_alias='nope-x'.",
                "not_found_error",
                json!("key_alias"),
                404,
            ),
        ),
        (
            "POST",
            "/key/update",
            Auth::Master,
            Some("notjson"),
            422,
            json!({"detail": [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error"}]}),
        ),
        (
            "POST",
            "/key/generate",
            Auth::Master,
            Some(r#"{"duration":3600}"#),
            422,
            json!({"detail": [{"type": "string_type", "loc": ["body", "duration"], "msg": "Input should be a valid string"}]}),
        ),
        (
            "POST",
            "/key/generate",
            Auth::Master,
            Some(r#"{"models":"fake-gpt"}"#),
            422,
            json!({"detail": [{"type": "list_type", "loc": ["body", "models"], "msg": "Input should be a valid list"}]}),
        ),
        (
            "POST",
            "/key/generate",
            Auth::Master,
            Some(r#"{"metadata":[1]}"#),
            422,
            json!({"detail": [{"type": "dict_type", "loc": ["body", "metadata"], "msg": "Input should be a valid dictionary"}]}),
        ),
        (
            "POST",
            "/key/generate",
            Auth::Master,
            Some(r#"{"max_budget":"lots"}"#),
            422,
            json!({"detail": [{"type": "float_parsing", "loc": ["body", "max_budget"], "msg": "Input should be a valid number, unable to parse string as a number"}]}),
        ),
        (
            "POST",
            "/key/generate",
            Auth::Master,
            Some(r#"{"tpm_limit":"x"}"#),
            422,
            json!({"detail": [{"type": "int_parsing", "loc": ["body", "tpm_limit"], "msg": "Input should be a valid integer, unable to parse string as an integer"}]}),
        ),
        (
            "POST",
            "/key/generate",
            Auth::Master,
            Some(r#"{"key_alias":5}"#),
            422,
            json!({"detail": [{"type": "string_type", "loc": ["body", "key_alias"], "msg": "Input should be a valid string"}]}),
        ),
        (
            "POST",
            "/key/generate",
            Auth::Master,
            Some(r#"{"duration":"abc"}"#),
            500,
            litellm(
                "Invalid duration format",
                "internal_server_error",
                Value::Null,
                500,
            ),
        ),
        (
            "POST",
            "/key/generate",
            Auth::Master,
            Some(r#"{"duration":"5x"}"#),
            500,
            litellm(
                "Unsupported duration unit, passed duration: 5x",
                "internal_server_error",
                Value::Null,
                500,
            ),
        ),
        (
            "POST",
            "/key/generate",
            Auth::Master,
            Some(r#"{"duration":""}"#),
            500,
            litellm(
                "Invalid duration format",
                "internal_server_error",
                Value::Null,
                500,
            ),
        ),
        (
            "POST",
            "/key/generate",
            Auth::Master,
            Some(r#"{"key":"nosk-abcdefgh"}"#),
            400,
            litellm(
                "{'error': \"Invalid key format. LiteLLM Virtual Key must start with 'sk-'. Received: nosk****efgh\"}",
                "internal_server_error",
                Value::Null,
                400,
            ),
        ),
        (
            "POST",
            "/key/generate",
            Auth::Master,
            Some(r#"{"key":"sk-short"}"#),
            400,
            litellm(
                "{'error': 'Invalid key format. LiteLLM Virtual Key must be at least 16 characters long.'}",
                "internal_server_error",
                Value::Null,
                400,
            ),
        ),
        (
            "POST",
            "/key/generate",
            Auth::Master,
            Some(r#"{"tags":["a"]}"#),
            403,
            litellm(
                "{'error': 'This feature is only available for LiteLLM Enterprise users: tags. You must be a LiteLLM Enterprise user to use this feature. If you have a license please set `LITELLM_LICENSE` in your env. Get a 7 day trial key here: https://www.litellm.ai/enterprise#trial. \\nPricing: https://www.litellm.ai/#pricing'}",
                "internal_server_error",
                Value::Null,
                403,
            ),
        ),
        (
            "POST",
            "/key/block",
            Auth::Master,
            Some(r#"{"key":"nope"}"#),
            400,
            litellm(
                "Invalid key format.",
                "bad_request_error",
                json!("key"),
                400,
            ),
        ),
        (
            "POST",
            "/key/block",
            Auth::Master,
            Some(block_unknown.as_str()),
            404,
            litellm("Key not found.", "not_found_error", json!("key"), 404),
        ),
        (
            "POST",
            "/key/unblock",
            Auth::Master,
            Some("{}"),
            422,
            json!({"detail": [{"type": "missing", "loc": ["body", "key"], "msg": "Field required"}]}),
        ),
        (
            "GET",
            "/health/liveliness",
            Auth::None,
            None,
            200,
            json!("I'm alive!"),
        ),
        (
            "GET",
            "/v1/models",
            Auth::None,
            None,
            401,
            litellm(
                "Authentication Error, No api key passed in.",
                "auth_error",
                json!("None"),
                401,
            ),
        ),
        (
            "GET",
            "/v1/models",
            Auth::Wrong,
            None,
            401,
            litellm(
                "Authentication Error, Invalid API key provided.",
                "token_not_found_in_db",
                json!("key"),
                401,
            ),
        ),
    ];
    let mut failures = Vec::new();
    for t in &ts {
        for (method, path, auth, body, status, expected) in &cases {
            let mut rb = http.request(method.parse().expect("method"), format!("{}{path}", t.url));
            rb = match auth {
                Auth::None => rb,
                Auth::NoBearer => rb.header("authorization", t.master_key.clone()),
                Auth::Wrong => rb.bearer_auth("sk-wrong-key-1234567890"),
                Auth::Master => rb.bearer_auth(&t.master_key),
            };
            if let Some(b) = body {
                rb = rb
                    .header("content-type", "application/json")
                    .body(b.to_string());
            }
            let resp = rb.send().await.expect("send");
            let got_status = resp.status().as_u16();
            let got: Value = resp.json().await.unwrap_or(Value::Null);
            if got_status != *status || &got != expected {
                failures.push(format!("[{}] {method} {path} {body:?}: got {got_status} {got}, want {status} {expected}", t.name));
                // A case that unexpectedly created a key must not leak it.
                if let Some(token) = got["token"].as_str() {
                    let _ = t.client().delete_keys(&[token.to_owned()]).await;
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// (method, path, auth, body, expected status, expected body)
type Case<'a> = (&'a str, &'a str, Auth, Option<&'a str>, u16, Value);

#[derive(Clone, Copy)]
enum Auth {
    None,
    NoBearer,
    Wrong,
    Master,
}

/// Success bodies: every field the fake emits exists on the real proxy with the same JSON
/// type (and timestamp format), and the deterministic values agree.
#[tokio::test]
async fn success_shapes_match() {
    let mut shapes: Vec<(&'static str, Vec<(String, Value)>)> = Vec::new();
    let alias = unique_alias("shape");
    for t in targets() {
        let http = reqwest::Client::new();
        let call = |method: &str, path: String, body: Option<Value>| {
            let mut rb = http
                .request(method.parse().expect("method"), format!("{}{path}", t.url))
                .bearer_auth(&t.master_key);
            if let Some(b) = body {
                rb = rb.json(&b);
            }
            async move {
                let resp = rb.send().await.expect("send");
                assert_eq!(resp.status().as_u16(), 200, "{path}");
                resp.json::<Value>().await.expect("json")
            }
        };
        let generated = call(
            "POST",
            "/key/generate".into(),
            Some(
                json!({"key_alias": alias, "duration": "600s", "models": ["fake-gpt"],
                "max_budget": 2, "metadata": {"x": 1}, "tpm_limit": 7, "budget_duration": "1d"}),
            ),
        )
        .await;
        let token = generated["token"].as_str().expect("token").to_owned();
        let mut bodies = vec![("generate".to_owned(), generated)];
        bodies.push((
            "info".into(),
            call("GET", format!("/key/info?key={token}"), None).await,
        ));
        bodies.push((
            "update".into(),
            call(
                "POST",
                "/key/update".into(),
                Some(json!({"key": token, "duration": "700s"})),
            )
            .await,
        ));
        let mut listed = call(
            "GET",
            format!("/key/list?key_alias={alias}&return_full_object=true"),
            None,
        )
        .await;
        bodies.push(("list.keys[0]".into(), listed["keys"][0].take()));
        bodies.push(("list".into(), listed));
        bodies.push((
            "block".into(),
            call("POST", "/key/block".into(), Some(json!({"key": token}))).await,
        ));
        bodies.push((
            "unblock".into(),
            call("POST", "/key/unblock".into(), Some(json!({"key": token}))).await,
        ));
        bodies.push((
            "delete".into(),
            call("POST", "/key/delete".into(), Some(json!({"keys": [token]}))).await,
        ));
        bodies.push((
            "info-deleted".into(),
            call("GET", format!("/key/info?key={token}"), None).await,
        ));
        shapes.push((t.name, bodies));
    }

    fn kind(v: &Value) -> String {
        match v {
            Value::Null => "null".into(),
            Value::Bool(_) => "bool".into(),
            Value::Number(_) => "number".into(),
            Value::String(s) => time_kind(s).unwrap_or("string").into(),
            Value::Array(_) => "array".into(),
            Value::Object(_) => "object".into(),
        }
    }
    /// `YYYY-MM-DDTHH:MM:SS[.ffffff]` then `Z` or `+00:00`. The fraction is optional: Python
    /// leaves it out when it is zero, which the proxy's creation times (whole milliseconds) hit
    /// once in a thousand keys.
    fn time_kind(s: &str) -> Option<&'static str> {
        let (time, kind) = match (s.strip_suffix('Z'), s.strip_suffix("+00:00")) {
            (Some(time), _) => (time, "time-Z"),
            (_, Some(time)) => (time, "time-offset"),
            _ => return None,
        };
        let b = time.as_bytes();
        let whole_seconds = b.len() == 19 && b[10] == b'T';
        let with_fraction = b.len() == 26 && b[10] == b'T' && b[19] == b'.';
        (whole_seconds || with_fraction).then_some(kind)
    }
    // Values that do not depend on time or randomness.
    const STABLE: [&str; 11] = [
        "key_alias",
        "models",
        "max_budget",
        "metadata",
        "tpm_limit",
        "budget_duration",
        "key_type",
        "spend",
        "blocked",
        "status",
        "duration",
    ];
    let fake = &shapes[0].1;
    // The fake's own formats, checked even without a real proxy.
    let time_kind = |route: &str, field: &str| {
        let body = &fake.iter().find(|(r, _)| r == route).expect("route").1;
        kind(
            body.get("info")
                .unwrap_or(body)
                .get(field)
                .unwrap_or(&Value::Null),
        )
    };
    assert_eq!(time_kind("generate", "expires"), "time-Z");
    assert_eq!(time_kind("info", "expires"), "time-offset");
    assert_eq!(time_kind("update", "expires"), "time-offset");
    assert_eq!(time_kind("list.keys[0]", "expires"), "time-Z");
    assert_eq!(time_kind("info-deleted", "deleted_at"), "time-offset");

    let Some((_, real)) = shapes.get(1) else {
        return;
    };
    let mut diffs = Vec::new();
    for ((route, f), (_, r)) in fake.iter().zip(real) {
        let (f, r) = match (f.get("info"), r.get("info")) {
            (Some(fi), Some(ri)) => (fi, ri),
            _ => (f, r),
        };
        let Some(fo) = f.as_object() else { continue };
        for (field, fv) in fo {
            let rv = r.get(field).unwrap_or(&Value::Null);
            if r.get(field).is_none() {
                diffs.push(format!("{route}.{field}: only in the fake"));
            } else if kind(fv) != kind(rv) && !(fv.is_null() || rv.is_null()) {
                diffs.push(format!(
                    "{route}.{field}: fake {} vs real {}",
                    kind(fv),
                    kind(rv)
                ));
            } else if STABLE.contains(&field.as_str()) && fv != rv {
                diffs.push(format!("{route}.{field}: fake {fv} vs real {rv}"));
            }
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

/// `duration` parsing quirks (regex anchored at the start only, word aliases, months).
#[tokio::test]
async fn duration_quirks() {
    let cases: [(&str, u64, u64); 7] = [
        ("90s", 90, 90),
        ("1h30m", 3600, 3600),
        ("2min", 120, 120),
        ("1ms", 60, 60),
        ("daily", 86_400, 86_400),
        ("1w", 604_800, 604_800),
        ("1mo", 28 * 86_400, 31 * 86_400),
    ];
    for t in targets() {
        let client = t.client();
        for (duration, min, max) in cases {
            let key = client
                .generate(&GenerateKeyRequest {
                    key_alias: unique_alias("dur"),
                    duration: Some(duration.into()),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("[{}] {duration}: {e}", t.name));
            let secs = secs_from_now(key.expires_at().expect("expires")) as i64;
            client.delete_keys(&[key.token]).await.expect("cleanup");
            assert!(
                (min as i64 - 2..=max as i64).contains(&secs),
                "[{}] {duration}: {secs}s",
                t.name
            );
        }
    }
}

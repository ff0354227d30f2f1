//! Client tests against the fake LiteLLM and, when `LITELLM_BASE_URL` and
//! `LITELLM_MASTER_KEY` are set, the same scenarios against a real proxy; plus a conformance
//! table that sends identical raw requests to both and compares the answers.

mod support;

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use support::fake_litellm::{FAKE_MODELS, FakeLiteLlm, Fault, Op};
use vault_plugin_secrets_litellm::engine::client::{
    ApiError, ChosenKey, Client, ClientConfig, Deleted, GenerateKeyRequest, KeyStatus,
    duration_string, token_hash,
};

const MASTER: &str = "sk-fake-master-key-0123456789";

/// A server under test.
struct Target {
    name: &'static str,
    url: String,
    master_key: String,
    /// The fake (kept alive for the test); `None` for the real proxy.
    fake: Option<FakeLiteLlm>,
}

impl Target {
    fn config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new(self.url.clone(), self.master_key.clone());
        cfg.request_timeout = Duration::from_secs(10);
        cfg
    }

    fn client(&self) -> Client {
        Client::new(&self.config()).expect("client")
    }

    /// Lets a key with `expires` in the past by `secs` be seen as expired.
    async fn pass_time(&self, secs: u64) {
        match &self.fake {
            Some(fake) => fake.advance_clock(Duration::from_secs(secs)),
            None => tokio::time::sleep(Duration::from_secs(secs)).await,
        }
    }
}

fn real_env() -> Option<(String, String)> {
    let url = std::env::var("LITELLM_BASE_URL")
        .ok()
        .filter(|v| !v.is_empty())?;
    let key = std::env::var("LITELLM_MASTER_KEY")
        .ok()
        .filter(|v| !v.is_empty())?;
    Some((url, key))
}

/// The fake, plus the real proxy when configured.
async fn targets() -> Vec<Target> {
    let fake = FakeLiteLlm::start(MASTER).await.expect("start fake");
    let mut out = vec![Target {
        name: "fake",
        url: fake.url(),
        master_key: MASTER.to_owned(),
        fake: Some(fake),
    }];
    if let Some((url, master_key)) = real_env() {
        out.push(Target {
            name: "real",
            url,
            master_key,
            fake: None,
        });
    }
    out
}

fn unique_alias(tag: &str) -> String {
    format!("scratch-client-{tag}-{}", uuid::Uuid::new_v4().simple())
}

fn secs_until(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::now()) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// `GET /v1/models` with a virtual key: (status, model ids or error type).
async fn models_with(url: &str, key: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{url}/v1/models"))
        .bearer_auth(key)
        .send()
        .await
        .expect("models request");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status == 200 {
        let mut ids: Vec<String> = body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect();
        ids.sort();
        (status, json!(ids))
    } else {
        (status, body["error"]["type"].clone())
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios run against every target
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn lifecycle_generate_info_extend_list_delete() {
    for t in targets().await {
        let client = t.client();
        client
            .verify()
            .await
            .unwrap_or_else(|e| panic!("[{}] verify: {e}", t.name));
        let alias = unique_alias("life");
        let mut metadata = serde_json::Map::new();
        metadata.insert("vault_role".into(), json!("r1"));
        let req = GenerateKeyRequest {
            key_alias: alias.clone(),
            duration: Some(duration_string(600)),
            models: vec!["fake-gpt".into()],
            max_budget: Some(1.5),
            budget_duration: Some("30d".into()),
            tpm_limit: Some(100),
            rpm_limit: Some(5),
            max_parallel_requests: Some(2),
            metadata,
            ..Default::default()
        };
        let key = client
            .generate(&req)
            .await
            .unwrap_or_else(|e| panic!("[{}] generate: {e}", t.name));
        assert!(
            key.key.starts_with("sk-") && key.key.len() == 25,
            "[{}] key shape",
            t.name
        );
        assert_eq!(key.token, token_hash(&key.key));
        assert_eq!(key.key_alias.as_deref(), Some(alias.as_str()));
        let exp = key.expires_at().expect("expires");
        assert!(
            (595..=601).contains(&secs_until(exp)),
            "[{}] expiry {}",
            t.name,
            secs_until(exp)
        );
        assert!(!format!("{key:?}").contains(&key.key));

        assert_eq!(
            models_with(&t.url, &key.key).await,
            (200, json!(["fake-gpt"])),
            "[{}]",
            t.name
        );

        let info = client.info(&key.token).await.expect("info").expect("found");
        assert_eq!(info.status, KeyStatus::Active);
        assert_eq!(info.key_alias.as_deref(), Some(alias.as_str()));
        assert_eq!(info.models, vec!["fake-gpt".to_owned()]);
        assert_eq!(info.max_budget, Some(1.5));
        assert_eq!(info.budget_duration.as_deref(), Some("30d"));
        assert_eq!(
            (info.tpm_limit, info.rpm_limit, info.max_parallel_requests),
            (Some(100), Some(5), Some(2))
        );
        assert_eq!(info.metadata.get("vault_role"), Some(&json!("r1")));
        assert_eq!(info.key_type.as_deref(), Some("default"));
        assert!(!info.blocked);
        // The stored expiry is the generated one at millisecond precision.
        let stored = info.expires_at.expect("stored expiry");
        let delta = exp.duration_since(stored).unwrap_or_else(|e| e.duration());
        assert!(delta < Duration::from_millis(2), "[{}] {delta:?}", t.name);

        let renewed = client.extend(&key.token, 3600).await.expect("extend");
        let at = renewed.expires_at.expect("renewed expiry");
        assert!(
            (3595..=3601).contains(&secs_until(at)),
            "[{}] renew {}",
            t.name,
            secs_until(at)
        );
        let info = client.info(&key.token).await.expect("info").expect("found");
        assert_eq!(info.expires_at, Some(at));
        // Renew must not touch anything else.
        assert_eq!(info.metadata.get("vault_role"), Some(&json!("r1")));

        let listed = client.list_aliases(&alias).await.expect("list");
        assert_eq!(listed.len(), 1, "[{}] {listed:?}", t.name);
        assert_eq!(listed[0].token, key.token);
        let prefix = &alias[..alias.len() - 8];
        assert!(
            client
                .list_aliases(prefix)
                .await
                .expect("list")
                .iter()
                .any(|k| k.token == key.token)
        );

        assert_eq!(
            client
                .delete_keys(std::slice::from_ref(&key.token))
                .await
                .expect("delete"),
            Deleted::Some
        );
        assert_eq!(
            client
                .delete_keys(std::slice::from_ref(&key.token))
                .await
                .expect("delete again"),
            Deleted::NoneFound
        );
        assert_eq!(
            client
                .delete_aliases(std::slice::from_ref(&alias))
                .await
                .expect("delete alias"),
            Deleted::NoneFound
        );
        let info = client
            .info(&key.token)
            .await
            .expect("info")
            .expect("archived");
        assert_eq!(info.status, KeyStatus::Deleted, "[{}]", t.name);
        assert!(info.deleted_at.is_some());
        assert_eq!(
            models_with(&t.url, &key.key).await,
            (401, json!("token_not_found_in_db"))
        );
        let err = client
            .extend(&key.token, 60)
            .await
            .expect_err("renew deleted");
        assert!(err.is_not_found(), "[{}] {err}", t.name);
        assert!(client.list_aliases(&alias).await.expect("list").is_empty());
    }
}

#[tokio::test]
async fn chosen_keys_are_stored_as_chosen() {
    for t in targets().await {
        let client = t.client();
        assert!(client.accepts_chosen_keys());
        let chosen = ChosenKey::random().expect("CSPRNG");
        let req = GenerateKeyRequest {
            key: Some(chosen.clone()),
            key_alias: unique_alias("chosen"),
            duration: Some(duration_string(120)),
            ..Default::default()
        };
        let key = client
            .generate(&req)
            .await
            .unwrap_or_else(|e| panic!("[{}] generate: {e}", t.name));
        assert_eq!(key.token, chosen.token(), "[{}]", t.name);
        assert_eq!(
            serde_json::to_value(&chosen).unwrap(),
            json!(key.key),
            "[{}]",
            t.name
        );
        assert_eq!(models_with(&t.url, &key.key).await.0, 200, "[{}]", t.name);

        // Asking for the same secret again "succeeds", echoing the request, but leaves the
        // row as it was (LiteLLM upserts with an empty update): a chosen key must be fresh.
        let again = client
            .generate(&GenerateKeyRequest {
                key_alias: unique_alias("chosen-again"),
                ..req.clone()
            })
            .await
            .unwrap_or_else(|e| panic!("[{}] generate again: {e}", t.name));
        assert_eq!(again.token, key.token, "[{}]", t.name);
        let info = client.info(&key.token).await.expect("info").expect("row");
        assert_ne!(
            again.key_alias,
            req.key_alias.clone().into(),
            "[{}]",
            t.name
        );
        assert_eq!(info.key_alias, Some(req.key_alias.clone()), "[{}]", t.name);
        assert_eq!(
            client
                .delete_keys(std::slice::from_ref(&key.token))
                .await
                .ok(),
            Some(Deleted::Some),
            "[{}]",
            t.name
        );
    }
}

#[tokio::test]
async fn a_proxy_refusing_chosen_keys_makes_them_itself() {
    let (fake, client) = fake_and_client(Duration::from_secs(5)).await;
    fake.disable_custom_keys(true);
    let req = GenerateKeyRequest {
        key: ChosenKey::random(),
        ..gen_req("refused")
    };
    let key = client.generate(&req).await.expect("generate");
    assert_ne!(
        Some(key.token.clone()),
        req.key.as_ref().map(ChosenKey::token)
    );
    assert!(fake.get(&key.token).is_some());
    // Asked twice (refused, then without a key); from now on the key is left to LiteLLM.
    assert_eq!(fake.requests(Op::Generate), 2);
    assert!(!client.accepts_chosen_keys());
    assert_eq!(fake.key_count(), 1);

    // Any other 403 is returned as it is, and is not taken for that setting.
    let (fake, client) = fake_and_client(Duration::from_secs(5)).await;
    let req = GenerateKeyRequest {
        key: ChosenKey::random(),
        ..gen_req("tagged")
    };
    let mut enterprise_only = serde_json::Map::new();
    enterprise_only.insert("tags".into(), json!(["a"]));
    let refused = client.generate_with(&req, &enterprise_only).await;
    assert_eq!(refused.err().and_then(|e| e.status()), Some(403));
    assert_eq!(fake.key_count(), 0);
    assert!(client.accepts_chosen_keys());
}

#[tokio::test]
async fn delete_by_alias_and_partial_matches() {
    for t in targets().await {
        let client = t.client();
        let a1 = unique_alias("del");
        let a2 = unique_alias("del");
        for a in [&a1, &a2] {
            client
                .generate(&GenerateKeyRequest {
                    key_alias: a.clone(),
                    duration: Some(duration_string(300)),
                    ..Default::default()
                })
                .await
                .expect("generate");
        }
        let never = format!("{}-never", a1);
        assert_eq!(
            client
                .delete_aliases(&[a1.clone(), never.clone()])
                .await
                .expect("del"),
            Deleted::Some
        );
        assert_eq!(
            client
                .delete_aliases(std::slice::from_ref(&a1))
                .await
                .expect("del"),
            Deleted::NoneFound
        );
        // The alias is free again once its key is deleted.
        let again = client
            .generate(&GenerateKeyRequest {
                key_alias: a1.clone(),
                duration: Some(duration_string(300)),
                ..Default::default()
            })
            .await
            .expect("alias reusable");
        assert_eq!(
            client
                .delete_aliases(&[a1.clone(), a2.clone()])
                .await
                .expect("del"),
            Deleted::Some
        );
        assert_eq!(
            client.delete_keys(&[again.token]).await.expect("del"),
            Deleted::NoneFound,
            "[{}]",
            t.name
        );
    }
}

#[tokio::test]
async fn litellm_refusals_become_status_errors() {
    for t in targets().await {
        let client = t.client();
        let alias = unique_alias("dup");
        let key = client
            .generate(&GenerateKeyRequest {
                key_alias: alias.clone(),
                duration: Some("60s".into()),
                ..Default::default()
            })
            .await
            .expect("generate");
        let err = client
            .generate(&GenerateKeyRequest {
                key_alias: alias.clone(),
                ..Default::default()
            })
            .await
            .expect_err("duplicate alias");
        assert_eq!(err.status(), Some(400), "[{}] {err}", t.name);
        assert_eq!(
            err.to_string(),
            format!(
                "LiteLLM /key/generate failed: HTTP 400: Key with alias '{alias}' already exists. Unique key aliases across all keys are required."
            )
        );

        let bad = |f: fn(&mut GenerateKeyRequest)| {
            let mut r = GenerateKeyRequest {
                key_alias: unique_alias("bad"),
                ..Default::default()
            };
            f(&mut r);
            r
        };
        let cases: Vec<(GenerateKeyRequest, u16, &str)> = vec![
            (
                bad(|r| r.duration = Some("3600".into())),
                500,
                "Unsupported duration unit, passed duration: 3600",
            ),
            (
                bad(|r| r.duration = Some("-1".into())),
                500,
                "Invalid duration format",
            ),
            (
                bad(|r| r.key_type = Some("bogus".into())),
                422,
                "body.key_type: Input should be 'llm_api', 'management', 'read_only' or 'default'",
            ),
            (
                bad(|r| r.max_budget = Some(-1.0)),
                400,
                "{'error': 'max_budget must be a non-negative finite number. Received: -1.0'}",
            ),
            (
                bad(|r| r.budget_duration = Some("zz".into())),
                400,
                "{'error': \"Invalid budget_duration 'zz'. Use a format like '1h', '24h', '7d', or '30d'.\"}",
            ),
        ];
        for (req, status, message) in cases {
            let err = client.generate(&req).await.expect_err("refused");
            match &err {
                ApiError::Status {
                    op,
                    status: s,
                    message: m,
                } => {
                    assert_eq!(
                        (*op, *s, m.as_str()),
                        ("/key/generate", status, message),
                        "[{}]",
                        t.name
                    );
                }
                other => panic!("[{}] unexpected {other:?}", t.name),
            }
        }
        assert_eq!(client.info(&"0".repeat(64)).await.expect("info"), None);
        assert_eq!(
            client.delete_keys(&[key.token]).await.expect("cleanup"),
            Deleted::Some
        );
    }
}

#[tokio::test]
async fn wrong_master_key_is_unauthorized_and_not_echoed() {
    for t in targets().await {
        let wrong = "sk-wrong-master-key-abcdefghijklmnop";
        let mut cfg = t.config();
        cfg.master_key = wrong.into();
        let client = Client::new(&cfg).expect("client");
        let err = client.verify().await.expect_err("rejected");
        assert!(err.is_unauthorized(), "[{}] {err}", t.name);
        assert_eq!(
            err.to_string(),
            "LiteLLM /key/list failed: HTTP 401: Authentication Error, Invalid API key provided."
        );
        assert!(!format!("{err:?}").contains(wrong));
        let err = client
            .generate(&GenerateKeyRequest::default())
            .await
            .expect_err("rejected");
        assert!(err.is_unauthorized());
    }
}

#[tokio::test]
async fn expired_key_renews_back_to_life() {
    for t in targets().await {
        let client = t.client();
        let key = client
            .generate(&GenerateKeyRequest {
                key_alias: unique_alias("exp"),
                duration: Some("1s".into()),
                models: vec!["fake-claude".into()],
                ..Default::default()
            })
            .await
            .expect("generate");
        t.pass_time(2).await;
        assert_eq!(
            models_with(&t.url, &key.key).await,
            (401, json!("expired_key")),
            "[{}]",
            t.name
        );
        let info = client.info(&key.token).await.expect("info").expect("found");
        assert_eq!(info.status, KeyStatus::Expired);
        let renewed = client.extend(&key.token, 120).await.expect("extend");
        assert!(renewed.expires_at.is_some());
        assert_eq!(
            models_with(&t.url, &key.key).await,
            (200, json!(["fake-claude"])),
            "[{}]",
            t.name
        );
        assert_eq!(
            client
                .info(&key.token)
                .await
                .expect("info")
                .expect("found")
                .status,
            KeyStatus::Active
        );
        client.delete_keys(&[key.token]).await.expect("cleanup");
    }
}

#[tokio::test]
async fn blocked_and_llm_api_keys() {
    for t in targets().await {
        let client = t.client();
        let http = reqwest::Client::new();
        let key = client
            .generate(&GenerateKeyRequest {
                key_alias: unique_alias("blk"),
                duration: Some("300s".into()),
                key_type: Some("llm_api".into()),
                ..Default::default()
            })
            .await
            .expect("generate");
        // An llm_api key can list models but not manage keys.
        let mut all: Vec<&str> = FAKE_MODELS.to_vec();
        all.sort();
        assert_eq!(models_with(&t.url, &key.key).await, (200, json!(all)));
        let resp = http
            .get(format!("{}/key/info", t.url))
            .bearer_auth(&key.key)
            .send()
            .await
            .expect("info as virtual key");
        assert_eq!(resp.status().as_u16(), 403);
        assert_eq!(
            resp.json::<Value>().await.expect("json"),
            json!({"detail": "Virtual key is not allowed to call this route. Only allowed to call routes: ['llm_api_routes']. Tried to call route: /key/info"})
        );

        let resp = http
            .post(format!("{}/key/block", t.url))
            .bearer_auth(&t.master_key)
            .json(&json!({"key": key.token}))
            .send()
            .await
            .expect("block");
        assert_eq!(resp.status().as_u16(), 200);
        let row: Value = resp.json().await.expect("json");
        assert_eq!(
            (row["blocked"].clone(), row["token"].clone()),
            (json!(true), json!(key.token))
        );
        assert_eq!(
            client
                .info(&key.token)
                .await
                .expect("info")
                .expect("found")
                .status,
            KeyStatus::Revoked
        );
        assert_eq!(
            models_with(&t.url, &key.key).await,
            (401, json!("auth_error")),
            "[{}]",
            t.name
        );
        client.delete_keys(&[key.token]).await.expect("cleanup");
    }
}

/// Identical raw requests to fake and real; the answers (status + error message/type or
/// FastAPI detail) must match. Without a real proxy the fake is checked against the values
/// observed on LiteLLM 1.108.7.
#[tokio::test]
async fn conformance_of_raw_answers() {
    let ts = targets().await;
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

fn litellm(message: &str, kind: &str, param: Value, code: u16) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code.to_string()}})
}

/// Update semantics that the plugin relies on, compared on both servers.
#[tokio::test]
async fn update_semantics() {
    for t in targets().await {
        let client = t.client();
        let http = reqwest::Client::new();
        let alias = unique_alias("upd");
        let key = client
            .generate(&GenerateKeyRequest {
                key_alias: alias.clone(),
                duration: Some("2h".into()),
                metadata: serde_json::from_value(json!({"a": 1, "b": 2})).expect("map"),
                ..Default::default()
            })
            .await
            .expect("generate");
        let update = |body: Value| {
            let http = http.clone();
            let url = format!("{}/key/update", t.url);
            let mk = t.master_key.clone();
            async move {
                let resp = http
                    .post(url)
                    .bearer_auth(mk)
                    .json(&body)
                    .send()
                    .await
                    .expect("update");
                (
                    resp.status().as_u16(),
                    resp.json::<Value>().await.expect("json"),
                )
            }
        };
        // By alias: `key` in the answer is the hash; metadata is replaced, not merged.
        let (s, row) =
            update(json!({"key_alias": alias, "duration": "5h", "metadata": {"c": 3}})).await;
        assert_eq!(s, 200);
        assert_eq!(row["key"], json!(key.token));
        assert_eq!(row["metadata"], json!({"c": 3}), "[{}]", t.name);
        let (_, row) = update(json!({"key": key.token, "duration": ""})).await;
        let kept = row["expires"].clone();
        assert!(
            kept.is_string(),
            "[{}] empty duration keeps expiry: {row}",
            t.name
        );
        let (_, row) = update(json!({"key": key.token, "duration": null})).await;
        assert_eq!(
            row["expires"],
            Value::Null,
            "[{}] null duration = never expires",
            t.name
        );
        let (_, row) = update(json!({"key": key.token, "duration": "60s"})).await;
        assert!(row["expires"].is_string());
        let (_, row) = update(json!({"key": key.token, "duration": "-1"})).await;
        assert_eq!(row["expires"], Value::Null);
        let (s, row) = update(json!({"key": key.token, "duration": "3600"})).await;
        assert_eq!(
            (s, row),
            (
                400,
                litellm(
                    "Authentication Error, Unsupported duration unit, passed duration: 3600",
                    "auth_error",
                    json!("None"),
                    400
                )
            )
        );
        // The client's renew always sets a finite expiry again.
        assert!(
            client
                .extend(&key.token, 90)
                .await
                .expect("extend")
                .expires_at
                .is_some()
        );
        // Renaming by key: uniqueness is checked, and the new alias is what lookups see.
        let other = client
            .generate(&GenerateKeyRequest {
                key_alias: unique_alias("upd"),
                duration: Some("60s".into()),
                ..Default::default()
            })
            .await
            .expect("generate other");
        let taken = other.key_alias.clone().expect("alias");
        let (s, row) = update(json!({"key": key.token, "key_alias": taken})).await;
        assert_eq!(s, 400, "[{}] {row}", t.name);
        let renamed = unique_alias("upd-renamed");
        let (s, _) = update(json!({"key": key.token, "key_alias": renamed})).await;
        assert_eq!(s, 200);
        let found = client.list_aliases(&renamed).await.expect("list");
        assert_eq!(found.len(), 1, "[{}]", t.name);
        assert!(client.list_aliases(&alias).await.expect("list").is_empty());
        assert_eq!(
            client
                .delete_aliases(&[renamed, taken])
                .await
                .expect("delete"),
            Deleted::Some
        );
        assert!(
            client
                .info(&key.token)
                .await
                .expect("info")
                .is_some_and(|i| i.status == KeyStatus::Deleted)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Fake-only: error classification, fault injection, secrets
// ---------------------------------------------------------------------------------------

async fn fake_and_client(timeout: Duration) -> (FakeLiteLlm, Client) {
    let fake = FakeLiteLlm::start(MASTER).await.expect("start fake");
    let mut cfg = ClientConfig::new(fake.url(), MASTER);
    cfg.request_timeout = timeout;
    let client = Client::new(&cfg).expect("client");
    (fake, client)
}

fn gen_req(tag: &str) -> GenerateKeyRequest {
    GenerateKeyRequest {
        key_alias: unique_alias(tag),
        duration: Some(duration_string(60)),
        ..Default::default()
    }
}

#[tokio::test]
async fn refused_port_is_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let client = Client::new(&ClientConfig::new(url.clone(), MASTER)).expect("client");
    let err = client.verify().await.expect_err("refused");
    assert!(matches!(err, ApiError::Unreachable { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("LiteLLM at {url} is unreachable: connection refused")
    );
    assert!(!err.may_have_reached_server());
}

#[tokio::test]
async fn unresolvable_host_is_unreachable() {
    let client =
        Client::new(&ClientConfig::new("http://litellm.invalid:4000", MASTER)).expect("client");
    let err = client.verify().await.expect_err("dns");
    assert!(matches!(err, ApiError::Unreachable { .. }), "{err:?}");
}

#[tokio::test]
async fn slow_answer_is_timeout_and_effect_stays() {
    let (fake, client) = fake_and_client(Duration::from_millis(300)).await;
    fake.set_fault(Op::Generate, Fault::Delay(Duration::from_secs(2)));
    let req = gen_req("slow");
    let started = std::time::Instant::now();
    let err = client.generate(&req).await.expect_err("timeout");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        matches!(
            err,
            ApiError::Timeout {
                op: "/key/generate",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "LiteLLM /key/generate timed out after 300ms"
    );
    assert!(err.may_have_reached_server());
    // Delay processes first: the key exists although the client gave up (the WAL case).
    assert!(fake.find_by_alias(&req.key_alias).is_some());
}

#[tokio::test]
async fn fault_classification() {
    let (fake, client) = fake_and_client(Duration::from_secs(5)).await;

    fake.fail_next_n(Op::Generate, Fault::NonJson, 1);
    let err = client
        .generate(&gen_req("nonjson"))
        .await
        .expect_err("non-json");
    assert!(
        matches!(
            err,
            ApiError::InvalidResponse {
                op: "/key/generate",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("LiteLLM /key/generate returned an invalid response: body is not JSON"),
        "{err}"
    );
    assert_eq!(fake.key_count(), 0);

    fake.fail_next_n(Op::Generate, Fault::Status(500), 1);
    let err = client.generate(&gen_req("500")).await.expect_err("500");
    assert_eq!(
        err.to_string(),
        "LiteLLM /key/generate failed: HTTP 500: fault injected by FakeLiteLlm"
    );
    assert_eq!(err.status(), Some(500));

    // The fault was consumed: the next call succeeds.
    let key = client.generate(&gen_req("ok")).await.expect("after faults");
    assert_eq!(fake.requests(Op::Generate), 3);

    fake.set_fault(Op::Info, Fault::Truncated);
    let err = client.info(&key.token).await.expect_err("truncated");
    assert!(
        matches!(
            err,
            ApiError::InvalidResponse {
                op: "/key/info",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("truncated"), "{err}");
    fake.set_fault(Op::Info, Fault::None);

    // Repeatable operations survive one dropped connection (one retry)...
    fake.reset_counters();
    fake.fail_next_n(Op::Update, Fault::Reset, 1);
    assert!(client.extend(&key.token, 600).await.is_ok());
    assert_eq!(fake.requests(Op::Update), 2);
    // ...but not two.
    fake.set_fault(Op::Update, Fault::Reset);
    let err = client.extend(&key.token, 600).await.expect_err("reset");
    assert!(
        matches!(
            err,
            ApiError::Disconnected {
                op: "/key/update",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(
            "LiteLLM /key/update failed: connection closed before a response was received"
        ),
        "{err}"
    );
    assert_eq!(fake.requests(Op::Update), 4);
    fake.set_fault(Op::Update, Fault::None);

    // Generate is never repeated: the lost answer may have carried a created key.
    fake.fail_next_n(Op::Generate, Fault::LoseResponse, 1);
    let req = gen_req("lost");
    let err = client.generate(&req).await.expect_err("lost");
    assert!(matches!(err, ApiError::Disconnected { .. }), "{err:?}");
    assert!(
        fake.find_by_alias(&req.key_alias).is_some(),
        "processed before the cut"
    );
    assert_eq!(fake.requests(Op::Generate), 1);
    fake.fail_next_n(Op::Generate, Fault::Reset, 1);
    let req = gen_req("reset");
    assert!(matches!(
        client.generate(&req).await,
        Err(ApiError::Disconnected { .. })
    ));
    assert!(
        fake.find_by_alias(&req.key_alias).is_none(),
        "reset drops the request unprocessed"
    );

    // Any applies to every route without its own fault.
    fake.set_fault(Op::Any, Fault::Status(503));
    assert_eq!(client.verify().await.expect_err("503").status(), Some(503));
    fake.clear_faults();
    client.verify().await.expect("healthy again");
}

#[tokio::test]
async fn not_litellm_404_is_not_success() {
    let (fake, client) = fake_and_client(Duration::from_secs(5)).await;
    fake.set_fault(
        Op::Delete,
        Fault::Body {
            status: 404,
            body: "<html><body>404 Not Found (nginx)</body></html>".into(),
        },
    );
    let err = client
        .delete_keys(&["abc".into()])
        .await
        .expect_err("misrouted 404");
    assert_eq!(
        err.to_string(),
        "LiteLLM /key/delete failed: HTTP 404: <html><body>404 Not Found (nginx)</body></html>"
    );
    fake.set_fault(
        Op::Info,
        Fault::Body {
            status: 404,
            body: r#"{"detail":"Not Found"}"#.into(),
        },
    );
    let err = client.info("abc").await.expect_err("misrouted 404");
    assert_eq!(
        err.to_string(),
        "LiteLLM /key/info failed: HTTP 404: Not Found"
    );
}

#[tokio::test]
async fn error_bodies_never_leak_keys() {
    let (fake, client) = fake_and_client(Duration::from_secs(5)).await;
    let issued = "sk-AbCdEfGhIjKlMnOpQrStUv";
    let body = format!(
        r#"{{"error":{{"message":"bad master key {MASTER}; Key=alias ({issued}) sk-...StUv","type":"auth_error","param":null,"code":"401"}}}}"#
    );
    fake.set_fault(Op::Any, Fault::Body { status: 401, body });
    let err = client.verify().await.expect_err("401");
    let shown = format!("{err} / {err:?}");
    assert!(
        !shown.contains(MASTER) && !shown.contains(issued),
        "{shown}"
    );
    assert!(
        shown.contains("bad master key [redacted]; Key=alias (sk-...StUv) sk-...StUv"),
        "{shown}"
    );

    // A master key that does not look like `sk-…` is still removed, and an unparseable
    // body is quoted only after redaction.
    let odd_master = "hunter2-master";
    let fake2 = FakeLiteLlm::start(odd_master).await.expect("fake");
    let client2 = Client::new(&ClientConfig::new(fake2.url(), odd_master)).expect("client");
    fake2.set_fault(
        Op::Any,
        Fault::Body {
            status: 500,
            body: format!("{}{odd_master}", "x".repeat(195)),
        },
    );
    let err = client2.verify().await.expect_err("500");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    drop(fake);
}

#[tokio::test]
async fn oversized_bodies() {
    let (fake, client) = fake_and_client(Duration::from_secs(5)).await;
    let big = format!(r#"{{"keys":[],"pad":"{}"}}"#, "x".repeat(1024 * 1024 + 10));
    fake.set_fault(
        Op::List,
        Fault::Body {
            status: 200,
            body: big.clone(),
        },
    );
    let err = client.verify().await.expect_err("too big");
    assert_eq!(
        err.to_string(),
        "LiteLLM /key/list returned an invalid response: response body exceeds 1048576 bytes"
    );
    fake.set_fault(
        Op::List,
        Fault::Body {
            status: 502,
            body: big,
        },
    );
    let err = client.verify().await.expect_err("502");
    assert_eq!(err.status(), Some(502));
    assert!(err.to_string().chars().count() < 300, "message is capped");
}

#[tokio::test]
async fn stop_and_restart_on_same_port() {
    let (mut fake, client) = fake_and_client(Duration::from_secs(5)).await;
    let key = client
        .generate(&gen_req("restart"))
        .await
        .expect("generate");
    let url = fake.url();
    fake.stop().await;
    let err = client.info(&key.token).await.expect_err("down");
    assert!(matches!(err, ApiError::Unreachable { .. }), "{err:?}");
    fake.restart().await.expect("restart");
    assert_eq!(fake.url(), url);
    // Same database after the outage; the client reconnects by itself.
    let info = client.info(&key.token).await.expect("info").expect("kept");
    assert_eq!(info.status, KeyStatus::Active);
}

#[tokio::test]
async fn concurrent_generates_share_one_client() {
    let (fake, client) = fake_and_client(Duration::from_secs(10)).await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.generate(&gen_req(&format!("c{i}"))).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.expect("join").expect("generate").token);
    }
    assert_eq!(fake.key_count(), 64);
    assert_eq!(
        client.delete_keys(&tokens).await.expect("delete"),
        Deleted::Some
    );
    assert_eq!(fake.key_count(), 0);
    assert_eq!(fake.deleted_keys().len(), 64);
}

#[tokio::test]
async fn config_validation() {
    let bad = |f: fn(&mut ClientConfig)| {
        let mut cfg = ClientConfig::new("http://127.0.0.1:4000", MASTER);
        f(&mut cfg);
        Client::new(&cfg).map(|_| ()).map_err(|e| e.to_string())
    };
    assert!(bad(|_| {}).is_ok());
    assert!(bad(|c| c.base_url = "ftp://x".into()).is_err());
    assert!(bad(|c| c.master_key = String::new()).is_err());
    assert!(
        bad(|c| c.master_key = "sk-bad\nkey".into())
            .unwrap_err()
            .contains("not allowed")
    );
    assert!(
        !bad(|c| c.master_key = "sk-bad\nkey".into())
            .unwrap_err()
            .contains("sk-bad")
    );
    assert!(bad(|c| c.request_timeout = Duration::ZERO).is_err());
    assert_eq!(
        bad(|c| c.ca_cert = Some("not a pem".into())),
        Err("invalid LiteLLM client configuration: ca_cert contains no PEM certificate".into())
    );
    assert!(bad(|c| c.insecure_tls = true).is_ok());
    // Path prefixes are kept.
    let client =
        Client::new(&ClientConfig::new("https://gw.example/litellm/", MASTER)).expect("client");
    assert_eq!(client.base_url(), "https://gw.example/litellm");
}

/// Success bodies: every field the fake emits exists on the real proxy with the same JSON
/// type (and timestamp format), and the deterministic values agree.
#[tokio::test]
async fn success_shapes_match() {
    let mut shapes: Vec<(&'static str, Vec<(String, Value)>)> = Vec::new();
    let alias = unique_alias("shape");
    for t in targets().await {
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
    for t in targets().await {
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
            let secs = secs_until(key.expires_at().expect("expires"));
            client.delete_keys(&[key.token]).await.expect("cleanup");
            assert!(
                (min as i64 - 2..=max as i64).contains(&secs),
                "[{}] {duration}: {secs}s",
                t.name
            );
        }
    }
}

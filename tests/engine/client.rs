//! Client scenarios, run against every target of the tier ([`crate::targets`]): the fake in
//! the engine tier; the fake and the real proxy in the end-to-end tier, which compiles this
//! same file.

use std::time::Duration;

use serde_json::{Value, json};
use vault_plugin_secrets_litellm::engine::client::{
    ApiError, ChosenKey, Client, Deleted, GenerateKeyRequest, KeyStatus, duration_string,
    token_hash,
};

use crate::support::fake_litellm::{FAKE_MODELS, Op};
use crate::support::secs_from_now;
use crate::support::target::{fake_and_client, gen_req, litellm, models_with, unique_alias};
use crate::targets;

#[tokio::test]
async fn lifecycle_generate_info_extend_list_delete() {
    for t in targets() {
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
            (595..=601).contains(&(secs_from_now(exp) as i64)),
            "[{}] expiry {}",
            t.name,
            (secs_from_now(exp) as i64)
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
            (3595..=3601).contains(&(secs_from_now(at) as i64)),
            "[{}] renew {}",
            t.name,
            (secs_from_now(at) as i64)
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
    for t in targets() {
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
    let (fake, client) = fake_and_client(Duration::from_secs(5));
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
    let (fake, client) = fake_and_client(Duration::from_secs(5));
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
    for t in targets() {
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
    for t in targets() {
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
    for t in targets() {
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
    for t in targets() {
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
    for t in targets() {
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

/// Update semantics that the plugin relies on, compared on both servers.
#[tokio::test]
async fn update_semantics() {
    for t in targets() {
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

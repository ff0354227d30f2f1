//! `rotate-root` end to end: a real OpenBao launches the plugin, which rotates its admin key in
//! the real LiteLLM proxy (refusal of the proxy master key, rotation of an admin virtual key),
//! and in the fake for the failures a real proxy cannot be made to produce.
//!
//! Every user and key created in the real proxy is deleted again, also when a test fails.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use crate::support::bao::{DevServer, DevServerOptions};
use crate::support::fake_litellm::{FakeLiteLlm, Fault, Op};
use crate::support::{
    RealLiteLlm, admin_client, admin_virtual_key, configure, mount, revoke_lease, write_role,
};
use serde_json::{Value, json};
use vault_plugin_secrets_litellm::engine::client::{KeyStatus, token_hash};

fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// The routes a least-privilege admin key needs: the plugin's and rotate-root's.
const ADMIN_ROUTES: [&str; 5] = [
    "/key/generate",
    "/key/update",
    "/key/delete",
    "/key/info",
    "/key/list",
];

/// A `proxy_admin` user in the real proxy and a virtual key of it limited to [`ADMIN_ROUTES`].
/// Dropping it deletes the user, every key it owns, and every key whose alias starts with
/// `cleanup_prefix` (the keys the plugin issued in the test).
struct RealAdmin {
    litellm: RealLiteLlm,
    user_id: String,
    alias: String,
    key: String,
    token: String,
    cleanup_prefix: String,
}

impl RealAdmin {
    async fn create(litellm: &RealLiteLlm, tag: &str) -> RealAdmin {
        let id = suffix();
        let user_id = format!("vault-rr-{tag}-{id}");
        let mut admin = RealAdmin {
            litellm: litellm.clone(),
            user_id: user_id.clone(),
            alias: format!("vault-rr-admin-{tag}-{id}"),
            key: String::new(),
            token: String::new(),
            cleanup_prefix: format!("vault-rr-{tag}-{id}"),
        };
        let user = master_call(
            litellm,
            "/user/new",
            &json!({"user_id": user_id, "user_role": "proxy_admin", "auto_create_key": false}),
        )
        .await;
        assert_eq!(user["user_role"], "proxy_admin", "{user}");
        let key = master_call(
            litellm,
            "/key/generate",
            &json!({
                "user_id": user_id,
                "key_alias": admin.alias,
                "allowed_routes": ADMIN_ROUTES,
                "metadata": {"purpose": "rotate-root test"},
            }),
        )
        .await;
        admin.key = key["key"].as_str().expect("generated key").to_string();
        admin.token = token_hash(&admin.key);
        admin
    }

    /// Hashes of the live keys the admin user owns.
    async fn live_tokens(&self) -> Vec<String> {
        user_tokens(&self.litellm, &self.user_id).await
    }
}

impl Drop for RealAdmin {
    fn drop(&mut self) {
        let litellm = self.litellm.clone();
        let user_id = self.user_id.clone();
        let prefix = self.cleanup_prefix.clone();
        // The test's runtime may be unwinding: clean up on a runtime of our own.
        let done = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime")
                .block_on(cleanup(&litellm, &user_id, &prefix))
        })
        .join();
        if done.is_err() {
            eprintln!("cleanup of LiteLLM user {} failed", self.user_id);
        }
    }
}

async fn cleanup(litellm: &RealLiteLlm, user_id: &str, alias_prefix: &str) {
    let master = admin_client(&litellm.url, &litellm.master_key);
    let mut tokens = user_tokens(litellm, user_id).await;
    if let Ok(issued) = master.list_aliases(alias_prefix).await {
        tokens.extend(issued.into_iter().map(|k| k.token));
    }
    if !tokens.is_empty() {
        let _ = master.delete_keys(&tokens).await;
    }
    // Deleting a user deletes its keys too; the explicit delete above does not rely on that.
    master_call(litellm, "/user/delete", &json!({"user_ids": [user_id]})).await;
}

/// `POST <route>` with the master key; the JSON answer (panics unless 200).
async fn master_call(litellm: &RealLiteLlm, route: &str, body: &Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}{route}", litellm.url))
        .bearer_auth(&litellm.master_key)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{route}: {e}"));
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{route}: {answer}");
    answer
}

/// `GET <route>` with `key`: (status, JSON answer).
async fn get_with(url: &str, key: &str, route: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{url}{route}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{route}: {e}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn user_tokens(litellm: &RealLiteLlm, user_id: &str) -> Vec<String> {
    let (status, answer) = get_with(
        &litellm.url,
        &litellm.master_key,
        &format!("/key/list?user_id={user_id}&size=100"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    answer["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(String::from))
        .collect()
}

/// The raw `/key/info` row of `token`, read with the master key.
async fn raw_info(litellm: &RealLiteLlm, token: &str) -> Value {
    let (status, answer) = get_with(
        &litellm.url,
        &litellm.master_key,
        &format!("/key/info?key={token}"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    answer["info"].clone()
}

/// Every `sk-…` string in `text` whose hash is one of `tokens`: a key that leaked.
fn leaked_keys(text: &str, tokens: &HashSet<String>) -> Vec<String> {
    text.match_indices("sk-")
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect::<String>()
        })
        .filter(|candidate| tokens.contains(&token_hash(candidate)))
        .collect()
}

fn age_of(rfc3339: &str) -> Duration {
    let at = humantime::parse_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339:?} is not RFC 3339: {e}"));
    SystemTime::now().duration_since(at).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Against the real proxy
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_proxy_master_key_is_refused_with_a_400() {
    let litellm = RealLiteLlm::from_env();
    let server = DevServer::start();
    mount(&server, &["litellm"]);
    configure(&server, "litellm", &litellm.url, &litellm.master_key);

    let refused = server.bao(&["write", "-f", "litellm/rotate-root"]).err();
    assert!(refused.combined().contains("Code: 400"), "{refused}");
    assert!(
        refused.combined().contains("proxy's master key")
            && refused.combined().contains("proxy_admin"),
        "the refusal says why and what to do: {refused}"
    );
    let (status, body) = server.http("POST", "litellm/rotate-root", Some(&json!({})));
    assert_eq!(status, 400, "{body}");

    let config = server
        .bao(&["read", "-format=json", "litellm/config"])
        .ok()
        .json();
    assert_eq!(config["data"]["last_rotated"], "", "{config}");
    // Nothing changed: the master key still works for the plugin.
    server
        .bao(&["write", "litellm/config", "verify_connection=true"])
        .ok();
    assert!(!server.server_log().contains(&litellm.master_key));
}

#[tokio::test]
async fn an_admin_virtual_key_is_rotated_and_only_vault_knows_the_new_one() {
    let litellm = RealLiteLlm::from_env();
    let admin = RealAdmin::create(&litellm, "rotate").await;
    // A least-privilege admin key passes the config check like the master key does.
    assert_eq!(
        get_with(&litellm.url, &admin.key, "/key/list?size=1")
            .await
            .0,
        200
    );
    let server =
        DevServer::start_with(DevServerOptions::default().env("LITELLM_PLUGIN_LOG_LEVEL", "trace"));
    mount(&server, &["litellm"]);
    configure(&server, "litellm", &litellm.url, &admin.key);
    let mut outputs = Vec::new();
    let read_config = |outputs: &mut Vec<String>| {
        let out = server.bao(&["read", "-format=json", "litellm/config"]).ok();
        outputs.push(out.combined());
        out.json()["data"].clone()
    };
    assert_eq!(read_config(&mut outputs)["last_rotated"], "");

    let rotated = server
        .bao(&["write", "-f", "-format=json", "litellm/rotate-root"])
        .ok();
    outputs.push(rotated.combined());
    let rotated = rotated.json();
    let live = admin.live_tokens().await;
    assert_eq!(live.len(), 1, "one admin key after the rotation: {live:?}");
    let first = live[0].clone();
    assert_ne!(first, admin.token);
    let data = &rotated["data"];
    assert_eq!(data["token_id_prefix"], first[..12], "{rotated}");
    assert_eq!(
        data["key_alias"], admin.alias,
        "the successor takes the old alias"
    );
    assert_eq!(data["expires"], Value::Null, "no expiry, like the old key");
    assert!(rotated["warnings"].is_null(), "{rotated}");
    let last_rotated = data["last_rotated"].as_str().unwrap().to_string();
    assert!(age_of(&last_rotated) < Duration::from_secs(120));
    assert_eq!(
        data.as_object().map(|d| d.len()),
        Some(4),
        "only alias, hash prefix, time and expiry: {data}"
    );

    let config = read_config(&mut outputs);
    assert_eq!(config["last_rotated"], last_rotated.as_str());
    assert!(config.get("master_key").is_none());

    // The old key is gone in LiteLLM: rejected, and archived as deleted.
    assert_eq!(
        get_with(&litellm.url, &admin.key, "/key/list?size=1")
            .await
            .0,
        401
    );
    let master = admin_client(&litellm.url, &litellm.master_key);
    let old = master.info(&admin.token).await.unwrap().expect("archived");
    assert_eq!(old.status, KeyStatus::Deleted);

    // Same scope as the old key.
    let new = raw_info(&litellm, &first).await;
    assert_eq!(new["user_id"], admin.user_id.as_str());
    assert_eq!(new["allowed_routes"], json!(ADMIN_ROUTES), "{new}");
    assert_eq!(new["metadata"], json!({"purpose": "rotate-root test"}));
    assert_eq!(new["key_type"], "default");
    assert_eq!(new["expires"], Value::Null);

    // The plugin issues credentials with the new key.
    let role = "rr-role";
    write_role(
        &server,
        role,
        &[
            &format!("key_alias_prefix={}", admin.cleanup_prefix),
            "models=fake-gpt",
            "ttl=5m",
        ],
    );
    let creds = server
        .bao(&["read", "-format=json", &format!("litellm/creds/{role}")])
        .ok()
        .json();
    let issued = creds["data"]["token_id"].as_str().unwrap();
    assert_eq!(
        raw_info(&litellm, issued).await["created_by"],
        admin.user_id.as_str(),
        "issued by the admin user's (new) key"
    );
    revoke_lease(&server, creds["lease_id"].as_str().unwrap());

    // Rotating again replaces the successor the same way.
    let again = server
        .bao(&["write", "-f", "-format=json", "litellm/rotate-root"])
        .ok();
    outputs.push(again.combined());
    let again = again.json();
    let live = admin.live_tokens().await;
    assert_eq!(live.len(), 1, "{live:?}");
    let second = live[0].clone();
    assert_ne!(second, first);
    assert_eq!(again["data"]["key_alias"], admin.alias);
    assert_eq!(again["data"]["token_id_prefix"], second[..12]);
    assert_eq!(
        master.info(&first).await.unwrap().map(|i| i.status),
        Some(KeyStatus::Deleted)
    );
    server
        .bao(&["write", "litellm/config", "verify_connection=true"])
        .ok();

    // Neither new key appears in any answer or in the log; nor does the old one in the log.
    let new_tokens: HashSet<String> = [first, second].into_iter().collect();
    let log = server.server_log();
    assert!(
        log.contains("rotated the LiteLLM admin key"),
        "the rotation is logged"
    );
    for text in outputs.iter().chain([&log]) {
        assert_eq!(leaked_keys(text, &new_tokens), Vec::<String>::new());
    }
    assert!(!log.contains(&admin.key), "the configured key was logged");
}

// ---------------------------------------------------------------------------------------------
// Failures, against the fake
// ---------------------------------------------------------------------------------------------

const FAKE_MASTER: &str = "sk-rotate-root-fake-master-0123456789";

#[tokio::test]
async fn failures_before_the_store_change_nothing_and_after_it_are_warnings() {
    let fake = FakeLiteLlm::start(FAKE_MASTER).unwrap();
    let master = admin_client(&fake.url(), FAKE_MASTER);
    let original = admin_virtual_key(&fake, FAKE_MASTER).await;
    let server = DevServer::start();
    mount(&server, &["litellm"]);
    configure(&server, "litellm", &fake.url(), &original.key);

    // Documented like the other paths.
    let root = server.bao(&["path-help", "litellm"]).ok().stdout;
    assert!(root.contains("rotate-root"), "{root}");
    let help = server
        .bao(&["path-help", "litellm/rotate-root"])
        .ok()
        .stdout;
    assert!(
        help.contains("only Vault knows") && help.contains("proxy_admin"),
        "{help}"
    );
    let spec = server.http_ok("GET", "sys/internal/specs/openapi", None);
    assert!(
        spec["paths"]["/litellm/rotate-root"]["post"].is_object(),
        "{}",
        spec["paths"]["/litellm/rotate-root"]
    );
    let live = || {
        fake.live_keys()
            .into_iter()
            .map(|k| (k.key_alias.unwrap_or_default(), k.token))
            .collect::<Vec<_>>()
    };
    let only_original = vec![("vault-admin".to_string(), original.token.clone())];

    // The successor fails its check: it is deleted and the old key stays configured.
    // Over HTTP, not the CLI: the CLI retries the 502, and the retry would rotate.
    fake.fail_next_n(Op::List, Fault::Status(500), 1);
    let (status, failed) = server.http("POST", "litellm/rotate-root", Some(&json!({})));
    assert_eq!(status, 502, "{failed}");
    assert!(failed.to_string().contains("failed its check"), "{failed}");
    assert_eq!(live(), only_original);

    // The successor's creation answer is lost: it is deleted by its temporary alias.
    fake.fail_next_n(Op::Generate, Fault::LoseResponse, 1);
    let (status, failed) = server.http("POST", "litellm/rotate-root", Some(&json!({})));
    assert_eq!(status, 502, "{failed}");
    assert!(
        failed
            .to_string()
            .contains("could not create the successor"),
        "{failed}"
    );
    assert_eq!(live(), only_original);
    let config = server
        .bao(&["read", "-format=json", "litellm/config"])
        .ok()
        .json();
    assert_eq!(config["data"]["last_rotated"], "");

    // The old key cannot be deleted: the rotation stands, with a warning naming the old key.
    fake.fail_next_n(Op::Delete, Fault::Status(500), 1);
    let rotated = server
        .bao(&["write", "-f", "-format=json", "litellm/rotate-root"])
        .ok()
        .json();
    let warnings = rotated["warnings"].to_string();
    assert!(
        warnings.contains("vault-admin") && warnings.contains(&original.token[..12]),
        "{rotated}"
    );
    let temporary = rotated["data"]["key_alias"].as_str().unwrap().to_string();
    assert!(temporary.starts_with("vault-admin-rotating-"), "{rotated}");
    let keys = live();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0], only_original[0]);
    assert_eq!(keys[1].0, temporary);
    assert!(!rotated.to_string().contains("sk-"), "{rotated}");

    // The operator deletes the old key as told; the plugin carries on with the new one.
    master
        .delete_aliases(&["vault-admin".into()])
        .await
        .unwrap();
    server.bao(&["write", "litellm/roles/after", "ttl=1m"]).ok();
    server.bao(&["read", "litellm/creds/after"]).ok();

    // The next rotation gives the key its alias back.
    let rotated = server
        .bao(&["write", "-f", "-format=json", "litellm/rotate-root"])
        .ok()
        .json();
    assert_eq!(rotated["data"]["key_alias"], "vault-admin", "{rotated}");
    assert!(rotated["warnings"].is_null(), "{rotated}");
    let admin_keys: Vec<_> = live()
        .into_iter()
        .filter(|(alias, _)| alias.starts_with("vault-admin"))
        .collect();
    assert_eq!(admin_keys.len(), 1, "{admin_keys:?}");
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

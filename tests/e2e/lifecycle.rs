//! The key lifecycle end to end: a real OpenBao launches the plugin, which manages keys in a
//! real LiteLLM proxy (started by `scripts/test.sh`). Every LiteLLM key lives exactly as long
//! as its Vault lease.

use std::time::{Duration, SystemTime};

use crate::support::bao::DevServerOptions;
use crate::support::{
    ExtraLiteLlm, RealLiteLlm, assert_eventually, issue, revoke_lease, revoke_role_leases,
    secs_between, server_with, unique, write_role,
};
use serde_json::Value;
use vault_plugin_secrets_litellm::engine::client::{KeyInfo, KeyStatus, token_hash};

async fn info(litellm: &RealLiteLlm, token: &str) -> KeyInfo {
    litellm
        .admin()
        .info(token)
        .await
        .unwrap()
        .expect("LiteLLM knows the key")
}

/// Status of `GET /v1/models` called with `key`, and the model ids it lists.
async fn models_seen_by(litellm: &RealLiteLlm, key: &str) -> (u16, Vec<String>) {
    let response = reqwest::Client::new()
        .get(format!("{}/v1/models", litellm.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    let ids = body["data"]
        .as_array()
        .map(|models| {
            models
                .iter()
                .filter_map(|m| m["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    (status, ids)
}

/// Whether LiteLLM refuses `key` (a 401 on `/v1/models`).
async fn rejected(litellm: &RealLiteLlm, key: &str) -> bool {
    models_seen_by(litellm, key).await.0 == 401
}

#[tokio::test]
async fn issued_key_is_scoped_stamped_and_expires_with_its_lease() {
    let litellm = RealLiteLlm::from_env();
    let server = server_with(&litellm, DevServerOptions::default());
    let role = unique("scoped");
    write_role(
        &server,
        &role,
        &[
            "models=fake-gpt",
            "max_budget=1.5",
            "rpm_limit=7",
            "ttl=2m",
            "max_ttl=10m",
            "metadata=team=research",
        ],
    );
    let before = SystemTime::now();
    let creds = issue(&server, &role);
    let data = &creds["data"];
    let key = data["key"].as_str().unwrap();
    assert!(key.starts_with("sk-"));
    assert_eq!(data["token_id"], token_hash(key));
    assert_eq!(data["role"], role);
    assert_eq!(data["models"], serde_json::json!(["fake-gpt"]));
    assert!(
        data["key_alias"]
            .as_str()
            .unwrap()
            .starts_with(&format!("vault-{role}-"))
    );
    assert_eq!(creds["lease_duration"], 120);
    assert_eq!(creds["renewable"], true);

    // The key works, and only for the role's models.
    assert_eq!(
        models_seen_by(&litellm, key).await,
        (200, vec!["fake-gpt".to_string()])
    );

    let key_info = info(&litellm, data["token_id"].as_str().unwrap()).await;
    assert_eq!(key_info.key_alias.as_deref(), data["key_alias"].as_str());
    assert_eq!(key_info.status, KeyStatus::Active);
    assert_eq!(key_info.max_budget, Some(1.5));
    assert_eq!(key_info.rpm_limit, Some(7));
    assert_eq!(key_info.key_type.as_deref(), Some("llm_api"));
    let stamp = |k: &str| {
        key_info
            .metadata
            .get(k)
            .and_then(Value::as_str)
            .map(String::from)
    };
    assert_eq!(stamp("team").as_deref(), Some("research"));
    assert_eq!(stamp("vault_role").as_deref(), Some(role.as_str()));
    assert_eq!(stamp("vault_mount").as_deref(), Some("litellm/"));
    assert_eq!(
        stamp("vault_request_id").as_deref(),
        creds["request_id"].as_str()
    );
    assert_eq!(stamp("vault_display_name").as_deref(), Some("token"));
    // LiteLLM's expiry is the lease's end plus a few seconds of buffer.
    let expires = secs_between(key_info.expires_at.unwrap(), before);
    assert!(
        (120.0..=130.0).contains(&expires),
        "key expires {expires}s after issue"
    );

    // An llm_api key cannot manage keys.
    let status = reqwest::Client::new()
        .get(format!("{}/key/list", litellm.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status();
    assert!(
        status == 401 || status == 403,
        "llm_api key reached /key/list: {status}"
    );

    revoke_lease(&server, creds["lease_id"].as_str().unwrap());
    assert_eventually!(async rejected(&litellm, key).await, "revoked key still works");
    assert_eq!(
        info(&litellm, data["token_id"].as_str().unwrap())
            .await
            .status,
        KeyStatus::Deleted
    );
}

#[tokio::test]
async fn renew_moves_the_expiry_and_never_passes_max_ttl() {
    let litellm = RealLiteLlm::from_env();
    let server = server_with(&litellm, DevServerOptions::default());
    let role = unique("renew");
    write_role(&server, &role, &["ttl=1m", "max_ttl=10m"]);
    let creds = issue(&server, &role);
    let lease = creds["lease_id"].as_str().unwrap();
    let token = creds["data"]["token_id"].as_str().unwrap();
    // max_ttl counts from the lease's issue time as OpenBao recorded it (not from before the
    // request: under load the issue itself takes a while).
    let lookup = server
        .bao(&["lease", "lookup", "-format=json", lease])
        .ok()
        .json();
    let issued = humantime::parse_rfc3339_weak(lookup["data"]["issue_time"].as_str().unwrap())
        .expect("issue_time is RFC 3339");

    let renewed = server
        .bao(&["lease", "renew", "-format=json", "-increment=5m", lease])
        .ok()
        .json();
    assert_eq!(renewed["lease_duration"], 300);
    let expires = secs_between(
        info(&litellm, token).await.expires_at.unwrap(),
        SystemTime::now(),
    );
    assert!(
        (295.0..=306.0).contains(&expires),
        "renewed key expires in {expires}s"
    );

    let capped = server
        .bao(&["lease", "renew", "-format=json", "-increment=1h", lease])
        .ok()
        .json();
    let duration = capped["lease_duration"].as_u64().unwrap();
    assert!(
        (590..=600).contains(&duration),
        "capped to what is left of max_ttl: {duration}"
    );
    let warnings = capped["warnings"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        warnings.len(),
        1,
        "one capping warning, not one from the plugin and one from the host: {capped}"
    );
    assert!(warnings[0].to_string().contains("capped"), "{capped}");
    let expires = secs_between(info(&litellm, token).await.expires_at.unwrap(), issued);
    assert!(
        (595.0..=606.0).contains(&expires),
        "key never outlives max_ttl: {expires}s after issue"
    );

    revoke_lease(&server, lease);
}

#[tokio::test]
async fn revoke_prefix_removes_all_and_deleted_keys_revoke_cleanly() {
    let litellm = RealLiteLlm::from_env();
    let server = server_with(&litellm, DevServerOptions::default());
    let role = unique("prefix");
    write_role(&server, &role, &["ttl=5m"]);
    let creds: Vec<Value> = (0..3).map(|_| issue(&server, &role)).collect();

    // An operator deletes one key behind Vault's back; its lease must still revoke.
    let gone = creds[0]["data"]["token_id"].as_str().unwrap().to_string();
    litellm.admin().delete_keys(&[gone]).await.unwrap();

    revoke_role_leases(&server, &role);
    for c in &creds {
        let key = c["data"]["key"].as_str().unwrap();
        assert_eventually!(async rejected(&litellm, key).await, "the revoked key still works");
        let lookup = server.bao(&["lease", "lookup", c["lease_id"].as_str().unwrap()]);
        assert!(!lookup.success(), "lease survived its revoke: {lookup}");
    }
}

#[tokio::test]
async fn deleting_the_role_leaves_leases_revocable_but_not_renewable() {
    let litellm = RealLiteLlm::from_env();
    let server = server_with(&litellm, DevServerOptions::default());
    let role = unique("orphan");
    write_role(&server, &role, &["ttl=5m"]);
    let creds = issue(&server, &role);
    let lease = creds["lease_id"].as_str().unwrap();
    server
        .bao(&["delete", &format!("litellm/roles/{role}")])
        .ok();

    let renew = server.bao(&["lease", "renew", lease]).err();
    assert!(renew.combined().contains("was deleted"), "{renew}");
    assert!(
        !renew.combined().contains("500"),
        "a missing role is not a server error: {renew}"
    );

    revoke_lease(&server, lease);
    assert_eventually!(async rejected(&litellm, creds["data"]["key"].as_str().unwrap()).await, "the revoked key still works");
}

#[tokio::test]
async fn mount_tuning_clamps_the_lease_and_the_key_expiry() {
    let litellm = RealLiteLlm::from_env();
    let server = server_with(&litellm, DevServerOptions::default());
    server
        .bao(&["secrets", "tune", "-max-lease-ttl=60s", "litellm"])
        .ok();
    let role = unique("tuned");
    write_role(&server, &role, &["ttl=1h"]);
    let before = SystemTime::now();
    let creds = issue(&server, &role);
    assert_eq!(creds["lease_duration"], 60);
    assert!(creds["warnings"].to_string().contains("capped"), "{creds}");
    let token = creds["data"]["token_id"].as_str().unwrap();
    let expires = secs_between(info(&litellm, token).await.expires_at.unwrap(), before);
    assert!(
        (60.0..=67.0).contains(&expires),
        "key expiry follows the tuned max: {expires}s"
    );
    revoke_lease(&server, creds["lease_id"].as_str().unwrap());
}

#[tokio::test]
async fn disabling_the_mount_deletes_every_key() {
    let litellm = RealLiteLlm::from_env();
    let server = server_with(&litellm, DevServerOptions::default());
    let role = unique("unmount");
    write_role(&server, &role, &["ttl=10m", "models=fake-claude"]);
    let tokens: Vec<String> = (0..2)
        .map(|_| {
            issue(&server, &role)["data"]["token_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    server.bao(&["secrets", "disable", "litellm"]).ok();
    for token in &tokens {
        assert_eq!(info(&litellm, token).await.status, KeyStatus::Deleted);
    }
    assert_eventually!(
        server.plugin_pids().is_empty(),
        within = Duration::from_secs(5),
        "server .plugin_pids() .is_empty()"
    );
}

#[tokio::test]
async fn creds_update_asks_for_a_shorter_lease() {
    let litellm = RealLiteLlm::from_env();
    let server = server_with(&litellm, DevServerOptions::default());
    let role = unique("short");
    write_role(&server, &role, &["ttl=10m", "max_ttl=1h"]);
    let short = server
        .bao(&[
            "write",
            "-format=json",
            &format!("litellm/creds/{role}"),
            "ttl=30s",
        ])
        .ok()
        .json();
    assert_eq!(short["lease_duration"], 30);
    let long = server
        .bao(&[
            "write",
            "-format=json",
            &format!("litellm/creds/{role}"),
            "ttl=2h",
        ])
        .ok()
        .json();
    assert_eq!(
        long["lease_duration"], 600,
        "never longer than the role's ttl"
    );
    assert!(
        long["warnings"]
            .to_string()
            .contains("exceeds the role's ttl")
    );
    revoke_role_leases(&server, &role);
}

#[tokio::test]
async fn a_proxy_refusing_chosen_keys_still_issues_working_indexed_keys() {
    // LiteLLM's `disable_custom_api_keys` refuses the secret the plugin chooses (403).
    let extra = ExtraLiteLlm::start("disable_custom_api_keys: true");
    let litellm = &extra.proxy;
    let server = server_with(litellm, DevServerOptions::default());
    let role = unique("refusing");
    write_role(&server, &role, &["models=fake-gpt", "ttl=5m"]);

    let creds: Vec<Value> = (0..2).map(|_| issue(&server, &role)).collect();
    for cred in &creds {
        let key = cred["data"]["key"].as_str().unwrap();
        // LiteLLM's own secret (`sk-` + 22 characters), not the plugin's (`sk-` + 43).
        assert_eq!(key.len(), 25, "the proxy made the key");
        assert_eq!(
            models_seen_by(litellm, key).await,
            (200, vec!["fake-gpt".to_string()])
        );
    }
    // Both keys are in the index: tidy takes neither for an orphan.
    let dry = server
        .bao(&["write", "-format=json", "litellm/tidy", "dry_run=true"])
        .ok()
        .json();
    assert_eq!(dry["data"]["deleted"], serde_json::json!([]), "{dry}");

    for cred in &creds {
        let lease = cred["lease_id"].as_str().unwrap();
        revoke_lease(&server, lease);
        let key = cred["data"]["key"].as_str().unwrap();
        assert_eventually!(async rejected(litellm, key).await, "revoked key still works");
    }
}

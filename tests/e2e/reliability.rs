//! The fault catalogue (RELIABILITY.md), end to end: a real OpenBao launches the plugin, which
//! talks to the stateful fake LiteLLM (outages, restarts, injected faults) or to the real proxy
//! (operator actions). Every test ends by checking that no secret reached the server log and
//! that the plugin never panicked.

use std::time::{Duration, Instant};

use crate::support::bao::{DevServer, DevServerOptions};
use crate::support::fake_litellm::{FakeLiteLlm, Fault, Op};
use crate::support::{
    RealLiteLlm, assert_eventually, configure, issue, key, lease_exists, lease_id, mount,
    revoke_lease, secs_from_now, server_for, token_id, write_role,
};
use serde_json::json;
use vault_plugin_secrets_litellm::engine::client::{Client, ClientConfig, KeyStatus};

pub(crate) const MASTER_KEY: &str = "sk-reliability-master-key-0123456789";

pub(crate) fn fake() -> FakeLiteLlm {
    FakeLiteLlm::start(MASTER_KEY).expect("fake LiteLLM")
}

/// Shows a secret in a failure message by its last four characters only.
pub(crate) fn tail(secret: &str) -> &str {
    &secret[secret.len().saturating_sub(4)..]
}

/// The end-of-test invariants: no panic in the plugin, and none of `secrets` in the server
/// log (which holds the plugin's stderr) or in a read of `config`.
#[track_caller]
pub(crate) fn assert_no_panic_and_no_leak(server: &DevServer, secrets: &[String]) {
    let log = server.server_log();
    assert!(
        !log.contains("panicked"),
        "the plugin panicked:\n{}",
        server.server_log_tail(40)
    );
    let (_, config) = server.http("GET", "litellm/config", None);
    let config = config.to_string();
    for secret in secrets {
        assert!(
            !log.contains(secret.as_str()),
            "secret …{} is in the server log",
            tail(secret)
        );
        assert!(
            !config.contains(secret.as_str()),
            "secret …{} is in a config read",
            tail(secret)
        );
    }
}

// === LiteLLM unreachable at revoke ============================================================

#[tokio::test]
async fn revoke_while_litellm_is_down_is_retried_until_the_key_is_deleted() {
    let mut litellm = fake();
    let server = server_for(&litellm.url(), MASTER_KEY, DevServerOptions::default());
    server.bao(&["write", "litellm/roles/dev", "ttl=10m"]).ok();
    let creds = issue(&server, "dev");
    let (lease, token) = (lease_id(&creds), token_id(&creds));

    litellm.stop();
    // Without -sync the revocation is queued, and OpenBao's expiration manager owns retrying.
    let queued = server.bao(&["lease", "revoke", &lease]).ok();
    assert!(queued.combined().contains("queued"), "{queued}");
    // The first attempt fails with the plugin's error; key and lease are both kept.
    server.wait_for(Duration::from_secs(30), "a failed revoke attempt", || {
        server
            .server_log()
            .contains("Vault will retry")
            .then_some(())
    });
    assert!(litellm.get(&token).is_some(), "the key is still in LiteLLM");
    assert!(lease_exists(&server, &lease), "the lease waits for a retry");

    // LiteLLM comes back within the retry window (base 10 s, doubling, 6 attempts).
    litellm.restart().unwrap();
    let back = Instant::now();
    assert_eventually!(
        litellm.get(&token).is_none(),
        within = Duration::from_secs(90),
        "a retried revoke deleted the key"
    );
    println!(
        "observed: key deleted {:.1} s after LiteLLM came back",
        back.elapsed().as_secs_f64()
    );
    assert_eventually!(
        !lease_exists(&server, &lease),
        "the lease is gone, not left irrevocable"
    );
    let irrevocable = server.http_ok("GET", "sys/leases/count?type=irrevocable", None);
    assert_eq!(irrevocable["data"]["lease_count"], 0, "{irrevocable}");
    assert_no_panic_and_no_leak(&server, &[MASTER_KEY.to_string(), key(&creds)]);
}

// === OpenBao restarted with persistent storage =================================================

#[tokio::test]
async fn leases_outlive_an_openbao_restart_with_raft_storage() {
    let litellm = fake();
    let mut server = server_for(
        &litellm.url(),
        MASTER_KEY,
        DevServerOptions::default().persistent(),
    );
    server
        .bao(&["write", "litellm/roles/long", "ttl=10m", "max_ttl=1h"])
        .ok();
    server
        .bao(&["write", "litellm/roles/short", "ttl=20s"])
        .ok();
    let renewed = issue(&server, "long");
    let revoked = issue(&server, "long");
    let expiring = issue(&server, "short");
    let expiring_issued = Instant::now();
    let plugin_before = server.plugin_pids();

    let restarting = Instant::now();
    server.restart();
    println!(
        "observed: OpenBao restarted and unsealed in {:.1} s",
        restarting.elapsed().as_secs_f64()
    );
    assert_ne!(server.plugin_pids(), plugin_before, "a new plugin process");
    assert!(
        litellm.get(&token_id(&expiring)).is_some(),
        "nothing was revoked by the restart itself"
    );

    // Renew after the restart: the lease and the key's expiry in LiteLLM both move.
    let renew = server
        .bao(&[
            "lease",
            "renew",
            "-format=json",
            "-increment=30m",
            &lease_id(&renewed),
        ])
        .ok()
        .json();
    assert_eq!(renew["lease_duration"], 1800, "{renew}");
    let expires = litellm
        .get(&token_id(&renewed))
        .and_then(|k| k.expires)
        .expect("renewed key with an expiry");
    let left = secs_from_now(expires);
    assert!((1795.0..=1806.0).contains(&left), "key expires in {left}s");

    // Revoke after the restart.
    revoke_lease(&server, &lease_id(&revoked));
    assert!(litellm.get(&token_id(&revoked)).is_none());
    assert!(!lease_exists(&server, &lease_id(&revoked)));

    // Expiry after the restart: the restored lease expires and its key is deleted.
    assert_eventually!(
        litellm.get(&token_id(&expiring)).is_none(),
        within = Duration::from_secs(60),
        "the expired lease's key was deleted"
    );
    println!(
        "observed: the 20 s lease's key deleted {:.1} s after issue",
        expiring_issued.elapsed().as_secs_f64()
    );
    assert_eventually!(
        !lease_exists(&server, &lease_id(&expiring)),
        "!lease_exists( &server, &lease_id(&expiring) )"
    );

    // And new keys are issued as before.
    let fresh = issue(&server, "long");
    revoke_lease(&server, &lease_id(&fresh));
    revoke_lease(&server, &lease_id(&renewed));
    assert_eq!(litellm.key_count(), 0);
    let secrets: Vec<String> = [&renewed, &revoked, &expiring, &fresh]
        .iter()
        .map(|c| key(c))
        .chain([MASTER_KEY.to_string()])
        .collect();
    assert_no_panic_and_no_leak(&server, &secrets);
}

// === LiteLLM restarted, keys deleted or blocked by an operator =================================

#[tokio::test]
async fn renew_and_revoke_work_after_litellm_restarts() {
    let mut litellm = fake();
    let server = server_for(&litellm.url(), MASTER_KEY, DevServerOptions::default());
    server
        .bao(&["write", "litellm/roles/dev", "ttl=10m", "max_ttl=1h"])
        .ok();
    let a = issue(&server, "dev");
    let b = issue(&server, "dev");

    // The restart drops every connection in the plugin's keep-alive pool.
    litellm.restart().unwrap();
    let renew = server
        .bao(&[
            "lease",
            "renew",
            "-format=json",
            "-increment=20m",
            &lease_id(&a),
        ])
        .ok()
        .json();
    assert_eq!(renew["lease_duration"], 1200);
    for creds in [&a, &b] {
        revoke_lease(&server, &lease_id(creds));
        assert!(litellm.get(&token_id(creds)).is_none());
        assert!(!lease_exists(&server, &lease_id(creds)));
    }
    assert_eq!(litellm.key_count(), 0);
    assert_no_panic_and_no_leak(&server, &[MASTER_KEY.to_string(), key(&a), key(&b)]);
}

#[tokio::test]
async fn keys_deleted_or_blocked_by_an_operator_still_revoke_on_the_real_proxy() {
    let real = RealLiteLlm::from_env();
    let server = server_for(&real.url, &real.master_key, DevServerOptions::default());
    let role = format!(
        "operator-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    write_role(&server, &role, &["models=fake-gpt", "ttl=5m"]);
    let deleted = issue(&server, &role);
    let blocked = issue(&server, &role);
    let admin = Client::new(&ClientConfig {
        base_url: real.url.clone(),
        master_key: real.master_key.clone(),
        request_timeout: Duration::from_secs(30),
        ca_cert: None,
        insecure_tls: false,
    })
    .unwrap();
    let http = reqwest::Client::new();

    admin.delete_keys(&[token_id(&deleted)]).await.unwrap();
    let block = http
        .post(format!("{}/key/block", real.url))
        .bearer_auth(&real.master_key)
        .json(&json!({ "key": token_id(&blocked) }))
        .send()
        .await
        .unwrap();
    assert!(block.status().is_success(), "{:?}", block.text().await);
    let models = http
        .get(format!("{}/v1/models", real.url))
        .bearer_auth(key(&blocked))
        .send()
        .await
        .unwrap()
        .status();
    assert!(!models.is_success(), "a blocked key still works: {models}");

    // Renewing the deleted key fails with LiteLLM's reason; its lease stays revocable.
    let renew = server.bao(&["lease", "renew", &lease_id(&deleted)]).err();
    assert!(
        renew
            .combined()
            .contains("LiteLLM /key/update failed: HTTP 404"),
        "{renew}"
    );
    println!(
        "observed: renew of an operator-deleted key: {}",
        renew.stderr.trim()
    );

    for creds in [&deleted, &blocked] {
        revoke_lease(&server, &lease_id(creds));
        assert!(!lease_exists(&server, &lease_id(creds)));
    }
    let info = admin.info(&token_id(&blocked)).await.unwrap();
    assert_eq!(
        info.map(|i| i.status),
        Some(KeyStatus::Deleted),
        "the blocked key was deleted"
    );
    assert_no_panic_and_no_leak(
        &server,
        &[real.master_key.clone(), key(&deleted), key(&blocked)],
    );
}

// === Secrets never leak ========================================================================

#[tokio::test]
async fn secrets_never_reach_logs_config_reads_or_the_audit_log() {
    let litellm = fake();
    // The plugin at its most verbose: whatever it can log, it logs. OpenBao 2.x refuses
    // `bao audit enable` ("use declarative, config-based audit device management"), so the file
    // device is declared in the server config; the relative path is in the server's temp dir.
    let server = DevServer::start_with(
        DevServerOptions::default()
            .env("LITELLM_PLUGIN_LOG_LEVEL", "trace")
            .config(r#"audit "file" "file" { options { file_path = "audit.log" } }"#),
    );
    let audit_log = server.log_path().with_file_name("audit.log");
    let devices = server.bao(&["audit", "list", "-format=json"]).ok().json();
    assert_eq!(devices["file/"]["type"], "file", "{devices}");
    mount(&server, &["litellm"]);
    let wrong_key = "sk-wrong-master-key-9876543210";
    // A rejected key is a secret too: the write fails without echoing it.
    let refused = server
        .bao(&[
            "write",
            "litellm/config",
            &format!("base_url={}", litellm.url()),
            &format!("master_key={wrong_key}"),
        ])
        .err();
    assert!(!refused.combined().contains(wrong_key), "{refused}");
    configure(&server, "litellm", &litellm.url(), MASTER_KEY);
    server
        .bao(&["write", "litellm/roles/dev", "ttl=10m", "max_ttl=1h"])
        .ok();

    let mut keys = Vec::new();
    for _ in 0..3 {
        keys.push(issue(&server, "dev"));
    }
    server
        .bao(&["lease", "renew", "-increment=20m", &lease_id(&keys[0])])
        .ok();
    // LiteLLM answers an issue with an error that echoes the master key and an issued key.
    let echo = format!(
        r#"{{"error": {{"message": "bad keys {MASTER_KEY} {}", "type": "auth_error"}}}}"#,
        key(&keys[1])
    );
    litellm.fail_next_n(
        Op::Generate,
        Fault::Body {
            status: 401,
            body: echo,
        },
        1,
    );
    let failed = server.bao(&["read", "litellm/creds/dev"]).err();
    assert!(failed.combined().contains("401"), "{failed}");
    assert!(!failed.combined().contains(MASTER_KEY), "{failed}");
    assert!(!failed.combined().contains(&key(&keys[1])), "{failed}");
    let read = server.bao(&["read", "-format=json", "litellm/config"]).ok();
    assert!(!read.stdout.contains(MASTER_KEY));
    server
        .bao(&["lease", "revoke", "-sync", "-prefix", "litellm/creds/dev"])
        .ok();
    assert_eq!(litellm.key_count(), 0);

    let mut secrets: Vec<String> = keys.iter().map(key).collect();
    secrets.extend([MASTER_KEY.to_string(), wrong_key.to_string()]);
    assert_no_panic_and_no_leak(&server, &secrets);

    // The audit log carries every secret only as its HMAC.
    let audit = std::fs::read_to_string(&audit_log).expect("audit log");
    assert!(audit.contains("hmac-sha256:"));
    for secret in &secrets {
        assert!(
            !audit.contains(secret.as_str()),
            "secret …{} is in the audit log in clear",
            tail(secret)
        );
    }
    for secret in [MASTER_KEY.to_string(), key(&keys[0]), key(&keys[2])] {
        let hash = server.http_ok(
            "PUT",
            "sys/audit-hash/file",
            Some(&json!({ "input": secret })),
        );
        let hash = hash["data"]["hash"]
            .as_str()
            .or(hash["hash"].as_str())
            .unwrap()
            .to_string();
        assert!(hash.starts_with("hmac-sha256:"));
        assert!(
            audit.contains(&hash),
            "the audit log holds the HMAC of secret …{}",
            tail(&secret)
        );
    }
    println!(
        "observed: {} secrets absent from server log, config reads and audit log ({} bytes); HMACs present",
        secrets.len(),
        audit.len()
    );
}

//! The fault catalogue (RELIABILITY.md), end to end: a real OpenBao launches the plugin, which
//! talks to the stateful fake LiteLLM (outages, restarts, injected faults) or to the real proxy
//! (operator actions). Every test ends by checking that no secret reached the server log and
//! that the plugin never panicked.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use support::bao::{DevServer, DevServerOptions};
use support::fake_litellm::{FakeLiteLlm, Fault, Op};
use support::{RealLiteLlm, configure, eventually, mount, revoke_lease, write_role};
use vault_plugin_secrets_litellm::engine::client::{Client, ClientConfig, KeyStatus};

const MASTER_KEY: &str = "sk-reliability-master-key-0123456789";

async fn fake() -> FakeLiteLlm {
    FakeLiteLlm::start(MASTER_KEY).await.expect("fake LiteLLM")
}

/// A server (started with `options`) with the plugin at `litellm/`, configured for `url`.
fn server_for(url: &str, master_key: &str, options: DevServerOptions) -> DevServer {
    let server = DevServer::start_with(options);
    mount(&server, &["litellm"]);
    configure(&server, "litellm", url, master_key);
    server
}

/// `read litellm/creds/<role>` through the CLI: the whole response.
#[track_caller]
fn issue(server: &DevServer, role: &str) -> Value {
    server
        .bao(&["read", "-format=json", &format!("litellm/creds/{role}")])
        .ok()
        .json()
}

fn lease_id(creds: &Value) -> String {
    creds["lease_id"].as_str().expect("lease_id").to_string()
}

fn token_id(creds: &Value) -> String {
    creds["data"]["token_id"]
        .as_str()
        .expect("token_id")
        .to_string()
}

fn key(creds: &Value) -> String {
    creds["data"]["key"].as_str().expect("key").to_string()
}

/// Whether OpenBao still knows the lease.
fn lease_exists(server: &DevServer, lease: &str) -> bool {
    let (status, _) = server.http(
        "PUT",
        "sys/leases/lookup",
        Some(&json!({ "lease_id": lease })),
    );
    status == 200
}

/// Seconds from now until `t` (negative when past).
fn secs_from_now(t: SystemTime) -> f64 {
    match t.duration_since(SystemTime::now()) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Shows a secret in a failure message by its last four characters only.
fn tail(secret: &str) -> &str {
    &secret[secret.len().saturating_sub(4)..]
}

/// The end-of-test invariants: no panic in the plugin, and none of `secrets` in the server
/// log (which holds the plugin's stderr) or in a read of `config`.
#[track_caller]
fn assert_no_panic_and_no_leak(server: &DevServer, secrets: &[String]) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_while_litellm_is_down_is_retried_until_the_key_is_deleted() {
    let mut litellm = fake().await;
    let server = server_for(&litellm.url(), MASTER_KEY, DevServerOptions::default());
    server.bao(&["write", "litellm/roles/dev", "ttl=10m"]).ok();
    let creds = issue(&server, "dev");
    let (lease, token) = (lease_id(&creds), token_id(&creds));

    litellm.stop().await;
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
    litellm.restart().await.unwrap();
    let back = Instant::now();
    assert!(
        eventually(Duration::from_secs(90), || litellm.get(&token).is_none()),
        "a retried revoke deleted the key"
    );
    println!(
        "observed: key deleted {:.1} s after LiteLLM came back",
        back.elapsed().as_secs_f64()
    );
    assert!(
        eventually(Duration::from_secs(10), || !lease_exists(&server, &lease)),
        "the lease is gone, not left irrevocable"
    );
    let irrevocable = server.http_ok("GET", "sys/leases/count?type=irrevocable", None);
    assert_eq!(irrevocable["data"]["lease_count"], 0, "{irrevocable}");
    assert_no_panic_and_no_leak(&server, &[MASTER_KEY.to_string(), key(&creds)]);
}

// === OpenBao restarted with persistent storage =================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_outlive_an_openbao_restart_with_raft_storage() {
    let litellm = fake().await;
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
    assert!(
        eventually(Duration::from_secs(60), || litellm
            .get(&token_id(&expiring))
            .is_none()),
        "the expired lease's key was deleted"
    );
    println!(
        "observed: the 20 s lease's key deleted {:.1} s after issue",
        expiring_issued.elapsed().as_secs_f64()
    );
    assert!(eventually(Duration::from_secs(10), || !lease_exists(
        &server,
        &lease_id(&expiring)
    )));

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_and_revoke_work_after_litellm_restarts() {
    let mut litellm = fake().await;
    let server = server_for(&litellm.url(), MASTER_KEY, DevServerOptions::default());
    server
        .bao(&["write", "litellm/roles/dev", "ttl=10m", "max_ttl=1h"])
        .ok();
    let a = issue(&server, "dev");
    let b = issue(&server, "dev");

    // The restart drops every connection in the plugin's keep-alive pool.
    litellm.restart().await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

// === Soak ======================================================================================

/// A keep-alive client for OpenBao's HTTP API.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    addr: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, String> {
        let resp = self
            .http
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", support::bao::ROOT_TOKEN)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| format!("{path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{path}: HTTP {status}: {text}"));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// One cycle: issue a key, revoke its lease synchronously. Returns the key.
    async fn cycle(&self) -> Result<String, String> {
        let creds = self
            .call(reqwest::Method::GET, "litellm/creds/soak", Value::Null)
            .await?;
        let lease = creds["lease_id"].as_str().ok_or("no lease_id")?;
        self.call(
            reqwest::Method::PUT,
            "sys/leases/revoke",
            json!({ "lease_id": lease, "sync": true }),
        )
        .await?;
        Ok(creds["data"]["key"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }
}

/// Outcome of a batch of cycles.
#[derive(Default)]
struct Batch {
    errors: Vec<String>,
    keys: Vec<String>,
}

/// Runs `total` cycles from `clients` concurrent workers.
async fn cycles(api: &Api, clients: usize, total: usize) -> Batch {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let batch = Arc::new(Mutex::new(Batch::default()));
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (api, next, batch) = (api.clone(), next.clone(), batch.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                    let outcome = api.cycle().await;
                    let mut batch = batch.lock().unwrap();
                    match outcome {
                        Ok(key) => batch.keys.push(key),
                        Err(e) => batch.errors.push(e),
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    std::mem::take(&mut *batch.lock().unwrap())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS of the plugin")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_10000_issue_revoke_cycles_at_32_clients() {
    const CLIENTS: usize = 32;
    const WARM_UP: usize = 1_000;
    const TOTAL: usize = 10_000;
    let litellm = fake().await;
    // warn: OpenBao's trace logging of 20,000 requests would dominate the run.
    let server = server_for(
        &litellm.url(),
        MASTER_KEY,
        DevServerOptions::default().log_level("warn"),
    );
    server
        .bao(&[
            "write",
            "litellm/roles/soak",
            "models=fake-gpt",
            "ttl=10m",
            "max_ttl=1h",
        ])
        .ok();
    let pids = server.plugin_pids();
    assert_eq!(pids.len(), 1);
    let api = Api {
        http: reqwest::Client::new(),
        addr: server.addr(),
    };

    let started = Instant::now();
    let mut batch = cycles(&api, CLIENTS, WARM_UP).await;
    let rss_warm = rss_kib(pids[0]);
    let rest = cycles(&api, CLIENTS, TOTAL - WARM_UP).await;
    let rss_end = rss_kib(pids[0]);
    let elapsed = started.elapsed().as_secs_f64();
    batch.errors.extend(rest.errors);
    batch.keys.extend(rest.keys);
    println!(
        "observed: {TOTAL} cycles @{CLIENTS} in {elapsed:.1} s ({:.0} cycles/s), {} errors, \
         {} keys left, plugin RSS {rss_warm} KiB after {WARM_UP} → {rss_end} KiB after {TOTAL}",
        TOTAL as f64 / elapsed,
        batch.errors.len(),
        litellm.key_count()
    );

    assert!(
        batch.errors.is_empty(),
        "{} errors, first: {:?}",
        batch.errors.len(),
        &batch.errors[..batch.errors.len().min(5)]
    );
    assert_eq!(batch.keys.len(), TOTAL);
    assert_eq!(
        batch.keys.iter().collect::<HashSet<_>>().len(),
        TOTAL,
        "every key is new"
    );
    assert_eq!(litellm.key_count(), 0, "keys left in LiteLLM");
    assert_eq!(litellm.requests(Op::Generate), TOTAL as u64);
    assert_eq!(server.plugin_pids(), pids, "the plugin never restarted");
    assert!(
        rss_end <= rss_warm + 1024,
        "plugin RSS grew from {rss_warm} KiB to {rss_end} KiB"
    );
    // Every revoke was synchronous and answered 2xx, so no lease is left either.
    let mut secrets = batch.keys;
    secrets.push(MASTER_KEY.to_string());
    assert_no_panic_and_no_leak(&server, &secrets);
}

// === Bad input =================================================================================

/// One row of the bad-input table: a request through OpenBao's HTTP API, an optional fault
/// the fake LiteLLM answers it with, the status expected, and a word the error (or, for 2xx,
/// a warning) must contain.
struct Case {
    method: &'static str,
    path: String,
    body: Value,
    fault: Option<(Op, Fault)>,
    status: u16,
    word: &'static str,
}

fn case(method: &'static str, path: &str, body: Value, status: u16, word: &'static str) -> Case {
    Case {
        method,
        path: path.to_string(),
        body,
        fault: None,
        status,
        word,
    }
}

fn upstream(mut case: Case, op: Op, fault: Fault) -> Case {
    case.fault = Some((op, fault));
    case
}

fn bad_input_table(lease: &str) -> Vec<Case> {
    const CONFIG: &str = "litellm/config";
    const ROLE: &str = "litellm/roles/bad";
    const CREDS: &str = "litellm/creds/dev";
    let role = |body: Value, word| case("POST", ROLE, body, 400, word);
    let config = |body: Value, word| case("POST", CONFIG, body, 400, word);
    let generate = |fault, word| {
        upstream(
            case("GET", CREDS, Value::Null, 400, word),
            Op::Generate,
            fault,
        )
    };
    let verify = |fault, word| {
        upstream(
            case("POST", CONFIG, json!({"request_timeout": "1s"}), 400, word),
            Op::List,
            fault,
        )
    };
    let renew = json!({ "lease_id": lease });
    let echo =
        format!(r#"{{"error": {{"message": "invalid key {MASTER_KEY}", "type": "auth_error"}}}}"#);
    vec![
        // config: types, ranges, URLs (platform.rs covers more), upstream answers to verify.
        config(json!({"request_timeout": "0s"}), "request_timeout"),
        config(json!({"request_timeout": {"s": 1}}), "request_timeout"),
        config(json!({"request_timeout": "10 parsecs"}), "request_timeout"),
        config(json!({"base_url": "http://127.0.0.1:1/?a=1"}), "base_url"),
        config(json!({"base_url": ""}), "base_url"),
        config(json!({"base_url": 42}), "base_url"),
        config(json!({"master_key": "   "}), "master_key"),
        config(json!({"master_key": ["sk-a"]}), "master_key"),
        config(json!({"verify_connection": "perhaps"}), "verify_connection"),
        config(json!({"ca_cert": "not a certificate"}), "ca_cert"),
        case(
            "POST",
            CONFIG,
            json!({"master_kee": "sk-typo"}),
            200,
            "master_kee",
        ),
        verify(Fault::Status(401), "401"),
        verify(Fault::Status(403), "403"),
        verify(Fault::Status(500), "500"),
        verify(Fault::NonJson, "invalid response"),
        verify(Fault::Truncated, "LiteLLM"),
        verify(Fault::Delay(Duration::from_secs(3)), "timed out"),
        // roles: wrong types, negative numbers, durations, names, prefixes, metadata.
        role(json!({"max_budget": "lots"}), "max_budget"),
        role(json!({"max_budget": -1}), "max_budget"),
        role(json!({"tpm_limit": -5}), "tpm_limit"),
        role(json!({"rpm_limit": 1.5}), "rpm_limit"),
        role(
            json!({"max_parallel_requests": "x"}),
            "max_parallel_requests",
        ),
        role(json!({"ttl": "forever"}), "ttl"),
        role(json!({"ttl": -10}), "ttl"),
        role(json!({"max_ttl": "1x"}), "max_ttl"),
        role(json!({"ttl": "2h", "max_ttl": "1h"}), "max_ttl"),
        role(json!({"budget_duration": "1h30m"}), "budget_duration"),
        role(json!({"budget_duration": "1y"}), "budget_duration"),
        role(json!({"key_type": "management"}), "key_type"),
        role(json!({"key_alias_prefix": "a.b"}), "key_alias_prefix"),
        role(json!({"key_alias_prefix": ""}), "key_alias_prefix"),
        role(
            json!({"key_alias_prefix": "p".repeat(33)}),
            "key_alias_prefix",
        ),
        role(json!({"models": {"fake-gpt": 1}}), "models"),
        role(json!({"metadata": {"vault_role": "x"}}), "vault_role"),
        role(json!({"metadata": "novalue"}), "metadata"),
        role(json!({"metadata": 5}), "metadata"),
        role(json!({"metadata": {"k": {"nested": 1}}}), "metadata"),
        role(
            json!({"metadata": {"blob": "x".repeat(1 << 20)}}),
            "metadata",
        ),
        role(
            json!({"user_id_template": "{{identity.entity.email}}"}),
            "user_id_template",
        ),
        role(
            json!({"team_id": "a", "team_id_template": "{{identity.entity.name}}"}),
            "team_id_template",
        ),
        case("POST", "litellm/roles/-bad", json!({}), 400, "name"),
        case("POST", "litellm/roles/a%20b", json!({}), 400, "name"),
        case(
            "POST",
            &format!("litellm/roles/{}", "x".repeat(65)),
            json!({}),
            400,
            "name",
        ),
        case("GET", "litellm/roles/%C3%A4", Value::Null, 400, "name"),
        case(
            "POST",
            ROLE,
            json!({"ttl": "1m", "colour": "blue"}),
            200,
            "colour",
        ),
        // creds: unknown role, bad names and ttls, an unconfigured mount, upstream answers.
        case(
            "GET",
            "litellm/creds/missing",
            Value::Null,
            400,
            "does not exist",
        ),
        case("GET", "litellm/creds/-bad", Value::Null, 400, "name"),
        case("POST", CREDS, json!({"ttl": "soon"}), 400, "ttl"),
        case("POST", CREDS, json!({"ttl": -5}), 400, "ttl"),
        case(
            "GET",
            "unconfigured/creds/dev",
            Value::Null,
            400,
            "not configured",
        ),
        case("POST", CREDS, json!({"colour": "blue"}), 200, "colour"),
        generate(Fault::NonJson, "invalid response"),
        generate(Fault::Truncated, "LiteLLM"),
        generate(Fault::Status(401), "401"),
        generate(Fault::Status(403), "403"),
        generate(Fault::Status(422), "422"),
        generate(Fault::Status(500), "500"),
        generate(
            Fault::Body {
                status: 401,
                body: echo,
            },
            "401",
        ),
        generate(Fault::Delay(Duration::from_secs(3)), "timed out"),
        // renew of a live lease: a bad increment, LiteLLM failing.
        case(
            "PUT",
            "sys/leases/renew",
            json!({"lease_id": lease, "increment": "soon"}),
            400,
            "increment",
        ),
        upstream(
            case("PUT", "sys/leases/renew", renew.clone(), 400, "500"),
            Op::Update,
            Fault::Status(500),
        ),
        upstream(
            case("PUT", "sys/leases/renew", renew, 400, "invalid response"),
            Op::Update,
            Fault::NonJson,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_4xx_naming_the_field_and_never_crashes_the_plugin() {
    let litellm = fake().await;
    let server = DevServer::start();
    mount(&server, &["litellm", "unconfigured"]);
    let good_config =
        json!({"base_url": litellm.url(), "master_key": MASTER_KEY, "request_timeout": "1s"});
    server.http_ok("POST", "litellm/config", Some(&good_config));
    for mount in ["litellm", "unconfigured"] {
        server.http_ok(
            "POST",
            &format!("{mount}/roles/dev"),
            Some(&json!({"models": "fake-gpt", "ttl": "5m", "max_ttl": "1h"})),
        );
    }
    let lease = server.http_ok("GET", "litellm/creds/dev", None)["lease_id"]
        .as_str()
        .unwrap()
        .to_string();
    let pids = server.plugin_pids();
    assert_eq!(pids.len(), 1);

    let table = bad_input_table(&lease);
    assert!(table.len() >= 40, "{} cases", table.len());
    let mut mismatches = Vec::new();
    for case in &table {
        if let Some((op, fault)) = &case.fault {
            litellm.set_fault(*op, fault.clone());
        }
        let body = (!case.body.is_null()).then_some(&case.body);
        let (status, reply) = server.http(case.method, &case.path, body);
        litellm.clear_faults();
        let shown = |v: &Value| {
            let s = v.to_string();
            match s.char_indices().nth(200) {
                Some((cut, _)) => format!("{}…", &s[..cut]),
                None => s,
            }
        };
        let row = format!(
            "{} {} {} {:?}",
            case.method,
            case.path,
            shown(&case.body),
            case.fault
        );
        // Errors or warnings only: a 2xx creds reply holds a key, which is never printed.
        let said = if status >= 400 {
            &reply["errors"]
        } else {
            &reply["warnings"]
        };
        println!("observed: {status} {row} → {}", shown(said));
        if status != case.status || !said.to_string().contains(case.word) {
            mismatches.push(format!(
                "{row}: expected {} with {:?}, got {status}: {}",
                case.status,
                case.word,
                shown(&reply)
            ));
        }
        if reply.to_string().contains(MASTER_KEY) {
            mismatches.push(format!("{row}: the reply echoes the master key"));
        }
        if case.path == "litellm/config" && status < 400 {
            // A config write that went through must not change what the next rows run against.
            server.http_ok("POST", "litellm/config", Some(&good_config));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases:\n{}",
        mismatches.len(),
        table.len(),
        mismatches.join("\n")
    );
    println!("observed: {} bad-input cases as expected", table.len());

    // Failed issues left no key behind; the successful ones go with their leases.
    server.http_ok(
        "PUT",
        "sys/leases/revoke-prefix/litellm/creds",
        Some(&json!({"sync": true})),
    );
    assert!(
        eventually(Duration::from_secs(10), || litellm.key_count() == 0),
        "keys left: {:?}",
        litellm
            .live_keys()
            .iter()
            .map(|k| k.key_alias.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        server.plugin_pids(),
        pids,
        "the plugin process never restarted"
    );
    assert_no_panic_and_no_leak(&server, &[MASTER_KEY.to_string()]);
}

// === Secrets never leak ========================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs_config_reads_or_the_audit_log() {
    let litellm = fake().await;
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

//! The 10,000-cycle soak: issue and revoke through OpenBao's HTTP API from 32 concurrent
//! clients against the fake LiteLLM; nothing leaks, the plugin's memory stays flat.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};

use crate::reliability::{MASTER_KEY, assert_no_panic_and_no_leak, fake};
use crate::support::bao::DevServerOptions;
use crate::support::fake_litellm::Op;
use crate::support::server_for;

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
            .header("X-Vault-Token", crate::support::bao::ROOT_TOKEN)
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

// Two workers: the 32 clients' HTTP and JSON work is real load here, not just waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_10000_issue_revoke_cycles_at_32_clients() {
    const CLIENTS: usize = 32;
    const WARM_UP: usize = 1_000;
    const TOTAL: usize = 10_000;
    let litellm = fake();
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

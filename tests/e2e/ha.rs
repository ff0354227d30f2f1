//! HA: the plugin on a 3-node OpenBao Raft cluster (`support::bao::cluster`), against the real
//! LiteLLM proxy. One cluster runs every scenario in turn (a cluster takes ~15 s to form and the
//! rollback tick comes once a minute, so one cluster per scenario would not fit the budget):
//!
//! - (a) creds through a standby: the key is created once, by the active node;
//! - (e) tidy through a standby deletes a true orphan (made with the admin client, with the
//!   mount's alias shape and `vault_mount` stamp) and never a key issued a moment before, and
//!   runs on the active node (the only node that may change LiteLLM);
//! - cache: how long a standby still serves a role deleted through the active node;
//! - (c) a 20 s lease issued before a `step-down` expires on the new leader, its key deleted;
//! - (f) the plugin is SIGKILLed mid-issue on the active node (a proxy in front of LiteLLM holds
//!   `/key/generate`'s answer), then the active node is SIGKILLed too: the new active node
//!   rolls the orphan back;
//! - (b) 6 clients (4 over HTTP, 2 through the `bao` CLI, round robin over the nodes) issue and
//!   revoke while the active node is SIGKILLed; the survivors' leases are renewed and revoked
//!   through the new leader;
//! - (d) the killed node restarts, catches up and serves;
//! - (g) with auto-tidy due every second and a WAL entry pending, the standbys' rollback ticks
//!   are silent: no LiteLLM call, no "auto-tidy failed", no WAL rollback.
//!
//! After every scenario: each live key under the test's aliases belongs to a live lease, and each
//! revoked or expired lease's key has status `deleted` (LiteLLM keeps deleted keys in
//! `/key/info`). The figures (failover gap, client errors, cache lag) are printed: run with
//! `--nocapture` to see them. Every scenario runs even when one before it failed; the test fails
//! at the end, naming each failed scenario.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use vault_plugin_secrets_litellm::engine::client::{Client, KeyStatus};

use crate::support::bao::BaoClient;
use crate::support::bao::cluster::{Cluster, ClusterOptions, NODES, try_http};
use crate::support::{
    PLUGIN, RealLiteLlm, create_key, our_alias, patient, plugin_binary, plugin_version,
    secs_from_now, unique,
};

/// LITELLM_PLUGIN_WAL_MIN_AGE of every node: long enough that the node whose plugin crashed
/// cannot roll the entry back itself before it is killed, short next to the 60 s tick.
const WAL_MIN_AGE_SECS: u64 = 10;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const SHORT_TTL_SECS: u64 = 20;
/// Clients in the failover scenario: the first ones over HTTP, the rest through the CLI.
const HTTP_CLIENTS: usize = 4;
const CLI_CLIENTS: usize = 2;

/// A lease of an issued key.
#[derive(Clone, Debug)]
struct Lease {
    id: String,
    token: String,
    alias: String,
}

impl Lease {
    fn from_response(body: &Value) -> Option<Lease> {
        Some(Lease {
            id: body["lease_id"].as_str()?.to_string(),
            token: body["data"]["token_id"].as_str()?.to_string(),
            alias: body["data"]["key_alias"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
    }
}

/// `creds/<role>` of `mount` through `client` (a `ttl` makes it a write); `Err` describes any
/// failure: a status and its errors, or the transport error.
fn issue(client: &BaoClient, mount: &str, role: &str, ttl: Option<&str>) -> Result<Lease, String> {
    let path = format!("{mount}/creds/{role}");
    let result = match ttl {
        Some(ttl) => try_http(
            client,
            "PUT",
            &path,
            Some(&json!({ "ttl": ttl })),
            REQUEST_TIMEOUT,
        ),
        None => try_http(client, "GET", &path, None, REQUEST_TIMEOUT),
    };
    match result {
        Ok((200, body)) => {
            Lease::from_response(&body).ok_or_else(|| format!("200 without a lease: {body}"))
        }
        Ok((status, body)) => Err(format!("HTTP {status}: {}", errors_of(&body))),
        Err(e) => Err(format!("transport: {e}")),
    }
}

fn revoke(client: &BaoClient, lease: &str) -> Result<(), String> {
    match try_http(
        client,
        "PUT",
        "sys/leases/revoke",
        Some(&json!({ "lease_id": lease })),
        REQUEST_TIMEOUT,
    ) {
        Ok((200 | 204, _)) => Ok(()),
        Ok((status, body)) => Err(format!("HTTP {status}: {}", errors_of(&body))),
        Err(e) => Err(format!("transport: {e}")),
    }
}

fn renew(client: &BaoClient, lease: &str, increment: &str) -> Result<Value, String> {
    match try_http(
        client,
        "PUT",
        "sys/leases/renew",
        Some(&json!({ "lease_id": lease, "increment": increment })),
        REQUEST_TIMEOUT,
    ) {
        Ok((200, body)) => Ok(body),
        Ok((status, body)) => Err(format!("HTTP {status}: {}", errors_of(&body))),
        Err(e) => Err(format!("transport: {e}")),
    }
}

fn errors_of(body: &Value) -> String {
    match &body["errors"] {
        Value::Array(errors) => errors
            .iter()
            .map(|e| e.as_str().unwrap_or_default().replace('\n', " "))
            .collect::<Vec<_>>()
            .join("; "),
        _ => body.to_string(),
    }
}

/// Lines of `log` that contain `needle`.
fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

/// Runs an async admin call from this synchronous test, on a runtime of its own thread.
fn block_on<T: Send>(f: impl std::future::Future<Output = T> + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime")
                    .block_on(f)
            })
            .join()
            .expect("admin call panicked")
    })
}

/// Deletes, when dropped, every live LiteLLM key under the test's alias stems, so that a failing
/// run leaves nothing behind.
struct Cleanup {
    admin: Client,
    stems: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for stem in &self.stems {
            let admin = self.admin.clone();
            let stem = format!("{stem}-");
            let _ = std::thread::spawn(move || {
                block_on(async {
                    if let Ok(keys) = admin.list_aliases(&stem).await {
                        let tokens: Vec<String> = keys.into_iter().map(|k| k.token).collect();
                        if !tokens.is_empty() {
                            let _ = admin.delete_keys(&tokens).await;
                        }
                    }
                })
            })
            .join();
        }
    }
}

// === a proxy that holds back one /key/generate answer ========================================

/// An HTTP/1.1 proxy on 127.0.0.1 in front of the real LiteLLM. It passes every request
/// through (one request per connection, `Connection: close`), except that it can keep the
/// answer of the next `/key/generate` back: LiteLLM has created the key, the plugin has not
/// heard of it. The held answer's JSON (key hash and alias; the key itself is never printed)
/// is kept for the test.
struct HoldingProxy {
    url: String,
    port: u16,
    state: Arc<ProxyState>,
}

struct ProxyState {
    upstream: String,
    holds: AtomicU32,
    held: Mutex<Vec<Value>>,
    release: AtomicBool,
    stop: AtomicBool,
}

impl HoldingProxy {
    fn start(upstream_url: &str) -> HoldingProxy {
        let upstream = upstream_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the holding proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let state = Arc::new(ProxyState {
            upstream,
            holds: AtomicU32::new(0),
            held: Mutex::new(Vec::new()),
            release: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let accept_state = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if accept_state.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let state = accept_state.clone();
                    std::thread::spawn(move || proxy_one(conn, &state));
                }
            }
        });
        HoldingProxy {
            url: format!("http://127.0.0.1:{port}"),
            port,
            state,
        }
    }

    fn hold_next_generate(&self) {
        self.state.holds.store(1, Ordering::SeqCst);
    }

    fn held(&self) -> Vec<Value> {
        self.state.held.lock().unwrap().clone()
    }
}

impl Drop for HoldingProxy {
    fn drop(&mut self) {
        self.state.release.store(true, Ordering::SeqCst);
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads one HTTP message head (through the blank line) and its `Content-Length` body.
fn read_request(conn: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((head, body))
}

/// The head with hop-by-hop and encoding headers dropped and `Connection: close` added.
fn close_head(head: &str) -> String {
    let mut out = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "connection" | "keep-alive" | "accept-encoding" | "proxy-connection"
        ) {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

fn proxy_one(mut conn: TcpStream, state: &ProxyState) {
    let Some((head, body)) = read_request(&mut conn) else {
        return;
    };
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let Ok(mut upstream) = TcpStream::connect(&state.upstream) else {
        return;
    };
    let mut request = close_head(&head).into_bytes();
    request.extend_from_slice(&body);
    if upstream.write_all(&request).is_err() {
        return;
    }
    let mut response = Vec::new();
    if upstream.read_to_end(&mut response).is_err() {
        return;
    }
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |at| at + 4);
    let (resp_head, resp_body) = response.split_at(split);
    let resp_head = String::from_utf8_lossy(resp_head).into_owned();
    if path.starts_with("/key/generate")
        && state
            .holds
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        let text = String::from_utf8_lossy(resp_body);
        let json = text
            .find('{')
            .zip(text.rfind('}'))
            .and_then(|(a, b)| serde_json::from_str::<Value>(&text[a..=b]).ok())
            .unwrap_or(Value::Null);
        state.held.lock().unwrap().push(json);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !state.release.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let mut out = close_head(&resp_head).into_bytes();
    out.extend_from_slice(resp_body);
    let _ = conn.write_all(&out);
}

// === the run =================================================================================

/// What the scenarios share: the cluster, the proxy, the admin client, the roles and every
/// lease issued, per `(mount, role)`.
struct Ha {
    cluster: Cluster,
    litellm: RealLiteLlm,
    admin: Client,
    proxy: HoldingProxy,
    /// The main role on `litellm/`.
    role: String,
    /// A role on `litellm/` with 20 s leases (step-down scenario).
    short_role: String,
    /// The role on `held/` (the mount behind the holding proxy).
    held_role: String,
    leases: Mutex<BTreeMap<(String, String), Vec<Lease>>>,
    figures: Mutex<Vec<String>>,
}

impl Ha {
    fn client(&self, i: usize) -> BaoClient {
        self.cluster.client(i)
    }

    fn record(&self, mount: &str, role: &str, lease: &Lease) {
        self.leases
            .lock()
            .unwrap()
            .entry((mount.to_string(), role.to_string()))
            .or_default()
            .push(lease.clone());
    }

    #[track_caller]
    fn issue_ok(&self, node: usize, mount: &str, role: &str, ttl: Option<&str>) -> Lease {
        let lease = issue(&self.client(node), mount, role, ttl).unwrap_or_else(|e| {
            panic!(
                "creds {mount}/{role} through {}: {e}",
                self.cluster.node_id(node)
            )
        });
        self.record(mount, role, &lease);
        lease
    }

    fn figure(&self, line: String) {
        println!("[ha figure] {line}");
        self.figures.lock().unwrap().push(line);
    }

    #[track_caller]
    fn key_status(&self, token: &str) -> Option<KeyStatus> {
        let admin = self.admin.clone();
        let token = token.to_string();
        block_on(async move { admin.info(&token).await })
            .expect("/key/info")
            .map(|i| i.status)
    }

    #[track_caller]
    fn key_expiry(&self, token: &str) -> Option<SystemTime> {
        let admin = self.admin.clone();
        let token = token.to_string();
        block_on(async move { admin.info(&token).await })
            .expect("/key/info")
            .and_then(|i| i.expires_at)
    }

    /// Hashes of the live keys whose alias starts with `vault-<role>-`.
    #[track_caller]
    fn live_keys(&self, role: &str) -> HashSet<String> {
        let admin = self.admin.clone();
        let stem = format!("vault-{role}-");
        block_on(async move { admin.list_aliases(&stem).await })
            .expect("/key/list")
            .into_iter()
            .map(|k| k.token)
            .collect()
    }

    /// Ids of the leases OpenBao holds under `<mount>/creds/<role>/`.
    #[track_caller]
    fn live_leases(&self, mount: &str, role: &str) -> HashSet<String> {
        let prefix = format!("{mount}/creds/{role}/");
        let active = self.cluster.active();
        let (status, body) =
            self.client(active)
                .http("LIST", &format!("sys/leases/lookup/{prefix}"), None);
        match status {
            404 => HashSet::new(),
            200 => body["data"]["keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|k| format!("{prefix}{k}"))
                .collect(),
            _ => panic!("listing the leases under {prefix}: {status} {body}"),
        }
    }

    /// The invariants after a scenario, for every `(mount, role)` the test issued under: each
    /// known lease that OpenBao still holds has an active key, each one it no longer holds has
    /// a deleted key, and the live keys are exactly as many as the live leases (so a lease whose
    /// answer a client never got still accounts for one key, and no key lacks a lease). Keys
    /// in `in_flight` (an issue that crashed, until its rollback) are left out.
    ///
    /// `pending`: issues the failover cut off between `/key/generate` and the lease, whose keys
    /// wait for the new leader's WAL rollback: up to that many keys of `litellm/<role>` may
    /// lack a lease (they are counted and must be gone after the rollback).
    #[track_caller]
    fn check_invariants(&self, after: &str, in_flight: &[String]) {
        self.check_invariants_pending(after, in_flight, 0);
    }

    #[track_caller]
    fn check_invariants_pending(&self, after: &str, in_flight: &[String], pending: usize) {
        let leases = self.leases.lock().unwrap().clone();
        let mut problems = Vec::new();
        let mut summary = Vec::new();
        for ((mount, role), known) in &leases {
            let live_leases = self.live_leases(mount, role);
            let mut live_keys = self.live_keys(role);
            live_keys.retain(|t| !in_flight.contains(t));
            for lease in known {
                let status = self.key_status(&lease.token);
                let alive = live_leases.contains(&lease.id);
                let want = if alive {
                    KeyStatus::Active
                } else {
                    KeyStatus::Deleted
                };
                if status.as_ref() != Some(&want) {
                    problems.push(format!(
                        "{mount}/{role}: lease {} ({}) is {}, its key {} is {status:?}",
                        lease.id,
                        lease.alias,
                        if alive { "live" } else { "gone" },
                        lease.token
                    ));
                }
                if alive && !live_keys.contains(&lease.token) {
                    problems.push(format!(
                        "{mount}/{role}: live lease {}'s key is not listed",
                        lease.id
                    ));
                }
            }
            let allowed = if role == &self.role { pending } else { 0 };
            if live_keys.len() < live_leases.len() || live_keys.len() > live_leases.len() + allowed
            {
                problems.push(format!(
                    "{mount}/{role}: {} live keys but {} live leases ({allowed} cut-off issues may \
                     still wait for their rollback)",
                    live_keys.len(),
                    live_leases.len()
                ));
            }
            summary.push(format!(
                "{mount}/{role}: {} issued, {} live leases = {} live keys",
                known.len(),
                live_leases.len(),
                live_keys.len()
            ));
        }
        println!("[ha] invariants after {after}: {}", summary.join("; "));
        assert!(
            problems.is_empty(),
            "invariants after {after}:\n{}",
            problems.join("\n")
        );
    }
}

/// Runs each scenario, catching its panic so that the next ones still run.
struct Scenarios {
    results: Vec<(&'static str, Result<Duration, String>)>,
}

impl Scenarios {
    fn run(&mut self, name: &'static str, f: impl FnOnce()) {
        println!("[ha] scenario {name}: start");
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".to_string())
        });
        let outcome = outcome.map(|()| started.elapsed());
        match &outcome {
            Ok(took) => println!("[ha] scenario {name}: PASS in {:.1} s", took.as_secs_f64()),
            Err(e) => println!("[ha] scenario {name}: FAIL: {e}"),
        }
        self.results.push((name, outcome));
    }
}

#[test]
fn ha_cluster_scenarios_against_the_real_litellm() {
    let t0 = Instant::now();
    let litellm = RealLiteLlm::from_env();
    let admin = litellm.admin();
    let role = unique("ha");
    let short_role = unique("hashort");
    let held_role = unique("hacrash");
    let static_role = unique("hastatic");
    let _cleanup = Cleanup {
        admin: admin.clone(),
        stems: [&role, &short_role, &held_role, &static_role]
            .iter()
            .map(|r| format!("vault-{r}"))
            .collect(),
    };
    let proxy = HoldingProxy::start(&litellm.url);
    let cluster = Cluster::start(
        ClusterOptions::default()
            // The plugin's debug lines ("LiteLLM call", "issued key", "rollback tick on a
            // standby") reach the server log only at the server's debug level.
            .log_level("debug")
            .env("LITELLM_PLUGIN_LOG_LEVEL", "debug")
            .env(
                "LITELLM_PLUGIN_WAL_MIN_AGE",
                &format!("{WAL_MIN_AGE_SECS}s"),
            ),
    );
    let formed = t0.elapsed();
    let sha = cluster.mount_plugin(&plugin_binary(), PLUGIN, &plugin_version(), "litellm");
    let ha = Ha {
        cluster,
        litellm,
        admin,
        proxy,
        role,
        short_role,
        held_role,
        leases: Mutex::new(BTreeMap::new()),
        figures: Mutex::new(Vec::new()),
    };
    ha.figure(format!(
        "cluster: 3 healthy voters {:.1} s after start; plugin {} mounted on all 3 nodes (plugin pids {:?})",
        formed.as_secs_f64(),
        &sha[..12],
        (0..NODES)
            .map(|i| ha.cluster.plugin_pids(i))
            .collect::<Vec<_>>()
    ));
    setup(&ha);

    let mut scenarios = Scenarios {
        results: Vec::new(),
    };
    scenarios.run("(a) creds through a standby", || {
        issue_through_a_standby(&ha);
        ha.check_invariants("(a)", &[]);
    });
    scenarios.run("(e) tidy through a standby", || {
        tidy_through_a_standby(&ha);
        ha.check_invariants("(e)", &[]);
    });
    scenarios.run("cache staleness on standbys", || cache_lag(&ha));
    // Auto-tidy from now on (not before (e): it would take (e)'s orphan itself).
    ha.client(ha.cluster.active()).http_ok(
        "PUT",
        "litellm/config/auto-tidy",
        Some(&json!({ "enabled": true, "interval_duration": "1s" })),
    );
    scenarios.run(
        "(c) a lease issued before a step-down expires on the new leader",
        || {
            step_down_then_expiry(&ha);
            ha.check_invariants("(c)", &[]);
        },
    );
    scenarios.run(
        "(h) a static role through standbys and across a step-down",
        || static_role_across_nodes(&ha, &static_role),
    );
    let mut crash: Option<Crash> = None;
    scenarios.run("(f1) plugin SIGKILLed mid-issue on the active node", || {
        crash = Some(crash_mid_issue(&ha));
    });
    let in_flight: Vec<String> = crash.iter().map(|c| c.orphan_token.clone()).collect();
    let mut failover: Option<Failover> = None;
    scenarios.run("(b1) SIGKILL of the active node under 6 clients", || {
        failover = Some(failover_under_load(&ha));
    });
    let cut_off = failover.as_ref().map_or(0, |f| f.cut_off);
    scenarios.run(
        "(b2) survivors renewed and revoked through the new leader",
        || {
            renew_and_revoke_survivors(&ha, failover.as_ref().expect("(b1) failed over"));
            ha.check_invariants_pending("(b)", &in_flight, cut_off);
        },
    );
    scenarios.run("(d) the killed node rejoins and serves", || {
        rejoin(&ha, failover.as_ref().expect("(b1) killed a node").killed);
        ha.check_invariants_pending("(d)", &in_flight, cut_off);
    });
    scenarios.run(
        "(f2)+(g) the new active node rolls the crash back; standby ticks are silent",
        || {
            let crash = crash.as_ref().expect("(f1) crashed an issue");
            let failover = failover.as_ref().expect("(b1) failed over");
            rollback_on_the_new_leader_and_silent_standbys(&ha, crash, failover);
            ha.check_invariants("(f2)+(g)", &[]);
        },
    );
    scenarios.run("final: everything revoked, nothing left in LiteLLM", || {
        final_cleanup(&ha);
    });

    println!(
        "\n[ha] ==== summary ({:.0} s in all) ====",
        t0.elapsed().as_secs_f64()
    );
    for line in ha.figures.lock().unwrap().iter() {
        println!("[ha figure] {line}");
    }
    let mut failed = Vec::new();
    for (name, outcome) in &scenarios.results {
        match outcome {
            Ok(took) => println!("[ha] PASS {name} ({:.1} s)", took.as_secs_f64()),
            Err(e) => {
                println!("[ha] FAIL {name}: {e}");
                failed.push(format!("{name}: {e}"));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} HA scenario(s) failed:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}

/// Config, roles, and the second mount `held/` behind the holding proxy.
fn setup(ha: &Ha) {
    let active = ha.client(ha.cluster.active());
    active.http_ok(
        "PUT",
        "litellm/config",
        Some(&json!({ "base_url": ha.litellm.url, "master_key": ha.litellm.master_key })),
    );
    active.http_ok(
        "PUT",
        &format!("litellm/roles/{}", ha.role),
        Some(&json!({ "ttl": "10m" })),
    );
    active.http_ok(
        "PUT",
        &format!("litellm/roles/{}", ha.short_role),
        Some(&json!({ "ttl": "10m" })),
    );
    active
        .bao(&["secrets", "enable", "-path=held", PLUGIN])
        .ok();
    active.http_ok(
        "PUT",
        "held/config",
        Some(&json!({ "base_url": ha.proxy.url, "master_key": ha.litellm.master_key })),
    );
    active.http_ok(
        "PUT",
        &format!("held/roles/{}", ha.held_role),
        Some(&json!({ "ttl": "10m" })),
    );
    // Standby reads lag writes by a few ms: let every node see the roles before using them.
    for i in 0..NODES {
        let client = ha.client(i);
        ha.cluster
            .wait_for(Duration::from_secs(10), "the roles on every node", || {
                [
                    format!("litellm/roles/{}", ha.role),
                    format!("litellm/roles/{}", ha.short_role),
                    format!("held/roles/{}", ha.held_role),
                ]
                .iter()
                .all(|p| {
                    matches!(
                        try_http(&client, "GET", p, None, REQUEST_TIMEOUT),
                        Ok((200, _))
                    )
                })
                .then_some(())
            });
    }
}

// === (a) ======================================================================================

fn issue_through_a_standby(ha: &Ha) {
    let active = ha.cluster.active();
    for standby in ha.cluster.standbys() {
        let offsets: Vec<u64> = (0..NODES).map(|i| ha.cluster.log_offset(i)).collect();
        let started = Instant::now();
        let lease = ha.issue_ok(standby, "litellm", &ha.role, None);
        let took = started.elapsed();
        // The lines are written before the answer, but through the host's log pipe.
        std::thread::sleep(Duration::from_millis(300));
        let logs: Vec<String> = (0..NODES)
            .map(|i| ha.cluster.log_since(i, offsets[i]))
            .collect();
        let issued = |i: usize| lines_with(&logs[i], "issued key").len();
        let generates = |i: usize| {
            lines_with(&logs[i], "LiteLLM call")
                .iter()
                .filter(|l| l.contains("/key/generate"))
                .count()
        };
        assert_eq!(
            (issued(active), generates(active)),
            (1, 1),
            "the active node {} issued the key once:\n{}",
            ha.cluster.node_id(active),
            logs[active]
        );
        for i in (0..NODES).filter(|&i| i != active) {
            assert_eq!(
                (issued(i), generates(i)),
                (0, 0),
                "the standby {} called LiteLLM:\n{}",
                ha.cluster.node_id(i),
                logs[i]
            );
        }
        assert!(
            lines_with(&logs[active], "issued key")[0].contains(&lease.alias),
            "the active node's issue is this lease's key ({})",
            lease.alias
        );
        assert_eq!(ha.key_status(&lease.token), Some(KeyStatus::Active));
        ha.figure(format!(
            "(a) creds through standby {}: {:.0} ms; 1 /key/generate, on the active node {}",
            ha.cluster.node_id(standby),
            took.as_secs_f64() * 1000.0,
            ha.cluster.node_id(active)
        ));
    }
    let live = ha.live_keys(&ha.role);
    assert_eq!(live.len(), 2, "one key per issue: {live:?}");
}

// === (e) ======================================================================================

fn tidy_through_a_standby(ha: &Ha) {
    let active = ha.cluster.active();
    let standbys = ha.cluster.standbys();
    let orphan_alias = our_alias("vault", &ha.role);
    let admin = ha.admin.clone();
    let (alias, role) = (orphan_alias.clone(), ha.role.clone());
    let orphan =
        block_on(async move { create_key(&admin, &alias, "litellm/", &role, "600s").await });
    let mut deleted_total = Vec::new();
    let rounds = 6;
    for round in 0..rounds {
        // A key issued through the active node, and tidy through a standby right after it,
        // when the standby's copy of the key index may not have it yet.
        let fresh = ha.issue_ok(active, "litellm", &ha.role, None);
        let standby = standbys[round % standbys.len()];
        let offsets: Vec<u64> = (0..NODES).map(|i| ha.cluster.log_offset(i)).collect();
        let body = ha
            .client(standby)
            .http_ok("PUT", "litellm/tidy", Some(&json!({})));
        std::thread::sleep(Duration::from_millis(300));
        let deleted: Vec<String> = body["data"]["deleted"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        assert!(
            !deleted.contains(&fresh.alias),
            "round {round}: tidy through {} deleted the key issued a moment before: {body}",
            ha.cluster.node_id(standby)
        );
        assert_eq!(
            ha.key_status(&fresh.token),
            Some(KeyStatus::Active),
            "round {round}: the fresh key"
        );
        let ran_on: Vec<&str> = (0..NODES)
            .filter(|&i| !lines_with(&ha.cluster.log_since(i, offsets[i]), "tidy ran").is_empty())
            .map(|i| ha.cluster.node_id(i))
            .collect();
        assert_eq!(
            ran_on,
            vec![ha.cluster.node_id(active)],
            "round {round}: tidy sent to standby {} must run on the active node {} (the only one \
             that may change LiteLLM), ran on {ran_on:?}",
            ha.cluster.node_id(standby),
            ha.cluster.node_id(active)
        );
        deleted_total.extend(deleted);
    }
    assert_eq!(
        deleted_total,
        vec![orphan_alias.clone()],
        "tidy deleted exactly the orphan, once"
    );
    assert_eq!(ha.key_status(&orphan.token), Some(KeyStatus::Deleted));
    ha.figure(format!(
        "(e) {rounds} tidies through standbys right after an issue: deleted only the orphan {orphan_alias}"
    ));
}

// === cache staleness ==========================================================================

fn cache_lag(ha: &Ha) {
    let active = ha.cluster.active();
    let standbys = ha.cluster.standbys();
    let mut lags = Vec::new();
    let mut appear = Vec::new();
    for _ in 0..5 {
        let role = unique("hacache");
        let path = format!("litellm/roles/{role}");
        ha.client(active)
            .http_ok("PUT", &path, Some(&json!({ "ttl": "5m" })));
        // How long until each standby sees the new role (the replication lag); its read
        // also fills that standby's role cache.
        let written_at = Instant::now();
        let appeared: Vec<Duration> = std::thread::scope(|scope| {
            let polls: Vec<_> = standbys
                .iter()
                .map(|&s| {
                    let path = &path;
                    scope.spawn(move || {
                        loop {
                            if let Ok((200, _)) =
                                ha.cluster.try_http(s, "GET", path, None, REQUEST_TIMEOUT)
                            {
                                return written_at.elapsed();
                            }
                            assert!(
                                written_at.elapsed() < Duration::from_secs(5),
                                "a new role reached standby {} within 5 s",
                                ha.cluster.node_id(s)
                            );
                        }
                    })
                })
                .collect();
            polls
                .into_iter()
                .map(|p| p.join().expect("poller"))
                .collect()
        });
        appear.extend(appeared);
        ha.client(active).http_ok("DELETE", &path, None);
        let deleted_at = Instant::now();
        // Both standbys polled at once: (last stale answer, first 404, stale answers).
        let per_standby: Vec<(Duration, Duration, u32, usize)> = std::thread::scope(|scope| {
            let polls: Vec<_> = standbys
                .iter()
                .map(|&s| {
                    let path = &path;
                    let role = &role;
                    scope.spawn(move || {
                        let mut served = 0u32;
                        let mut last_stale = Duration::ZERO;
                        loop {
                            match ha.cluster.try_http(s, "GET", path, None, REQUEST_TIMEOUT) {
                                Ok((200, _)) => {
                                    served += 1;
                                    last_stale = deleted_at.elapsed();
                                }
                                Ok((404, _)) => break,
                                other => panic!("reading a deleted role on a standby: {other:?}"),
                            }
                            assert!(
                                deleted_at.elapsed() < Duration::from_secs(5),
                                "standby {} still serves role {role} 5 s after its delete",
                                ha.cluster.node_id(s)
                            );
                        }
                        (last_stale, deleted_at.elapsed(), served, s)
                    })
                })
                .collect();
            polls
                .into_iter()
                .map(|p| p.join().expect("poller"))
                .collect()
        });
        lags.extend(per_standby);
    }
    let worst_stale = lags.iter().map(|l| l.0).max().unwrap_or_default();
    let worst = lags.iter().map(|l| l.1).max().unwrap_or_default();
    let served: u32 = lags.iter().map(|l| l.2).sum();
    let ms = |d: Duration| (d.as_secs_f64() * 10000.0).round() / 10.0;
    ha.figure(format!(
        "cache: a role deleted through the active node (cached on both standbys first) was still \
         served by a standby up to {:.1} ms after the delete returned; first 404 at most {:.1} ms \
         after ({} stale answers over {} standby × delete cases; per case (last stale, first 404) \
         ms: {:?}); for comparison a new role reached a standby after at most {:.1} ms ({:?})",
        ms(worst_stale),
        ms(worst),
        served,
        lags.len(),
        lags.iter().map(|l| (ms(l.0), ms(l.1))).collect::<Vec<_>>(),
        ms(appear.iter().copied().max().unwrap_or_default()),
        appear.iter().map(|d| ms(*d)).collect::<Vec<_>>()
    ));
    // The bound the README states: the replication lag, a few ms on loopback; 1 s is the
    // failure threshold.
    assert!(
        worst < Duration::from_secs(1),
        "standby cache lag {worst:?}"
    );
}

// === (c) ======================================================================================

fn step_down_then_expiry(ha: &Ha) {
    let old = ha.cluster.active();
    let short = ha.issue_ok(
        old,
        "litellm",
        &ha.short_role,
        Some(&format!("{SHORT_TTL_SECS}s")),
    );
    let issued_at = Instant::now();
    let long = ha.issue_ok(old, "litellm", &ha.short_role, None);
    let stepped = Instant::now();
    ha.cluster.step_down(old);
    // First creds through another node after the step-down.
    let probe_node = (old + 1) % NODES;
    let mut failures = Vec::new();
    let gap = loop {
        match issue(&ha.client(probe_node), "litellm", &ha.short_role, None) {
            Ok(lease) => {
                ha.record("litellm", &ha.short_role, &lease);
                break stepped.elapsed();
            }
            Err(e) => failures.push(e),
        }
        assert!(
            stepped.elapsed() < Duration::from_secs(30),
            "no creds 30 s after the step-down: {failures:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let new = ha.cluster.wait_new_active(old, Duration::from_secs(30));
    ha.figure(format!(
        "(c) step-down of {}: {} active; first creds through {} {:.2} s after the step-down command ({} failed probes: {:?})",
        ha.cluster.node_id(old),
        ha.cluster.node_id(new),
        ha.cluster.node_id(probe_node),
        gap.as_secs_f64(),
        failures.len(),
        failures.iter().take(3).collect::<Vec<_>>()
    ));
    // Renew through the old leader, now a standby: the key's expiry moves.
    let before = ha.key_expiry(&long.token).expect("an expiry");
    renew(&ha.client(old), &long.id, "20m").expect("renew through the old leader");
    let after = ha.key_expiry(&long.token).expect("an expiry");
    assert!(
        secs_from_now(after) > 19.0 * 60.0 && after > before,
        "renew moved the key's expiry to now + 20 m: {before:?} -> {after:?}"
    );
    // The short lease expires on the new leader, which deletes its key.
    let deadline = issued_at + patient(Duration::from_secs(SHORT_TTL_SECS + 20));
    loop {
        let gone = !ha
            .live_leases("litellm", &ha.short_role)
            .contains(&short.id);
        if gone && ha.key_status(&short.token) == Some(KeyStatus::Deleted) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the {SHORT_TTL_SECS} s lease issued before the step-down: lease gone {gone}, key {:?}",
            ha.key_status(&short.token)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let expired_after = issued_at.elapsed();
    assert_eq!(
        ha.cluster.find_active(),
        Some(new),
        "no other leader change happened meanwhile"
    );
    ha.figure(format!(
        "(c) the {SHORT_TTL_SECS} s lease issued on {} expired on {}: key deleted {:.1} s after issue",
        ha.cluster.node_id(old),
        ha.cluster.node_id(new),
        expired_after.as_secs_f64()
    ));
}

// === (h) ======================================================================================

/// A static role written and rotated through standbys (forwarded: only the active node changes
/// LiteLLM), read on every node, then rotated on schedule by the node that became active after
/// a step-down; one key under the alias at the end, none after the delete.
fn static_role_across_nodes(ha: &Ha, name: &str) {
    let alias = format!("vault-{name}");
    let path = format!("litellm/static-roles/{name}");
    let creds_path = format!("litellm/static-creds/{name}");
    let standby = (ha.cluster.active() + 1) % NODES;
    ha.client(standby).http_ok(
        "PUT",
        &path,
        Some(&json!({"rotation_period": "1m", "grace_period": "5s", "models": "fake-gpt"})),
    );
    let read_on = |i: usize| -> Option<Value> {
        let (status, body) = ha.client(i).http("GET", &creds_path, None);
        (status == 200).then(|| body["data"].clone())
    };
    let all_serve = |token: &Value| -> bool {
        (0..NODES).all(|i| read_on(i).is_some_and(|d| d["token_id"] == *token))
    };
    let first = read_on(ha.cluster.active()).expect("static-creds on the active node");
    let deadline = Instant::now() + patient(Duration::from_secs(5));
    while !all_serve(&first["token_id"]) {
        assert!(Instant::now() < deadline, "every node serves the same key");
        std::thread::sleep(Duration::from_millis(50));
    }
    // rotate-role through a standby.
    ha.client(standby)
        .http_ok("PUT", &format!("litellm/rotate-role/{name}"), None);
    let second = read_on(ha.cluster.active()).expect("static-creds after rotate-role");
    assert_ne!(second["token_id"], first["token_id"]);
    let deadline = Instant::now() + patient(Duration::from_secs(5));
    while !all_serve(&second["token_id"]) {
        assert!(
            Instant::now() < deadline,
            "every node serves the rotated key"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A leader change; the new active node's queue rotates on schedule.
    let old = ha.cluster.active();
    ha.cluster.step_down(old);
    let new = ha.cluster.wait_new_active(old, Duration::from_secs(30));
    let stepped = Instant::now();
    let deadline = stepped + patient(Duration::from_secs(100));
    let third = loop {
        if let Some(d) = read_on(new).filter(|d| d["token_id"] != second["token_id"]) {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled rotation on the new active node {}",
            ha.cluster.node_id(new)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    ha.figure(format!(
        "(h) static role: rotated on schedule by {} {:.1} s after the step-down of {} (its rotation was due {} s after rotate-role)",
        ha.cluster.node_id(new),
        stepped.elapsed().as_secs_f64(),
        ha.cluster.node_id(old),
        second["ttl"]
    ));
    let deadline = Instant::now() + patient(Duration::from_secs(30));
    loop {
        let keys = block_on(ha.admin.list_aliases(&alias)).expect("listing the static keys");
        let stable: Vec<_> = keys.iter().filter(|k| k.key_alias == alias).collect();
        if keys.len() == 1
            && stable.len() == 1
            && Some(stable[0].token.as_str()) == third["token_id"].as_str()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "one key under {alias} after the grace period: {keys:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    ha.client(standby).http_ok("DELETE", &path, None);
    let left = block_on(ha.admin.list_aliases(&alias)).expect("listing the static keys");
    assert!(left.is_empty(), "the delete left {left:?}");
}

// === (f) ======================================================================================

struct Crash {
    node: usize,
    orphan_token: String,
    orphan_alias: String,
    crashed_at: Instant,
}

fn crash_mid_issue(ha: &Ha) -> Crash {
    let active = ha.cluster.active();
    ha.proxy.hold_next_generate();
    let client = ha.client(active);
    let role = ha.held_role.clone();
    let reader = std::thread::spawn(move || {
        try_http(
            &client,
            "GET",
            &format!("held/creds/{role}"),
            None,
            Duration::from_secs(60),
        )
    });
    let held = ha.cluster.wait_for(
        Duration::from_secs(20),
        "LiteLLM's answer to /key/generate, held by the proxy",
        || ha.proxy.held().first().cloned(),
    );
    let orphan_token = held["token"]
        .as_str()
        .expect("token in /key/generate's answer")
        .to_string();
    let orphan_alias = held["key_alias"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        ha.key_status(&orphan_token),
        Some(KeyStatus::Active),
        "LiteLLM made the key"
    );
    let killed = ha.cluster.kill_plugins(active);
    let crashed_at = Instant::now();
    assert!(
        !killed.is_empty(),
        "a plugin process to kill on the active node"
    );
    // The host respawns the plugin and retries the read once; that issue goes through.
    let retried = reader.join().expect("reader thread");
    let outcome = match &retried {
        Ok((200, body)) => {
            let lease = Lease::from_response(body).expect("a lease");
            ha.record("held", &ha.held_role, &lease);
            format!("the host's retry issued {}", lease.alias)
        }
        other => format!("the read failed: {other:?}"),
    };
    ha.figure(format!(
        "(f) plugin pids {killed:?} SIGKILLed on the active node {} while LiteLLM's answer for {orphan_alias} was held; {outcome}",
        ha.cluster.node_id(active)
    ));
    Crash {
        node: active,
        orphan_token,
        orphan_alias,
        crashed_at,
    }
}

// === (b) ======================================================================================

struct Failover {
    killed: usize,
    new_active: usize,
    killed_at: Instant,
    /// Every lease a client got, and what became of the client's revoke of it.
    issued: Vec<(Lease, Revoke)>,
    /// Issues in flight when the node died that failed: each may have left a key whose lease
    /// was never written (the new leader's rollback deletes it).
    cut_off: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Revoke {
    NotTried,
    Done,
    Failed,
}

/// One request a client made.
struct Outcome {
    client: usize,
    cli: bool,
    op: &'static str,
    node: usize,
    started: Instant,
    ended: Instant,
    result: Result<(), String>,
}

fn cli_issue(client: &BaoClient, role: &str) -> Result<Lease, String> {
    let out = client.bao(&["read", "-format=json", &format!("litellm/creds/{role}")]);
    if !out.success() {
        return Err(format!(
            "CLI exit {}: {}",
            out.status,
            out.stderr.trim().replace('\n', " ")
        ));
    }
    serde_json::from_str::<Value>(&out.stdout)
        .ok()
        .and_then(|v| Lease::from_response(&v))
        .ok_or_else(|| format!("CLI printed no lease: {}", out.stdout))
}

fn cli_revoke(client: &BaoClient, lease: &str) -> Result<(), String> {
    let out = client.bao(&["lease", "revoke", "-sync", lease]);
    if out.success() {
        Ok(())
    } else {
        Err(format!(
            "CLI exit {}: {}",
            out.status,
            out.stderr.trim().replace('\n', " ")
        ))
    }
}

/// What an error was, in a few words: the victim's port in it means a 307 to the killed
/// leader was followed (reqwest and the CLI both follow it).
fn classify(error: &str, victim_addr: &str, to_victim: bool) -> String {
    let cause = match error.find(")): ").or_else(|| error.find("): ")) {
        Some(at) if error.contains("error sending request") => {
            error[at..].trim_start_matches(['(', ')', ':', ' '])
        }
        _ => error,
    };
    let refused = cause.contains("onnection refused");
    // A survivor is listening: a refusal on the way to it is the 307 to the killed leader,
    // followed (reqwest names the first URL, the CLI the one it was sent to).
    if !to_victim && (error.contains(victim_addr) || refused) {
        "307 to the killed leader, followed: refused".to_string()
    } else if refused {
        "connection refused".to_string()
    } else {
        let mut short: String = cause.chars().take(140).collect();
        if let Some(at) = short.find("litellm/creds/") {
            short.truncate(at);
        }
        short
    }
}

fn failover_under_load(ha: &Ha) -> Failover {
    let victim = ha.cluster.active();
    let clients = ha.cluster.clients();
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let issued = Arc::new(Mutex::new(Vec::<(Lease, Revoke)>::new()));
    let mut workers = Vec::new();
    for c in 0..HTTP_CLIENTS + CLI_CLIENTS {
        let cli = c >= HTTP_CLIENTS;
        let (clients, stop, outcomes, issued) = (
            clients.clone(),
            stop.clone(),
            outcomes.clone(),
            issued.clone(),
        );
        let role = ha.role.clone();
        workers.push(std::thread::spawn(move || {
            let mut n = c;
            let mut successes = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let node = n % NODES;
                n += 1;
                let started = Instant::now();
                let result = if cli {
                    cli_issue(&clients[node], &role)
                } else {
                    issue(&clients[node], "litellm", &role, None)
                };
                let ok = result.is_ok();
                let lease = result.as_ref().ok().cloned();
                outcomes.lock().unwrap().push(Outcome {
                    client: c,
                    cli,
                    op: "issue",
                    node,
                    started,
                    ended: Instant::now(),
                    result: result.map(|_| ()),
                });
                if let Some(lease) = lease {
                    successes += 1;
                    // Every other lease is revoked at once, through the next node.
                    let revoked = if successes.is_multiple_of(2) {
                        let rnode = n % NODES;
                        let started = Instant::now();
                        let result = if cli {
                            cli_revoke(&clients[rnode], &lease.id)
                        } else {
                            revoke(&clients[rnode], &lease.id)
                        };
                        let done = if result.is_ok() {
                            Revoke::Done
                        } else {
                            Revoke::Failed
                        };
                        outcomes.lock().unwrap().push(Outcome {
                            client: c,
                            cli,
                            op: "revoke",
                            node: rnode,
                            started,
                            ended: Instant::now(),
                            result,
                        });
                        done
                    } else {
                        Revoke::NotTried
                    };
                    issued.lock().unwrap().push((lease, revoked));
                }
                if !ok {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(3));
    let killed_at = Instant::now();
    ha.cluster.kill(victim);
    // Run until the clients have been served again for a while (at most 20 s after the kill).
    let served_again = |outcomes: &[Outcome]| {
        outcomes
            .iter()
            .filter(|o| o.op == "issue" && o.started >= killed_at && o.result.is_ok())
            .map(|o| o.ended)
            .min()
    };
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let first = served_again(&outcomes.lock().unwrap());
        if first.is_some_and(|t| t.elapsed() > Duration::from_secs(4))
            || killed_at.elapsed() > Duration::from_secs(20)
        {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("client thread");
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let issued = std::mem::take(&mut *issued.lock().unwrap());
    for (lease, _) in &issued {
        ha.record("litellm", &ha.role, lease);
    }
    let first = served_again(&outcomes).expect("creds served again after the kill");
    let gap = first - killed_at;
    let cut_off = outcomes
        .iter()
        .filter(|o| {
            o.op == "issue" && o.started < killed_at && o.ended > killed_at && o.result.is_err()
        })
        .count();

    // Errors, by client kind, target and what they were.
    let victim_addr = ha.client(victim).addr();
    let mut errors: BTreeMap<String, (usize, f64, f64)> = BTreeMap::new();
    for o in &outcomes {
        if let Err(e) = &o.result {
            let to_victim = o.node == victim;
            let to = if to_victim { "killed node" } else { "survivor" };
            let kind = if o.cli { "CLI" } else { "HTTP" };
            let at = if o.ended >= killed_at {
                (o.ended - killed_at).as_secs_f64()
            } else {
                -(killed_at - o.ended).as_secs_f64()
            };
            let entry = errors
                .entry(format!(
                    "{kind} {} → {to}: {}",
                    o.op,
                    classify(e, &victim_addr, to_victim)
                ))
                .or_insert((0, f64::MAX, f64::MIN));
            entry.0 += 1;
            entry.1 = entry.1.min(at);
            entry.2 = entry.2.max(at);
        }
    }
    let total = outcomes.len();
    let ok = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let to_survivors = outcomes.iter().filter(|o| o.node != victim).count();
    let survivor_errors = outcomes
        .iter()
        .filter(|o| o.node != victim && o.result.is_err())
        .count();
    let clients_served: HashSet<usize> = outcomes
        .iter()
        .filter(|o| o.started >= killed_at && o.result.is_ok())
        .map(|o| o.client)
        .collect();
    ha.figure(format!(
        "(b) SIGKILL of the active node {} under {} clients ({HTTP_CLIENTS} HTTP, {CLI_CLIENTS} CLI, \
         round robin over the 3 nodes): first creds served again {:.2} s after the kill; \
         {total} requests, {ok} ok; {survivor_errors} of {to_survivors} requests to survivors failed; \
         {cut_off} issues cut off in flight",
        ha.cluster.node_id(victim),
        HTTP_CLIENTS + CLI_CLIENTS,
        gap.as_secs_f64(),
    ));
    for (what, (count, from, to)) in &errors {
        ha.figure(format!(
            "(b)   {count:>4} × {what}  [{from:+.2} s .. {to:+.2} s after the kill]"
        ));
    }
    let new_active = ha.cluster.wait_new_active(victim, Duration::from_secs(30));
    assert_eq!(
        clients_served.len(),
        HTTP_CLIENTS + CLI_CLIENTS,
        "every client was served again"
    );
    Failover {
        killed: victim,
        new_active,
        killed_at,
        issued,
        cut_off,
    }
}

/// The leases the clients kept (no revoke tried) are renewed, then revoked, through the new
/// leader; the ones whose revoke failed in the failover are revoked again.
fn renew_and_revoke_survivors(ha: &Ha, failover: &Failover) {
    let leader = ha.client(failover.new_active);
    let live = ha.live_leases("litellm", &ha.role);
    let survivors: Vec<&Lease> = failover
        .issued
        .iter()
        .filter(|(l, r)| *r == Revoke::NotTried && live.contains(&l.id))
        .map(|(l, _)| l)
        .collect();
    assert!(
        survivors.len() >= 4,
        "at least 4 leases survive to be renewed: {}",
        survivors.len()
    );
    for lease in &survivors {
        renew(&leader, &lease.id, "15m")
            .unwrap_or_else(|e| panic!("renew {} through the new leader: {e}", lease.id));
        let expiry = ha.key_expiry(&lease.token).expect("an expiry");
        assert!(
            secs_from_now(expiry) > 14.0 * 60.0,
            "renew moved {}'s expiry to now + 15 m",
            lease.alias
        );
    }
    let failed: Vec<&Lease> = failover
        .issued
        .iter()
        .filter(|(l, r)| *r == Revoke::Failed && live.contains(&l.id))
        .map(|(l, _)| l)
        .collect();
    let already_deleted = failed
        .iter()
        .filter(|l| ha.key_status(&l.token) == Some(KeyStatus::Deleted))
        .count();
    for lease in survivors.iter().chain(&failed) {
        revoke(&leader, &lease.id)
            .unwrap_or_else(|e| panic!("revoke {} through the new leader: {e}", lease.id));
        assert_eq!(ha.key_status(&lease.token), Some(KeyStatus::Deleted));
    }
    ha.figure(format!(
        "(b) {} leases reached the clients ({} revoked by them, {} revokes failed in the failover); \
         {} kept leases renewed (+15 m in LiteLLM) and revoked through the new leader {}, and the {} \
         with a failed revoke revoked again ({} of those already had their key deleted)",
        failover.issued.len(),
        failover
            .issued
            .iter()
            .filter(|(_, r)| *r == Revoke::Done)
            .count(),
        failover
            .issued
            .iter()
            .filter(|(_, r)| *r == Revoke::Failed)
            .count(),
        survivors.len(),
        ha.cluster.node_id(failover.new_active),
        failed.len(),
        already_deleted
    ));
}

// === (d) ======================================================================================

fn rejoin(ha: &Ha, killed: usize) {
    let started = Instant::now();
    ha.cluster.restart(killed);
    let caught_up = started.elapsed();
    let active = ha.cluster.active();
    assert_ne!(active, killed, "the restarted node comes back as a standby");
    assert!(
        !ha.cluster.plugin_pids(killed).is_empty(),
        "it runs its plugin"
    );
    let role_read = ha.cluster.try_http(
        killed,
        "GET",
        &format!("litellm/roles/{}", ha.role),
        None,
        REQUEST_TIMEOUT,
    );
    assert!(
        matches!(role_read, Ok((200, _))),
        "role read on the rejoined node: {role_read:?}"
    );
    let lease = ha.issue_ok(killed, "litellm", &ha.role, None);
    assert_eq!(ha.key_status(&lease.token), Some(KeyStatus::Active));
    renew(&ha.client(killed), &lease.id, "12m").expect("renew through the rejoined node");
    assert!(secs_from_now(ha.key_expiry(&lease.token).expect("an expiry")) > 11.0 * 60.0);
    revoke(&ha.client(killed), &lease.id).expect("revoke through the rejoined node");
    assert_eq!(ha.key_status(&lease.token), Some(KeyStatus::Deleted));
    ha.figure(format!(
        "(d) {} restarted: a caught-up standby (knows the leader, same raft index) {:.1} s after the restart; creds, renew, revoke and a role read through it work",
        ha.cluster.node_id(killed),
        caught_up.as_secs_f64()
    ));
}

// === (f2) + (g) ===============================================================================

fn rollback_on_the_new_leader_and_silent_standbys(ha: &Ha, crash: &Crash, failover: &Failover) {
    let active = ha.cluster.active();
    assert_eq!(active, failover.new_active, "no leader change since (b)");
    let standbys = ha.cluster.standbys();
    let offsets: Vec<u64> = (0..NODES).map(|i| ha.cluster.log_offset(i)).collect();
    let window = Instant::now();
    // The new leader's first rollback tick comes 60 s after it became active; a standby's tick
    // comes once a minute too. Wait for both: the orphan deleted, and a standby's tick seen.
    let deadline = failover.killed_at + patient(Duration::from_secs(100));
    let mut rolled_back = None;
    let mut cut_off_gone = None;
    let mut standby_tick = None;
    let extra_keys = || {
        let leases = ha.live_leases("litellm", &ha.role).len();
        ha.live_keys(&ha.role).len().saturating_sub(leases)
    };
    let cut_off_keys = extra_keys();
    loop {
        if rolled_back.is_none() && ha.key_status(&crash.orphan_token) == Some(KeyStatus::Deleted) {
            rolled_back = Some(Instant::now());
        }
        if cut_off_gone.is_none() && extra_keys() == 0 {
            cut_off_gone = Some(Instant::now());
        }
        if standby_tick.is_none()
            && standbys.iter().any(|&s| {
                !lines_with(
                    &ha.cluster.log_since(s, offsets[s]),
                    "rollback tick on a standby",
                )
                .is_empty()
            })
        {
            standby_tick = Some(Instant::now());
        }
        if rolled_back.is_some() && cut_off_gone.is_some() && standby_tick.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{:.0} s after the kill: orphan {} rolled back: {}, keys of cut-off issues left: {}, \
             a standby tick seen: {}",
            failover.killed_at.elapsed().as_secs_f64(),
            crash.orphan_alias,
            rolled_back.is_some(),
            extra_keys(),
            standby_tick.is_some()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    std::thread::sleep(Duration::from_millis(500));
    let logs: Vec<String> = (0..NODES)
        .map(|i| ha.cluster.log_since(i, offsets[i]))
        .collect();
    // (f): the new active node did it.
    let rolled = lines_with(
        &logs[active],
        "rolled back a key whose issue did not complete",
    );
    assert!(
        rolled.iter().any(|l| l.contains(&crash.orphan_alias)),
        "the new active node {} logged the rollback of {}:\n{}",
        ha.cluster.node_id(active),
        crash.orphan_alias,
        rolled.join("\n")
    );
    let crashed_node_log = ha.cluster.server_log(crash.node);
    assert!(
        lines_with(&crashed_node_log, "rolled back a key").is_empty(),
        "the node whose plugin crashed ({}) did not roll back itself",
        ha.cluster.node_id(crash.node)
    );
    let tidied = lines_with(&logs[active], "auto-tidy ran");
    assert!(
        !tidied.is_empty(),
        "auto-tidy ran on the active node meanwhile"
    );
    // (g): the standbys' ticks did nothing.
    let mut ticks = Vec::new();
    for &s in &standbys {
        let log = &logs[s];
        ticks.push((
            ha.cluster.node_id(s),
            lines_with(log, "rollback tick on a standby").len(),
        ));
        for needle in [
            "LiteLLM call",
            "auto-tidy failed",
            "auto-tidy ran",
            "WAL rollback",
            "cannot claim WAL entry",
            "rolled back a key",
            "periodic function failed",
        ] {
            let found = lines_with(log, needle);
            assert!(
                found.is_empty(),
                "standby {} logged {needle:?} during its rollback tick:\n{}",
                ha.cluster.node_id(s),
                found.join("\n")
            );
        }
    }
    ha.figure(format!(
        "(b) {cut_off_keys} key(s) of issues cut off by the kill (of {} cut off in flight) were \
         rolled back by the new active node within {:.1} s of the kill",
        failover.cut_off,
        (cut_off_gone.unwrap() - failover.killed_at).as_secs_f64()
    ));
    ha.figure(format!(
        "(f) the crash's orphan {} was rolled back by the new active node {} {:.1} s after the failover ({:.1} s after the crash)",
        crash.orphan_alias,
        ha.cluster.node_id(active),
        (rolled_back.unwrap() - failover.killed_at).as_secs_f64(),
        (rolled_back.unwrap() - crash.crashed_at).as_secs_f64()
    ));
    ha.figure(format!(
        "(g) over {:.0} s with auto-tidy due every 1 s and a WAL entry pending: standby ticks {ticks:?}, none made a LiteLLM call or logged auto-tidy/WAL lines; the active node logged {} auto-tidy run(s)",
        window.elapsed().as_secs_f64(),
        tidied.len()
    ));
}

// === the end ==================================================================================

fn final_cleanup(ha: &Ha) {
    let active = ha.client(ha.cluster.active());
    for (mount, role) in [
        ("litellm", &ha.role),
        ("litellm", &ha.short_role),
        ("held", &ha.held_role),
    ] {
        active
            .bao(&[
                "lease",
                "revoke",
                "-sync",
                "-prefix",
                &format!("{mount}/creds/{role}"),
            ])
            .ok();
    }
    ha.check_invariants("the final revoke", &[]);
    for role in [&ha.role, &ha.short_role, &ha.held_role] {
        let live = ha.live_keys(role);
        assert!(live.is_empty(), "keys left under vault-{role}-: {live:?}");
    }
    let total: usize = ha.leases.lock().unwrap().values().map(Vec::len).sum();
    ha.figure(format!(
        "final: {total} leases issued in all, every one revoked or expired with its key deleted; 0 live keys under the test's aliases"
    ));
}

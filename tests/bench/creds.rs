//! The plugin's benchmark: how much latency, CPU and memory the plugin adds between an
//! application, Vault and LiteLLM, measured against its physical limits in one run.
//!
//! Run with `scripts/bench.sh` (or `cargo bench --bench creds`). It starts a dev OpenBao on
//! loopback with the release plugin mounted, a zero-latency fake LiteLLM in this process and,
//! when `LITELLM_BASE_URL`/`LITELLM_MASTER_KEY` are set, uses the real LiteLLM too. Over
//! OpenBao's HTTP API with keep-alive clients it measures, at 1 and 32 concurrent clients:
//!
//! 1. `GET kv/data/x` on the built-in KV v2 engine (Vault's own request path, no plugin);
//! 2. `POST /key/generate` straight to the upstream (no Vault);
//! 3. `GET litellm/creds/<role>` (the full path) and the lease revoke;
//! 4. `GET litellm/roles/<role>`: a plugin request that needs neither a host call (the role is
//!    cached) nor LiteLLM, which splits the overhead into what any plugin request costs and
//!    what issuing adds; and `LIST litellm/roles`, one host storage call more, which prices a
//!    call from the plugin through the host;
//!
//! taking turns in rounds, so that drift weighs on all alike. It reports plugin overhead =
//! (3) − (1) − (2) at p50, creds/s, CPU seconds of the plugin and of `bao` per 1,000 issues
//! and per 1,000 revokes, plugin RSS (idle, under load, after the issue/revoke cycles),
//! launch → handshake time and `secrets enable` → first creds. Once more at one client, the
//! fake answers `/key/generate` after the real proxy's latency without using CPU, which tells
//! what waiting for a slow upstream costs apart from the real proxy's own CPU use. Ratios are
//! taken within one run, because absolute times drift on shared machines. Output: a table on
//! stdout and a JSON file in `bench-results/`.

// Test crates: their items are documented for readers where it helps, not as an API.
#![allow(missing_docs)]

// The benchmark uses a part of the harness the test tiers share.
#[allow(dead_code)]
#[path = "../support/bao/mod.rs"]
mod bao;
mod cluster;
#[path = "../support/fake_litellm/mod.rs"]
mod fake_litellm;
mod measure;
mod peers;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bao::{DevServer, DevServerOptions};
use fake_litellm::{FakeLiteLlm, Fault, Op};
use serde_json::{Map, Value, json};

use measure::*;

const PLUGIN: &str = "vault-plugin-secrets-litellm";
const MASTER_KEY: &str = "sk-bench-master-key-0123456789abcdef";
const CONCURRENCY: [usize; 2] = [1, 32];
/// The real proxy's typical `/key/generate` latency on this machine, for the slow fake.
const SLOW_UPSTREAM: Duration = Duration::from_millis(25);

/// Request counts per measurement (`BENCH_SCALE` multiplies them; 0.1 for a smoke run).
struct Plan {
    requests: usize,
    cycles: usize,
    handshakes: usize,
}

impl Plan {
    fn from_env() -> Plan {
        let scale: f64 = std::env::var("BENCH_SCALE")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1.0);
        let n = |base: f64| ((base * scale) as usize).max(10);
        Plan {
            requests: n(2000.0),
            cycles: n(10_000.0),
            handshakes: n(30.0),
        }
    }

    /// Requests per measurement against an upstream that takes ~25 ms per generate.
    fn slow_requests(&self) -> usize {
        (self.requests / 10).max(20)
    }
}

fn commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: don't benchmark then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmark skipped: run it with scripts/bench.sh (cargo bench --bench creds)");
        return;
    }
    let plan = Plan::from_env();
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_vault-plugin-secrets-litellm"));
    let mut report = Map::new();
    let mut table: Vec<(String, String)> = Vec::new();

    let handshake = handshake_ms(&binary, plan.handshakes);
    table.push((
        "launch → handshake line (median)".into(),
        format!("{handshake:.1} ms"),
    ));
    report.insert("handshake_ms".into(), json!(round(handshake)));

    let fake = FakeLiteLlm::start(MASTER_KEY).expect("fake LiteLLM");
    let server = DevServer::start_with(DevServerOptions::default().log_level("warn"));
    server.register_plugin(&binary, PLUGIN, &format!("v{}", env!("CARGO_PKG_VERSION")));
    let api = Api {
        http: reqwest::Client::new(),
        addr: server.addr(),
        token: server.token(),
    };

    // Built-in KV v2 as the baseline of Vault's own request path.
    api.post(
        "sys/mounts/kv",
        json!({"type": "kv", "options": {"version": "2"}}),
    )
    .await
    .expect("kv mount");
    while api
        .post("kv/data/x", json!({"data": {"v": "1"}}))
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // secrets enable → first creds, over the HTTP API.
    let started = Instant::now();
    api.post("sys/mounts/litellm", json!({"type": PLUGIN}))
        .await
        .expect("enable");
    api.post(
        "litellm/config",
        json!({"base_url": fake.url(), "master_key": MASTER_KEY}),
    )
    .await
    .expect("config");
    api.post(
        "litellm/roles/bench",
        json!({"models": "fake-gpt", "ttl": "10m", "max_ttl": "1h"}),
    )
    .await
    .expect("role");
    api.get("litellm/creds/bench").await.expect("first creds");
    let enable_to_creds = started.elapsed().as_secs_f64() * 1000.0;
    table.push((
        "secrets enable → first creds".into(),
        format!("{enable_to_creds:.0} ms"),
    ));
    report.insert(
        "enable_to_first_creds_ms".into(),
        json!(round(enable_to_creds)),
    );
    api.post(
        "sys/leases/revoke-prefix/litellm/creds/bench",
        json!({"sync": true}),
    )
    .await
    .expect("revoke");

    let plugin_pid = *server.plugin_pids().first().expect("plugin process");
    let bao_pid = server.pid();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = rss_mib(plugin_pid);

    let mut rss_load = rss_idle;
    let mut results = Map::new();
    for clients in CONCURRENCY {
        let run = Comparison::run(
            &api,
            "litellm",
            (&fake.url(), MASTER_KEY),
            (plugin_pid, bao_pid),
            clients,
            plan.requests,
        )
        .await;
        rss_load = rss_load.max(rss_mib(plugin_pid));
        let overhead = run.overhead_ms();
        for (name, s) in [
            ("kv read", &run.kv),
            ("role read (plugin, no host call)", &run.role_read),
            ("role list (plugin, one host call)", &run.role_list),
            ("direct generate", &run.direct),
            ("creds", &run.creds),
            ("revoke", &run.revoke),
        ] {
            table.push((
                format!("{name} @{clients}"),
                format!(
                    "p50 {:.2} ms  p99 {:.2} ms  {:.0}/s  errors {}",
                    s.p50_ms, s.p99_ms, s.per_sec, s.errors
                ),
            ));
        }
        table.push((
            format!("plugin overhead p50 @{clients}"),
            format!(
                "{overhead:.2} ms (any plugin request: {:.2} ms, issuing: {:.2} ms; one host call: {:.2} ms)",
                run.floor_ms(),
                overhead - run.floor_ms(),
                run.host_call_ms()
            ),
        ));
        table.push((
            format!("CPU per 1,000 issues @{clients}"),
            run.issue_cpu.per_1000(plan.requests),
        ));
        table.push((
            format!("CPU per 1,000 revokes @{clients}"),
            run.revoke_cpu.per_1000(plan.requests),
        ));
        results.insert(
            format!("c{clients}"),
            json!({
                "kv_read": run.kv.json(), "role_read": run.role_read.json(), "direct_generate": run.direct.json(), "creds": run.creds.json(), "revoke": run.revoke.json(),
                "role_list": run.role_list.json(),
                "plugin_overhead_p50_ms": round(overhead), "plugin_request_floor_p50_ms": round(run.floor_ms()), "host_call_p50_ms": round(run.host_call_ms()),
                "cpu_per_1000_issues": run.issue_cpu.json(plan.requests), "cpu_per_1000_revokes": run.revoke_cpu.json(plan.requests),
            }),
        );
    }
    report.insert("fake_upstream".into(), Value::Object(results));

    // Go plugins on HashiCorp's SDK beside ours, in rounds of their own (tests/bench/peers.rs).
    let pids = (plugin_pid, bao_pid);
    let upstream = (fake.url(), MASTER_KEY);
    let (t, r) = (&mut table, &mut report);
    peers::run(
        &server,
        &api,
        (&upstream.0, upstream.1),
        pids,
        plan.requests,
        t,
        r,
    )
    .await;

    // A role with role-wide and per-user limits against the plain role, alternating, at one
    // client: after the user's first key (membership made once), issuing into the role's team
    // must cost no LiteLLM call more than a plain role's issue.
    api.post(
        "litellm/roles/bench-limited",
        json!({"models": "fake-gpt", "ttl": "10m", "user_id": "bench-user",
               "role_max_budget": 1_000_000, "user_max_budget": 1_000}),
    )
    .await
    .expect("limited role");
    let per_round = plan.requests.div_ceil(ROUNDS);
    let (mut plain, mut limited) = (Samples::default(), Samples::default());
    for _ in 0..ROUNDS {
        for (role, samples) in [("bench", &mut plain), ("bench-limited", &mut limited)] {
            let (issued, leases) = issue_creds(&api, "litellm", role, 1, per_round).await;
            revoke_leases(&api, leases, 1).await;
            samples.add(issued);
        }
    }
    let (plain, limited) = (plain.stats(), limited.stats());
    let extra = limited.p50_ms - plain.p50_ms;
    table.push((
        "creds @1: plain role / role team + user limits".into(),
        format!(
            "p50 {:.2} / {:.2} ms (+{extra:.2} ms), member_add calls {}",
            plain.p50_ms,
            limited.p50_ms,
            fake.requests(Op::MemberAdd)
        ),
    ));
    report.insert(
        "role_limits".into(),
        json!({"plain": plain.json(), "limited": limited.json(), "extra_p50_ms": round(extra),
               "member_add_calls": fake.requests(Op::MemberAdd)}),
    );

    // static-creds against a cached role read, alternating, at one client: both are served
    // from the plugin's caches with no host or LiteLLM call.
    api.post(
        "litellm/static-roles/bench-static",
        json!({"models": "fake-gpt", "rotation_period": "24h"}),
    )
    .await
    .expect("static role");
    let (mut role_reads, mut static_reads) = (Samples::default(), Samples::default());
    for _ in 0..ROUNDS {
        role_reads.add(reads(&api, "litellm/roles/bench", 1, per_round).await);
        static_reads.add(reads(&api, "litellm/static-creds/bench-static", 1, per_round).await);
    }
    let (role_reads, static_reads) = (role_reads.stats(), static_reads.stats());
    let static_extra = static_reads.p50_ms - role_reads.p50_ms;
    table.push((
        "static-creds read / cached role read @1".into(),
        format!(
            "p50 {:.2} / {:.2} ms ({static_extra:+.2} ms), errors {}",
            static_reads.p50_ms, role_reads.p50_ms, static_reads.errors
        ),
    ));
    report.insert(
        "static_creds".into(),
        json!({"static_creds": static_reads.json(), "role_read": role_reads.json(),
               "extra_p50_ms": round(static_extra)}),
    );
    api.delete("litellm/static-roles/bench-static")
        .await
        .expect("static role delete");

    // Issue/revoke cycles at 32 clients: errors, keys left, RSS growth.
    let (cycle_issue, cycle_revoke) = creds_and_revoke(&api, "litellm", 32, plan.cycles).await;
    let (cycle_issue, cycle_revoke) = (cycle_issue.stats(), cycle_revoke.stats());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_mib(plugin_pid);
    let keys_left = fake.key_count();
    table.push((
        "RSS idle / under load / after cycles".into(),
        format!("{rss_idle:.1} / {rss_load:.1} / {rss_after:.1} MiB"),
    ));
    table.push((
        format!("{} issue+revoke cycles @32", plan.cycles),
        format!(
            "errors {}, keys left in LiteLLM {keys_left}, {:.0} creds/s",
            cycle_issue.errors + cycle_revoke.errors,
            cycle_issue.per_sec
        ),
    ));
    report.insert(
        "rss_mib".into(),
        json!({"idle": round(rss_idle), "load": round(rss_load), "after_cycles": round(rss_after)}),
    );
    report.insert(
        "cycles".into(),
        json!({"count": plan.cycles, "errors": cycle_issue.errors + cycle_revoke.errors, "keys_left": keys_left, "creds_per_sec": round(cycle_issue.per_sec)}),
    );

    // Creds at 32 clients on Raft storage: one node, then a 3-node cluster with the clients
    // spread over its nodes (the dev server above stores in memory).
    let ha = cluster::measure(&binary, &fake.url(), MASTER_KEY, 32, plan.requests).await;
    table.push(("creds @32 on Raft: cluster / one node".into(), ha.line()));
    report.insert("raft_cluster".into(), ha.json());

    // The fake again, now answering `/key/generate` after the real proxy's typical latency but
    // without using any CPU. OpenBao and the plugin sit idle while they wait, as they do for
    // the real proxy, so this shows what a slow upstream alone adds to the Vault side, apart
    // from the real proxy's CPU use on the same machine.
    fake.set_fault(Op::Generate, Fault::Delay(SLOW_UPSTREAM));
    let slow = Comparison::run(
        &api,
        "litellm",
        (&fake.url(), MASTER_KEY),
        (plugin_pid, bao_pid),
        1,
        plan.slow_requests(),
    )
    .await;
    fake.set_fault(Op::Generate, Fault::None);
    table.push((
        format!(
            "fake, {} ms latency: overhead @1",
            SLOW_UPSTREAM.as_millis()
        ),
        format!(
            "{:.2} ms (direct generate p50 {:.2} ms, creds p50 {:.2} ms)",
            slow.overhead_ms(),
            slow.direct.p50_ms,
            slow.creds.p50_ms
        ),
    ));
    report.insert(
        "slow_fake_upstream".into(),
        json!({"latency_ms": SLOW_UPSTREAM.as_millis(), "kv_read": slow.kv.json(), "direct_generate": slow.direct.json(), "creds": slow.creds.json(), "plugin_overhead_p50_ms": round(slow.overhead_ms())}),
    );

    // Against the real LiteLLM, when one is configured.
    if let (Ok(url), Ok(key)) = (
        std::env::var("LITELLM_BASE_URL"),
        std::env::var("LITELLM_MASTER_KEY"),
    ) {
        api.post("sys/mounts/real", json!({"type": PLUGIN}))
            .await
            .expect("enable real");
        api.post("real/config", json!({"base_url": url, "master_key": key}))
            .await
            .expect("real config");
        api.post(
            "real/roles/bench",
            json!({"models": "fake-gpt", "ttl": "10m"}),
        )
        .await
        .expect("real role");
        let n = plan.slow_requests();
        let run = Comparison::run(&api, "real", (&url, &key), (plugin_pid, bao_pid), 1, n).await;
        let (kv, direct, creds, revoke) = (run.kv, run.direct, run.creds, run.revoke);
        let budget = direct.p50_ms + kv.p50_ms + 2.0;
        table.push((
            "real LiteLLM: direct generate @1".into(),
            format!("p50 {:.2} ms", direct.p50_ms),
        ));
        table.push((
            "real LiteLLM: creds @1".into(),
            format!("p50 {:.2} ms (target ≤ {budget:.2} ms)", creds.p50_ms),
        ));
        table.push((
            "real LiteLLM: revoke @1".into(),
            format!("p50 {:.2} ms", revoke.p50_ms),
        ));
        report.insert(
            "real_upstream".into(),
            json!({"kv_read": kv.json(), "direct_generate": direct.json(), "creds": creds.json(), "revoke": revoke.json(), "target_creds_p50_ms": round(budget)}),
        );
    }

    let when = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    report.insert("commit".into(), json!(commit()));
    report.insert("unix_time".into(), json!(when));
    report.insert(
        "cores".into(),
        json!(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0)
        ),
    );
    report.insert("requests_per_measurement".into(), json!(plan.requests));

    println!("\n{:<44} result", "measurement");
    for (name, value) in &table {
        println!("{name:<44} {value}");
    }
    let dir = bao::repo_root().join("bench-results");
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(format!("bench-{when}-{}.json", commit()));
    std::fs::write(
        &file,
        serde_json::to_string_pretty(&Value::Object(report)).unwrap_or_default(),
    )
    .expect("write results");
    println!("\nresults: {}", file.display());
}

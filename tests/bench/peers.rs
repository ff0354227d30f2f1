//! Go plugins built on HashiCorp's SDK, measured beside ours in the same run, under the same
//! OpenBao and against the same fake LiteLLM (which they call over HTTP, like ours).
//!
//! `scripts/bench.sh` builds or installs them into `.tools/peers/` and lists them, one line
//! each, in `BENCH_PEERS_FILE`: name, `ok` or `skipped`, the binary or the reason, what was
//! built. Here each peer that built is registered and mounted at `peer-<name>/`, configured
//! against the fake and given a role `bench` like ours; then, at 1 and 32 clients, rounds take
//! turns over the KV read and direct generate baselines, our role read, creds and revoke, and
//! each peer's role read, creds and revoke, with the CPU of each plugin process and of `bao`
//! counted while it issues. Every figure is reported beside ours from the same rounds, as
//! ours ÷ peer. A peer that was skipped or cannot be configured is reported with the reason.

use super::bao::DevServer;
use super::{
    Api, CONCURRENCY, Cpu, ROUNDS, Samples, Stats, direct_generate, issue_creds, reads,
    revoke_leases, round, rss_mib,
};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// One line of `BENCH_PEERS_FILE`.
struct Listed {
    name: String,
    binary: Option<String>,
    reason: String,
    built: String,
}

fn listed() -> Result<Vec<Listed>, String> {
    let file = std::env::var("BENCH_PEERS_FILE")
        .map_err(|_| "BENCH_PEERS_FILE not set: scripts/bench.sh builds the peers".to_string())?;
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{file}: {e}"))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            let (name, status, detail) = (f.next()?, f.next()?, f.next()?);
            let built = f.next().unwrap_or_default().to_string();
            let ok = status == "ok";
            Some(Listed {
                name: name.to_string(),
                binary: ok.then(|| detail.to_string()),
                reason: if ok {
                    String::new()
                } else {
                    detail.to_string()
                },
                built,
            })
        })
        .collect())
}

/// The config and role writes that point a peer at the fake with a role like ours (models
/// `fake-gpt`, ttl 10m, max_ttl 1h). The published plugins' fields are their READMEs'.
fn setup(name: &str, url: &str, master_key: &str) -> Option<(Value, Value)> {
    let ttl = json!({"ttl": "10m", "max_ttl": "1h"});
    let with = |mut base: Value, extra: Value| {
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        base
    };
    match name {
        "sdk" => Some((
            json!({"base_url": url, "master_key": master_key}),
            with(ttl, json!({"models": "fake-gpt"})),
        )),
        "benemon" => Some((
            json!({"url": url, "admin_key": master_key}),
            with(ttl, json!({"key_request": r#"{"models":["fake-gpt"]}"#})),
        )),
        "clique" => Some((
            json!({"url": url, "master_key": master_key}),
            with(ttl, json!({"models": "fake-gpt"})),
        )),
        _ => None,
    }
}

/// A peer mounted and configured, with what was measured of it.
struct Peer {
    name: String,
    built: String,
    mount: String,
    pid: u32,
    rss_idle: f64,
    rss_load: f64,
    runs: Map<String, Value>,
}

/// Registers, mounts and configures one peer; returns it, or why it could not be.
async fn mount(
    server: &DevServer,
    api: &Api,
    peer: &Listed,
    binary: &str,
    fake: (&str, &str),
) -> Result<Peer, String> {
    let (config, role) = setup(&peer.name, fake.0, fake.1)
        .ok_or("no configuration known for this peer".to_string())?;
    let plugin = format!("peer-{}", peer.name);
    let mount = plugin.clone();
    let before = server.plugin_pids();
    let register = format!("sys/plugins/catalog/secret/{plugin}");
    let sha = tokio::task::block_in_place(|| {
        server.install_plugin_binary(std::path::Path::new(binary), &plugin)
    });
    api.post(&register, json!({"sha256": sha, "command": plugin}))
        .await?;
    api.post(&format!("sys/mounts/{mount}"), json!({"type": plugin}))
        .await?;
    api.post(&format!("{mount}/config"), config).await?;
    api.post(&format!("{mount}/roles/bench"), role).await?;
    let first = api.get(&format!("{mount}/creds/bench")).await?;
    if first["lease_id"].as_str().unwrap_or_default().is_empty() {
        return Err(format!("creds answered without a lease: {first}"));
    }
    api.post(
        &format!("sys/leases/revoke-prefix/{mount}/creds/bench"),
        json!({"sync": true}),
    )
    .await?;
    let pid = server
        .plugin_pids()
        .into_iter()
        .find(|p| !before.contains(p))
        .ok_or("no new plugin process after mounting".to_string())?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = rss_mib(pid);
    Ok(Peer {
        name: peer.name.clone(),
        built: peer.built.clone(),
        mount,
        pid,
        rss_idle: rss,
        rss_load: rss,
        runs: Map::new(),
    })
}

/// Role read, creds, revoke and issue CPU of one plugin over the rounds.
#[derive(Default)]
struct Side {
    role_read: Samples,
    creds: Samples,
    revoke: Samples,
    cpu: Cpu,
    issued: usize,
}

impl Side {
    async fn round(&mut self, api: &Api, mount: &str, pids: (u32, u32), clients: usize, n: usize) {
        self.role_read
            .add(reads(api, &format!("{mount}/roles/bench"), clients, n).await);
        let before = Cpu::of(pids);
        let (issued, leases) = issue_creds(api, mount, "bench", clients, n).await;
        self.cpu.add_since(before, pids);
        self.issued += issued.times.len();
        self.creds.add(issued);
        self.revoke.add(revoke_leases(api, leases, clients).await);
    }
}

/// `a ÷ b`, rounded.
fn ratio(a: f64, b: f64) -> f64 {
    round(a / b)
}

/// Measures the peers listed by scripts/bench.sh beside the plugin `ours` (pids of the
/// plugin and of `bao`, mounted at `litellm/` with a role `bench`); adds lines to `table`
/// and `report["peers"]`.
pub async fn run(
    server: &DevServer,
    api: &Api,
    fake: (&str, &str),
    ours: (u32, u32),
    requests: usize,
    table: &mut Vec<(String, String)>,
    report: &mut Map<String, Value>,
) {
    let mut json_peers = Map::new();
    let listed = match listed() {
        Ok(l) => l,
        Err(e) => {
            table.push(("peers".into(), format!("not measured: {e}")));
            report.insert("peers".into(), json!({"not_measured": e}));
            return;
        }
    };
    let bao_pid = ours.1;
    let mut peers = Vec::new();
    for l in &listed {
        let outcome = match &l.binary {
            None => Err(l.reason.clone()),
            Some(binary) => mount(server, api, l, binary, fake)
                .await
                .map_err(|e| format!("could not be configured: {e}")),
        };
        match outcome {
            Ok(p) => peers.push(p),
            Err(reason) => {
                eprintln!("peer {}: not measured: {reason}", l.name);
                table.push((
                    format!("peer {}", l.name),
                    format!("not measured: {reason}"),
                ));
                json_peers.insert(
                    l.name.clone(),
                    json!({"measured": false, "reason": reason, "built": l.built}),
                );
            }
        }
    }
    if peers.is_empty() {
        report.insert("peers".into(), Value::Object(json_peers));
        return;
    }

    let ours_rss_idle = rss_mib(ours.0);
    let mut ours_rss_load = ours_rss_idle;
    let per_round = requests.div_ceil(ROUNDS);
    let mut ours_runs = Map::new();
    for clients in CONCURRENCY {
        let (mut kv, mut direct, mut mine) =
            (Samples::default(), Samples::default(), Side::default());
        let mut theirs: Vec<Side> = peers.iter().map(|_| Side::default()).collect();
        for _ in 0..ROUNDS {
            kv.add(reads(api, "kv/data/x", clients, per_round).await);
            direct.add(direct_generate(fake.0, fake.1, clients, per_round).await);
            mine.round(api, "litellm", ours, clients, per_round).await;
            for (peer, side) in peers.iter().zip(theirs.iter_mut()) {
                side.round(api, &peer.mount, (peer.pid, bao_pid), clients, per_round)
                    .await;
            }
        }
        ours_rss_load = ours_rss_load.max(rss_mib(ours.0));
        let (kv, direct) = (kv.stats(), direct.stats());
        let figures = |side: &Side| -> (Stats, Stats, Stats, f64, f64, f64) {
            let (role, creds, revoke) = (
                side.role_read.stats(),
                side.creds.stats(),
                side.revoke.stats(),
            );
            let per_1000 = 1000.0 / side.issued.max(1) as f64;
            let overhead = creds.p50_ms - kv.p50_ms - direct.p50_ms;
            (
                role,
                creds,
                revoke,
                overhead,
                side.cpu.plugin * per_1000,
                side.cpu.bao * per_1000,
            )
        };
        let (o_role, o_creds, o_revoke, o_over, o_cpu, o_bao) = figures(&mine);
        ours_runs.insert(
            format!("c{clients}"),
            json!({"kv_read": kv.json(), "direct_generate": direct.json(), "role_read": o_role.json(),
                   "creds": o_creds.json(), "revoke": o_revoke.json(), "overhead_p50_ms": round(o_over),
                   "cpu_s_per_1000_issues": {"plugin": round(o_cpu), "bao": round(o_bao)}}),
        );
        table.push((
            format!("ours in the peer rounds @{clients}"),
            format!(
                "creds p50 {:.2} ms, overhead {o_over:.2} ms, role read {:.2} ms, CPU per 1,000 issues {o_cpu:.3} s (bao {o_bao:.3} s); KV {:.2} ms, direct {:.2} ms",
                o_creds.p50_ms, o_role.p50_ms, kv.p50_ms, direct.p50_ms
            ),
        ));
        for (peer, side) in peers.iter_mut().zip(theirs.iter()) {
            peer.rss_load = peer.rss_load.max(rss_mib(peer.pid));
            let (role, creds, revoke, over, cpu, bao) = figures(side);
            let errors = creds.errors + revoke.errors + role.errors;
            table.push((
                format!("peer {} @{clients}", peer.name),
                format!(
                    "creds p50 {:.2} ms (ours ÷ peer {:.2}), overhead {over:.2} ms (ours ÷ peer {:.2}), role read {:.2} ms (ours ÷ peer {:.2}), CPU per 1,000 issues {cpu:.3} s (ours ÷ peer {:.2}; bao {bao:.3} s, ours ÷ peer {:.2}), {:.0} creds/s (ours ÷ peer {:.2}), errors {errors}",
                    creds.p50_ms,
                    ratio(o_creds.p50_ms, creds.p50_ms),
                    ratio(o_over, over),
                    role.p50_ms,
                    ratio(o_role.p50_ms, role.p50_ms),
                    ratio(o_cpu, cpu),
                    ratio(o_bao, bao),
                    creds.per_sec,
                    ratio(o_creds.per_sec, creds.per_sec),
                ),
            ));
            peer.runs.insert(
                format!("c{clients}"),
                json!({"role_read": role.json(), "creds": creds.json(), "revoke": revoke.json(),
                       "overhead_p50_ms": round(over),
                       "cpu_s_per_1000_issues": {"plugin": round(cpu), "bao": round(bao)},
                       "ours_over_peer": {"creds_p50": ratio(o_creds.p50_ms, creds.p50_ms), "overhead_p50": ratio(o_over, over),
                                          "role_read_p50": ratio(o_role.p50_ms, role.p50_ms), "cpu_per_issue": ratio(o_cpu, cpu),
                                          "bao_cpu_per_issue": ratio(o_bao, bao), "creds_per_sec": ratio(o_creds.per_sec, creds.per_sec)}}),
            );
        }
    }
    for peer in peers {
        table.push((
            format!("peer {} RSS idle / under load", peer.name),
            format!(
                "{:.1} / {:.1} MiB (ours {ours_rss_idle:.1} / {ours_rss_load:.1} MiB; ours ÷ peer {:.2} / {:.2})",
                peer.rss_idle,
                peer.rss_load,
                ratio(ours_rss_idle, peer.rss_idle),
                ratio(ours_rss_load, peer.rss_load)
            ),
        ));
        let mut entry = peer.runs;
        entry.insert("measured".into(), json!(true));
        entry.insert("built".into(), json!(peer.built));
        entry.insert(
            "rss_mib".into(),
            json!({"idle": round(peer.rss_idle), "load": round(peer.rss_load),
                   "ours_idle": round(ours_rss_idle), "ours_load": round(ours_rss_load)}),
        );
        json_peers.insert(peer.name, Value::Object(entry));
    }
    json_peers.insert("ours".into(), Value::Object(ours_runs));
    report.insert("peers".into(), Value::Object(json_peers));
}

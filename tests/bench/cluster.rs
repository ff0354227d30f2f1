//! Creds through a 3-node Raft cluster against a single node, in the same run: the clients are
//! spread over the nodes, so two thirds of the issues reach a standby and are forwarded to the
//! active node (the only one that changes LiteLLM).

use std::time::Instant;

use serde_json::{Value, json};

use crate::bao::cluster::{Cluster, ClusterOptions};
use crate::{Api, PLUGIN, Samples, Stats, issue_creds, revoke_leases};

/// Issues `total` creds with `clients` clients spread over the cluster's nodes; returns the
/// latency samples (and throughput over the wall time of the whole phase).
pub async fn creds_through_cluster(
    binary: &std::path::Path,
    fake_url: &str,
    master_key: &str,
    clients: usize,
    total: usize,
) -> Stats {
    let (binary, fake_url, master_key) = (
        binary.to_path_buf(),
        fake_url.to_string(),
        master_key.to_string(),
    );
    let cluster = tokio::task::spawn_blocking(move || {
        let cluster = Cluster::start(ClusterOptions::default().log_level("warn"));
        cluster.mount_plugin(
            &binary,
            PLUGIN,
            &format!("v{}", env!("CARGO_PKG_VERSION")),
            "litellm",
        );
        let active = cluster.client(cluster.active());
        active.http_ok(
            "PUT",
            "litellm/config",
            Some(&json!({"base_url": fake_url, "master_key": master_key})),
        );
        active.http_ok(
            "PUT",
            "litellm/roles/bench",
            Some(&json!({"models": "fake-gpt", "ttl": "10m", "max_ttl": "1h"})),
        );
        cluster
    })
    .await
    .expect("starting the cluster");
    let apis: Vec<Api> = cluster
        .clients()
        .iter()
        .map(|c| Api {
            http: reqwest::Client::new(),
            addr: c.addr(),
            token: c.token(),
        })
        .collect();
    // Warm every node's plugin (its config and role caches) first.
    for api in &apis {
        let _ = api.get("litellm/roles/bench").await;
    }
    let nodes = apis.len();
    let started = Instant::now();
    let phases = apis.iter().enumerate().map(|(i, api)| {
        let share = clients / nodes + usize::from(i < clients % nodes);
        let count = total / nodes + usize::from(i < total % nodes);
        issue_creds(api, "litellm", "bench", share.max(1), count)
    });
    let results = futures_util::future::join_all(phases).await;
    let wall = started.elapsed();
    let mut all = Samples::default();
    let mut leases = Vec::new();
    for (samples, issued) in results {
        all.add(samples);
        leases.extend(issued);
    }
    // Throughput over the wall time, not the sum of the three phases.
    all.elapsed = wall;
    let active = apis[cluster.active()].clone();
    revoke_leases(&active, leases, clients).await;
    let stats = all.stats();
    drop(cluster);
    stats
}

/// The figure as the table shows it.
pub fn line(single: &Stats, cluster: &Stats) -> String {
    format!(
        "cluster p50 {:.2} ms, {:.0}/s; single node p50 {:.2} ms, {:.0}/s (cluster ÷ single {:.2}); errors {}",
        cluster.p50_ms,
        cluster.per_sec,
        single.p50_ms,
        single.per_sec,
        cluster.per_sec / single.per_sec,
        cluster.errors
    )
}

/// The figure as the JSON holds it.
pub fn json(single: &Stats, cluster: &Stats) -> Value {
    json!({"cluster": cluster.json(), "single_node": single.json(),
           "throughput_ratio": cluster.per_sec / single.per_sec})
}

//! Creds through a 3-node Raft cluster against one Raft node, in the same run: the clients are
//! spread over the cluster's nodes, so two thirds of the issues reach a standby and are
//! forwarded to the active node (the only one that changes LiteLLM). Both sides store on Raft,
//! so the figure is what HA costs, not what Raft costs against the dev server's memory.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bao::cluster::{Cluster, ClusterOptions};
use crate::bao::{BaoClient, DevServer, DevServerOptions};
use crate::{Api, PLUGIN, Samples, Stats, issue_creds, revoke_leases};

/// The two figures of one run.
pub struct HaFigures {
    /// One Raft node, all clients on it.
    pub single: Stats,
    /// Three Raft nodes, the clients spread over them.
    pub cluster: Stats,
}

/// Measures `total` creds at `clients` clients on one Raft node, then through a 3-node cluster.
pub async fn measure(
    binary: &Path,
    fake_url: &str,
    master_key: &str,
    clients: usize,
    total: usize,
) -> HaFigures {
    let single = {
        let (binary, url, key) = (
            binary.to_path_buf(),
            fake_url.to_string(),
            master_key.to_string(),
        );
        let server = tokio::task::spawn_blocking(move || {
            let server =
                DevServer::start_with(DevServerOptions::default().persistent().log_level("warn"));
            server.register_plugin(&binary, PLUGIN, &format!("v{}", env!("CARGO_PKG_VERSION")));
            server.enable(PLUGIN, "litellm");
            set_up(&server.client(), &url, &key);
            server
        })
        .await
        .expect("starting a Raft node");
        let api = api_of(&server.client());
        let stats = issue_spread(std::slice::from_ref(&api), &api, clients, total).await;
        drop(server);
        stats
    };
    let (binary, url, key) = (
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
        set_up(&cluster.client(cluster.active()), &url, &key);
        cluster
    })
    .await
    .expect("starting the cluster");
    let apis: Vec<Api> = cluster.clients().iter().map(api_of).collect();
    // Standbys answer from their replica: wait until each has the role, or its creds would be
    // refused ("role does not exist") for the few ms the replica lags.
    for api in &apis {
        let deadline = Instant::now() + Duration::from_secs(10);
        while api
            .get("litellm/roles/bench")
            .await
            .map_or(true, |v| v["data"].is_null())
        {
            assert!(Instant::now() < deadline, "a standby never saw the role");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let active = apis[cluster.active()].clone();
    let through = issue_spread(&apis, &active, clients, total).await;
    drop(cluster);
    HaFigures {
        single,
        cluster: through,
    }
}

fn api_of(client: &BaoClient) -> Api {
    Api {
        http: reqwest::Client::new(),
        addr: client.addr(),
        token: client.token(),
    }
}

fn set_up(client: &BaoClient, fake_url: &str, master_key: &str) {
    client.http_ok(
        "PUT",
        "litellm/config",
        Some(&json!({"base_url": fake_url, "master_key": master_key})),
    );
    client.http_ok(
        "PUT",
        "litellm/roles/bench",
        Some(&json!({"models": "fake-gpt", "ttl": "10m", "max_ttl": "1h"})),
    );
}

/// Issues `total` creds with `clients` clients spread over `apis`, then revokes them through
/// `revoker`; throughput is over the wall time of the whole phase.
async fn issue_spread(apis: &[Api], revoker: &Api, clients: usize, total: usize) -> Stats {
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
    all.elapsed = wall;
    revoke_leases(revoker, leases, clients).await;
    all.stats()
}

impl HaFigures {
    /// The figure as the table shows it.
    pub fn line(&self) -> String {
        format!(
            "3-node cluster p50 {:.2} ms, {:.0}/s; one Raft node p50 {:.2} ms, {:.0}/s (cluster ÷ one node {:.2}); errors {} / {}",
            self.cluster.p50_ms,
            self.cluster.per_sec,
            self.single.p50_ms,
            self.single.per_sec,
            self.cluster.per_sec / self.single.per_sec,
            self.cluster.errors,
            self.single.errors
        )
    }

    /// The figure as the JSON holds it.
    pub fn json(&self) -> Value {
        json!({"cluster": self.cluster.json(), "single_raft_node": self.single.json(),
               "throughput_ratio": self.cluster.per_sec / self.single.per_sec})
    }
}

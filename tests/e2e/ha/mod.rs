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
use vault_plugin_secrets_litellm::engine::client::{Client, KeyStatus, ListedKey};

use crate::support::bao::BaoClient;
use crate::support::bao::cluster::{Cluster, ClusterOptions, NODES, try_http};
use crate::support::{
    KeyCleanup, PLUGIN, RealLiteLlm, create_key, our_alias, patient, plugin_binary, plugin_version,
    secs_from_now, unique,
};

mod failover;
mod holding_proxy;
mod run;
mod scenarios;

use failover::*;
use holding_proxy::*;
use run::*;
use scenarios::*;

/// LITELLM_PLUGIN_WAL_MIN_AGE of every node: long enough that the node whose plugin crashed
/// cannot roll the entry back itself before it is killed, short next to the 60 s tick.
const WAL_MIN_AGE_SECS: u64 = 10;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const SHORT_TTL_SECS: u64 = 20;
/// Clients in the failover scenario: the first ones over HTTP, the rest through the CLI.
const HTTP_CLIENTS: usize = 4;
const CLI_CLIENTS: usize = 2;

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
    // Every live key under the test's alias stems goes, even when the run fails.
    let mut cleanup = KeyCleanup::new(&litellm);
    cleanup.alias_stems = [&role, &short_role, &held_role, &static_role]
        .iter()
        .map(|r| format!("vault-{r}-"))
        .collect();
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
            )
            // sys/raw shows the plugin's WAL and key index to the test (after a failover).
            .config("raw_storage_endpoint = true"),
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
    let mut lost: Option<LostLeases> = None;
    scenarios.run(
        "(f2)+(g) the new active node rolls the crash back; standby ticks are silent",
        || {
            let crash = crash.as_ref().expect("(f1) crashed an issue");
            let failover = failover.as_ref().expect("(b1) failed over");
            let never_leased = rollback_on_the_new_leader_and_silent_standbys(&ha, crash, failover);
            ha.check_invariants_pending("(f2)+(g)", &[], never_leased.count);
            lost = Some(never_leased);
        },
    );
    scenarios.run("final: everything revoked, nothing left in LiteLLM", || {
        final_cleanup(&ha, lost.as_ref());
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

// === the end ==================================================================================

fn final_cleanup(ha: &Ha, lost: Option<&LostLeases>) {
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
    let never_leased = lost.map_or(0, |l| l.count);
    ha.check_invariants_pending("the final revoke", &[], never_leased);
    for role in [&ha.short_role, &ha.held_role] {
        let live = ha.live_keys(role);
        assert!(live.is_empty(), "keys left under vault-{role}-: {live:?}");
    }
    // With every lease revoked, what is left under the main role are the keys whose lease
    // OpenBao never wrote. Each was made before the kill and dies in LiteLLM when its lease
    // would have ended (10 m + the expiry buffer); the test deletes them.
    let left = ha.listed_keys(&ha.role);
    assert_eq!(
        left.len(),
        never_leased,
        "keys left under vault-{}-",
        ha.role
    );
    let indexed: HashSet<String> = ha
        .stored("litellm", "keys/")
        .into_iter()
        .map(|(token, _)| token)
        .collect();
    let limit = Duration::from_secs(10 * 60 + 5 + 2);
    for key in &left {
        let created = key.created_at.expect("LiteLLM reports created_at");
        let expires = key.expires_at.expect("a key of a lease expires");
        let killed_at = lost.expect("keys left only after the failover").killed_at;
        assert!(
            indexed.contains(&key.token),
            "{} is in the key index (its issue completed in the plugin)",
            key.key_alias
        );
        assert!(
            created <= killed_at + Duration::from_secs(1),
            "{} was made before the kill",
            key.key_alias
        );
        assert!(
            expires.duration_since(created).unwrap_or_default() <= limit,
            "{} expires in LiteLLM at most 10 m 5 s after it was made: {:?} .. {:?}",
            key.key_alias,
            created,
            expires
        );
    }
    if !left.is_empty() {
        let tokens: Vec<String> = left.iter().map(|k| k.token.clone()).collect();
        let admin = ha.admin.clone();
        block_on(async move { admin.delete_keys(&tokens).await }).expect("/key/delete");
        ha.figure(format!(
            "final: {} key(s) of cut-off issues never got a lease (OpenBao died between the \
             plugin's answer and its lease write); each expires in LiteLLM within 10 m 5 s of its \
             issue, as its lease would have; deleted by the test",
            left.len()
        ));
    }
    let total: usize = ha.leases.lock().unwrap().values().map(Vec::len).sum();
    ha.figure(format!(
        "final: {total} leases issued in all, every one revoked or expired with its key deleted; 0 live keys under the test's aliases"
    ));
}

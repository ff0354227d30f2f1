//! Upgrading the plugin while leases are outstanding, as README "Upgrading" tells an operator to:
//! the previous release (built from its tag, `tests/support/previous_release.rs`) and this one
//! are registered side by side under versioned file names, and the mount moves between them
//! with `secrets tune -plugin-version` and `plugin reload`, against a real OpenBao with
//! persistent storage and the real LiteLLM.
//!
//! What the old version wrote (config, a role, a static role and its key) reads back the same
//! under the new one; its leases renew (moving the key's expiry in LiteLLM) and revoke
//! (deleting the key) there; the new version's state survives a server restart; and a rollback
//! to the old version reads what the new one wrote (both write schema 1). Every key the test
//! makes is deleted again, also when it fails.
//!
//! On a 3-node Raft cluster, which binary each node's plugin process runs after a reload on the
//! active node: a plain one switches only that node (the standbys keep serving reads with the
//! old version), `-scope=global` switches every node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::support::bao::cluster::{Cluster, ClusterOptions, NODES};
use crate::support::bao::{BaoClient, DevServer, DevServerOptions};
use crate::support::previous_release::{self, PREVIOUS_TAG};
use crate::support::{
    KeyCleanup, PLUGIN, RealLiteLlm, assert_eventually, issue, key, lease_exists, lease_id,
    patient, plugin_binary, plugin_version, revoke_lease, revoke_role_leases, secs_from_now,
    token_id, unique, write_role,
};
use serde_json::{Value, json};
use vault_plugin_secrets_litellm::engine::client::{KeyStatus, token_hash};

/// One version of the plugin as the operator installs it: a versioned file in the plugin dir,
/// registered under the plugin's one name with `-version` and `-command`.
struct Release {
    version: String,
    file: String,
    sha256: String,
}

impl Release {
    /// Installs `binary` as `<plugin>-<version>` (through `install`, which returns its
    /// sha256) and registers it through `client`.
    #[track_caller]
    fn register(
        client: &BaoClient,
        binary: &Path,
        version: &str,
        install: impl FnOnce(&Path, &str) -> String,
    ) -> Release {
        let file = format!("{PLUGIN}-{version}");
        let sha256 = install(binary, &file);
        client
            .bao(&[
                "plugin",
                "register",
                &format!("-sha256={sha256}"),
                &format!("-version={version}"),
                &format!("-command={file}"),
                "secret",
                PLUGIN,
            ])
            .ok();
        Release {
            version: version.to_string(),
            file,
            sha256,
        }
    }

    /// The previous release and this one, registered through `client`.
    #[track_caller]
    fn both(client: &BaoClient, install: impl Fn(&Path, &str) -> String) -> (Release, Release) {
        let old = Release::register(client, &previous_release::binary(), PREVIOUS_TAG, &install);
        let new = Release::register(client, &plugin_binary(), &plugin_version(), &install);
        assert_ne!(
            old.version, new.version,
            "bump the crate version past the previous release"
        );
        assert_ne!(old.sha256, new.sha256, "two different binaries");
        (old, new)
    }
}

/// The mount `litellm/` as `secrets list -detailed` shows it.
fn mount_entry(client: &BaoClient) -> Value {
    client
        .bao(&["secrets", "list", "-detailed", "-format=json"])
        .ok()
        .json()["litellm/"]
        .clone()
}

/// The version the plugin serving `litellm/` on `client`'s node reports itself (its OpenAPI
/// document's `info.version`), `None` while it does not answer.
fn answering_version(client: &BaoClient) -> Option<String> {
    let (status, body) = client.http("GET", "litellm/?help=1", None);
    (status == 200)
        .then(|| {
            body["openapi"]["info"]["version"]
                .as_str()
                .map(String::from)
        })
        .flatten()
}

/// File names (in the plugin dir) of the processes `pids`.
fn executables(pids: Vec<u32>) -> BTreeSet<String> {
    pids.into_iter()
        .filter_map(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).ok())
        .filter_map(|exe| exe.file_name().map(|f| f.to_string_lossy().into_owned()))
        .collect()
}

/// Whether the node of `client`, whose plugin processes are `pids`, runs `release` at
/// `litellm/`: the mount table says so, the plugin answers with that version, and the only
/// plugin process is that release's file.
fn runs(client: &BaoClient, pids: Vec<u32>, release: &Release) -> bool {
    let entry = mount_entry(client);
    entry["running_plugin_version"] == release.version.as_str()
        && entry["running_sha256"] == release.sha256.as_str()
        && answering_version(client).as_deref() == Some(release.version.as_str())
        && executables(pids) == BTreeSet::from([release.file.clone()])
}

/// Waits until the dev server runs `release` at `litellm/`.
#[track_caller]
fn wait_running(server: &DevServer, release: &Release) {
    server.wait_for(
        patient(Duration::from_secs(30)),
        &format!("litellm/ running {}", release.version),
        || runs(&server.client(), server.plugin_pids(), release).then_some(()),
    );
}

/// `secrets tune -plugin-version` through `client`: the mount is set to `to`, and runs what it
/// ran until a reload.
#[track_caller]
fn tune(client: &BaoClient, to: &Release) {
    let before = mount_entry(client);
    client
        .bao(&[
            "secrets",
            "tune",
            &format!("-plugin-version={}", to.version),
            "litellm/",
        ])
        .ok();
    let tuned = mount_entry(client);
    assert_eq!(tuned["plugin_version"], to.version.as_str(), "{tuned}");
    assert_eq!(
        tuned["running_plugin_version"], before["running_plugin_version"],
        "a tune alone does not switch the running plugin: {tuned}"
    );
}

/// `plugin reload -plugin=<name>` (and `extra` flags) through `client`.
#[track_caller]
fn reload(client: &BaoClient, extra: &[&str]) {
    let plugin = format!("-plugin={PLUGIN}");
    let mut args = vec!["plugin", "reload", plugin.as_str()];
    args.extend_from_slice(extra);
    let out = client.bao(&args).ok();
    eprintln!("$ bao {}\n{}", args.join(" "), out.stdout.trim());
}

/// The operator's upgrade (or rollback) of a single server: tune, reload, and wait for it.
#[track_caller]
fn switch_to(server: &DevServer, to: &Release) {
    tune(&server.client(), to);
    reload(&server.client(), &[]);
    wait_running(server, to);
}

/// `read -format=json <path>`'s data.
#[track_caller]
fn read(server: &DevServer, path: &str) -> Value {
    server.bao(&["read", "-format=json", path]).ok().json()["data"].clone()
}

/// The reads an upgrade must not change, by path. `static-creds` without its countdown (`ttl`)
/// and without the key, which must hash to its `token_id` (so a changed key shows as a changed
/// `token_id`, and a failure never prints a key).
#[track_caller]
fn stored_state(server: &DevServer, roles: &[&str], static_role: &str) -> BTreeMap<String, Value> {
    let mut state = BTreeMap::new();
    state.insert("litellm/config".to_string(), read(server, "litellm/config"));
    for role in roles {
        let path = format!("litellm/roles/{role}");
        state.insert(path.clone(), read(server, &path));
    }
    let path = format!("litellm/static-roles/{static_role}");
    state.insert(path.clone(), read(server, &path));
    let path = format!("litellm/static-creds/{static_role}");
    let mut creds = read(server, &path);
    let key = creds
        .as_object_mut()
        .and_then(|c| c.remove("key"))
        .expect("static-creds has a key");
    assert_eq!(
        Some(token_hash(key.as_str().unwrap_or_default()).as_str()),
        creds["token_id"].as_str(),
        "the static key hashes to its token_id"
    );
    if let Some(creds) = creds.as_object_mut() {
        creds.remove("ttl");
    }
    state.insert(path, creds);
    state
}

/// Runs `tidy` and checks it deletes none of this test's keys and keeps the `leased` ones: the
/// key index one version wrote is read by the other, and each owns the other's keys (v0.1.0
/// stamps no mount UUID; v0.2.0 owns such keys by their path).
#[track_caller]
fn tidy_keeps(server: &DevServer, leased: usize) {
    let report = server
        .bao(&["write", "-format=json", "-f", "litellm/tidy"])
        .ok()
        .json()["data"]
        .clone();
    assert_eq!(report["deleted"], json!([]), "{report}");
    assert_eq!(report["kept"], leased, "{report}");
}

/// The status LiteLLM answers `GET /v1/models` with for `key`.
async fn status_for(litellm: &RealLiteLlm, key: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/v1/models", litellm.url))
        .bearer_auth(key)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// When LiteLLM says the key with hash `token` expires.
async fn expires_at(litellm: &RealLiteLlm, token: &str) -> SystemTime {
    litellm
        .admin()
        .info(token)
        .await
        .expect("key info")
        .expect("LiteLLM knows the key")
        .expires_at
        .expect("the key has an expiry")
}

/// Renews `creds`' lease by 10 minutes and checks the lease and the key's expiry in LiteLLM
/// follow.
async fn renew_for_ten_minutes(server: &DevServer, litellm: &RealLiteLlm, creds: &Value) {
    let renewed = server
        .bao(&[
            "lease",
            "renew",
            "-format=json",
            "-increment=10m",
            &lease_id(creds),
        ])
        .ok()
        .json();
    assert_eq!(renewed["lease_duration"], 600, "{renewed}");
    let expires = secs_from_now(expires_at(litellm, &token_id(creds)).await);
    assert!(
        (590.0..=610.0).contains(&expires),
        "the renewed key expires in {expires:.0}s in LiteLLM, not ~600s"
    );
}

/// Live keys in LiteLLM whose alias contains `stem`.
async fn live_keys(litellm: &RealLiteLlm, stem: &str) -> usize {
    litellm
        .admin()
        .list_aliases(stem)
        .await
        .expect("listing keys")
        .len()
}

#[tokio::test]
async fn leases_and_state_of_the_previous_release_survive_upgrade_restart_and_rollback() {
    let litellm = RealLiteLlm::from_env();
    let started = Instant::now();
    previous_release::binary();
    eprintln!(
        "previous release {PREVIOUS_TAG} ready after {:.1?}",
        started.elapsed()
    );
    let mut server = DevServer::start_with(DevServerOptions::default().persistent());
    let (old, new) = Release::both(&server.client(), |binary, file| {
        server.install_plugin_binary(binary, file)
    });
    server.enable_with(
        PLUGIN,
        "litellm",
        &[&format!("-plugin-version={}", old.version)],
    );
    wait_running(&server, &old);

    let role = unique("upg");
    let later_role = unique("upg2");
    let static_role = unique("upgst");
    let mut cleanup = KeyCleanup::new(&litellm);
    cleanup.alias_stems = [&role, &later_role, &static_role]
        .map(|name| format!("vault-{name}"))
        .to_vec();

    // The previous release writes config, a role and a static role, and issues two leases.
    server.http_ok(
        "POST",
        "litellm/config",
        Some(&json!({ "base_url": litellm.url, "master_key": litellm.master_key })),
    );
    write_role(
        &server,
        &role,
        &[
            "models=fake-gpt",
            "max_budget=2.5",
            "rpm_limit=9",
            "metadata=team=upgrade",
            "ttl=2m",
            "max_ttl=30m",
        ],
    );
    let static_path = format!("litellm/static-roles/{static_role}");
    server
        .bao(&[
            "write",
            &static_path,
            "models=fake-gpt",
            "rotation_period=1h",
            "grace_period=10s",
        ])
        .ok();
    let first = issue(&server, &role);
    let second = issue(&server, &role);
    for creds in [&first, &second] {
        assert_eq!(creds["lease_duration"], 120, "{}", lease_id(creds));
        assert_eq!(status_for(&litellm, &key(creds)).await, 200);
    }
    let written_by_old = stored_state(&server, &[&role], &static_role);
    // What the comparisons below hold is the real thing, not empty reads.
    assert_eq!(
        written_by_old["litellm/config"]["base_url"],
        litellm.url.as_str()
    );
    let written_role = &written_by_old[&format!("litellm/roles/{role}")];
    assert_eq!(
        (
            &written_role["max_budget"],
            &written_role["rpm_limit"],
            &written_role["ttl"]
        ),
        (&json!(2.5), &json!(9), &json!(120)),
        "{written_role}"
    );
    assert_eq!(
        written_by_old[&format!("litellm/static-creds/{static_role}")]["key_alias"],
        format!("vault-{static_role}").as_str()
    );
    assert_eq!(live_keys(&litellm, &format!("vault-{role}")).await, 2);

    // Upgrade.
    switch_to(&server, &new);
    assert_eq!(
        stored_state(&server, &[&role], &static_role),
        written_by_old,
        "what the previous release wrote reads back unchanged"
    );
    for creds in [&first, &second] {
        assert_eq!(
            status_for(&litellm, &key(creds)).await,
            200,
            "a key of the previous release works after the upgrade"
        );
    }
    tidy_keeps(&server, 2);
    renew_for_ten_minutes(&server, &litellm, &first).await;
    renew_for_ten_minutes(&server, &litellm, &second).await;
    revoke_lease(&server, &lease_id(&first));
    assert!(!lease_exists(&server, &lease_id(&first)));
    assert_eventually!(
        async status_for(&litellm, &key(&first)).await == 401,
        "the revoked key of the previous release still works"
    );
    let info = litellm.admin().info(&token_id(&first)).await.unwrap();
    assert!(
        info.is_none_or(|i| i.status == KeyStatus::Deleted),
        "revoking deletes the key in LiteLLM"
    );
    assert_eq!(status_for(&litellm, &key(&second)).await, 200);

    // The new version issues, rotates and writes.
    let third = issue(&server, &role);
    assert_eq!(status_for(&litellm, &key(&third)).await, 200);
    write_role(&server, &later_role, &["models=fake-gpt", "ttl=5m"]);
    let before_rotation = read(&server, &format!("litellm/static-creds/{static_role}"));
    server
        .bao(&["write", "-f", &format!("litellm/rotate-role/{static_role}")])
        .ok();
    let rotated = read(&server, &format!("litellm/static-creds/{static_role}"));
    assert_ne!(rotated["token_id"], before_rotation["token_id"]);
    assert_eq!(
        status_for(&litellm, rotated["key"].as_str().unwrap_or_default()).await,
        200,
        "the rotated static key works"
    );
    let written_by_new = stored_state(&server, &[&role, &later_role], &static_role);

    // A restart keeps the new version, its state and the leases.
    server.restart();
    wait_running(&server, &new);
    assert_eq!(
        stored_state(&server, &[&role, &later_role], &static_role),
        written_by_new
    );
    for creds in [&second, &third] {
        assert!(lease_exists(&server, &lease_id(creds)), "lease kept");
    }
    renew_for_ten_minutes(&server, &litellm, &second).await;

    // Rollback: the previous release reads what the new one wrote, and serves its leases.
    switch_to(&server, &old);
    assert_eq!(
        stored_state(&server, &[&role, &later_role], &static_role),
        written_by_new,
        "the previous release reads what the new one wrote (same schema)"
    );
    renew_for_ten_minutes(&server, &litellm, &third).await;
    let fourth = issue(&server, &later_role);
    assert_eq!(status_for(&litellm, &key(&fourth)).await, 200);
    tidy_keeps(&server, 3);

    // Clean up through Vault: every key of this test goes.
    revoke_role_leases(&server, &role);
    revoke_role_leases(&server, &later_role);
    for creds in [&second, &third, &fourth] {
        assert!(!lease_exists(&server, &lease_id(creds)));
        assert_eventually!(
            async status_for(&litellm, &key(creds)).await == 401,
            "a key outlived the revoke of its lease"
        );
    }
    server.bao(&["delete", &static_path]).ok();
    for name in [&role, &later_role, &static_role] {
        assert_eq!(
            live_keys(&litellm, &format!("vault-{name}")).await,
            0,
            "keys of vault-{name} left in LiteLLM"
        );
    }
}

#[test]
fn on_a_raft_cluster_a_reload_switches_only_its_own_node_unless_it_is_global() {
    let cluster = Cluster::start(ClusterOptions::default());
    let leader = cluster.active();
    let active = cluster.client(leader);
    let (old, new) = Release::both(&active, |binary, file| {
        cluster.install_plugin_binary(binary, file)
    });
    active
        .bao(&[
            "secrets",
            "enable",
            "-path=litellm",
            &format!("-plugin-version={}", old.version),
            PLUGIN,
        ])
        .ok();
    let node_runs =
        |i: usize, release: &Release| runs(&cluster.client(i), cluster.plugin_pids(i), release);
    let wait_all = |release: &Release, what: &str| {
        cluster.wait_for(patient(Duration::from_secs(30)), what, || {
            (0..NODES).all(|i| node_runs(i, release)).then_some(())
        });
    };
    wait_all(&old, "every node running the previous release");

    tune(&active, &new);
    reload(&active, &[]);
    cluster.wait_for(
        patient(Duration::from_secs(30)),
        "the active node running the new release",
        || node_runs(leader, &new).then_some(()),
    );
    for standby in cluster.standbys() {
        assert!(
            node_runs(standby, &old),
            "a local reload on the active node also switched standby {standby}"
        );
    }

    reload(&active, &["-scope=global"]);
    wait_all(
        &new,
        "every node running the new release after a global reload",
    );
}

//! Static roles end to end: a real OpenBao launches the plugin, which keeps one key per static
//! role in the real LiteLLM proxy and rotates it; a real `bao agent` renders it; the plugin is
//! killed in the middle of a rotation (against the fake, slowed) and OpenBao restarted with a
//! rotation overdue.
//!
//! Every key the tests make lives under a unique alias and is deleted again, also when a test
//! fails (the static role's delete, or the guard's sweep by alias).

use std::future::Future;
use std::time::{Duration, Instant};

use crate::agent::{AgentDir, RENDERED, spawn_bao};
use crate::support::bao::{DevServer, DevServerOptions, OwnedProcess};
use crate::support::fake_litellm::{FakeLiteLlm, Fault, Op};
use crate::support::{
    KeyCleanup, RealLiteLlm, create_key, patient, server_for, server_with, unique,
};
use serde_json::Value;
use vault_plugin_secrets_litellm::engine::client::KeyStatus;

/// Polls `f` every second until it is true, for at most `base` (patience-scaled).
async fn wait_until<F, Fut>(base: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + patient(base);
    while !f().await {
        assert!(Instant::now() < deadline, "not within {base:?}: {what}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The status LiteLLM answers `GET /v1/models` with for `key`.
async fn status_for(url: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{url}/v1/models"))
        .bearer_auth(key)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// The same, `None` while it fails (a plugin being restarted, a server coming back).
fn try_static_creds(server: &DevServer, name: &str) -> Option<Value> {
    let (status, body) = server.http("GET", &format!("litellm/static-creds/{name}"), None);
    (status == 200).then(|| body["data"].clone())
}

fn static_creds(server: &DevServer, name: &str) -> Value {
    let read = server
        .bao(&[
            "read",
            "-format=json",
            &format!("litellm/static-creds/{name}"),
        ])
        .ok()
        .json();
    assert_eq!(read["lease_id"], "", "static creds have no lease");
    read["data"].clone()
}

/// A running `bao agent` (token-file auto-auth) with a template of `static-creds/<name>`;
/// stopped by PID on drop, before its directory goes.
struct Agent {
    _process: OwnedProcess,
    dir: AgentDir,
}

impl Agent {
    fn start(server: &DevServer, name: &str) -> Agent {
        let dir = AgentDir::new();
        dir.write_private("token", &server.token());
        let template = format!(
            r#"{{{{ with secret \"litellm/static-creds/{name}\" }}}}{{{{ .Data.key }}}}{{{{ end }}}}"#
        );
        dir.write_private(
            "agent.hcl",
            &format!(
                r#"auto_auth {{
  method "token_file" {{
    config = {{
      token_file_path = "token"
    }}
  }}
}}
template {{
  contents    = "{template}"
  destination = "{RENDERED}"
}}
"#
            ),
        );
        let child = spawn_bao(&dir, &["agent", "-config=agent.hcl"], &server.addr());
        Agent {
            _process: OwnedProcess::new(child),
            dir,
        }
    }

    fn rendered(&self) -> Option<String> {
        Some(self.dir.rendered()).filter(|s| !s.is_empty())
    }
}

#[tokio::test]
async fn a_static_key_is_stable_rotates_under_its_alias_and_the_old_one_dies_after_its_grace() {
    let litellm = RealLiteLlm::from_env();
    let server = server_with(&litellm, DevServerOptions::default());
    let name = unique("st");
    let alias = format!("vault-{name}");
    // Every key under the alias (and its rotation and grace aliases) goes, even on a failure.
    let mut sweep = KeyCleanup::new(&litellm);
    sweep.alias_stems.push(alias.clone());
    let role_path = format!("litellm/static-roles/{name}");
    server
        .bao(&[
            "write",
            &role_path,
            "models=fake-gpt",
            "rotation_period=1m",
            "grace_period=10s",
        ])
        .ok();
    let agent = Agent::start(&server, &name);

    let first = static_creds(&server, &name);
    assert_eq!(
        static_creds(&server, &name)["key"],
        first["key"],
        "two reads, one key"
    );
    assert_eq!(first["key_alias"], alias);
    assert_eq!(first["rotation_period"], 60);
    assert!(first["ttl"].as_u64().is_some_and(|t| t <= 60));
    let k1 = first["key"].as_str().unwrap().to_string();
    assert_eq!(status_for(&litellm.url, &k1).await, 200, "the key works");
    let listed = litellm.admin().list_aliases(&alias).await.unwrap();
    assert_eq!(listed.len(), 1, "one key under the alias: {listed:?}");

    // The agent renders it.
    wait_until(Duration::from_secs(20), "the agent renders the key", || {
        let got = agent.rendered();
        let k1 = k1.clone();
        async move { got.as_deref() == Some(k1.as_str()) }
    })
    .await;

    // rotate-role: a new key under the same alias; the old one works for the grace period.
    server
        .bao(&["write", "-f", &format!("litellm/rotate-role/{name}")])
        .ok();
    let second = static_creds(&server, &name);
    let k2 = second["key"].as_str().unwrap().to_string();
    assert_ne!(k2, k1);
    assert_eq!(second["key_alias"], alias);
    assert_ne!(second["last_vault_rotation"], first["last_vault_rotation"]);
    assert_eq!(status_for(&litellm.url, &k2).await, 200);
    assert_eq!(
        status_for(&litellm.url, &k1).await,
        200,
        "in its grace period"
    );
    let holders = litellm.admin().list_aliases(&alias).await.unwrap();
    let stable: Vec<_> = holders.iter().filter(|k| k.key_alias == alias).collect();
    assert_eq!(stable.len(), 1, "{holders:?}");
    assert_eq!(stable[0].token, second["token_id"]);
    let old_token = first["token_id"].as_str().unwrap().to_string();
    wait_until(
        Duration::from_secs(30),
        "the old key is refused after its grace",
        || {
            let (url, k1) = (litellm.url.clone(), k1.clone());
            async move { status_for(&url, &k1).await == 401 }
        },
    )
    .await;
    let info = litellm.admin().info(&old_token).await.unwrap();
    assert!(
        info.is_none_or(|i| i.status == KeyStatus::Deleted),
        "deleted, not just expired"
    );
    // ttl counts down; last_vault_rotation moves only at rotations.
    let later = static_creds(&server, &name);
    assert_eq!(later["last_vault_rotation"], second["last_vault_rotation"]);
    assert!(later["ttl"].as_u64() < second["ttl"].as_u64());

    // rotation_period=1m rotates by itself, and the agent renders the new key without a restart.
    wait_until(Duration::from_secs(90), "a scheduled rotation", || {
        let key = try_static_creds(&server, &name).map(|d| d["key"].clone());
        let k2 = k2.clone();
        async move { key.is_some_and(|k| k.is_string() && k.as_str() != Some(k2.as_str())) }
    })
    .await;
    let third = static_creds(&server, &name);
    let k3 = third["key"].as_str().unwrap().to_string();
    wait_until(
        Duration::from_secs(75),
        "the agent renders the rotated key",
        || {
            let got = agent.rendered();
            let k3 = k3.clone();
            async move { got.as_deref() == Some(k3.as_str()) }
        },
    )
    .await;
    assert_eq!(status_for(&litellm.url, &k3).await, 200);

    // Delete removes the role and both keys.
    server.bao(&["delete", &role_path]).ok();
    assert_eq!(status_for(&litellm.url, &k3).await, 401);
    assert_eq!(status_for(&litellm.url, &k2).await, 401);
    assert!(
        litellm
            .admin()
            .list_aliases(&alias)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn adopt_takes_over_an_operators_key_which_works_until_the_grace_period_ends() {
    let litellm = RealLiteLlm::from_env();
    let server = server_with(&litellm, DevServerOptions::default());
    let name = unique("adopt");
    let alias = format!("vault-{name}");
    // Every key under the alias (and its rotation and grace aliases) goes, even on a failure.
    let mut sweep = KeyCleanup::new(&litellm);
    sweep.alias_stems.push(alias.clone());
    let theirs = create_key(&litellm.admin(), &alias, "ops/", "manual", "30d").await;
    let role_path = format!("litellm/static-roles/{name}");
    let refused = server
        .bao(&["write", &role_path, "rotation_period=1h"])
        .err()
        .combined();
    assert!(refused.contains("adopt=true"), "{refused}");
    server
        .bao(&[
            "write",
            &role_path,
            "rotation_period=1h",
            "grace_period=10s",
            "adopt=true",
        ])
        .ok();
    let ours = static_creds(&server, &name);
    assert_ne!(ours["token_id"].as_str(), Some(theirs.token.as_str()));
    let holders = litellm.admin().list_aliases(&alias).await.unwrap();
    assert_eq!(
        holders
            .iter()
            .find(|k| k.key_alias == alias)
            .map(|k| &k.token),
        ours["token_id"].as_str().map(String::from).as_ref(),
        "Vault's key carries the alias"
    );
    assert_eq!(
        status_for(&litellm.url, &theirs.key).await,
        200,
        "in its grace period"
    );
    wait_until(
        Duration::from_secs(30),
        "the adopted key is refused",
        || {
            let (url, key) = (litellm.url.clone(), theirs.key.clone());
            async move { status_for(&url, &key).await == 401 }
        },
    )
    .await;
    let key = ours["key"].as_str().unwrap();
    assert_eq!(status_for(&litellm.url, key).await, 200);
    server.bao(&["delete", &role_path]).ok();
}

#[tokio::test]
async fn a_plugin_killed_mid_rotation_and_a_restart_with_a_rotation_overdue_end_with_one_key() {
    let fake = FakeLiteLlm::start("sk-static-e2e-master-0123456789").unwrap();
    let mut server = server_for(
        &fake.url(),
        fake.master_key(),
        DevServerOptions::default().persistent(),
    );
    let name = "crash";
    let alias = "vault-crash";
    server
        .bao(&[
            "write",
            "litellm/static-roles/crash",
            "rotation_period=1m",
            "grace_period=5s",
        ])
        .ok();
    let first = static_creds(&server, name);
    // The hand-over answers slowly: the kill lands after /key/generate, before the keys are
    // stored.
    fake.set_fault(Op::Update, Fault::Delay(Duration::from_secs(30)));
    let rotating = {
        let client = server.client();
        std::thread::spawn(move || client.http("POST", "/v1/litellm/rotate-role/crash", None))
    };
    let generated = fake.requests(Op::Generate);
    wait_until(
        Duration::from_secs(10),
        "the successor is generated",
        || {
            let n = fake.requests(Op::Generate);
            async move { n > generated }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !server.kill_plugins().is_empty(),
        "a plugin process to kill"
    );
    fake.clear_faults();
    let _ = rotating.join();
    // OpenBao restarts the plugin (for the next request, or retrying this one); its first tick
    // finishes the interrupted rotation.
    let live = |fake: &FakeLiteLlm| {
        fake.live_keys()
            .into_iter()
            .filter(|k| k.key_alias.as_deref().is_some_and(|a| a.starts_with(alias)))
            .map(|k| (k.key_alias.unwrap_or_default(), k.token))
            .collect::<Vec<_>>()
    };
    wait_until(
        Duration::from_secs(20),
        "the interrupted rotation is finished",
        || {
            let current = try_static_creds(&server, name).unwrap_or_default();
            let keys = live(&fake);
            let first_token = first["token_id"].clone();
            async move {
                current["token_id"].is_string()
                    && current["token_id"] != first_token
                    && keys.iter().filter(|(a, _)| a == alias).count() == 1
                    && keys.iter().any(|(a, t)| {
                        a == alias && Some(t.as_str()) == current["token_id"].as_str()
                    })
            }
        },
    )
    .await;
    wait_until(
        Duration::from_secs(20),
        "the previous key deleted after its grace",
        || {
            let n = live(&fake).len();
            async move { n == 1 }
        },
    )
    .await;

    // OpenBao stopped across the due time: the rotation happens soon after it is back.
    let before = static_creds(&server, name);
    let due_in = before["ttl"].as_u64().unwrap() + 2;
    server.restart_after(Duration::from_secs(due_in));
    wait_until(Duration::from_secs(20), "the overdue rotation", || {
        let current = try_static_creds(&server, name).unwrap_or_default();
        let old = before["token_id"].clone();
        async move { current["token_id"].is_string() && current["token_id"] != old }
    })
    .await;
    let keys = live(&fake);
    assert_eq!(
        keys.iter().filter(|(a, _)| a == alias).count(),
        1,
        "{keys:?}"
    );
    server.bao(&["delete", "litellm/static-roles/crash"]).ok();
    assert!(live(&fake).is_empty(), "role delete leaves no key");
}

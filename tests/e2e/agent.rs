//! `bao agent`, end to end: the agent of the same `bao` binary authenticates with AppRole (a
//! token with the README's application policy) and renders `litellm/creds/research` through
//! a template to a file, with the agent configuration the README shows
//! (`tests/e2e/agent/agent.hcl`, used verbatim; the test only passes `-address`). With short
//! leases (ttl 10 s, max_ttl 30 s) it shows, against the fake LiteLLM: the rendered key is live,
//! the agent renews its lease (the lease's end and the key's expiry in LiteLLM move forward),
//! at max_ttl it renders a new key and the old one is deleted when its lease ends, and once
//! the agent is stopped (by its PID) no key outlives its lease.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::policies::{APP_ROLE, Setup};
use crate::support::assert_eventually;
use crate::support::bao::{BaoClient, OwnedProcess, bao_bin};
use vault_plugin_secrets_litellm::engine::client::token_hash;

/// The agent configuration the README shows.
pub(crate) const AGENT_CONFIG: &str = include_str!("agent/agent.hcl");

/// The file the template renders, relative to the agent's directory.
pub(crate) const RENDERED: &str = "litellm-key";

/// The working directory of an agent or proxy: its config, the AppRole credentials, the
/// rendered key and its log. Removed on drop unless `BAO_TEST_KEEP` is set.
pub(crate) struct AgentDir(PathBuf);

impl AgentDir {
    pub(crate) fn new() -> AgentDir {
        let dir =
            std::env::temp_dir().join(format!("bao-agent-test-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir(&dir).expect("agent dir");
        AgentDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `name` with mode 0600 (the AppRole credentials, the config).
    pub(crate) fn write_private(&self, name: &str, contents: &str) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(self.0.join(name))
            .unwrap_or_else(|e| panic!("write {name}: {e}"));
        file.write_all(contents.as_bytes()).expect("write");
    }

    /// The rendered key, empty until the first render.
    pub(crate) fn rendered(&self) -> String {
        fs::read_to_string(self.0.join(RENDERED))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    /// The agent's log, for failure messages.
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.0.join("agent.log")).unwrap_or_default()
    }
}

impl Drop for AgentDir {
    fn drop(&mut self) {
        if std::env::var_os("BAO_TEST_KEEP").is_some_and(|v| !v.is_empty() && v != "0") {
            eprintln!("BAO_TEST_KEEP: keeping {}", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// The role's leases: id and the end OpenBao reports for each.
fn leases(root: &BaoClient) -> Vec<(String, SystemTime)> {
    let prefix = format!("litellm/creds/{APP_ROLE}/");
    let (status, listed) = root.http("LIST", &format!("sys/leases/lookup/{prefix}"), None);
    if status == 404 {
        return Vec::new();
    }
    assert_eq!(status, 200, "{listed}");
    listed["data"]["keys"]
        .as_array()
        .expect("lease ids")
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|id| {
            let lease = format!("{prefix}{id}");
            // A lease can end between the list and the lookup.
            let (status, info) = root.http(
                "PUT",
                "sys/leases/lookup",
                Some(&json!({ "lease_id": lease })),
            );
            (status == 200).then(|| {
                let end = info["data"]["expire_time"].as_str().expect("expire_time");
                let end = humantime::parse_rfc3339_weak(end)
                    .unwrap_or_else(|e| panic!("expire_time {end}: {e}"));
                (lease, end)
            })
        })
        .collect()
}

/// AppRole `litellm-agent` with the application policy, and its role-id and secret-id files
/// in `dir`, as the README's agent and proxy configurations read them. Its token outlives
/// the test: a re-authentication would make an agent fetch a new key before max_ttl.
pub(crate) fn approle_credentials(root: &BaoClient, dir: &AgentDir) {
    root.bao(&["auth", "enable", "approle"]).ok();
    root.bao(&[
        "write",
        "auth/approle/role/litellm-agent",
        "token_policies=litellm-application",
        "token_ttl=10m",
        "token_max_ttl=1h",
    ])
    .ok();
    let role_id = root
        .bao(&[
            "read",
            "-field=role_id",
            "auth/approle/role/litellm-agent/role-id",
        ])
        .ok()
        .stdout;
    let secret_id = root
        .bao(&[
            "write",
            "-f",
            "-field=secret_id",
            "auth/approle/role/litellm-agent/secret-id",
        ])
        .ok()
        .stdout;
    dir.write_private("role-id", role_id.trim());
    dir.write_private("secret-id", secret_id.trim());
}

/// `bao <args> -address=<server>` in `dir`, logging to `dir/agent.log`, with no token or
/// address of the test's own environment.
pub(crate) fn spawn_bao(dir: &AgentDir, args: &[&str], server: &str) -> std::process::Child {
    let log = fs::File::create(dir.path().join("agent.log")).expect("agent log");
    Command::new(bao_bin())
        .args(args)
        .arg(format!("-address={server}"))
        .current_dir(dir.path())
        .env_remove("BAO_TOKEN")
        .env_remove("VAULT_TOKEN")
        .env_remove("BAO_ADDR")
        .env_remove("VAULT_ADDR")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log fd"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start bao {args:?}: {e}"))
}

/// The README's set-up with the application's role on short leases (ttl 10 s, max_ttl 30 s),
/// and a working directory holding the AppRole's credentials.
pub(crate) async fn short_leases_with_approle() -> (Setup, AgentDir) {
    let s = Setup::start().await;
    s.root
        .bao(&[
            "write",
            &format!("litellm/roles/{APP_ROLE}"),
            "ttl=10s",
            "max_ttl=30s",
        ])
        .ok();
    let dir = AgentDir::new();
    approle_credentials(&s.root, &dir);
    (s, dir)
}

#[tokio::test]
async fn agent_renders_a_live_key_renews_it_and_replaces_it_at_max_ttl() {
    let (s, dir) = short_leases_with_approle().await;
    dir.write_private("agent.hcl", AGENT_CONFIG);

    let child = spawn_bao(&dir, &["agent", "-config=agent.hcl"], &s.server.addr());
    let mut agent = OwnedProcess::new(child);
    let pid = agent.pid();

    // The first render: a key that is live in LiteLLM, under a lease of the role.
    assert_eventually!(
        !dir.rendered().is_empty(),
        within = Duration::from_secs(20),
        "the agent renders the key\n{}",
        dir.log()
    );
    let first = dir.rendered();
    assert!(first.starts_with("sk-"), "the file holds the key alone");
    let first_token = token_hash(&first);
    let first_record = s
        .fake
        .get(&first_token)
        .expect("the rendered key is live in LiteLLM");
    let first_expiry = first_record.expires.expect("the key expires");
    assert!(
        first_record
            .key_alias
            .as_deref()
            .is_some_and(|a| a.starts_with(&format!("vault-{APP_ROLE}-"))),
        "{:?}",
        first_record.key_alias
    );
    let initial = leases(&s.root);
    assert!(!initial.is_empty(), "the key's lease exists");

    // Renewal: before the 10 s lease ends, the agent renews it. OpenBao moves the lease's end
    // and the plugin the key's expiry in LiteLLM; the file keeps the same key.
    assert_eventually!(
        s.fake
            .get(&first_token)
            .and_then(|k| k.expires)
            .is_some_and(|e| e
                .duration_since(first_expiry)
                .is_ok_and(|d| d >= Duration::from_secs(2)))
            && leases(&s.root).iter().any(|(id, end)| {
                initial.iter().any(|(old, old_end)| {
                    old == id
                        && end
                            .duration_since(*old_end)
                            .is_ok_and(|d| d >= Duration::from_secs(2))
                })
            }),
        within = Duration::from_secs(20),
        "the agent renews the lease\n{}",
        dir.log()
    );
    assert_eq!(dir.rendered(), first, "a renewal keeps the key");

    // max_ttl: the lease cannot be renewed past 30 s after issue, so the agent renders a new
    // key, and the old one is deleted once its lease ends.
    assert_eventually!(
        {
            let now = dir.rendered();
            !now.is_empty() && now != first
        },
        within = Duration::from_secs(40),
        "the agent renders a new key at max_ttl\n{}",
        dir.log()
    );
    let second = dir.rendered();
    let age = SystemTime::now()
        .duration_since(first_record.created_at)
        .unwrap_or_default();
    assert!(
        age >= Duration::from_secs(15),
        "the first key was replaced after {age:?}: renewed, not re-fetched"
    );
    let second_token = token_hash(&second);
    assert!(s.fake.get(&second_token).is_some(), "the new key is live");
    assert_eventually!(
        s.fake.get(&first_token).is_none(),
        within = Duration::from_secs(20),
        "the first key is deleted when its lease ends"
    );

    // Stopped by its PID: the leases it leaves end by max_ttl at the latest, and no key
    // outlives them (each key's expiry in LiteLLM is its lease's end plus 5 s at most, and
    // OpenBao deletes it when the lease ends).
    let status = agent.stop().expect("the agent was running");
    assert!(agent.exited(), "agent {pid} stopped ({status})");
    let left = leases(&s.root);
    assert!(
        !left.is_empty(),
        "stopping the agent revokes nothing: its leases run out"
    );
    let last_end = left.iter().map(|(_, end)| *end).max();
    let live: Vec<_> = s
        .fake
        .live_keys()
        .into_iter()
        .filter(|k| k.metadata.get("vault_role").and_then(Value::as_str) == Some(APP_ROLE))
        .collect();
    for key in &live {
        let expires = key.expires.expect("every key expires");
        // No lease left: the key's revocation is under way (checked below).
        if let Some(end) = last_end {
            assert!(
                expires <= end + Duration::from_secs(6),
                "key {:?} expires at {expires:?}, after its lease ({end:?})",
                key.key_alias
            );
        }
    }
    assert_eventually!(
        leases(&s.root).is_empty()
            && s.fake.live_keys().iter().all(|k| k
                .metadata
                .get("vault_role")
                .and_then(Value::as_str)
                != Some(APP_ROLE)),
        within = Duration::from_secs(40),
        "every lease ends and its key is deleted"
    );
    let log = dir.log();
    for key in [&first, &second] {
        assert!(!log.contains(key.as_str()), "the agent's log shows no key");
    }
}

#[test]
fn the_readme_shows_this_agent_config() {
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(AGENT_CONFIG.trim_end()),
        "README.md's \"Vault Agent / bao agent\" section must show tests/e2e/agent/agent.hcl verbatim"
    );
}

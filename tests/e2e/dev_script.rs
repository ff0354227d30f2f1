//! `scripts/dev.sh --keep`, the main job, in a terminal that is closed: the hangup must end it
//! like Ctrl-C, revoking the lease and stopping what it started, LiteLLM included.
//!
//! The terminal is a real pseudo-terminal (util-linux `script`); killing `script` closes it,
//! so the kernel sends the script SIGHUP and every later write to it fails. The copy of
//! dev.sh runs beside a stand-in `run-litellm.sh` that hands out the real proxy and, on
//! `stop`, logs (as the real one does, under `set -e`) and leaves a marker: only a cleanup
//! whose output no longer goes to the dead terminal gets that far.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::bao::{OwnedProcess, bao_bin, repo_root};
use crate::support::{RealLiteLlm, plugin_binary};

/// `run-litellm.sh` for the copy: `ensure` names the real proxy as if it had started it.
const RUN_LITELLM_STANDIN: &str = r#"#!/usr/bin/env bash
set -euo pipefail
case "$1" in
  ensure)
    printf 'export LITELLM_BASE_URL=%q\nexport LITELLM_MASTER_KEY=%q\nLITELLM_ENSURE_STARTED=1\n' \
      "$STANDIN_URL" "$STANDIN_MASTER_KEY" ;;
  stop)
    printf '[run-litellm] stopping the proxy\n' >&2
    touch "$STANDIN_STOPPED" ;;
  *) exit 2 ;;
esac
"#;

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The value after `label` on the banner line that has it.
fn banner_value(banner: &str, label: &str) -> String {
    banner
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in the banner:\n{banner}"))
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_closed_terminal_stops_the_main_job_and_what_it_started() {
    let litellm = RealLiteLlm::from_env();
    let dir = tempfile_dir();
    let scripts = dir.join("scripts");
    fs::create_dir_all(&scripts).unwrap();
    fs::copy(repo_root().join("scripts/dev.sh"), scripts.join("dev.sh")).unwrap();
    fs::copy(repo_root().join("Cargo.toml"), dir.join("Cargo.toml")).unwrap();
    let standin = scripts.join("run-litellm.sh");
    fs::write(&standin, RUN_LITELLM_STANDIN).unwrap();
    fs::set_permissions(&standin, fs::Permissions::from_mode(0o755)).unwrap();
    let stopped = dir.join("litellm-stopped");
    let typescript = dir.join("terminal.log");

    let command = format!("bash {} --keep", scripts.join("dev.sh").display());
    let terminal = Command::new("script")
        .args(["-qfec", &command])
        .arg(&typescript)
        .env("PLUGIN_BIN", plugin_binary())
        .env("BAO_BIN", bao_bin())
        .env("BAO_PORT", "0")
        .env_remove("LITELLM_BASE_URL")
        .env_remove("LITELLM_MASTER_KEY")
        .env("STANDIN_URL", &litellm.url)
        .env("STANDIN_MASTER_KEY", &litellm.master_key)
        .env("STANDIN_STOPPED", &stopped)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("util-linux `script` runs");
    let mut terminal = OwnedProcess::new(terminal);
    let banner = || fs::read_to_string(&typescript).unwrap_or_default();
    wait_until("dev.sh to be ready", Duration::from_secs(120), || {
        assert!(!terminal.exited(), "dev.sh ended early:\n{}", banner());
        banner().contains("Press Ctrl-C")
    });
    let banner = banner();
    let key = banner_value(&banner, "key:");
    let addr = banner_value(&banner, "export BAO_ADDR=");
    let port = addr.rsplit(':').next().unwrap().to_string();
    let models = |key: &str| {
        let (url, key) = (litellm.url.clone(), key.to_string());
        async move {
            reqwest::Client::new()
                .get(format!("{url}/v1/models"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(models(&key).await, 200, "the issued key works");

    // The terminal goes away.
    let status = Command::new("kill")
        .args(["-KILL", &terminal.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_until(
        "the stand-in LiteLLM to be stopped",
        Duration::from_secs(90),
        || stopped.exists(),
    );
    wait_until("OpenBao to stop", Duration::from_secs(30), || {
        TcpStream::connect(format!("127.0.0.1:{port}")).is_err()
    });
    // Revoked at the mount's disable: LiteLLM refuses the key (its cache may lag a little).
    let deadline = Instant::now() + Duration::from_secs(15);
    while models(&key).await == 200 {
        assert!(Instant::now() < deadline, "the key outlived the hangup");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(terminal);
    let _ = fs::remove_dir_all(&dir);
}

/// A fresh directory under the system temp dir.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "dev-script-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    fs::create_dir_all(&dir).unwrap();
    dir
}

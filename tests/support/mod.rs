//! Shared test support: the OpenBao harness, the fake LiteLLM, and helpers to mount the plugin.
#![allow(dead_code)]

pub mod bao;
pub mod engine;
pub mod fake_litellm;

use std::path::PathBuf;
use std::time::Duration;

use self::bao::DevServer;

/// The catalog name tests register the plugin under.
pub const PLUGIN: &str = "vault-plugin-secrets-litellm";

/// The freshly built plugin binary.
pub fn plugin_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vault-plugin-secrets-litellm"))
}

/// The version the plugin reports: `v` + the crate version.
pub fn plugin_version() -> String {
    format!("v{}", env!("CARGO_PKG_VERSION"))
}

/// Registers the plugin (sha256 + version) and enables it at each of `paths`.
pub fn mount(server: &DevServer, paths: &[&str]) {
    server.register_plugin(&plugin_binary(), PLUGIN, &plugin_version());
    for path in paths {
        server.enable(PLUGIN, path);
    }
}

/// Points the mount at `path` to the LiteLLM at `url` through the real CLI.
#[track_caller]
pub fn configure(server: &DevServer, path: &str, url: &str, master_key: &str) {
    server
        .bao(&[
            "write",
            &format!("{path}/config"),
            &format!("base_url={url}"),
            &format!("master_key={master_key}"),
        ])
        .ok();
}

/// `bao plugin info -format=json -version=<ours> secret <name>`.
#[track_caller]
pub fn plugin_info(server: &DevServer, name: &str) -> serde_json::Value {
    server
        .bao(&[
            "plugin",
            "info",
            "-format=json",
            &format!("-version={}", plugin_version()),
            "secret",
            name,
        ])
        .ok()
        .json()
}

/// The real LiteLLM proxy the suite runs against (started by `scripts/test.sh`).
#[derive(Clone, Debug)]
pub struct RealLiteLlm {
    pub url: String,
    pub master_key: String,
}

impl RealLiteLlm {
    /// From `LITELLM_BASE_URL` / `LITELLM_MASTER_KEY`; fails the test with the command that
    /// provides them, so a missing proxy never passes vacuously.
    #[track_caller]
    pub fn from_env() -> RealLiteLlm {
        match (
            std::env::var("LITELLM_BASE_URL"),
            std::env::var("LITELLM_MASTER_KEY"),
        ) {
            (Ok(url), Ok(master_key)) if !url.is_empty() && !master_key.is_empty() => {
                RealLiteLlm { url, master_key }
            }
            _ => panic!(
                "a real LiteLLM proxy is required: run `scripts/run-litellm.sh && . /tmp/litellm-local/env` \
                 (or the whole suite with scripts/test.sh)"
            ),
        }
    }
}

/// Writes role `role` of the mount at `litellm/` with `params` (`key=value`) through the CLI.
#[track_caller]
pub fn write_role(server: &DevServer, role: &str, params: &[&str]) {
    let path = format!("litellm/roles/{role}");
    let mut args = vec!["write", path.as_str()];
    args.extend_from_slice(params);
    server.bao(&args).ok();
}

/// Revokes a lease through the CLI and waits for it (`-sync`).
#[track_caller]
pub fn revoke_lease(server: &DevServer, lease_id: &str) {
    server.bao(&["lease", "revoke", "-sync", lease_id]).ok();
}

/// Revokes every lease of role `role` of the mount at `litellm/` and waits for it.
#[track_caller]
pub fn revoke_role_leases(server: &DevServer, role: &str) {
    let prefix = format!("litellm/creds/{role}");
    server
        .bao(&["lease", "revoke", "-sync", "-prefix", &prefix])
        .ok();
}

/// One more real LiteLLM proxy on the main proxy's database and master key, with extra
/// `general_settings` (`scripts/run-litellm.sh proxy-start`, about 30 s); stopped on drop.
pub struct ExtraLiteLlm {
    pub proxy: RealLiteLlm,
    port: u16,
    run_dir: PathBuf,
}

impl ExtraLiteLlm {
    /// Starts a proxy whose `general_settings` also hold `settings` (YAML lines).
    #[track_caller]
    pub fn start(settings: &str) -> ExtraLiteLlm {
        let main = RealLiteLlm::from_env();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let run_dir = std::env::temp_dir().join(format!("litellm-extra-{port}"));
        let extra = ExtraLiteLlm {
            proxy: RealLiteLlm {
                url: format!("http://127.0.0.1:{port}"),
                master_key: main.master_key,
            },
            port,
            run_dir,
        };
        let out = extra
            .script("proxy-start")
            .env("LITELLM_EXTRA_SETTINGS", settings)
            .output()
            .expect("run scripts/run-litellm.sh");
        assert!(
            out.status.success(),
            "starting a second local proxy (scripts/run-litellm.sh proxy-start, which needs the \
             local stack of `scripts/run-litellm.sh start`) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        extra
    }

    fn script(&self, command: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(bao::repo_root().join("scripts/run-litellm.sh"));
        cmd.arg(command)
            .env("LITELLM_PORT", self.port.to_string())
            .env("LITELLM_RUN_DIR", &self.run_dir);
        cmd
    }
}

impl Drop for ExtraLiteLlm {
    fn drop(&mut self) {
        let _ = self.script("proxy-stop").output();
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// Polls `check` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

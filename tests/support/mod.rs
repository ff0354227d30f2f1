//! Shared test support, compiled into both tiers (`tests/engine`, `tests/e2e`): the OpenBao
//! harness ([`bao`]), the in-process engine ([`engine`]), the fake LiteLLM ([`fake_litellm`]),
//! the client targets ([`target`]), the previous release's binary for the upgrade test
//! ([`previous_release`]), and, once each, the helpers the scenario files share:
//! mounting and configuring the plugin, issuing and revoking through the CLI, reading a
//! response, time arithmetic, admin clients, and [`assert_eventually!`], whose patience scales
//! with `TEST_PATIENCE`.

pub mod bao;
pub mod engine;
pub mod fake_litellm;
pub mod previous_release;
pub mod target;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};
use vault_plugin_secrets_litellm::engine::client::{
    Client, ClientConfig, GenerateKeyRequest, GeneratedKey,
};

use self::bao::{DevServer, DevServerOptions};
use self::fake_litellm::FakeLiteLlm;

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

/// Deletes the given keys from the real LiteLLM when dropped, so a failing test leaves none.
pub struct KeyCleanup {
    litellm: RealLiteLlm,
    /// Hashes of the keys to delete.
    pub tokens: Vec<String>,
    /// And every live key whose alias contains one of these: for keys the test never sees
    /// (a static role's successor, or a key made before a failure).
    pub alias_stems: Vec<String>,
}

impl KeyCleanup {
    pub fn new(litellm: &RealLiteLlm) -> KeyCleanup {
        KeyCleanup {
            litellm: litellm.clone(),
            tokens: Vec::new(),
            alias_stems: Vec::new(),
        }
    }
}

impl Drop for KeyCleanup {
    fn drop(&mut self) {
        let litellm = self.litellm.clone();
        let mut tokens = std::mem::take(&mut self.tokens);
        let stems = std::mem::take(&mut self.alias_stems);
        if tokens.is_empty() && stems.is_empty() {
            return;
        }
        // Its own thread and runtime: a drop may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let admin = litellm.admin();
                for stem in &stems {
                    if let Ok(keys) = admin.list_aliases(stem).await {
                        tokens.extend(keys.into_iter().map(|k| k.token));
                    }
                }
                if !tokens.is_empty() {
                    let _ = admin.delete_keys(&tokens).await;
                }
            })
        })
        .join();
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
    /// Starts a proxy whose `general_settings` also hold `settings` (YAML lines). The port is
    /// taken by bind-and-drop, so another process can win it before the proxy binds: then a
    /// new port is tried, as [`DevServer`] does.
    #[track_caller]
    pub fn start(settings: &str) -> ExtraLiteLlm {
        const ATTEMPTS: usize = 3;
        let main = RealLiteLlm::from_env();
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            let run_dir = std::env::temp_dir().join(format!("litellm-extra-{port}"));
            let extra = ExtraLiteLlm {
                proxy: RealLiteLlm {
                    url: format!("http://127.0.0.1:{port}"),
                    master_key: main.master_key.clone(),
                },
                port,
                run_dir,
            };
            let out = extra
                .script("proxy-start")
                .env("LITELLM_EXTRA_SETTINGS", settings)
                .output()
                .expect("run scripts/run-litellm.sh");
            if out.status.success() {
                return extra;
            }
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            let lost_the_port = stderr.contains("address already in use")
                || stderr.contains("Address already in use")
                || std::fs::read_to_string(extra.run_dir.join("litellm.log"))
                    .is_ok_and(|log| log.contains("address already in use"));
            failures.push(stderr);
            if !lost_the_port {
                break;
            }
        }
        panic!(
            "starting a second local proxy (scripts/run-litellm.sh proxy-start, which needs the \
             local stack of `scripts/run-litellm.sh start`) failed: {}",
            failures.join("\n--- next attempt ---\n")
        );
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

/// `read litellm/creds/<role>` through the CLI: the whole response.
#[track_caller]
pub fn issue(server: &DevServer, role: &str) -> Value {
    server
        .bao(&["read", "-format=json", &format!("litellm/creds/{role}")])
        .ok()
        .json()
}

/// The lease id of an issue's response.
#[track_caller]
pub fn lease_id(creds: &Value) -> String {
    creds["lease_id"].as_str().expect("lease_id").to_string()
}

/// The key's hash (`token_id`) in an issue's response.
#[track_caller]
pub fn token_id(creds: &Value) -> String {
    creds["data"]["token_id"]
        .as_str()
        .expect("token_id")
        .to_string()
}

/// The key itself in an issue's response.
#[track_caller]
pub fn key(creds: &Value) -> String {
    creds["data"]["key"].as_str().expect("key").to_string()
}

/// Whether OpenBao still knows the lease.
#[track_caller]
pub fn lease_exists(server: &DevServer, lease: &str) -> bool {
    let (status, _) = server.http(
        "PUT",
        "sys/leases/lookup",
        Some(&json!({ "lease_id": lease })),
    );
    status == 200
}

/// A server (started with `options`) with the plugin at `litellm/`, configured for `url`.
#[track_caller]
pub fn server_for(url: &str, master_key: &str, options: DevServerOptions) -> DevServer {
    let server = DevServer::start_with(options);
    mount(&server, &["litellm"]);
    configure(&server, "litellm", url, master_key);
    server
}

/// [`server_for`] the real proxy.
#[track_caller]
pub fn server_with(litellm: &RealLiteLlm, options: DevServerOptions) -> DevServer {
    server_for(&litellm.url, &litellm.master_key, options)
}

/// A name unique to this run (`<prefix>-<6 hex>`), so parallel tests and reruns never share
/// roles or keys on the real proxy.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    )
}

/// Seconds from `b` to `a` (negative when `a` is earlier).
pub fn secs_between(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Seconds from now until `t` (negative when past).
pub fn secs_from_now(t: SystemTime) -> f64 {
    secs_between(t, SystemTime::now())
}

/// An admin client of the LiteLLM at `url` (30 s request timeout).
#[track_caller]
pub fn admin_client(url: &str, master_key: &str) -> Client {
    let mut config = ClientConfig::new(url, master_key);
    config.request_timeout = Duration::from_secs(30);
    Client::new(&config).expect("an admin client")
}

impl RealLiteLlm {
    /// An admin client of the real proxy (its master key).
    #[track_caller]
    pub fn admin(&self) -> Client {
        admin_client(&self.url, &self.master_key)
    }
}

/// Enables userpass auth on `root`'s server and writes policy `litellm-creds` (read and update
/// `litellm/creds/*`); the userpass mount's accessor.
#[track_caller]
pub fn enable_userpass(root: &bao::BaoClient) -> String {
    root.bao(&["auth", "enable", "userpass"]).ok();
    root.bao_with(
        &["policy", "write", "litellm-creds", "-"],
        &[],
        Some(r#"path "litellm/creds/*" { capabilities = ["read", "update"] }"#),
    )
    .ok();
    root.bao(&["auth", "list", "-format=json"]).ok().json()["userpass/"]["accessor"]
        .as_str()
        .expect("userpass accessor")
        .to_string()
}

/// Logs `user` in with userpass and returns a client with the user's token.
#[track_caller]
pub fn userpass_login(root: &bao::BaoClient, user: &str, password: &str) -> bao::BaoClient {
    let token = root
        .bao(&[
            "login",
            "-method=userpass",
            "-token-only",
            &format!("username={user}"),
            &format!("password={password}"),
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(
        !token.is_empty(),
        "no token from the userpass login of {user}"
    );
    root.with_token(&token)
}

/// A virtual key of a `proxy_admin` user in the fake, alias `vault-admin`, made with its master
/// key: what rotate-root rotates.
pub async fn admin_virtual_key(fake: &FakeLiteLlm, master_key: &str) -> GeneratedKey {
    fake.add_proxy_admin("vault-admin-user");
    admin_client(&fake.url(), master_key)
        .generate(&GenerateKeyRequest {
            key_alias: "vault-admin".into(),
            user_id: Some("vault-admin-user".into()),
            key_type: Some("default".into()),
            ..GenerateKeyRequest::default()
        })
        .await
        .expect("an admin virtual key")
}

/// A key created directly in LiteLLM through `client`, stamped (metadata `vault_mount`,
/// `vault_role`) as the mount `mount` stamps the keys of role `role`.
pub async fn create_key(
    client: &Client,
    alias: &str,
    mount: &str,
    role: &str,
    duration: &str,
) -> GeneratedKey {
    create_key_stamped(
        client,
        alias,
        &[("vault_mount", mount), ("vault_role", role)],
        duration,
    )
    .await
}

/// A key created directly in LiteLLM with the given metadata.
pub async fn create_key_stamped(
    client: &Client,
    alias: &str,
    stamps: &[(&str, &str)],
    duration: &str,
) -> GeneratedKey {
    let metadata: Map<String, Value> = stamps
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    client
        .generate(&GenerateKeyRequest {
            key_alias: alias.to_string(),
            duration: Some(duration.to_string()),
            metadata,
            ..GenerateKeyRequest::default()
        })
        .await
        .expect("creating a key in LiteLLM")
}

/// An alias of the shape `creds/<role>` gives: `<prefix>-<role>-<12 hex>`.
pub fn our_alias(prefix: &str, role: &str) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{role}-{}", &random[..12])
}

/// The multiplier of every patience in the suite: `TEST_PATIENCE` (default 1), for slow or
/// loaded machines. `TEST_PATIENCE=3` makes a 10 s wait 30 s.
pub fn patience() -> f64 {
    static PATIENCE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *PATIENCE.get_or_init(|| {
        std::env::var("TEST_PATIENCE")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|p| p.is_finite() && *p > 0.0)
            .unwrap_or(1.0)
    })
}

/// `base` scaled by [`patience`].
pub fn patient(base: Duration) -> Duration {
    base.mul_f64(patience())
}

/// How long [`assert_eventually!`] waits by default, before scaling by [`patience`].
pub const EVENTUALLY: Duration = Duration::from_secs(10);

/// Asserts that `cond` becomes true within 10 s (× `TEST_PATIENCE`), polling it; on timeout it
/// panics with the message, at the caller's line.
///
/// - `assert_eventually!(cond, "msg {}", args)` polls every 100 ms and blocks the thread
///   between polls: for conditions on OpenBao, the real proxy or the fake (which has a thread
///   of its own).
/// - `assert_eventually!(async cond, "msg")` awaits between polls (every 20 ms), and `cond`
///   may `.await`: for conditions that depend on tasks of the test's own runtime.
/// - `within = Duration` after the condition changes the base timeout.
macro_rules! assert_eventually {
    (async $cond:expr, within = $base:expr, $($msg:tt)+) => {{
        let timeout = $crate::support::patient($base);
        let deadline = ::std::time::Instant::now() + timeout;
        loop {
            if $cond {
                break;
            }
            if ::std::time::Instant::now() >= deadline {
                panic!("not within {:?}: {}", timeout, format_args!($($msg)+));
            }
            ::tokio::time::sleep(::std::time::Duration::from_millis(20)).await;
        }
    }};
    (async $cond:expr, $($msg:tt)+) => {
        $crate::support::assert_eventually!(async $cond, within = $crate::support::EVENTUALLY, $($msg)+)
    };
    ($cond:expr, within = $base:expr, $($msg:tt)+) => {{
        let timeout = $crate::support::patient($base);
        let deadline = ::std::time::Instant::now() + timeout;
        loop {
            if $cond {
                break;
            }
            if ::std::time::Instant::now() >= deadline {
                panic!("not within {:?}: {}", timeout, format_args!($($msg)+));
            }
            ::std::thread::sleep(::std::time::Duration::from_millis(100));
        }
    }};
    ($cond:expr, $($msg:tt)+) => {
        $crate::support::assert_eventually!($cond, within = $crate::support::EVENTUALLY, $($msg)+)
    };
}
pub(crate) use assert_eventually;

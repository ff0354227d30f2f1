//! OpenBao end-to-end test harness: runs a real `bao server` per test and drives it through
//! the real `bao` CLI and its HTTP API.
//!
//! ```ignore
//! let srv = DevServer::start();
//! srv.register_plugin(Path::new(env!("CARGO_BIN_EXE_vault-plugin-secrets-litellm")),
//!                     "vault-plugin-secrets-litellm", "v0.1.0");
//! srv.enable("vault-plugin-secrets-litellm", "litellm");
//! let creds = srv.bao(&["read", "-format=json", "litellm/creds/demo"]).ok().json();
//! let (status, body) = srv.http("GET", "sys/mounts", None);
//! ```
//!
//! Design notes (why things are the way they are):
//! - Every server gets its own free port pair (API port P and the cluster port P+1 that dev mode
//!   derives from it) and its own temp dir, so tests can run in parallel threads.
//! - The plugin dir starts empty and `-dev-plugin-init=false` is passed: otherwise dev mode tries
//!   to auto-register every file in the dir at startup and aborts if one fails the probes.
//! - Everything is blocking. That is fine from `#[tokio::test]` code: what the plugin reaches
//!   while a call blocks (the fake LiteLLM) runs on a thread of its own.
//! - A small `sh` watchdog per server kills the server, its plugins and its temp dir if the test
//!   process dies without running `Drop` (SIGKILL, a server kept in a `static`, ...).
//! - `BAO_TEST_KEEP=1` keeps the temp dirs; on a panicking test the server log is copied to
//!   `$TMPDIR/bao-test-logs/` and its tail printed.
//!
//! Layout: this module holds [`DevServer`] and its options; [`launch`] starts and stops its
//! process; [`cli`] finds `bao` and holds [`CmdOutput`]; [`client`] is [`BaoClient`] (CLI and
//! HTTP); [`process`] the signals, watchdog, temp dirs and ports; [`log`] the server-log
//! excerpts; [`cluster`] a 3-node Raft cluster (its `launch` the nodes' processes).

mod cli;
mod client;
pub mod cluster;
mod launch;
mod log;
mod process;

use cli::*;
pub use cli::{CmdOutput, bao_bin, repo_root};
pub use client::BaoClient;
use client::*;
use log::*;
// Used by the end-to-end tier only (tests/e2e/agent.rs, proxy.rs).
use process::*;
#[allow(unused_imports)]
pub use process::{OwnedProcess, reserve_port_pair};

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{ErrorKind, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Root token of every server started here.
pub const ROOT_TOKEN: &str = "root";
const NOT_FOUND: &str =
    "OpenBao `bao` not found: run scripts/install-openbao.sh (or scripts/test.sh)";
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_GRACE: Duration = Duration::from_secs(5);
const HTTP_TIMEOUT: Duration = Duration::from_secs(120);
const LOG_TAIL_LINES: usize = 80;
const START_ATTEMPTS: usize = 5;

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

/// Options for [`DevServer::start_with`]; builder style:
/// `DevServerOptions::default().config("default_lease_ttl = \"1m\"").env("RUST_LOG", "debug")`.
#[derive(Clone, Debug, Default)]
pub struct DevServerOptions {
    /// Extra `bao server` arguments, appended last.
    pub args: Vec<String>,
    /// Extra environment for the server; plugins inherit the server's environment.
    pub env: Vec<(String, String)>,
    /// Extra HCL server configuration, e.g. `default_lease_ttl = "1m"` or `max_lease_ttl`.
    pub config: Option<String>,
    /// Real (raft, single node) storage instead of dev mode's in-memory one: the server is initialised and
    /// unsealed by the harness, and [`DevServer::restart`] keeps mounts, data and leases.
    /// A token with id `root` (root policy) is created, so `token()` is still `root`.
    pub persistent: bool,
    /// `-log-level`; default `trace`.
    pub log_level: Option<String>,
}

impl DevServerOptions {
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Appends HCL to the server configuration.
    pub fn config(mut self, hcl: &str) -> Self {
        let mut c = self.config.take().unwrap_or_default();
        c.push_str(hcl);
        c.push('\n');
        self.config = Some(c);
        self
    }

    pub fn default_lease_ttl(self, ttl: &str) -> Self {
        self.config(&format!("default_lease_ttl = \"{ttl}\""))
    }

    pub fn max_lease_ttl(self, ttl: &str) -> Self {
        self.config(&format!("max_lease_ttl = \"{ttl}\""))
    }

    pub fn persistent(mut self) -> Self {
        self.persistent = true;
        self
    }

    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = Some(level.to_string());
        self
    }
}

/// One `bao server` process (dev mode, or raft storage with `persistent`), its temp dirs and
/// its plugin dir. Dropping it stops the server and every plugin process it started.
pub struct DevServer {
    child: Option<Child>,
    watchdog: Option<Child>,
    client: BaoClient,
    opts: DevServerOptions,
    root_dir: PathBuf,
    plugin_dir: PathBuf,
    log_path: PathBuf,
    unseal_key: Option<String>,
}

impl DevServer {
    /// `bao server -dev` on 127.0.0.1:<free port>, root token `root`, empty plugin dir.
    pub fn start() -> DevServer {
        DevServer::start_with(DevServerOptions::default())
    }

    pub fn start_with(opts: DevServerOptions) -> DevServer {
        let bin = bao_bin();
        let root_dir = make_temp_dir();
        let plugin_dir = root_dir.join("plugins");
        fs::create_dir(&plugin_dir).expect("create plugin dir");
        if opts.persistent {
            fs::create_dir(root_dir.join("data")).expect("create data dir");
        }
        let log_path = root_dir.join("server.log");
        let mut srv = DevServer {
            child: None,
            watchdog: None,
            client: BaoClient {
                bin,
                addr: String::new(),
                port: 0,
                token: ROOT_TOKEN.to_string(),
                log_path: log_path.clone(),
            },
            opts,
            root_dir,
            plugin_dir,
            log_path,
            unseal_key: None,
        };
        srv.launch(true);
        srv
    }

    pub fn addr(&self) -> String {
        self.client.addr()
    }

    pub fn port(&self) -> u16 {
        self.client.port
    }

    pub fn token(&self) -> String {
        self.client.token()
    }

    pub fn plugin_dir(&self) -> &Path {
        &self.plugin_dir
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// A `Send + Clone` handle for other threads / `spawn_blocking`.
    pub fn client(&self) -> BaoClient {
        self.client.clone()
    }

    /// PID of the `bao server` process.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("server not running")
    }

    /// Runs the real `bao` CLI against this server (root token).
    pub fn bao(&self, args: &[&str]) -> CmdOutput {
        self.client.bao(args)
    }

    pub fn bao_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> CmdOutput {
        self.client.bao_with(args, env, stdin)
    }

    /// Raw HTTP API call with the root token: (status, JSON body). See [`BaoClient::http`].
    #[track_caller]
    pub fn http(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.client.http(method, path, body)
    }

    #[track_caller]
    pub fn http_ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.client.http_ok(method, path, body)
    }

    /// Copies `binary` into the plugin dir as `name` (atomically, so a running copy is never
    /// overwritten in place) and returns its SHA-256. For custom registrations (args, env).
    pub fn install_plugin_binary(&self, binary: &Path, name: &str) -> String {
        install_into(&self.plugin_dir, binary, name)
    }

    /// Copies `binary` into the plugin dir as `name` and runs
    /// `bao plugin register -sha256=<sha> -version=<version> secret <name>` (no `-version`
    /// when `version` is empty). Returns the SHA-256.
    #[track_caller]
    pub fn register_plugin(&self, binary: &Path, name: &str, version: &str) -> String {
        let sha = self.install_plugin_binary(binary, name);
        let sha_arg = format!("-sha256={sha}");
        let version_arg = format!("-version={version}");
        let mut args = vec!["plugin", "register", sha_arg.as_str()];
        if !version.is_empty() {
            args.push(version_arg.as_str());
        }
        args.extend(["secret", name]);
        self.bao(&args).ok();
        sha
    }

    /// `bao secrets enable -path=<path> <plugin>`.
    #[track_caller]
    pub fn enable(&self, plugin: &str, path: &str) {
        self.enable_with(plugin, path, &[]);
    }

    /// `enable` with extra flags, e.g. `["-plugin-version=v0.1.0", "-default-lease-ttl=1m"]`.
    #[track_caller]
    pub fn enable_with(&self, plugin: &str, path: &str, extra: &[&str]) {
        let path_arg = format!("-path={path}");
        let mut args = vec!["secrets", "enable", path_arg.as_str()];
        args.extend_from_slice(extra);
        args.push(plugin);
        self.bao(&args).ok();
    }

    /// Everything the server (and, through it, the plugins' stderr) has logged so far.
    pub fn server_log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `n` lines of the server log.
    pub fn server_log_tail(&self, n: usize) -> String {
        log_tail(&self.log_path, n)
    }

    /// PIDs of live processes whose executable is in this server's plugin dir.
    pub fn plugin_pids(&self) -> Vec<u32> {
        pids_with_exe_in(&self.plugin_dir)
    }

    /// SIGKILLs every plugin process of this server (crash simulation); returns their PIDs.
    pub fn kill_plugins(&self) -> Vec<u32> {
        let pids = self.plugin_pids();
        for &pid in &pids {
            send_signal(pid, SIGKILL);
        }
        pids
    }

    /// Polls `f` every 100 ms until it returns `Some`, or panics after `timeout` with `what`
    /// and the server log tail.
    #[track_caller]
    pub fn wait_for<T>(&self, timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
        poll_until(timeout, what, f, || log_tail_section(&self.log_path))
    }

    /// Stops the server (SIGTERM, SIGKILL after 5 s) and starts it again with the same dirs.
    /// With `persistent` storage it is unsealed and keeps all state (mounts, leases, plugin
    /// catalog); in dev mode the new server starts empty. The port is kept when still free.
    pub fn restart(&mut self) {
        self.restart_after(Duration::ZERO);
    }

    /// [`DevServer::restart`], with the server down for `pause` in between (e.g. across the
    /// time something was due).
    pub fn restart_after(&mut self, pause: Duration) {
        self.shutdown_processes();
        std::thread::sleep(pause);
        self.launch(false);
    }
}

/// Copies `binary` into `plugin_dir` as `name` through a temporary file and a rename, so a
/// running copy is never overwritten in place; returns the installed file's SHA-256.
fn install_into(plugin_dir: &Path, binary: &Path, name: &str) -> String {
    let dest = plugin_dir.join(name);
    let tmp = plugin_dir.join(format!(".{name}.tmp-{}", unique_suffix()));
    fs::copy(binary, &tmp)
        .unwrap_or_else(|e| panic!("copy plugin {} -> {}: {e}", binary.display(), tmp.display()));
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).expect("chmod plugin");
    fs::rename(&tmp, &dest).expect("move plugin into plugin dir");
    sha256_file(&dest)
}

/// Polls `f` every 100 ms until it returns `Some`; after `timeout`, panics with `what` and
/// `logs()` (the servers' log tails).
#[track_caller]
fn poll_until<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
    logs: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}\n{}", logs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

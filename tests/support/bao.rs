//! OpenBao end-to-end test harness: runs a real `bao server` per test and drives it through
//! the real `bao` CLI and a tiny built-in HTTP client.
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
//! Only std, tokio and serde_json are used.
#![allow(dead_code)]

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
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

unsafe extern "C" {
    // libc's kill(2); std links libc anyway and has no API to send SIGTERM.
    fn kill(pid: i32, sig: i32) -> i32;
}

fn send_signal(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            kill(pid, sig);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Locating `bao`
// ---------------------------------------------------------------------------------------------

/// Repository root (the crate whose tests include this module).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `bao` binary: `$BAO_BIN`, else `<repo>/.tools/bin/bao`, else `bao` on PATH; the first
/// one whose `bao version` succeeds. Panics with install instructions when none works.
pub fn bao_bin() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(find_bao) {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

fn find_bao() -> Result<PathBuf, String> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("BAO_BIN").filter(|p| !p.is_empty()) {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(repo_root().join(".tools/bin/bao"));
    if let Some(p) = search_path("bao") {
        candidates.push(p);
    }
    let mut tried = Vec::new();
    for cand in candidates {
        // Absolute, because servers run with their temp dir as working directory.
        let cand = fs::canonicalize(&cand).unwrap_or(cand);
        match Command::new(&cand)
            .arg("version")
            .stdin(Stdio::null())
            .output()
        {
            Ok(o) if o.status.success() => return Ok(cand),
            Ok(o) => tried.push(format!(
                "{}: {} {}",
                cand.display(),
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => tried.push(format!("{}: {e}", cand.display())),
        }
    }
    Err(format!(
        "{NOT_FOUND}\n  tried: {}",
        tried.join("\n         ")
    ))
}

fn search_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Whether `-dev-plugin-init` is accepted. It is a hidden flag (not in `bao server -h`), so
/// it is assumed present and switched off for good the first time a server rejects it.
static DEV_PLUGIN_INIT_FLAG: AtomicBool = AtomicBool::new(true);

// ---------------------------------------------------------------------------------------------
// Command output
// ---------------------------------------------------------------------------------------------

/// Result of running the `bao` CLI.
#[derive(Clone, Debug)]
pub struct CmdOutput {
    /// Exit code; -1 if killed by a signal.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    cmd: String,
    log_path: Option<PathBuf>,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// Panics (with both streams and the server log tail) unless the command exited 0.
    /// Returns a copy, so both `out.ok();` and `let out = srv.bao(..).ok();` work.
    #[track_caller]
    pub fn ok(&self) -> CmdOutput {
        if !self.success() {
            panic!("command failed: {self}");
        }
        self.clone()
    }

    /// Panics unless the command failed (for negative tests). Returns a copy.
    #[track_caller]
    pub fn err(&self) -> CmdOutput {
        if self.success() {
            panic!("command unexpectedly succeeded: {self}");
        }
        self.clone()
    }

    /// stdout parsed as JSON (pass `-format=json`); panics with context if it is not JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        match serde_json::from_str(&self.stdout) {
            Ok(v) => v,
            Err(e) => panic!("stdout is not JSON ({e}): {self}"),
        }
    }

    /// stdout and stderr together, for `contains` checks on error messages.
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd,
            self.status,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )?;
        if let Some(p) = &self.log_path {
            write!(f, "\n{}", log_tail_section(p))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Client: CLI + HTTP against one server (Clone + Send, for async helpers / other threads)
// ---------------------------------------------------------------------------------------------

/// Talks to a server; cheap to clone and `Send`, e.g. for `spawn_blocking`.
#[derive(Clone, Debug)]
pub struct BaoClient {
    bin: PathBuf,
    addr: String,
    port: u16,
    token: String,
    log_path: PathBuf,
}

impl BaoClient {
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    pub fn token(&self) -> String {
        self.token.clone()
    }

    /// Same client, another token.
    pub fn with_token(&self, token: &str) -> BaoClient {
        BaoClient {
            token: token.to_string(),
            ..self.clone()
        }
    }

    /// Runs `bao ARGS` with BAO_ADDR/BAO_TOKEN (and VAULT_ADDR/VAULT_TOKEN) set.
    pub fn bao(&self, args: &[&str]) -> CmdOutput {
        self.bao_with(args, &[], None)
    }

    /// `bao` with extra environment variables and optional stdin (for `-` arguments).
    pub fn bao_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> CmdOutput {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env("BAO_ADDR", &self.addr)
            .env("VAULT_ADDR", &self.addr)
            .env("BAO_TOKEN", &self.token)
            .env("VAULT_TOKEN", &self.token)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        // Settings from the developer's shell that would change what the CLI talks to or prints.
        for var in [
            "NAMESPACE",
            "FORMAT",
            "CACERT",
            "CAPATH",
            "CLIENT_CERT",
            "CLIENT_KEY",
            "WRAP_TTL",
            "MFA",
        ] {
            cmd.env_remove(format!("BAO_{var}"))
                .env_remove(format!("VAULT_{var}"));
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let desc = format!("bao {}", args.join(" "));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} ({desc}): {e}", self.bin.display()));
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            let input = input.to_string();
            // Writer thread: a large stdin must not deadlock against full stdout/stderr pipes.
            std::thread::spawn(move || {
                let _ = pipe.write_all(input.as_bytes());
            });
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for {desc}: {e}"));
        CmdOutput {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            cmd: desc,
            log_path: Some(self.log_path.clone()),
        }
    }

    /// Raw HTTP API call with this client's token. `path` may be `sys/health`, `/sys/health`
    /// or `/v1/sys/health` (a query string is allowed). Returns (status, JSON body); an empty
    /// body is `Value::Null`, a non-JSON body a `Value::String`.
    #[track_caller]
    pub fn http(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let token = (!self.token.is_empty()).then_some(self.token.as_str());
        match http_request(self.port, method, path, token, body, HTTP_TIMEOUT) {
            Ok(r) => r,
            Err(e) => panic!(
                "HTTP {method} {path} to {} failed: {e}\n{}",
                self.addr,
                log_tail_section(&self.log_path)
            ),
        }
    }

    /// Like `http`, but panics unless the status is 2xx; returns the body.
    #[track_caller]
    pub fn http_ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, resp) = self.http(method, path, body);
        if !(200..300).contains(&status) {
            panic!(
                "HTTP {method} {path} -> {status}: {resp}\n{}",
                log_tail_section(&self.log_path)
            );
        }
        resp
    }
}

// ---------------------------------------------------------------------------------------------
// Server options
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// DevServer
// ---------------------------------------------------------------------------------------------

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
        let dest = self.plugin_dir.join(name);
        let tmp = self
            .plugin_dir
            .join(format!(".{name}.tmp-{}", unique_suffix()));
        fs::copy(binary, &tmp).unwrap_or_else(|e| {
            panic!("copy plugin {} -> {}: {e}", binary.display(), tmp.display())
        });
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).expect("chmod plugin");
        fs::rename(&tmp, &dest).expect("move plugin into plugin dir");
        sha256_file(&dest)
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
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    log_tail_section(&self.log_path)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (SIGTERM, SIGKILL after 5 s) and starts it again with the same dirs.
    /// With `persistent` storage it is unsealed and keeps all state (mounts, leases, plugin
    /// catalog); in dev mode the new server starts empty. The port is kept when still free.
    pub fn restart(&mut self) {
        self.shutdown_processes();
        self.launch(false);
    }

    // --- internals ----------------------------------------------------------------------------

    fn launch(&mut self, first: bool) {
        let mut port = if first { 0 } else { self.client.port };
        let mut last_err = String::new();
        for _ in 0..START_ATTEMPTS {
            if port == 0 {
                port = reserve_port_pair();
            }
            self.client.port = port;
            self.client.addr = format!("http://127.0.0.1:{port}");
            let log_offset = fs::metadata(&self.log_path).map(|m| m.len()).unwrap_or(0);
            let flag_used = DEV_PLUGIN_INIT_FLAG.load(Ordering::SeqCst);
            self.spawn(flag_used);
            match self.wait_responding() {
                Ok(()) => {
                    self.after_start(first);
                    return;
                }
                Err(why) => {
                    self.shutdown_processes();
                    let log = log_since(&self.log_path, log_offset);
                    if log.contains("flag provided but not defined: -dev-plugin-init") && flag_used
                    {
                        // Older/newer bao without the hidden flag: the empty plugin dir is enough.
                        DEV_PLUGIN_INIT_FLAG.store(false, Ordering::SeqCst);
                    } else if log.contains("address already in use") {
                        port = 0; // lost a race for the port: pick another one
                    } else {
                        panic!(
                            "bao server did not start ({why}); args: {:?}\n{}",
                            self.server_args(flag_used),
                            log_tail_section(&self.log_path)
                        );
                    }
                    last_err = why;
                }
            }
        }
        panic!(
            "bao server did not start after {START_ATTEMPTS} attempts ({last_err})\n{}",
            log_tail_section(&self.log_path)
        );
    }

    fn server_args(&self, dev_plugin_init_flag: bool) -> Vec<String> {
        let level = self
            .opts
            .log_level
            .clone()
            .unwrap_or_else(|| "trace".to_string());
        let mut args = vec!["server".to_string()];
        if self.opts.persistent {
            args.push(format!(
                "-config={}",
                self.root_dir.join("config.hcl").display()
            ));
        } else {
            args.extend([
                "-dev".to_string(),
                format!("-dev-root-token-id={ROOT_TOKEN}"),
                format!("-dev-listen-address=127.0.0.1:{}", self.client.port),
                format!("-dev-plugin-dir={}", self.plugin_dir.display()),
                // Never write ~/.vault-token: parallel servers would race on it.
                "-dev-no-store-token".to_string(),
            ]);
            if dev_plugin_init_flag {
                args.push("-dev-plugin-init=false".to_string());
            }
            if self.opts.config.is_some() {
                args.push(format!(
                    "-config={}",
                    self.root_dir.join("extra.hcl").display()
                ));
            }
        }
        args.push(format!("-log-level={level}"));
        args.extend(self.opts.args.iter().cloned());
        args
    }

    fn write_config(&self) {
        let extra = self.opts.config.clone().unwrap_or_default();
        if self.opts.persistent {
            let port = self.client.port;
            let hcl = format!(
                r#"# written by tests/support/bao.rs
api_addr          = "http://127.0.0.1:{port}"
cluster_addr      = "https://127.0.0.1:{cluster}"
plugin_directory  = "{plugins}"
storage "raft" {{
  path    = "{data}"
  node_id = "bao-test"
  # shortest raft timeouts: the first election otherwise waits ~10 s
  performance_multiplier = 1
}}
listener "tcp" {{
  address         = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cluster}"
  tls_disable     = true
}}
{extra}
"#,
                cluster = port + 1,
                plugins = self.plugin_dir.display(),
                data = self.root_dir.join("data").display(),
            );
            fs::write(self.root_dir.join("config.hcl"), hcl).expect("write config.hcl");
        } else if self.opts.config.is_some() {
            fs::write(self.root_dir.join("extra.hcl"), extra).expect("write extra.hcl");
        }
    }

    fn spawn(&mut self, dev_plugin_init_flag: bool) {
        self.write_config();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open server log");
        let log_err = log.try_clone().expect("clone log fd");
        let args = self.server_args(dev_plugin_init_flag);
        let mut cmd = Command::new(&self.client.bin);
        cmd.args(&args)
            // Plugins inherit the server's working directory: keep it out of the repo.
            .current_dir(&self.root_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .env_remove("BAO_DEV_LISTEN_ADDRESS")
            .env_remove("BAO_DEV_ROOT_TOKEN_ID")
            .env_remove("VAULT_DEV_LISTEN_ADDRESS")
            .env_remove("VAULT_DEV_ROOT_TOKEN_ID");
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} {args:?}: {e}", self.client.bin.display()));
        self.watchdog = spawn_watchdog(child.id(), &self.plugin_dir, &self.root_dir);
        self.child = Some(child);
    }

    /// Waits until the HTTP listener answers `sys/health` with any status.
    fn wait_responding(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("server exited with {status}"));
            }
            if http_request(
                self.client.port,
                "GET",
                "sys/health",
                None,
                None,
                Duration::from_secs(2),
            )
            .is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no answer on {} within {READY_TIMEOUT:?}",
                    self.client.addr
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Initialises/unseals a persistent server, then waits for an active, unsealed node.
    fn after_start(&mut self, first: bool) {
        if self.opts.persistent {
            if first {
                let init = self
                    .client
                    .with_token("")
                    .bao(&[
                        "operator",
                        "init",
                        "-key-shares=1",
                        "-key-threshold=1",
                        "-format=json",
                    ])
                    .ok()
                    .json();
                let key = init["unseal_keys_b64"][0]
                    .as_str()
                    .expect("unseal key")
                    .to_string();
                let initial_root = init["root_token"].as_str().expect("root token").to_string();
                self.unseal_key = Some(key);
                self.unseal();
                self.wait_active();
                // A token literally named `root`, so persistent and dev servers look alike.
                let body =
                    serde_json::json!({"id": ROOT_TOKEN, "policies": ["root"], "no_parent": true});
                self.client.with_token(&initial_root).http_ok(
                    "POST",
                    "auth/token/create",
                    Some(&body),
                );
            } else {
                self.unseal();
            }
        }
        self.wait_active();
    }

    fn unseal(&self) {
        let key = self.unseal_key.clone().expect("unseal key");
        let body = serde_json::json!({ "key": key });
        self.client
            .with_token("")
            .http_ok("PUT", "sys/unseal", Some(&body));
    }

    fn wait_active(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let status = http_request(
                self.client.port,
                "GET",
                "sys/health",
                None,
                None,
                Duration::from_secs(2),
            )
            .map(|(s, _)| s)
            .unwrap_or(0);
            if status == 200 {
                return;
            }
            if let Some(exit) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "bao server exited with {exit} during startup\n{}",
                    log_tail_section(&self.log_path)
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "bao server at {} not active within {READY_TIMEOUT:?} (sys/health: {status})\n{}",
                    self.client.addr,
                    log_tail_section(&self.log_path)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops watchdog, server (SIGTERM, then SIGKILL after 5 s) and leftover plugin processes.
    fn shutdown_processes(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                send_signal(child.id(), SIGTERM);
                let deadline = Instant::now() + STOP_GRACE;
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        // The server normally stops its plugins; anything still alive is a leak to clean up.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let pids = self.plugin_pids();
            if pids.is_empty() || Instant::now() >= deadline {
                break;
            }
            for pid in pids {
                send_signal(pid, SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        self.shutdown_processes();
        if panicking {
            // Keep the evidence of a failed test: the temp dir is about to go.
            let dir = std::env::temp_dir().join("bao-test-logs");
            let name = self
                .root_dir
                .file_name()
                .map(OsString::from)
                .unwrap_or_default();
            let kept = dir.join(format!("{}.log", name.to_string_lossy()));
            let _ = fs::create_dir_all(&dir).and_then(|_| fs::copy(&self.log_path, &kept));
            eprintln!(
                "DevServer {} dropped during a panic; full server log kept at {}\n{}",
                self.client.addr,
                kept.display(),
                log_tail_section(&self.log_path)
            );
        }
        if std::env::var_os("BAO_TEST_KEEP").is_some_and(|v| !v.is_empty() && v != "0") {
            eprintln!("BAO_TEST_KEEP: keeping {}", self.root_dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.root_dir);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// `sh` process that waits for this test process to die, then kills the server, its plugins
/// and removes the temp dir. It ignores SIGINT/SIGHUP so a Ctrl-C on `cargo test` (sent to the
/// whole process group) still gets cleaned up. `Drop` kills it first in the normal case.
fn spawn_watchdog(server_pid: u32, plugin_dir: &Path, root_dir: &Path) -> Option<Child> {
    const SCRIPT: &str = r#"
trap '' INT HUP
parent=$1 server=$2 dir=$3 root=$4
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
kill -TERM "$server" 2>/dev/null
i=0
while kill -0 "$server" 2>/dev/null && [ "$i" -lt 10 ]; do sleep 0.5; i=$((i + 1)); done
kill -KILL "$server" 2>/dev/null
for p in /proc/[0-9]*; do
  case "$(readlink "$p/exe" 2>/dev/null)" in "$dir"/*) kill -KILL "${p#/proc/}" 2>/dev/null ;; esac
done
[ -n "$BAO_TEST_KEEP" ] && [ "$BAO_TEST_KEEP" != 0 ] || rm -rf "$root"
"#;
    Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("bao-test-watchdog")
        .arg(std::process::id().to_string())
        .arg(server_pid.to_string())
        .arg(plugin_dir)
        .arg(root_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

fn unique_suffix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn make_temp_dir() -> PathBuf {
    loop {
        let p = std::env::temp_dir().join(format!("bao-test-{}", unique_suffix()));
        match fs::create_dir(&p) {
            // Canonical, so it compares equal to the paths in /proc/<pid>/exe.
            Ok(()) => return fs::canonicalize(&p).unwrap_or(p),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create temp dir {}: {e}", p.display()),
        }
    }
}

/// A port P with P and P+1 free on 127.0.0.1 (dev mode puts the cluster listener on P+1),
/// never handed out twice in this process, so parallel tests cannot pick the same one.
fn reserve_port_pair() -> u16 {
    static USED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut used = USED.lock().unwrap_or_else(|e| e.into_inner());
    let used = used.get_or_insert_with(HashSet::new);
    for _ in 0..200 {
        let Ok(l) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = l.local_addr() else { continue };
        let p = addr.port();
        if p == u16::MAX || used.contains(&p) || used.contains(&(p + 1)) || used.contains(&(p - 1))
        {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            used.extend([p, p + 1]);
            return p;
        }
    }
    panic!("no free port pair on 127.0.0.1");
}

fn pids_with_exe_in(dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // Fails for zombies and vanished processes: those are not running plugins.
        let Ok(exe) = fs::read_link(entry.path().join("exe")) else {
            continue;
        };
        let exe = exe.to_string_lossy();
        // A binary replaced while running shows as "<path> (deleted)".
        let exe = Path::new(exe.strip_suffix(" (deleted)").unwrap_or(&exe));
        if exe.parent() == Some(dir) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

fn sha256_file(path: &Path) -> String {
    let attempts: [(&str, &[&str]); 2] = [("sha256sum", &[]), ("shasum", &["-a", "256"])];
    for (tool, args) in attempts {
        let Ok(out) = Command::new(tool)
            .args(args)
            .arg(path)
            .stdin(Stdio::null())
            .output()
        else {
            continue;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(hex) = text
            .split_whitespace()
            .next()
            .filter(|h| out.status.success() && h.len() == 64)
        {
            return hex.to_string();
        }
    }
    panic!(
        "cannot compute sha256 of {} (need sha256sum or shasum)",
        path.display()
    );
}

fn log_tail(path: &Path, n: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| truncate_line(l, 600))
        .collect::<Vec<_>>()
        .join("\n")
}

fn truncate_line(line: &str, max: usize) -> String {
    if line.len() <= max {
        return line.to_string();
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

fn log_tail_section(path: &Path) -> String {
    format!(
        "--- last {LOG_TAIL_LINES} lines of bao server log {} ---\n{}\n--- end of server log ---",
        path.display(),
        log_tail(path, LOG_TAIL_LINES)
    )
}

fn log_since(path: &Path, offset: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Minimal HTTP/1.1 client (no external tool, no extra crate)
// ---------------------------------------------------------------------------------------------

fn http_request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<(u16, Value), String> {
    let path = if path.starts_with("/v1/") {
        path.to_string()
    } else {
        format!("/v1/{}", path.trim_start_matches('/'))
    };
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: bao-test-harness\r\n\
         Accept: application/json\r\nConnection: close\r\nContent-Length: {}\r\n",
        payload.len()
    );
    if body.is_some() {
        req.push_str("Content-Type: application/json\r\n");
    }
    if let Some(t) = token {
        req.push_str(&format!("X-Vault-Token: {t}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&payload);

    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    parse_http_response(&raw)
}

fn parse_http_response(raw: &[u8]) -> Result<(u16, Value), String> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            format!(
                "incomplete HTTP response: {:?}",
                String::from_utf8_lossy(raw)
            )
        })?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut content_length = None;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        } else if k == "content-length" {
            content_length = v.parse::<usize>().ok();
        }
    }
    let rest = &raw[head_end + 4..];
    let body = if chunked {
        decode_chunked(rest)?
    } else if let Some(n) = content_length {
        rest[..n.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    Ok((status, value))
}

fn decode_chunked(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunked body")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_hex:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            return Err("truncated chunk".to_string());
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

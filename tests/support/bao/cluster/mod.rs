//! A 3-node OpenBao Raft cluster on 127.0.0.1, for HA tests (`../shared/docs/openbao-ha.md`
//! has the recipe, the timings and the pitfalls this follows).
//!
//! ```ignore
//! let cluster = Cluster::start(ClusterOptions::default().env("LITELLM_PLUGIN_LOG_LEVEL", "debug"));
//! cluster.mount_plugin(&plugin_binary(), "vault-plugin-secrets-litellm", "v0.1.0", "litellm");
//! let active = cluster.active();
//! cluster.kill(active);                       // SIGKILL of the active node
//! let new_active = cluster.wait_new_active(active, Duration::from_secs(30));
//! cluster.restart(active);                    // rejoins as a standby, caught up
//! ```
//!
//! - Static seal (one 32-byte key file for all nodes): one `operator init` on node 1; the
//!   others join through `retry_join` and unseal themselves, also after a restart.
//! - `performance_multiplier = 1` and autopilot's `server-stabilization-time=1s`: about 15 s
//!   from process start to 3 healthy voters (polled on `sys/storage/raft/autopilot/state`).
//! - The plugin binary is copied byte-identical into every node's plugin dir (a node with
//!   another sha256 skips the mount and later crashes OpenBao's router), registered and
//!   mounted once; [`Cluster::mount_plugin`] waits until every node runs its plugin process.
//! - Ports are free pairs (API P, cluster P+1) per node; when a node loses a race for its
//!   port, the whole cluster is started again on new ports, as [`DevServer`] does.
//! - Drop stops every `bao` process by PID (SIGTERM, SIGKILL after 5 s), then any plugin
//!   process still running from a node's plugin dir, also when the test panics (the logs are
//!   then copied to `$TMPDIR/bao-test-logs/`); a watchdog per node does the same when the test
//!   process dies. The temp dir is removed unless `BAO_TEST_KEEP` is set.

use super::*;

mod launch;
use launch::*;

/// Nodes in a cluster.
pub const NODES: usize = 3;
const VOTERS_TIMEOUT: Duration = Duration::from_secs(60);
const LEADER_TIMEOUT: Duration = Duration::from_secs(30);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Options for [`Cluster::start`].
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Extra environment of every `bao server` (and so of every plugin process).
    pub env: Vec<(String, String)>,
    /// `-log-level` of every server; default `info`.
    pub log_level: String,
    /// Extra top-level HCL for every node, e.g. `disable_standby_reads = true`.
    pub config: String,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            env: Vec::new(),
            log_level: "info".to_string(),
            config: String::new(),
        }
    }
}

impl ClusterOptions {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = level.to_string();
        self
    }

    pub fn config(mut self, hcl: &str) -> Self {
        self.config.push_str(hcl);
        self.config.push('\n');
        self
    }
}

/// One node: its dirs, its port pair, its `bao server` process and that process's watchdog.
struct Node {
    id: String,
    dir: PathBuf,
    plugin_dir: PathBuf,
    log_path: PathBuf,
    port: u16,
    procs: Mutex<Procs>,
}

/// A node's processes, behind a lock so that a cluster shared by reference can kill and restart.
#[derive(Default)]
struct Procs {
    child: Option<Child>,
    watchdog: Option<Child>,
}

/// A running 3-node cluster; see the module docs.
pub struct Cluster {
    bin: PathBuf,
    root_dir: PathBuf,
    opts: ClusterOptions,
    token: String,
    nodes: Vec<Node>,
}

impl Cluster {
    /// Starts, initialises and waits for 3 healthy voters. Panics (with the logs' tails) when
    /// that does not happen within 60 s.
    pub fn start(opts: ClusterOptions) -> Cluster {
        let bin = bao_bin();
        let root_dir = make_temp_dir();
        let mut key = [0u8; 32];
        fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key))
            .expect("32 random bytes");
        fs::write(root_dir.join("unseal.key"), key).expect("write the static seal key");
        let nodes = (1..=NODES)
            .map(|i| {
                let dir = root_dir.join(format!("n{i}"));
                let plugin_dir = dir.join("plugins");
                fs::create_dir_all(&plugin_dir).expect("create plugin dir");
                Node {
                    id: format!("n{i}"),
                    log_path: dir.join("server.log"),
                    dir,
                    plugin_dir,
                    port: 0,
                    procs: Mutex::new(Procs::default()),
                }
            })
            .collect();
        let mut cluster = Cluster {
            bin,
            root_dir,
            opts,
            token: String::new(),
            nodes,
        };
        cluster.launch_all();
        cluster.initialise();
        cluster
    }

    /// The root token.
    pub fn token(&self) -> String {
        self.token.clone()
    }

    /// A client of node `i` (0-based) with the root token.
    pub fn client(&self, i: usize) -> BaoClient {
        let node = &self.nodes[i];
        BaoClient {
            bin: self.bin.clone(),
            addr: format!("http://127.0.0.1:{}", node.port),
            port: node.port,
            token: self.token.clone(),
            log_path: node.log_path.clone(),
        }
    }

    /// Clients of every node, in node order.
    pub fn clients(&self) -> Vec<BaoClient> {
        (0..NODES).map(|i| self.client(i)).collect()
    }

    /// One HTTP API call to node `i` with the root token that never panics: `Err` is a
    /// transport failure (refused, timed out, a redirect that led nowhere).
    pub fn try_http(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<(u16, Value), String> {
        try_http(&self.client(i), method, path, body, timeout)
    }

    /// Node `i`'s id in raft (`n1`, `n2`, `n3`).
    pub fn node_id(&self, i: usize) -> &str {
        &self.nodes[i].id
    }

    /// PID of node `i`'s `bao server`, `None` when it is not running.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].procs().child.as_ref().map(Child::id)
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.pid(i).is_some()
    }

    pub fn log_path(&self, i: usize) -> &Path {
        &self.nodes[i].log_path
    }

    /// Node `i`'s server log so far (its plugin's stderr included).
    pub fn server_log(&self, i: usize) -> String {
        log_since(&self.nodes[i].log_path, 0)
    }

    /// Length of node `i`'s log now: pass it to [`Cluster::log_since`] later.
    pub fn log_offset(&self, i: usize) -> u64 {
        fs::metadata(&self.nodes[i].log_path)
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// What node `i` logged after `offset`.
    pub fn log_since(&self, i: usize, offset: u64) -> String {
        log_since(&self.nodes[i].log_path, offset)
    }

    /// PIDs of node `i`'s plugin processes.
    pub fn plugin_pids(&self, i: usize) -> Vec<u32> {
        pids_with_exe_in(&self.nodes[i].plugin_dir)
    }

    /// SIGKILLs node `i`'s plugin processes (a plugin crash); returns their PIDs.
    pub fn kill_plugins(&self, i: usize) -> Vec<u32> {
        let pids = self.plugin_pids(i);
        for &pid in &pids {
            send_signal(pid, SIGKILL);
        }
        pids
    }

    /// `GET sys/leader` on node `i`, `None` when it does not answer.
    pub fn leader_status(&self, i: usize) -> Option<Value> {
        if !self.is_running(i) {
            return None;
        }
        match self.try_http(i, "GET", "sys/leader", None, PROBE_TIMEOUT) {
            Ok((200, v)) => Some(v),
            _ => None,
        }
    }

    /// The running node whose `sys/leader` says `is_self`, if any.
    pub fn find_active(&self) -> Option<usize> {
        (0..NODES).find(|&i| {
            self.leader_status(i)
                .is_some_and(|v| v["is_self"] == Value::Bool(true))
        })
    }

    /// The active node, waiting up to 30 s for one.
    #[track_caller]
    pub fn active(&self) -> usize {
        self.wait_for(LEADER_TIMEOUT, "an active node", || self.find_active())
    }

    /// The running nodes other than the active one.
    #[track_caller]
    pub fn standbys(&self) -> Vec<usize> {
        let active = self.active();
        (0..NODES)
            .filter(|&i| i != active && self.is_running(i))
            .collect()
    }

    /// Waits until a node other than `old` is active, and every running node names it as
    /// leader; returns it.
    #[track_caller]
    pub fn wait_new_active(&self, old: usize, timeout: Duration) -> usize {
        self.wait_for(timeout, "a new active node", || {
            let active = self.find_active().filter(|&a| a != old)?;
            let addr = format!("http://127.0.0.1:{}", self.nodes[active].port);
            let all_agree = (0..NODES).filter(|&i| self.is_running(i)).all(|i| {
                self.leader_status(i)
                    .is_some_and(|v| v["leader_address"].as_str() == Some(addr.as_str()))
            });
            all_agree.then_some(active)
        })
    }

    /// SIGKILLs node `i`'s `bao server` (its plugin process is left to notice by itself, as
    /// after a real crash).
    pub fn kill(&self, i: usize) {
        let mut procs = self.nodes[i].procs();
        stop_watchdog(&mut procs);
        if let Some(mut child) = procs.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again on its ports and data, then waits until it is an unsealed
    /// standby that knows the leader and has caught up with its raft index.
    #[track_caller]
    pub fn restart(&self, i: usize) {
        self.stop_node(i);
        if let Err(why) = self.spawn(i).and_then(|_| self.wait_listening(i)) {
            panic!(
                "node {} did not start again: {why}\n{}",
                self.nodes[i].id,
                log_tail_section(&self.nodes[i].log_path)
            );
        }
        self.wait_for(LEADER_TIMEOUT, "the restarted node to catch up", || {
            let me = self.leader_status(i)?;
            let leader_addr = me["leader_address"].as_str().filter(|a| !a.is_empty())?;
            let leader = (0..NODES)
                .find(|&n| format!("http://127.0.0.1:{}", self.nodes[n].port) == leader_addr)?;
            let leader_index = self.leader_status(leader)?["raft_applied_index"].as_u64()?;
            let sealed = self
                .try_http(i, "GET", "sys/seal-status", None, PROBE_TIMEOUT)
                .ok()?
                .1["sealed"]
                != Value::Bool(false);
            (!sealed && me["raft_applied_index"].as_u64()? >= leader_index).then_some(())
        });
    }

    /// `bao operator step-down` on node `i` (the active node).
    #[track_caller]
    pub fn step_down(&self, i: usize) {
        self.client(i).bao(&["operator", "step-down"]).ok();
    }

    /// `GET sys/storage/raft/autopilot/state` through the active node.
    #[track_caller]
    pub fn autopilot_state(&self) -> Value {
        self.client(self.active())
            .http_ok("GET", "sys/storage/raft/autopilot/state", None)
    }

    /// Copies `binary` into every node's plugin dir (each copy checked byte-identical by
    /// sha256), registers it once as secrets plugin `name` at `version`, enables it at `path`
    /// through the active node, and waits until every running node has a plugin process.
    /// Returns the sha256.
    #[track_caller]
    pub fn mount_plugin(&self, binary: &Path, name: &str, version: &str, path: &str) -> String {
        let want = self.install_plugin_binary(binary, name);
        let client = self.client(self.active());
        client
            .bao(&[
                "plugin",
                "register",
                &format!("-sha256={want}"),
                &format!("-version={version}"),
                "secret",
                name,
            ])
            .ok();
        client
            .bao(&["secrets", "enable", &format!("-path={path}"), name])
            .ok();
        self.wait_for(
            Duration::from_secs(20),
            "a plugin process on every node",
            || {
                (0..NODES)
                    .filter(|&i| self.is_running(i))
                    .all(|i| !self.plugin_pids(i).is_empty())
                    .then_some(())
            },
        );
        want
    }

    /// Copies `binary` into every node's plugin dir as `file` (atomically, each copy checked
    /// byte-identical by sha256) and returns its sha256. For registrations of one's own, e.g.
    /// two versions side by side.
    #[track_caller]
    pub fn install_plugin_binary(&self, binary: &Path, file: &str) -> String {
        let want = sha256_file(binary);
        for node in &self.nodes {
            let got = super::install_into(&node.plugin_dir, binary, file);
            assert_eq!(
                got,
                want,
                "{} holds another binary",
                node.plugin_dir.display()
            );
        }
        want
    }

    /// Polls `f` every 100 ms until it returns `Some`, or panics after `timeout` with `what`
    /// and the tail of every node's log.
    #[track_caller]
    pub fn wait_for<T>(&self, timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
        poll_until(timeout, what, f, || self.log_tails())
    }

    /// The tail of every node's log, for failure messages.
    pub fn log_tails(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("node {}:\n{}", n.id, log_tail_section(&n.log_path)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// [`http_request`] with `client`'s address and token, never panicking.
pub fn try_http(
    client: &BaoClient,
    method: &str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<(u16, Value), String> {
    let token = (!client.token.is_empty()).then_some(client.token.as_str());
    http_request(client.port, method, path, token, body, timeout)
}

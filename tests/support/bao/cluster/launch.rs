//! Starting and stopping the nodes' `bao server` processes: ports, configuration, launch,
//! initialisation and unseal, and the stop (by PID) of every process a node leaves.

use super::*;

impl Cluster {
    /// Starts every node on fresh ports; starts all of them again on new ports when one lost
    /// a race for its port.
    pub(super) fn launch_all(&mut self) {
        let mut last_err = String::new();
        for _ in 0..START_ATTEMPTS {
            for node in &mut self.nodes {
                node.port = reserve_port_pair();
            }
            let mut failed = None;
            for i in 0..NODES {
                if let Err(why) = self.spawn(i) {
                    failed = Some((i, why));
                    break;
                }
            }
            if failed.is_none() {
                failed = (0..NODES).find_map(|i| self.wait_listening(i).err().map(|e| (i, e)));
            }
            let Some((i, why)) = failed else {
                return;
            };
            let lost_port = self.server_log(i).contains("address already in use");
            for n in 0..NODES {
                self.stop_node(n);
            }
            if !lost_port {
                panic!(
                    "bao server {} did not start ({why})\n{}",
                    self.nodes[i].id,
                    log_tail_section(&self.nodes[i].log_path)
                );
            }
            for node in &self.nodes {
                let _ = fs::remove_file(&node.log_path);
                let _ = fs::remove_dir_all(node.dir.join("data"));
            }
            last_err = why;
        }
        panic!("cluster did not start after {START_ATTEMPTS} attempts ({last_err})");
    }

    pub(super) fn config(&self, i: usize) -> String {
        let node = &self.nodes[i];
        let port = node.port;
        let joins: String = (0..NODES)
            .filter(|&n| n != i)
            .map(|n| {
                format!(
                    "  retry_join {{ leader_api_addr = \"http://127.0.0.1:{}\" }}\n",
                    self.nodes[n].port
                )
            })
            .collect();
        format!(
            r#"# written by tests/support/bao/cluster.rs
api_addr         = "http://127.0.0.1:{port}"
cluster_addr     = "https://127.0.0.1:{cluster}"
plugin_directory = "{plugins}"
listener "tcp" {{
  address         = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cluster}"
  tls_disable     = true
}}
storage "raft" {{
  path    = "{data}"
  node_id = "{id}"
  performance_multiplier = 1
{joins}}}
seal "static" {{
  current_key_id = "test-1"
  current_key    = "file://{key}"
}}
{extra}
"#,
            cluster = port + 1,
            plugins = node.plugin_dir.display(),
            data = node.dir.join("data").display(),
            id = node.id,
            key = self.root_dir.join("unseal.key").display(),
            extra = self.opts.config,
        )
    }

    pub(super) fn spawn(&self, i: usize) -> Result<(), String> {
        let config = self.config(i);
        let node = &self.nodes[i];
        fs::create_dir_all(node.dir.join("data")).map_err(|e| e.to_string())?;
        let config_path = node.dir.join("config.hcl");
        fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_path)
            .map_err(|e| e.to_string())?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("server")
            .arg(format!("-config={}", config_path.display()))
            .arg(format!("-log-level={}", self.opts.log_level))
            // Plugins inherit the server's working directory: keep it out of the repo.
            .current_dir(&node.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        let watchdog = spawn_watchdog(child.id(), &node.plugin_dir, &self.root_dir);
        let mut procs = node.procs();
        procs.child = Some(child);
        procs.watchdog = watchdog;
        Ok(())
    }

    /// Waits until node `i`'s listener answers at all (before init `sys/health` is a 501).
    pub(super) fn wait_listening(&self, i: usize) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let port = self.nodes[i].port;
        loop {
            {
                let mut procs = self.nodes[i].procs();
                if let Some(status) = procs
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    procs.child = None;
                    return Err(format!("server exited with {status}"));
                }
            }
            if http_request(port, "GET", "sys/seal-status", None, None, PROBE_TIMEOUT).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("no answer on port {port} within {READY_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One `operator init` on node 1, autopilot tuned, then 3 healthy voters.
    pub(super) fn initialise(&mut self) {
        let init = self
            .client(0)
            .with_token("")
            .bao(&[
                "operator",
                "init",
                "-recovery-shares=1",
                "-recovery-threshold=1",
                "-format=json",
            ])
            .ok()
            .json();
        self.token = init["root_token"]
            .as_str()
            .expect("root token in init's answer")
            .to_string();
        let _ = fs::write(self.root_dir.join("init.json"), init.to_string());
        // Promotion to voter waits for autopilot's stabilization time (10 s at best).
        self.wait_for(LEADER_TIMEOUT, "autopilot set-config on node 1", || {
            self.client(0)
                .bao(&[
                    "operator",
                    "raft",
                    "autopilot",
                    "set-config",
                    "-server-stabilization-time=1s",
                ])
                .success()
                .then_some(())
        });
        self.wait_for(VOTERS_TIMEOUT, "3 healthy voters", || {
            let active = self.find_active()?;
            let (status, state) = self
                .try_http(
                    active,
                    "GET",
                    "sys/storage/raft/autopilot/state",
                    None,
                    PROBE_TIMEOUT,
                )
                .ok()?;
            let data = &state["data"];
            let voters = data["voters"].as_array().map_or(0, Vec::len);
            (status == 200 && data["healthy"] == Value::Bool(true) && voters == NODES).then_some(())
        });
    }

    /// Stops node `i`: SIGTERM, SIGKILL after 5 s, then its leftover plugin processes.
    pub(super) fn stop_node(&self, i: usize) {
        let node = &self.nodes[i];
        let mut procs = node.procs();
        stop_watchdog(&mut procs);
        if let Some(child) = procs.child.as_mut()
            && matches!(child.try_wait(), Ok(None))
        {
            send_signal(child.id(), SIGTERM);
        }
        reap(&mut procs);
        drop(procs);
        kill_leftover_plugins(&node.plugin_dir);
    }
}

impl Node {
    pub(super) fn procs(&self) -> std::sync::MutexGuard<'_, Procs> {
        self.procs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(super) fn stop_watchdog(procs: &mut Procs) {
    if let Some(mut w) = procs.watchdog.take() {
        let _ = w.kill();
        let _ = w.wait();
    }
}

/// Waits up to 5 s for a signalled server, then SIGKILLs it ([`stop_child`]; its SIGTERM
/// again is harmless).
pub(super) fn reap(procs: &mut Procs) {
    if let Some(mut child) = procs.child.take() {
        stop_child(&mut child);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        // All at once: a node stopping alone may wait for the others' raft.
        for node in &self.nodes {
            let mut procs = node.procs();
            stop_watchdog(&mut procs);
            if let Some(child) = procs.child.as_ref() {
                send_signal(child.id(), SIGTERM);
            }
        }
        for node in &self.nodes {
            reap(&mut node.procs());
            kill_leftover_plugins(&node.plugin_dir);
        }
        if panicking {
            let dir = std::env::temp_dir().join("bao-test-logs");
            let name = self
                .root_dir
                .file_name()
                .map(OsString::from)
                .unwrap_or_default();
            let _ = fs::create_dir_all(&dir);
            for node in &self.nodes {
                let kept = dir.join(format!("{}-{}.log", name.to_string_lossy(), node.id));
                let _ = fs::copy(&node.log_path, &kept);
                eprintln!(
                    "Cluster node {} dropped during a panic; its log is kept at {}",
                    node.id,
                    kept.display()
                );
            }
        }
        if std::env::var_os("BAO_TEST_KEEP").is_some_and(|v| !v.is_empty() && v != "0") {
            eprintln!("BAO_TEST_KEEP: keeping {}", self.root_dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.root_dir);
        }
    }
}

//! Starting and stopping the dev server's `bao server` process: its arguments and
//! configuration, the launch (again on another port when it lost a race for one), unseal of a
//! persistent server, and the stop (by PID) of the server and any plugin it leaves.

use super::*;

impl DevServer {
    pub(super) fn launch(&mut self, first: bool) {
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

    pub(super) fn server_args(&self, dev_plugin_init_flag: bool) -> Vec<String> {
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

    pub(super) fn write_config(&self) {
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

    pub(super) fn spawn(&mut self, dev_plugin_init_flag: bool) {
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
    pub(super) fn wait_responding(&mut self) -> Result<(), String> {
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
    pub(super) fn after_start(&mut self, first: bool) {
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

    pub(super) fn unseal(&self) {
        let key = self.unseal_key.clone().expect("unseal key");
        let body = serde_json::json!({ "key": key });
        self.client
            .with_token("")
            .http_ok("PUT", "sys/unseal", Some(&body));
    }

    pub(super) fn wait_active(&mut self) {
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
    pub(super) fn shutdown_processes(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child);
        }
        kill_leftover_plugins(&self.plugin_dir);
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

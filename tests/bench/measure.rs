//! The measuring instruments: latency samples and their statistics, the rounds that compare
//! the plugin with its baselines, CPU and memory of a process, and the calls measured.

use super::*;

/// Latency distribution and throughput of one measurement.
#[derive(Clone, Copy, Default)]
pub(crate) struct Stats {
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) per_sec: f64,
    pub(crate) errors: usize,
}

impl Stats {
    pub(crate) fn json(&self) -> Value {
        json!({ "p50_ms": round(self.p50_ms), "p99_ms": round(self.p99_ms), "per_sec": round(self.per_sec), "errors": self.errors })
    }
}

pub(crate) fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// The latencies of one measurement, possibly gathered over several rounds.
#[derive(Default)]
pub(crate) struct Samples {
    pub(crate) times: Vec<Duration>,
    pub(crate) errors: usize,
    pub(crate) elapsed: Duration,
}

impl Samples {
    pub(crate) fn add(&mut self, round: Samples) {
        self.times.extend(round.times);
        self.errors += round.errors;
        self.elapsed += round.elapsed;
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut times = self.times.clone();
        times.sort();
        Stats {
            p50_ms: percentile(&times, 0.5),
            p99_ms: percentile(&times, 0.99),
            per_sec: times.len() as f64 / self.elapsed.as_secs_f64(),
            errors: self.errors,
        }
    }
}

/// Runs `total` calls of `call` from `clients` concurrent workers.
pub(crate) async fn measure<F, Fut>(clients: usize, total: usize, call: F) -> Samples
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..clients {
        let (call, next) = (call.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let (mut times, mut errors) = (Vec::new(), 0);
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return (times, errors);
                }
                let t = Instant::now();
                if call(i).await {
                    times.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
        }));
    }
    let mut samples = Samples::default();
    for w in workers {
        let (t, e) = w.await.expect("worker");
        samples.times.extend(t);
        samples.errors += e;
    }
    samples.elapsed = started.elapsed();
    samples
}

/// Rounds in which the baselines and the plugin are measured in turn, so that a drifting
/// machine or upstream weighs on all of them alike.
pub(crate) const ROUNDS: usize = 5;

/// KV read, direct generate and creds/revoke, measured in alternating rounds, plus a role
/// read: a plugin request that needs neither storage (the role is cached) nor LiteLLM.
pub(crate) struct Comparison {
    pub(crate) kv: Stats,
    pub(crate) role_read: Stats,
    /// `LIST roles`: one host storage call more than the cached role read.
    pub(crate) role_list: Stats,
    pub(crate) direct: Stats,
    pub(crate) creds: Stats,
    pub(crate) revoke: Stats,
    /// CPU of the plugin and of `bao` while issuing, and while revoking.
    pub(crate) issue_cpu: Cpu,
    pub(crate) revoke_cpu: Cpu,
}

impl Comparison {
    /// `upstream` is (URL, master key); `pids` are the plugin's and `bao`'s.
    pub(crate) async fn run(
        api: &Api,
        mount: &str,
        upstream: (&str, &str),
        pids: (u32, u32),
        clients: usize,
        total: usize,
    ) -> Comparison {
        let per_round = total.div_ceil(ROUNDS);
        let (mut kv, mut role_read, mut role_list, mut direct, mut creds, mut revoke) =
            Default::default();
        let (mut issue_cpu, mut revoke_cpu) = (Cpu::default(), Cpu::default());
        for _ in 0..ROUNDS {
            Samples::add(&mut kv, reads(api, "kv/data/x", clients, per_round).await);
            let role = format!("{mount}/roles/bench");
            Samples::add(&mut role_read, reads(api, &role, clients, per_round).await);
            let roles = format!("{mount}/roles?list=true");
            Samples::add(&mut role_list, reads(api, &roles, clients, per_round).await);
            Samples::add(
                &mut direct,
                direct_generate(upstream.0, upstream.1, clients, per_round).await,
            );
            let before = Cpu::of(pids);
            let (issued, leases) = issue_creds(api, mount, "bench", clients, per_round).await;
            issue_cpu.add_since(before, pids);
            let before = Cpu::of(pids);
            let revoked = revoke_leases(api, leases, clients).await;
            revoke_cpu.add_since(before, pids);
            Samples::add(&mut creds, issued);
            Samples::add(&mut revoke, revoked);
        }
        Comparison {
            kv: kv.stats(),
            role_read: role_read.stats(),
            role_list: role_list.stats(),
            direct: direct.stats(),
            creds: creds.stats(),
            revoke: revoke.stats(),
            issue_cpu,
            revoke_cpu,
        }
    }

    /// (3) − (1) − (2) at p50.
    pub(crate) fn overhead_ms(&self) -> f64 {
        self.creds.p50_ms - self.kv.p50_ms - self.direct.p50_ms
    }

    /// What any request to a plugin costs over a built-in engine's, at p50: OpenBao's
    /// `resolve-path` and `HandleRequest` calls into the plugin process.
    pub(crate) fn floor_ms(&self) -> f64 {
        self.role_read.p50_ms - self.kv.p50_ms
    }

    /// One storage call from the plugin through the host, at p50.
    pub(crate) fn host_call_ms(&self) -> f64 {
        self.role_list.p50_ms - self.role_read.p50_ms
    }
}

/// A keep-alive HTTP client for OpenBao's API.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) http: reqwest::Client,
    pub(crate) addr: String,
    pub(crate) token: String,
}

impl Api {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.addr)
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let mut req = self
            .http
            .request(method, self.url(path))
            .header("X-Vault-Token", &self.token);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{path}: HTTP {status}: {text}"));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub(crate) async fn get(&self, path: &str) -> Result<Value, String> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        self.call(reqwest::Method::POST, path, Some(&body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> Result<Value, String> {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

/// CPU time of a process, in seconds: the sum over its threads of the nanosecond counter in
/// `/proc/<pid>/task/<tid>/schedstat`. (`utime + stime` in `/proc/<pid>/stat` count 10 ms
/// ticks, which is ±7 % of the plugin's CPU over a 2,000-issue measurement.) Threads that exit
/// take their time with them; neither process here ends threads while it is measured.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let nanos: u64 = threads
        .filter_map(|thread| std::fs::read_to_string(thread.ok()?.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    nanos as f64 / 1e9
}

pub(crate) fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Median time from spawning the plugin as a host would to its handshake line.
pub(crate) fn handshake_ms(binary: &PathBuf, runs: usize) -> f64 {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let host_cert = params.self_signed(&key).expect("cert").pem();
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let mut child = Command::new(binary)
            .env(
                "VAULT_BACKEND_PLUGIN",
                "6669da05-b1c8-4f49-97d9-c8e5bed98e20",
            )
            .env("PLUGIN_PROTOCOL_VERSIONS", "5")
            .env("PLUGIN_CLIENT_CERT", &host_cert)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn plugin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("handshake");
        times.push(started.elapsed());
        assert!(line.starts_with("1|5|unix|"), "bad handshake line {line:?}");
        let _ = child.kill();
        let _ = child.wait();
    }
    times.sort();
    percentile(&times, 0.5)
}

/// Direct `/key/generate` calls to an upstream, cleaned up afterwards.
pub(crate) async fn direct_generate(
    url: &str,
    master_key: &str,
    clients: usize,
    total: usize,
) -> Samples {
    let http = reqwest::Client::new();
    let keys = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (u, m, k) = (url.to_string(), master_key.to_string(), keys.clone());
    let stats = measure(clients, total, move |i| {
        let (http, u, m, k) = (http.clone(), u.clone(), m.clone(), k.clone());
        async move {
            // The same request the plugin sends, so the comparison is like for like.
            let body = json!({
                "key": format!("sk-{}{}", uuid::Uuid::new_v4().simple(), &uuid::Uuid::new_v4().simple().to_string()[..11]),
                "key_alias": format!("bench-direct-{}-{i}", std::process::id()),
                "duration": "605s",
                "models": ["fake-gpt"],
                "key_type": "llm_api",
                "metadata": {
                    "vault_role": "bench", "vault_mount": "litellm/",
                    "vault_request_id": "00000000-0000-0000-0000-000000000000",
                    "vault_entity_id": "", "vault_display_name": "token",
                },
            });
            match http
                .post(format!("{u}/key/generate"))
                .bearer_auth(&m)
                .json(&body)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => {
                    if let Ok(v) = r.json::<Value>().await
                        && let Some(t) = v["token"].as_str()
                    {
                        k.lock().expect("keys").push(t.to_string());
                    }
                    true
                }
                _ => false,
            }
        }
    })
    .await;
    let tokens = std::mem::take(&mut *keys.lock().expect("keys"));
    for chunk in tokens.chunks(100) {
        let _ = reqwest::Client::new()
            .post(format!("{url}/key/delete"))
            .bearer_auth(master_key)
            .json(&json!({"keys": chunk}))
            .send()
            .await;
    }
    stats
}

/// Issues `total` credentials of `mount`/`role`; returns the latencies and the lease ids.
pub(crate) async fn issue_creds(
    api: &Api,
    mount: &str,
    role: &str,
    clients: usize,
    total: usize,
) -> (Samples, Vec<String>) {
    let leases = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (a, path, l) = (api.clone(), format!("{mount}/creds/{role}"), leases.clone());
    let issue = measure(clients, total, move |_| {
        let (a, path, l) = (a.clone(), path.clone(), l.clone());
        async move {
            match a.get(&path).await {
                Ok(v) => {
                    l.lock()
                        .expect("leases")
                        .push(v["lease_id"].as_str().unwrap_or_default().to_string());
                    true
                }
                Err(e) => {
                    eprintln!("creds failed: {e}");
                    false
                }
            }
        }
    })
    .await;
    let leases = std::mem::take(&mut *leases.lock().expect("leases"));
    (issue, leases)
}

/// Revokes `leases` (sync, so the key is deleted before the call returns).
pub(crate) async fn revoke_leases(api: &Api, leases: Vec<String>, clients: usize) -> Samples {
    let leases = Arc::new(leases);
    let (a, l) = (api.clone(), leases.clone());
    measure(clients, leases.len(), move |i| {
        let (a, l) = (a.clone(), l.clone());
        async move {
            a.post("sys/leases/revoke", json!({"lease_id": l[i], "sync": true}))
                .await
                .is_ok()
        }
    })
    .await
}

/// Issues, then revokes, `total` credentials.
pub(crate) async fn creds_and_revoke(
    api: &Api,
    mount: &str,
    clients: usize,
    total: usize,
) -> (Samples, Samples) {
    let (issue, leases) = issue_creds(api, mount, "bench", clients, total).await;
    (issue, revoke_leases(api, leases, clients).await)
}

/// CPU seconds used by the plugin and by `bao`.
#[derive(Clone, Copy, Default)]
pub(crate) struct Cpu {
    pub(crate) plugin: f64,
    pub(crate) bao: f64,
}

impl Cpu {
    pub(crate) fn of((plugin_pid, bao_pid): (u32, u32)) -> Cpu {
        Cpu {
            plugin: cpu_seconds(plugin_pid),
            bao: cpu_seconds(bao_pid),
        }
    }

    /// Adds what the processes used since `before`.
    pub(crate) fn add_since(&mut self, before: Cpu, pids: (u32, u32)) {
        let now = Cpu::of(pids);
        self.plugin += now.plugin - before.plugin;
        self.bao += now.bao - before.bao;
    }

    /// "plugin X s, bao Y s (ratio R)" per 1,000 of `count` operations.
    pub(crate) fn per_1000(&self, count: usize) -> String {
        let scale = 1000.0 / count as f64;
        format!(
            "plugin {:.3} s, bao {:.3} s (ratio {:.3})",
            self.plugin * scale,
            self.bao * scale,
            self.plugin / self.bao
        )
    }

    pub(crate) fn json(&self, count: usize) -> Value {
        let scale = 1000.0 / count as f64;
        json!({"plugin_s_per_1000": round(self.plugin * scale), "bao_s_per_1000": round(self.bao * scale), "ratio": round(self.plugin / self.bao)})
    }
}

pub(crate) async fn reads(api: &Api, path: &str, clients: usize, total: usize) -> Samples {
    let (a, path) = (api.clone(), path.to_string());
    measure(clients, total, move |_| {
        let (a, path) = (a.clone(), path.clone());
        async move { a.get(&path).await.is_ok() }
    })
    .await
}

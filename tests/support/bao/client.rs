//! One server's client: the `bao` CLI, and its HTTP API over `reqwest::blocking`.

use super::*;

/// Talks to a server; cheap to clone and `Send`, e.g. for `spawn_blocking`.
#[derive(Clone, Debug)]
pub struct BaoClient {
    pub(crate) bin: PathBuf,
    pub(crate) addr: String,
    pub(crate) port: u16,
    pub(crate) token: String,
    pub(crate) log_path: PathBuf,
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

/// One HTTP API call: (status, JSON body); an empty body is `Value::Null`, a non-JSON body a
/// `Value::String`. `path` may be `sys/health`, `/sys/health` or `/v1/sys/health`.
///
/// `reqwest::blocking` must not run on a thread that drives a tokio runtime (it panics there),
/// and tests call this from `#[tokio::test]` code: so each call runs on a scoped thread of its
/// own. No connection is kept: a restarted server on the same port never meets a stale one.
pub(crate) fn http_request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<(u16, Value), String> {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    let path = if path.starts_with("/v1/") {
        path.to_string()
    } else {
        format!("/v1/{}", path.trim_start_matches('/'))
    };
    let url = format!("http://127.0.0.1:{port}{path}");
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let client = CLIENT.get_or_init(|| {
                    reqwest::blocking::Client::builder()
                        .pool_max_idle_per_host(0)
                        .user_agent("bao-test-harness")
                        .build()
                        .expect("an HTTP client")
                });
                let mut request = client
                    .request(method, &url)
                    .timeout(timeout)
                    .header("Accept", "application/json");
                if let Some(token) = token {
                    request = request.header("X-Vault-Token", token);
                }
                if let Some(body) = body {
                    request = request.json(body);
                }
                let response = request.send().map_err(|e| error_chain(&e))?;
                let status = response.status().as_u16();
                let bytes = response.bytes().map_err(|e| format!("read: {e:#}"))?;
                let value = if bytes.iter().all(u8::is_ascii_whitespace) {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(&bytes).into_owned())
                    })
                };
                Ok((status, value))
            })
            .join()
            .unwrap_or_else(|_| Err("the HTTP call panicked".to_string()))
    })
}

/// An error and its sources, `outer: inner: …` (reqwest's own text names only the URL).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

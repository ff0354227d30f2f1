//! A proxy that holds back one `/key/generate` answer (scenario (f)).

use super::*;

/// An HTTP/1.1 proxy on 127.0.0.1 in front of the real LiteLLM. It passes every request
/// through (one request per connection, `Connection: close`), except that it can keep the
/// answer of the next `/key/generate` back: LiteLLM has created the key, the plugin has not
/// heard of it. The held answer's JSON (key hash and alias; the key itself is never printed)
/// is kept for the test.
pub(super) struct HoldingProxy {
    pub(super) url: String,
    pub(super) port: u16,
    pub(super) state: Arc<ProxyState>,
}

pub(super) struct ProxyState {
    pub(super) upstream: String,
    pub(super) holds: AtomicU32,
    pub(super) held: Mutex<Vec<Value>>,
    pub(super) release: AtomicBool,
    pub(super) stop: AtomicBool,
}

impl HoldingProxy {
    pub(super) fn start(upstream_url: &str) -> HoldingProxy {
        let upstream = upstream_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the holding proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let state = Arc::new(ProxyState {
            upstream,
            holds: AtomicU32::new(0),
            held: Mutex::new(Vec::new()),
            release: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let accept_state = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if accept_state.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let state = accept_state.clone();
                    std::thread::spawn(move || proxy_one(conn, &state));
                }
            }
        });
        HoldingProxy {
            url: format!("http://127.0.0.1:{port}"),
            port,
            state,
        }
    }

    pub(super) fn hold_next_generate(&self) {
        self.state.holds.store(1, Ordering::SeqCst);
    }

    pub(super) fn held(&self) -> Vec<Value> {
        self.state.held.lock().unwrap().clone()
    }
}

impl Drop for HoldingProxy {
    fn drop(&mut self) {
        self.state.release.store(true, Ordering::SeqCst);
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads one HTTP message head (through the blank line) and its `Content-Length` body.
pub(super) fn read_request(conn: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((head, body))
}

/// The head with hop-by-hop and encoding headers dropped and `Connection: close` added.
pub(super) fn close_head(head: &str) -> String {
    let mut out = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "connection" | "keep-alive" | "accept-encoding" | "proxy-connection"
        ) {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

pub(super) fn proxy_one(mut conn: TcpStream, state: &ProxyState) {
    let Some((head, body)) = read_request(&mut conn) else {
        return;
    };
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let Ok(mut upstream) = TcpStream::connect(&state.upstream) else {
        return;
    };
    let mut request = close_head(&head).into_bytes();
    request.extend_from_slice(&body);
    if upstream.write_all(&request).is_err() {
        return;
    }
    let mut response = Vec::new();
    if upstream.read_to_end(&mut response).is_err() {
        return;
    }
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |at| at + 4);
    let (resp_head, resp_body) = response.split_at(split);
    let resp_head = String::from_utf8_lossy(resp_head).into_owned();
    if path.starts_with("/key/generate")
        && state
            .holds
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        let text = String::from_utf8_lossy(resp_body);
        let json = text
            .find('{')
            .zip(text.rfind('}'))
            .and_then(|(a, b)| serde_json::from_str::<Value>(&text[a..=b]).ok())
            .unwrap_or(Value::Null);
        state.held.lock().unwrap().push(json);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !state.release.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let mut out = close_head(&resp_head).into_bytes();
    out.extend_from_slice(resp_body);
    let _ = conn.write_all(&out);
}

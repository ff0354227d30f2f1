//! `bao proxy` with its cache, end to end, with the configuration the README shows
//! (`tests/e2e/agent/proxy.hcl`; the test only moves the listener to a free port and passes
//! `-address`). The cache changes lease handling: applications reading `creds/<role>` through
//! the proxy share one cached lease and key, which the proxy renews; a revoke through the
//! proxy deletes the key and evicts it, and at max_ttl the next read gets a new key.
//! LiteLLM is the fake here (short leases: ttl 10 s, max_ttl 30 s).

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::agent::{short_leases_with_approle, spawn_bao};
use crate::policies::{APP_ROLE, Setup};
use crate::support::assert_eventually;
use crate::support::bao::{OwnedProcess, reserve_port_pair};

/// The proxy configuration the README shows.
const PROXY_CONFIG: &str = include_str!("agent/proxy.hcl");
/// Its listener, as written there.
const LISTENER: &str = "127.0.0.1:8100";

/// An application's request through the proxy, without a token of its own.
async fn through(proxy: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut request = reqwest::Client::new().request(method, format!("http://{proxy}/v1/{path}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the proxy answers");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "{path} through the proxy: {status} {text}"
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn read_creds(proxy: &str) -> (String, String) {
    let creds = through(
        proxy,
        reqwest::Method::GET,
        &format!("litellm/creds/{APP_ROLE}"),
        None,
    )
    .await;
    let lease = creds["lease_id"].as_str().expect("a lease").to_string();
    let token = creds["data"]["token_id"]
        .as_str()
        .expect("a key")
        .to_string();
    (lease, token)
}

/// When OpenBao says `lease` ends.
fn lease_end(s: &Setup, lease: &str) -> Option<SystemTime> {
    let (status, info) = s.root.http(
        "PUT",
        "sys/leases/lookup",
        Some(&json!({ "lease_id": lease })),
    );
    (status == 200).then(|| {
        humantime::parse_rfc3339_weak(info["data"]["expire_time"].as_str().unwrap()).unwrap()
    })
}

#[tokio::test]
async fn proxy_cache_shares_renews_and_evicts_one_lease() {
    let (s, dir) = short_leases_with_approle().await;
    let listener = format!("127.0.0.1:{}", reserve_port_pair());
    assert!(PROXY_CONFIG.contains(LISTENER));
    dir.write_private("proxy.hcl", &PROXY_CONFIG.replace(LISTENER, &listener));
    let child = spawn_bao(&dir, &["proxy", "-config=proxy.hcl"], &s.server.addr());
    let mut proxy = OwnedProcess::new(child);
    assert_eventually!(
        std::net::TcpStream::connect(&listener).is_ok()
            && dir.log().contains("authentication successful"),
        within = Duration::from_secs(20),
        "the proxy listens and has a token\n{}",
        dir.log()
    );

    // Two applications, one cached lease and key.
    let (lease, token) = read_creds(&listener).await;
    assert_eq!(read_creds(&listener).await, (lease.clone(), token.clone()));
    let role_keys = || {
        s.fake
            .live_keys()
            .into_iter()
            .filter(|k| k.metadata.get("vault_role").and_then(Value::as_str) == Some(APP_ROLE))
            .count()
    };
    assert_eq!(role_keys(), 1, "the second read came from the cache");

    // A revoke through the proxy deletes the key and evicts the entry: the next read is new.
    through(
        &listener,
        reqwest::Method::PUT,
        "sys/leases/revoke",
        Some(json!({ "lease_id": lease })),
    )
    .await;
    assert!(s.fake.get(&token).is_none(), "the revoked key is deleted");
    let (second_lease, second_token) = read_creds(&listener).await;
    assert_ne!(second_lease, lease, "the revoked lease left the cache");
    assert!(s.fake.get(&second_token).is_some());

    // The proxy renews the cached lease before its 10 s run out.
    let first_end = lease_end(&s, &second_lease).expect("the lease exists");
    assert_eventually!(
        lease_end(&s, &second_lease).is_some_and(|end| end
            .duration_since(first_end)
            .is_ok_and(|d| d >= Duration::from_secs(2))),
        within = Duration::from_secs(20),
        "the proxy renews the cached lease\n{}",
        dir.log()
    );
    assert_eq!(read_creds(&listener).await.0, second_lease, "still cached");

    // At max_ttl the lease ends, its key goes, and the cache serves a new one.
    assert_eventually!(
        lease_end(&s, &second_lease).is_none() && s.fake.get(&second_token).is_none(),
        within = Duration::from_secs(40),
        "the cached lease ends at max_ttl and its key is deleted"
    );
    let (third_lease, third_token) = read_creds(&listener).await;
    assert_ne!(third_lease, second_lease);
    assert!(s.fake.get(&third_token).is_some());

    proxy.stop();
    s.root
        .bao(&["lease", "revoke", "-sync", "-prefix", "litellm/creds/"])
        .ok();
    assert_eq!(role_keys(), 0);
}

#[test]
fn the_readme_shows_this_proxy_config() {
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(PROXY_CONFIG.trim()),
        "README.md must show tests/e2e/agent/proxy.hcl verbatim"
    );
}

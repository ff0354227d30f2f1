//! Fault classification of the client against the fake: refused ports, unresolvable hosts,
//! timeouts, injected faults and odd answers, secrets kept out of errors, oversized bodies.

use std::time::Duration;

use vault_plugin_secrets_litellm::engine::client::{
    ApiError, Client, ClientConfig, Deleted, KeyStatus,
};

use crate::support::fake_litellm::{FakeLiteLlm, Fault, Op};
use crate::support::target::{MASTER, fake_and_client, gen_req};

#[tokio::test]
async fn refused_port_is_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let client = Client::new(&ClientConfig::new(url.clone(), MASTER)).expect("client");
    let err = client.verify().await.expect_err("refused");
    assert!(matches!(err, ApiError::Unreachable { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("LiteLLM at {url} is unreachable: connection refused")
    );
    assert!(!err.may_have_reached_server());
}

#[tokio::test]
async fn unresolvable_host_is_unreachable() {
    let client =
        Client::new(&ClientConfig::new("http://litellm.invalid:4000", MASTER)).expect("client");
    let err = client.verify().await.expect_err("dns");
    assert!(matches!(err, ApiError::Unreachable { .. }), "{err:?}");
}

#[tokio::test]
async fn slow_answer_is_timeout_and_effect_stays() {
    let (fake, client) = fake_and_client(Duration::from_millis(300));
    fake.set_fault(Op::Generate, Fault::Delay(Duration::from_secs(2)));
    let req = gen_req("slow");
    let started = std::time::Instant::now();
    let err = client.generate(&req).await.expect_err("timeout");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        matches!(
            err,
            ApiError::Timeout {
                op: "/key/generate",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "LiteLLM /key/generate timed out after 300ms"
    );
    assert!(err.may_have_reached_server());
    // Delay processes first: the key exists although the client gave up (the WAL case).
    assert!(fake.find_by_alias(&req.key_alias).is_some());
}

#[tokio::test]
async fn fault_classification() {
    let (fake, client) = fake_and_client(Duration::from_secs(5));

    fake.fail_next_n(Op::Generate, Fault::NonJson, 1);
    let err = client
        .generate(&gen_req("nonjson"))
        .await
        .expect_err("non-json");
    assert!(
        matches!(
            err,
            ApiError::InvalidResponse {
                op: "/key/generate",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("LiteLLM /key/generate returned an invalid response: body is not JSON"),
        "{err}"
    );
    assert_eq!(fake.key_count(), 0);

    fake.fail_next_n(Op::Generate, Fault::Status(500), 1);
    let err = client.generate(&gen_req("500")).await.expect_err("500");
    assert_eq!(
        err.to_string(),
        "LiteLLM /key/generate failed: HTTP 500: fault injected by FakeLiteLlm"
    );
    assert_eq!(err.status(), Some(500));

    // The fault was consumed: the next call succeeds.
    let key = client.generate(&gen_req("ok")).await.expect("after faults");
    assert_eq!(fake.requests(Op::Generate), 3);

    fake.set_fault(Op::Info, Fault::Truncated);
    let err = client.info(&key.token).await.expect_err("truncated");
    assert!(
        matches!(
            err,
            ApiError::InvalidResponse {
                op: "/key/info",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("truncated"), "{err}");
    fake.set_fault(Op::Info, Fault::None);

    // Repeatable operations survive one dropped connection (one retry)...
    fake.reset_counters();
    fake.fail_next_n(Op::Update, Fault::Reset, 1);
    assert!(client.extend(&key.token, 600).await.is_ok());
    assert_eq!(fake.requests(Op::Update), 2);
    // ...but not two.
    fake.set_fault(Op::Update, Fault::Reset);
    let err = client.extend(&key.token, 600).await.expect_err("reset");
    assert!(
        matches!(
            err,
            ApiError::Disconnected {
                op: "/key/update",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(
            "LiteLLM /key/update failed: connection closed before a response was received"
        ),
        "{err}"
    );
    assert_eq!(fake.requests(Op::Update), 4);
    fake.set_fault(Op::Update, Fault::None);

    // Generate is never repeated: the lost answer may have carried a created key.
    fake.fail_next_n(Op::Generate, Fault::LoseResponse, 1);
    let req = gen_req("lost");
    let err = client.generate(&req).await.expect_err("lost");
    assert!(matches!(err, ApiError::Disconnected { .. }), "{err:?}");
    assert!(
        fake.find_by_alias(&req.key_alias).is_some(),
        "processed before the cut"
    );
    assert_eq!(fake.requests(Op::Generate), 1);
    fake.fail_next_n(Op::Generate, Fault::Reset, 1);
    let req = gen_req("reset");
    assert!(matches!(
        client.generate(&req).await,
        Err(ApiError::Disconnected { .. })
    ));
    assert!(
        fake.find_by_alias(&req.key_alias).is_none(),
        "reset drops the request unprocessed"
    );

    // Any applies to every route without its own fault.
    fake.set_fault(Op::Any, Fault::Status(503));
    assert_eq!(client.verify().await.expect_err("503").status(), Some(503));
    fake.clear_faults();
    client.verify().await.expect("healthy again");
}

#[tokio::test]
async fn not_litellm_404_is_not_success() {
    let (fake, client) = fake_and_client(Duration::from_secs(5));
    fake.set_fault(
        Op::Delete,
        Fault::Body {
            status: 404,
            body: "<html><body>404 Not Found (nginx)</body></html>".into(),
        },
    );
    let err = client
        .delete_keys(&["abc".into()])
        .await
        .expect_err("misrouted 404");
    assert_eq!(
        err.to_string(),
        "LiteLLM /key/delete failed: HTTP 404: <html><body>404 Not Found (nginx)</body></html>"
    );
    fake.set_fault(
        Op::Info,
        Fault::Body {
            status: 404,
            body: r#"{"detail":"Not Found"}"#.into(),
        },
    );
    let err = client.info("abc").await.expect_err("misrouted 404");
    assert_eq!(
        err.to_string(),
        "LiteLLM /key/info failed: HTTP 404: Not Found"
    );
}

#[tokio::test]
async fn error_bodies_never_leak_keys() {
    let (fake, client) = fake_and_client(Duration::from_secs(5));
    let issued = "sk-AbCdEfGhIjKlMnOpQrStUv";
    let body = format!(
        r#"{{"error":{{"message":"bad master key {MASTER}; Key=alias ({issued}) sk-...StUv","type":"auth_error","param":null,"code":"401"}}}}"#
    );
    fake.set_fault(Op::Any, Fault::Body { status: 401, body });
    let err = client.verify().await.expect_err("401");
    let shown = format!("{err} / {err:?}");
    assert!(
        !shown.contains(MASTER) && !shown.contains(issued),
        "{shown}"
    );
    assert!(
        shown.contains("bad master key [redacted]; Key=alias (sk-...StUv) sk-...StUv"),
        "{shown}"
    );

    // A master key that does not look like `sk-…` is still removed, and an unparseable
    // body is quoted only after redaction.
    let odd_master = "hunter2-master";
    let fake2 = FakeLiteLlm::start(odd_master).expect("fake");
    let client2 = Client::new(&ClientConfig::new(fake2.url(), odd_master)).expect("client");
    fake2.set_fault(
        Op::Any,
        Fault::Body {
            status: 500,
            body: format!("{}{odd_master}", "x".repeat(195)),
        },
    );
    let err = client2.verify().await.expect_err("500");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    drop(fake);
}

#[tokio::test]
async fn oversized_bodies() {
    let (fake, client) = fake_and_client(Duration::from_secs(5));
    let big = format!(r#"{{"keys":[],"pad":"{}"}}"#, "x".repeat(1024 * 1024 + 10));
    fake.set_fault(
        Op::List,
        Fault::Body {
            status: 200,
            body: big.clone(),
        },
    );
    let err = client.verify().await.expect_err("too big");
    assert_eq!(
        err.to_string(),
        "LiteLLM /key/list returned an invalid response: response body exceeds 1048576 bytes"
    );
    fake.set_fault(
        Op::List,
        Fault::Body {
            status: 502,
            body: big,
        },
    );
    let err = client.verify().await.expect_err("502");
    assert_eq!(err.status(), Some(502));
    assert!(err.to_string().chars().count() < 300, "message is capped");
}

#[tokio::test]
async fn stop_and_restart_on_same_port() {
    let (mut fake, client) = fake_and_client(Duration::from_secs(5));
    let key = client
        .generate(&gen_req("restart"))
        .await
        .expect("generate");
    let url = fake.url();
    fake.stop();
    let err = client.info(&key.token).await.expect_err("down");
    assert!(matches!(err, ApiError::Unreachable { .. }), "{err:?}");
    fake.restart().expect("restart");
    assert_eq!(fake.url(), url);
    // Same database after the outage; the client reconnects by itself.
    let info = client.info(&key.token).await.expect("info").expect("kept");
    assert_eq!(info.status, KeyStatus::Active);
}

#[tokio::test]
async fn concurrent_generates_share_one_client() {
    let (fake, client) = fake_and_client(Duration::from_secs(10));
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.generate(&gen_req(&format!("c{i}"))).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.expect("join").expect("generate").token);
    }
    assert_eq!(fake.key_count(), 64);
    assert_eq!(
        client.delete_keys(&tokens).await.expect("delete"),
        Deleted::Some
    );
    assert_eq!(fake.key_count(), 0);
    assert_eq!(fake.deleted_keys().len(), 64);
}

#[tokio::test]
async fn config_validation() {
    let bad = |f: fn(&mut ClientConfig)| {
        let mut cfg = ClientConfig::new("http://127.0.0.1:4000", MASTER);
        f(&mut cfg);
        Client::new(&cfg).map(|_| ()).map_err(|e| e.to_string())
    };
    assert!(bad(|_| {}).is_ok());
    assert!(bad(|c| c.base_url = "ftp://x".into()).is_err());
    assert!(bad(|c| c.master_key = String::new()).is_err());
    assert!(
        bad(|c| c.master_key = "sk-bad\nkey".into())
            .unwrap_err()
            .contains("not allowed")
    );
    assert!(
        !bad(|c| c.master_key = "sk-bad\nkey".into())
            .unwrap_err()
            .contains("sk-bad")
    );
    assert!(bad(|c| c.request_timeout = Duration::ZERO).is_err());
    assert_eq!(
        bad(|c| c.ca_cert = Some("not a pem".into())),
        Err("invalid LiteLLM client configuration: ca_cert contains no PEM certificate".into())
    );
    assert!(bad(|c| c.insecure_tls = true).is_ok());
    // Path prefixes are kept.
    let client =
        Client::new(&ClientConfig::new("https://gw.example/litellm/", MASTER)).expect("client");
    assert_eq!(client.base_url(), "https://gw.example/litellm");
}

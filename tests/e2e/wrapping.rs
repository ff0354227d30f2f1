//! Response wrapping of creds, end to end: an application (logged in with the README's
//! application policy) issues a key with `bao read -wrap-ttl=60s`, so what it holds is a
//! single-use wrapping token and no key; unwrapping it yields a key that exists in LiteLLM
//! (the fake) under a live, renewable lease; the token cannot be unwrapped twice.

use serde_json::Value;

use crate::policies::{APP_ROLE, Setup};
use crate::support::{assert_eventually, key, lease_exists, lease_id, token_id};
use vault_plugin_secrets_litellm::engine::client::token_hash;

/// Status of `GET /v1/models` on the fake with `key`.
async fn models_status(url: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{url}/v1/models"))
        .bearer_auth(key)
        .send()
        .await
        .expect("the fake answers")
        .status()
        .as_u16()
}

#[tokio::test]
async fn wrapped_creds_unwrap_once_into_a_working_key_under_a_lease() {
    let s = Setup::start().await;
    let app = s.login("app", "litellm-application");
    let path = format!("litellm/creds/{APP_ROLE}");
    let keys_before = s.fake.key_count();

    let wrapped = app
        .bao(&["read", "-wrap-ttl=60s", "-format=json", &path])
        .ok();
    assert!(
        !wrapped.stdout.contains("sk-"),
        "a wrapped response shows no key: {}",
        wrapped.stdout
    );
    let wrapped = wrapped.json();
    assert!(wrapped["data"].is_null(), "{wrapped}");
    assert!(wrapped["lease_id"].as_str().is_none_or(str::is_empty));
    let info = &wrapped["wrap_info"];
    assert_eq!(info["ttl"], 60, "{wrapped}");
    assert_eq!(info["creation_path"], path.as_str(), "{wrapped}");
    let wrapping_token = info["token"].as_str().expect("wrapping token").to_string();
    // The key exists already: it was made when the request was answered.
    assert_eq!(s.fake.key_count(), keys_before + 1);

    // What anyone holding the token can learn without unwrapping it: where it came from.
    let lookup = s
        .root
        .bao(&[
            "write",
            "-format=json",
            "sys/wrapping/lookup",
            &format!("token={wrapping_token}"),
        ])
        .ok()
        .json();
    assert_eq!(lookup["data"]["creation_path"], path.as_str(), "{lookup}");

    // Unwrapped with the wrapping token as the client token, as a workload handed only that
    // token does (`BAO_TOKEN=<wrapping token> bao unwrap`).
    let creds = s
        .root
        .with_token(&wrapping_token)
        .bao(&["unwrap", "-format=json"])
        .ok()
        .json();
    let key = key(&creds);
    let token = token_id(&creds);
    assert_eq!(token_hash(&key), token);
    assert_eq!(creds["data"]["role"], APP_ROLE, "{}", creds["data"]);
    let record = s
        .fake
        .get(&token)
        .expect("the unwrapped key exists in LiteLLM");
    assert!(
        record
            .key_alias
            .as_deref()
            .is_some_and(|a| a.starts_with(&format!("vault-{APP_ROLE}-"))),
        "{:?}",
        record.key_alias
    );
    assert_eq!(
        record.metadata.get("vault_role").and_then(Value::as_str),
        Some(APP_ROLE)
    );
    let lease = lease_id(&creds);
    assert!(lease.starts_with(&format!("{path}/")), "{lease}");
    assert!(lease_exists(&s.server, &lease), "the key's lease exists");
    assert_eq!(creds["renewable"], true);
    assert_eq!(creds["lease_duration"], 300);
    // The key works; a made-up one does not.
    assert_eq!(models_status(&s.fake.url(), &key).await, 200);
    assert_eq!(models_status(&s.fake.url(), "sk-not-a-key").await, 401);

    // Single use: a second unwrap, by the application or by the token itself, fails.
    for again in [
        app.bao(&["unwrap", &wrapping_token]),
        s.root
            .with_token(&wrapping_token)
            .bao(&["unwrap", "-format=json"]),
    ] {
        let out = again.err().combined();
        assert!(
            out.contains("Code: 400")
                && out.contains("wrapping token is not valid or does not exist"),
            "{out}"
        );
        assert!(!out.contains(&key), "a failed unwrap shows no key");
    }
    assert_eq!(
        s.fake.key_count(),
        keys_before + 1,
        "unwrapping made no other key"
    );

    // The application renews and revokes the unwrapped lease like any other of its role.
    app.bao(&["lease", "renew", &lease]).ok();
    app.bao(&["lease", "revoke", "-sync", &lease]).ok();
    assert_eventually!(
        s.fake.get(&token).is_none(),
        "revoking the unwrapped lease deletes its key"
    );
    assert!(!lease_exists(&s.server, &lease));
}

#[tokio::test]
async fn an_unwrapped_wrapping_token_expires_with_its_wrap_ttl() {
    // A token nobody unwraps is useless after its TTL; the key behind it lives only as long as
    // its own lease (the lease is the wrapped request's, owned by the issuing token).
    let s = Setup::start().await;
    let app = s.login("app", "litellm-application");
    let wrapped = app
        .bao(&[
            "write",
            "-wrap-ttl=3s",
            "-format=json",
            &format!("litellm/creds/{APP_ROLE}"),
            "ttl=30s",
        ])
        .ok()
        .json();
    let wrapping_token = wrapped["wrap_info"]["token"]
        .as_str()
        .expect("wrapping token")
        .to_string();
    let lookup = |token: &str| {
        s.root
            .bao(&["write", "sys/wrapping/lookup", &format!("token={token}")])
            .success()
    };
    assert!(
        lookup(&wrapping_token),
        "the wrapping token is valid at first"
    );
    assert_eventually!(
        !lookup(&wrapping_token),
        within = std::time::Duration::from_secs(15),
        "the wrapping token expires after its 3 s TTL"
    );
    let out = s
        .root
        .with_token(&wrapping_token)
        .bao(&["unwrap", "-format=json"])
        .err()
        .combined();
    assert!(!out.contains("sk-"), "{out}");
    // The key it wrapped still has its own lease, and is deleted with it.
    let leases = s.root.http_ok(
        "LIST",
        &format!("sys/leases/lookup/litellm/creds/{APP_ROLE}"),
        None,
    );
    let ids = leases["data"]["keys"]
        .as_array()
        .expect("lease ids")
        .clone();
    assert_eq!(ids.len(), 1, "{leases}");
    s.root
        .bao(&["lease", "revoke", "-sync", "-prefix", "litellm/creds/"])
        .ok();
    assert_eventually!(
        s.fake
            .live_keys()
            .iter()
            .all(|k| k.metadata.get("vault_role").and_then(Value::as_str) != Some(APP_ROLE)),
        "no key of the role is left"
    );
}

//! Fault injection: LiteLLM down, failing, slow or answering garbage at issue, renew and revoke;
//! the plugin dying between `/key/generate` and its reply. Every case must end with a clear
//! error, a plugin that keeps serving, and no key left behind.
//!
//! Most cases drive the engine in-process (fast, precise) against the stateful fake LiteLLM; the
//! crash case runs the real binary under a real OpenBao.

use std::time::Duration;

use crate::support::assert_eventually;
use crate::support::engine::{Engine, MASTER_KEY};
use crate::support::fake_litellm::{Fault, Op};
use serde_json::json;
use vault_plugin_secrets_litellm::framework::{self, RawRequest, wal};

/// Faults that fail a request, with a word the error must contain and the status the caller
/// gets: none is the caller's fault, so all are 5xx that Vault's clients retry (504 when
/// LiteLLM did not answer in time, 502 otherwise).
fn faults() -> Vec<(Fault, &'static str, u16)> {
    vec![
        (Fault::Reset, "LiteLLM", 502),
        (Fault::Status(500), "500", 502),
        (Fault::Delay(Duration::from_secs(3)), "LiteLLM", 504),
        (Fault::NonJson, "LiteLLM", 502),
        (Fault::Truncated, "LiteLLM", 502),
        (Fault::LoseResponse, "LiteLLM", 502),
    ]
}

#[tokio::test]
async fn failed_issues_leave_no_key_and_no_wal_behind() {
    let engine = Engine::start().await;
    for (fault, word, status) in faults() {
        engine.litellm.fail_next_n(Op::Generate, fault.clone(), 1);
        let err = engine.issue().await.expect_err("issue must fail");
        assert_eq!(
            err.kind(),
            framework::ErrorKind::Coded(status),
            "{fault:?}: a retryable {status}: {err}"
        );
        assert!(
            err.to_string().contains(word),
            "{fault:?}: unclear error: {err}"
        );
        assert!(!err.to_string().contains(MASTER_KEY));
        // Faults that let LiteLLM create the key anyway are cleaned up at once, by alias.
        assert_eq!(engine.litellm.key_count(), 0, "{fault:?} left a key");
        assert!(
            engine.wal_ids().await.is_empty(),
            "{fault:?} left a WAL entry"
        );
        assert!(
            engine.index_entries().await.is_empty(),
            "{fault:?} left an index entry"
        );
    }
    // The engine keeps serving.
    engine.issue().await.unwrap();
    assert_eq!(engine.litellm.key_count(), 1);
}

#[tokio::test]
async fn issue_with_litellm_down_fails_clearly() {
    let mut engine = Engine::start().await;
    engine.litellm.stop();
    let err = engine.issue().await.expect_err("issue must fail");
    // The role write checked its models, so the mount's client may hold a pooled connection
    // the outage killed: the issue then fails on it instead of on a refused connect.
    let text = err.to_string();
    assert!(
        text.contains("unreachable") || text.contains("connection closed"),
        "{err}"
    );
    // The alias could not be deleted either, so the WAL entry stays for rollback, and the
    // index entry written with it for tidy.
    assert_eq!(engine.wal_ids().await.len(), 1);
    assert_eq!(engine.index_entries().await.len(), 1);
    engine.litellm.restart().unwrap();
    engine.rollback_now().await;
    assert!(engine.wal_ids().await.is_empty());
    assert!(engine.index_entries().await.is_empty());
    assert_eq!(engine.litellm.key_count(), 0);
}

#[tokio::test]
async fn a_key_is_covered_by_wal_and_index_before_it_exists() {
    let engine = std::sync::Arc::new(Engine::start().await);
    engine
        .litellm
        .fail_next_n(Op::Generate, Fault::Delay(Duration::from_millis(600)), 1);
    let issuing = tokio::spawn({
        let engine = engine.clone();
        async move { engine.issue().await }
    });
    assert_eventually!(
        async engine.litellm.requests(Op::Generate) > 0,
        within = Duration::from_secs(5),
        "no /key/generate"
    );
    // LiteLLM has not answered (the fake has made the key and holds the answer back): were
    // the plugin to die now, rollback would find the WAL entry and tidy the index entry.
    assert_eq!(engine.wal_ids().await.len(), 1);
    let indexed = engine.index_entries().await;
    assert_eq!(indexed.len(), 1);

    let lease = issuing.await.unwrap().unwrap();
    // The key is the one indexed beforehand; the WAL entry is gone with the lease created.
    assert_eq!(lease.internal_data["token_id"], json!(indexed[0]));
    assert!(engine.litellm.get(&indexed[0]).is_some());
    assert!(engine.wal_ids().await.is_empty());
    engine.lease_call("revoke", &lease).await.unwrap();
    assert!(engine.index_entries().await.is_empty());
}

#[tokio::test]
async fn a_proxy_refusing_chosen_keys_still_issues_indexed_keys() {
    let engine = Engine::start().await;
    engine.litellm.disable_custom_keys(true);
    let mut leases = Vec::new();
    for _ in 0..2 {
        leases.push(engine.issue().await.unwrap());
    }
    // Refused once, then LiteLLM makes every key without being asked twice.
    assert_eq!(engine.litellm.requests(Op::Generate), 3);
    let mut tokens: Vec<String> = leases
        .iter()
        .map(|l| l.internal_data["token_id"].as_str().unwrap().to_string())
        .collect();
    tokens.sort();
    // Exactly the keys that exist are indexed: the entry written for the refused key is gone.
    assert_eq!(engine.index_entries().await, tokens);
    assert!(tokens.iter().all(|t| engine.litellm.get(t).is_some()));
    assert!(engine.wal_ids().await.is_empty());
    for lease in &leases {
        engine.lease_call("revoke", lease).await.unwrap();
    }
    assert_eq!(engine.litellm.key_count(), 0);
    assert!(engine.index_entries().await.is_empty());
}

#[tokio::test]
async fn failed_renewals_keep_the_lease_and_failed_revokes_are_retried() {
    let engine = Engine::start().await;
    let lease = engine.issue().await.unwrap();
    for (fault, word, status) in faults() {
        // Persistent faults: the client retries a dropped connection once, by design.
        engine.litellm.set_fault(Op::Update, fault.clone());
        let err = engine
            .lease_call("renew", &lease)
            .await
            .expect_err(&format!("renew must fail under {fault:?}"));
        assert!(err.to_string().contains(word), "{fault:?}: {err}");
        assert_eq!(err.kind(), framework::ErrorKind::Coded(status), "{fault:?}");
        assert_eq!(
            engine.litellm.key_count(),
            1,
            "the key stays while its lease does"
        );
    }
    engine.litellm.clear_faults();
    engine.lease_call("renew", &lease).await.unwrap();
    engine.lease_call("revoke", &lease).await.unwrap();

    for (fault, _, status) in faults() {
        let lease = engine.issue().await.unwrap();
        engine.litellm.set_fault(Op::Delete, fault.clone());
        let err = engine
            .lease_call("revoke", &lease)
            .await
            .expect_err("revoke must fail so Vault retries");
        assert!(
            err.to_string().contains("Vault will retry"),
            "{fault:?}: {err}"
        );
        assert_eq!(err.kind(), framework::ErrorKind::Coded(status), "{fault:?}");
        // LiteLLM is back: Vault's retry succeeds, whether or not the failed call had acted.
        engine.litellm.clear_faults();
        engine.lease_call("revoke", &lease).await.unwrap();
        assert_eq!(engine.litellm.key_count(), 0, "{fault:?}");
        // Revoke is idempotent.
        engine.lease_call("revoke", &lease).await.unwrap();
    }
}

#[tokio::test]
async fn rollback_deletes_keys_of_unfinished_issues_but_not_young_ones() {
    let engine = Engine::start().await;
    // An issue that died after /key/generate: a WAL entry and a key, no lease.
    engine.litellm.set_fault(Op::Delete, Fault::Status(503));
    engine
        .litellm
        .fail_next_n(Op::Generate, Fault::LoseResponse, 1);
    engine.issue().await.expect_err("issue fails");
    engine.litellm.clear_faults();
    assert_eq!(
        (engine.litellm.key_count(), engine.wal_ids().await.len()),
        (1, 1)
    );
    assert_eq!(engine.index_entries().await.len(), 1);

    // The periodic rollback leaves entries younger than the minimum age alone.
    let raw = RawRequest {
        operation: "rollback".into(),
        ..RawRequest::default()
    };
    engine
        .backend
        .handle_request(raw, engine.storage.clone(), engine.system.clone())
        .await
        .unwrap();
    assert_eq!(
        (engine.litellm.key_count(), engine.wal_ids().await.len()),
        (1, 1)
    );

    engine.rollback_now().await;
    assert_eq!(
        (engine.litellm.key_count(), engine.wal_ids().await.len()),
        (0, 0)
    );
    assert!(engine.index_entries().await.is_empty());
}

#[tokio::test]
async fn rollback_gives_up_after_a_day() {
    let engine = Engine::start().await;
    let stale = wal::WalEntry {
        kind: "litellm_key".into(),
        data: json!({"key_alias": "vault-dev-000000000000"}),
        created_at: 1,
        attempts: 0,
    };
    engine
        .storage
        .put_json("wal/stale", &stale, false)
        .await
        .unwrap();
    engine.rollback_now().await;
    assert!(engine.wal_ids().await.is_empty());
    assert_eq!(
        engine.litellm.requests(Op::Delete),
        0,
        "a day-old entry is dropped without calling LiteLLM"
    );
}

//! A role's `key_settings`, in-process against the fake: they reach every key of the role, a
//! write tries them on one test key that is deleted at once, LiteLLM's refusal fails the write
//! with its message, and LiteLLM failing during the test leaves no key, no role and no WAL
//! entry behind (or one rollback undoes), and a retried write converges.

use std::time::Duration;

use crate::support::engine::{Engine, MASTER_KEY};
use crate::support::fake_litellm::{FakeLiteLlm, Fault, Op};
use serde_json::{Value, json};
use vault_plugin_secrets_litellm::framework::system_view::FixedSystemView;
use vault_plugin_secrets_litellm::framework::{ErrorKind, Storage, SystemView};

async fn write(engine: &Engine, path: &str, body: Value) {
    engine
        .call("update", path, body)
        .await
        .unwrap_or_else(|e| panic!("writing {path}: {e}"));
}

async fn role_exists(engine: &Engine, name: &str) -> bool {
    engine
        .call("read", &format!("roles/{name}"), json!({}))
        .await
        .unwrap()
        .is_some()
}

fn settings() -> Value {
    json!({
        "soft_budget": 0.5,
        "model_rpm_limit": {"fake-gpt": 3},
        "allowed_routes": ["/v1/models"],
        "aliases": {"mine": "fake-gpt"},
    })
}

#[tokio::test]
async fn key_settings_reach_every_key_and_a_write_makes_one_test_key_that_is_deleted() {
    let engine = Engine::start().await;
    let generated = engine.litellm.requests(Op::Generate);
    let body = json!({"models": "fake-gpt", "key_type": "default", "key_settings": settings()});
    write(&engine, "roles/set", body).await;
    assert_eq!(
        engine.litellm.requests(Op::Generate),
        generated + 1,
        "one test key"
    );
    assert_eq!(engine.litellm.key_count(), 0, "the test key is gone");
    let probe = &engine.litellm.deleted_keys()[0];
    assert!(
        probe
            .key_alias
            .as_deref()
            .unwrap()
            .starts_with("vault-set-")
    );
    assert_eq!(probe.metadata["vault_role"], "set");
    assert_eq!(probe.extra["aliases"], json!({"mine": "fake-gpt"}));
    assert!(engine.wal_ids().await.is_empty(), "the WAL entry is gone");

    let role = engine.data("read", "roles/set", json!({})).await;
    assert_eq!(role["key_settings"], settings());

    // Issued keys carry them; the engine's own fields are there as always.
    let lease = engine
        .call("read", "creds/set", json!({}))
        .await
        .unwrap()
        .and_then(|r| r.secret)
        .unwrap();
    let key = engine
        .litellm
        .get(lease.internal_data["token_id"].as_str().unwrap())
        .unwrap();
    assert_eq!(key.extra["allowed_routes"], json!(["/v1/models"]));
    assert_eq!(key.extra["aliases"], json!({"mine": "fake-gpt"}));
    assert_eq!(key.extra["litellm_budget_table"]["soft_budget"], 0.5);
    assert_eq!(key.metadata["model_rpm_limit"], json!({"fake-gpt": 3}));
    assert_eq!(key.metadata["vault_role"], "set");
    assert_eq!(key.models, ["fake-gpt"]);

    // Writes that change nothing a key is made with make no test key; a changed limit does.
    let generated = engine.litellm.requests(Op::Generate);
    write(&engine, "roles/set", json!({"ttl": "10m"})).await;
    write(&engine, "roles/set", json!({"key_settings": settings()})).await;
    assert_eq!(engine.litellm.requests(Op::Generate), generated);
    write(&engine, "roles/set", json!({"max_budget": 2})).await;
    assert_eq!(engine.litellm.requests(Op::Generate), generated + 1);
    // {} clears them, without a test.
    write(&engine, "roles/set", json!({"key_settings": {}})).await;
    assert_eq!(engine.litellm.requests(Op::Generate), generated + 1);
    let role = engine.data("read", "roles/set", json!({})).await;
    assert_eq!(role["key_settings"], json!({}));
}

#[tokio::test]
async fn reserved_names_and_settings_litellm_refuses_are_400s_and_store_nothing() {
    let engine = Engine::start().await;
    let before = engine.litellm.requests(Op::Any);
    for (settings, named) in [
        (json!({"team_id": "x", "soft_budget": 1}), "team_id"),
        (json!({"metadata": {"a": "b"}}), "metadata"),
        (
            json!({"max_budget": 1, "duration": "1h"}),
            "duration, max_budget",
        ),
        (json!({"key": "sk-mine-0123456789abcdef"}), "key"),
    ] {
        let err = engine
            .call("update", "roles/bad", json!({"key_settings": settings}))
            .await
            .expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::Response, "{err}");
        let text = err.to_string();
        assert!(
            text.contains("key_settings") && text.contains(named),
            "{text}"
        );
    }
    let err = engine
        .call(
            "update",
            "roles/bad",
            json!({"key_settings": {"allowed_routes": ["/v1/models"]}}),
        )
        .await
        .expect_err("allowed_routes on an llm_api key is dropped by LiteLLM");
    assert!(err.to_string().contains("key_type default"), "{err}");
    assert_eq!(
        engine.litellm.requests(Op::Any),
        before,
        "LiteLLM was not asked"
    );

    // LiteLLM's refusals: its message, as a 400; an enterprise 500 too.
    for (settings, expected) in [
        (
            json!({"guardrails": ["pii"]}),
            "Enterprise users: guardrails",
        ),
        (json!({"tags": ["t"]}), "Enterprise users: tags"),
        (
            json!({"model_max_budget": {"fake-gpt": {"budget_limit": 1}}}),
            "enterprise license",
        ),
        (json!({"soft_budget": "lots"}), "soft_budget"),
    ] {
        let err = engine
            .call("update", "roles/bad", json!({"key_settings": settings}))
            .await
            .expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::Response, "{settings}: {err}");
        let text = err.to_string();
        assert!(text.starts_with("key_settings: "), "{text}");
        assert!(text.contains(expected), "{settings}: {text}");
    }
    // A bare 500 cannot be told from a failing proxy: 502, with what it may mean.
    let err = engine
        .call(
            "update",
            "roles/bad",
            json!({"key_settings": {"permissions": {"get_spend_routes": false}}}),
        )
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Coded(502), "{err}");
    assert!(err.to_string().contains("verify=false"), "{err}");

    assert!(!role_exists(&engine, "bad").await);
    assert_eq!(engine.litellm.key_count(), 0);
    assert!(engine.wal_ids().await.is_empty());
    // verify=false stores what LiteLLM would refuse, without asking it.
    let before = engine.litellm.requests(Op::Any);
    write(
        &engine,
        "roles/bad",
        json!({"key_settings": {"tags": ["t"]}, "models": "nope", "verify": false}),
    )
    .await;
    assert_eq!(engine.litellm.requests(Op::Any), before);
    assert!(role_exists(&engine, "bad").await);
}

#[tokio::test]
async fn litellm_failing_during_the_test_key_leaves_nothing_and_a_retry_converges() {
    let engine = Engine::start().await;
    let body = json!({"key_settings": {"soft_budget": 1}});
    for (fault, status) in [
        (Fault::Status(503), 502),
        (Fault::Reset, 502),
        (Fault::LoseResponse, 502),
        (Fault::Delay(Duration::from_secs(3)), 504),
    ] {
        engine.litellm.fail_next_n(Op::Generate, fault.clone(), 1);
        let err = engine
            .call("update", "roles/flaky", body.clone())
            .await
            .expect_err("the write fails");
        assert_eq!(err.kind(), ErrorKind::Coded(status), "{fault:?}: {err}");
        assert!(err.to_string().starts_with("key_settings: "), "{err}");
        assert_eq!(engine.litellm.key_count(), 0, "{fault:?} left a key");
        assert!(
            engine.wal_ids().await.is_empty(),
            "{fault:?} left a WAL entry"
        );
        assert!(
            !role_exists(&engine, "flaky").await,
            "{fault:?} stored the role"
        );
    }
    write(&engine, "roles/flaky", body.clone()).await;
    assert!(role_exists(&engine, "flaky").await);
    assert_eq!(engine.litellm.key_count(), 0);

    // The test key exists but cannot be deleted: the write fails, and the WAL entry written
    // before it lets rollback delete it.
    engine
        .litellm
        .fail_next_n(Op::Delete, Fault::Status(503), 1);
    let err = engine
        .call("update", "roles/stuck", body.clone())
        .await
        .expect_err("the write fails");
    assert_eq!(err.kind(), ErrorKind::Coded(502), "{err}");
    assert!(err.to_string().contains("write it again"), "{err}");
    assert!(!role_exists(&engine, "stuck").await);
    assert_eq!(engine.litellm.key_count(), 1);
    assert_eq!(engine.wal_ids().await.len(), 1);
    engine.rollback_now().await;
    assert_eq!(
        engine.litellm.key_count(),
        0,
        "rollback deleted the test key"
    );
    assert!(engine.wal_ids().await.is_empty());
    write(&engine, "roles/stuck", body).await;
    assert!(role_exists(&engine, "stuck").await);
}

#[tokio::test]
async fn the_test_key_waits_for_a_storage_write_and_a_team_role_gets_both() {
    // A role with limits: the test key's WAL entry, the test key, the team's WAL entry, the
    // team, the role. A failed team creation leaves neither key nor team.
    let engine = Engine::start().await;
    let body = json!({"role_max_budget": 3, "key_settings": {"soft_budget": 1}});
    engine
        .litellm
        .fail_next_n(Op::TeamNew, Fault::Status(500), 1);
    engine
        .call("update", "roles/both", body.clone())
        .await
        .expect_err("the team could not be made");
    assert_eq!(engine.litellm.key_count(), 0);
    assert!(engine.litellm.team_ids().is_empty());
    assert!(engine.wal_ids().await.is_empty());
    assert!(!role_exists(&engine, "both").await);
    write(&engine, "roles/both", body).await;
    assert_eq!(engine.litellm.team_ids().len(), 1);
    assert!(engine.wal_ids().await.is_empty());
}

#[tokio::test]
async fn without_config_a_role_is_stored_unchecked_with_a_warning() {
    let litellm = FakeLiteLlm::start(MASTER_KEY).unwrap();
    let engine = Engine::on(
        Storage::memory(),
        SystemView::new(FixedSystemView::default()),
        litellm,
    );
    let response = engine
        .call(
            "update",
            "roles/early",
            json!({"models": "nope", "key_settings": {"soft_budget": 1}}),
        )
        .await
        .unwrap()
        .expect("a response with a warning");
    assert!(
        response.warnings.iter().any(|w| w.contains("not checked")),
        "{:?}",
        response.warnings
    );
    assert!(role_exists(&engine, "early").await);
    assert_eq!(engine.litellm.requests(Op::Any), 0);
}

//! Static roles in-process: one stable key per role under its alias, rotated on a schedule and
//! on demand, the previous key kept for the grace period and then deleted; crash recovery at
//! every step; the schedule only on the active node.

use std::time::Duration;

use crate::support::engine::{Engine, MASTER_KEY, MOUNT, Node, ReadOnlyStorage};
use crate::support::fake_litellm::{Fault, Op};
use crate::support::{admin_client, create_key};
use serde_json::{Value, json};
use vault_plugin_secrets_litellm::framework::system_view::FixedSystemView;
use vault_plugin_secrets_litellm::framework::{Storage, SystemView};

const ALIAS: &str = "vault-ci";

/// OpenBao's replication state of a read-enabled standby (`ReplicationPerformanceStandby`).
const STANDBY: u32 = 1 << 14;

async fn static_engine(settings: Value) -> Engine {
    let engine = Engine::start().await;
    engine
        .call("update", "static-roles/ci", settings)
        .await
        .expect("creating static role ci");
    engine
}

async fn static_role_exists(engine: &Engine) -> bool {
    engine
        .call("read", "static-roles/ci", json!({}))
        .await
        .expect("reading static-roles/ci")
        .is_some()
}

async fn creds(engine: &Engine) -> Value {
    engine.data("read", "static-creds/ci", json!({})).await
}

/// The same, read through another process of the mount (its caches are its own).
async fn creds_on(node: &Node<'_>) -> Value {
    node.call("read", "static-creds/ci", json!({}))
        .await
        .expect("reading static-creds/ci")
        .and_then(|r| r.data)
        .expect("static-creds answers with data")
}

fn live_aliases(engine: &Engine) -> Vec<String> {
    let mut aliases: Vec<String> = engine
        .litellm
        .live_keys()
        .into_iter()
        .filter_map(|k| k.key_alias)
        .filter(|a| a.starts_with(ALIAS))
        .collect();
    aliases.sort();
    aliases
}

#[tokio::test]
async fn a_static_role_serves_one_key_with_the_fields_agents_and_the_operator_read() {
    let engine =
        static_engine(json!({"models": "fake-gpt", "rotation_period": "1h", "max_budget": 3}))
            .await;
    let first = creds(&engine).await;
    assert_eq!(creds(&engine).await, first, "two reads, one key");
    assert_eq!(first["key_alias"], ALIAS);
    assert_eq!(first["rotation_period"], 3600, "an integer of seconds");
    assert_eq!(first["ttl"], 3600);
    assert!(first["ttl"].is_u64(), "agents need an integer ttl");
    assert!(first.get("lease_id").is_none());
    let lvr = first["last_vault_rotation"].as_str().unwrap();
    assert!(humantime::parse_rfc3339(lvr).is_ok(), "{lvr}");
    let key = first["key"].as_str().unwrap();
    let record = engine.litellm.find_by_alias(ALIAS).expect("the key exists");
    assert_eq!(record.token, first["token_id"]);
    assert_eq!(record.models, ["fake-gpt"]);
    assert_eq!(record.max_budget, Some(3.0));
    assert_eq!(record.metadata["vault_static_role"], "ci");
    assert_eq!(record.metadata["vault_mount"], MOUNT);
    assert!(key.starts_with("sk-"));
    // Only ttl moves between reads.
    engine.advance(Duration::from_secs(100));
    let later = creds(&engine).await;
    assert_eq!(later["ttl"], 3500);
    let mut same = later.clone();
    same["ttl"] = first["ttl"].clone();
    assert_eq!(same, first);
    // The role read shows the settings and the rotation, never the key.
    let role = engine.data("read", "static-roles/ci", json!({})).await;
    assert_eq!(role["key_alias"], ALIAS);
    assert_eq!(role["grace_period"], 300);
    assert!(role.get("key").is_none() && !role.to_string().contains(key));
    assert_eq!(
        engine.data("list", "static-roles/", json!({})).await["keys"],
        json!(["ci"])
    );
}

#[tokio::test]
async fn rotate_role_hands_the_alias_over_and_the_old_key_lives_for_the_grace_period() {
    let engine = static_engine(json!({"rotation_period": "1h", "grace_period": "2m"})).await;
    let first = creds(&engine).await;
    engine.advance(Duration::from_secs(600));
    engine
        .call("update", "rotate-role/ci", json!({}))
        .await
        .expect("rotating");
    let second = creds(&engine).await;
    assert_ne!(second["key"], first["key"]);
    assert_eq!(second["key_alias"], ALIAS);
    assert_eq!(
        second["ttl"], 3600,
        "the next rotation counts from this one"
    );
    assert_ne!(second["last_vault_rotation"], first["last_vault_rotation"]);
    let old = engine
        .litellm
        .get(first["token_id"].as_str().unwrap())
        .expect("the old key still works in its grace period");
    assert!(
        old.key_alias
            .as_deref()
            .unwrap()
            .starts_with("vault-ci-previous-")
    );
    assert_eq!(
        engine.litellm.find_by_alias(ALIAS).unwrap().token,
        second["token_id"]
    );
    // After the grace period the schedule deletes it.
    engine.advance(Duration::from_secs(121));
    engine.run_ticker().await;
    assert!(
        engine
            .litellm
            .get(first["token_id"].as_str().unwrap())
            .is_none()
    );
    assert_eq!(live_aliases(&engine), [ALIAS]);
    assert!(engine.wal_ids().await.is_empty());
}

#[tokio::test]
async fn the_schedule_rotates_when_due_and_only_on_the_active_node() {
    let engine = static_engine(json!({"rotation_period": "1m", "grace_period": "10s"})).await;
    let first = creds(&engine).await;
    engine.run_ticker().await;
    assert_eq!(creds(&engine).await["key"], first["key"], "not due yet");
    engine.advance(Duration::from_secs(61));
    // A standby (its own process, read-only storage) does nothing when it is due.
    let standby = engine.node(
        Storage::new(ReadOnlyStorage(engine.storage.clone())),
        SystemView::new(FixedSystemView {
            replication_state: STANDBY,
            ..FixedSystemView::default()
        }),
    );
    let generated = engine.litellm.requests(Op::Generate);
    standby.run_ticker().await;
    assert_eq!(engine.litellm.requests(Op::Generate), generated);
    engine.run_ticker().await;
    let second = creds(&engine).await;
    assert_ne!(second["key"], first["key"], "rotated by the schedule");
    engine.advance(Duration::from_secs(11));
    engine.run_ticker().await;
    assert_eq!(live_aliases(&engine), [ALIAS]);
    // A fresh process (restart) with a rotation overdue does it at its first tick.
    engine.advance(Duration::from_secs(300));
    let restarted = engine.node(engine.storage.clone(), engine.system.clone());
    restarted.run_ticker().await;
    let third = creds_on(&restarted).await;
    assert_ne!(third["key"], second["key"]);
}

#[tokio::test]
async fn litellm_down_at_rotation_time_is_retried_and_the_current_key_keeps_working() {
    let engine = static_engine(json!({"rotation_period": "1m"})).await;
    let first = creds(&engine).await;
    engine.advance(Duration::from_secs(61));
    engine.litellm.set_fault(Op::Generate, Fault::Status(503));
    engine.run_ticker().await;
    assert_eq!(creds(&engine).await["key"], first["key"]);
    assert_eq!(creds(&engine).await["ttl"], 0, "overdue: never negative");
    assert!(
        engine
            .litellm
            .get(first["token_id"].as_str().unwrap())
            .is_some()
    );
    assert!(
        engine.wal_ids().await.is_empty(),
        "a refused generate leaves no WAL entry"
    );
    // The retry comes after the backoff, not at every tick.
    let attempts = engine.litellm.requests(Op::Generate);
    engine.advance(Duration::from_secs(5));
    engine.run_ticker().await;
    assert_eq!(engine.litellm.requests(Op::Generate), attempts);
    engine.litellm.clear_faults();
    engine.advance(Duration::from_secs(6));
    engine.run_ticker().await;
    assert_ne!(creds(&engine).await["key"], first["key"]);
}

#[tokio::test]
async fn a_rotation_cut_off_at_any_step_ends_with_one_current_key_after_a_restart() {
    // The plugin dies after the successor exists: here the hand-over fails (LiteLLM's update
    // refused), which leaves the same state behind as a kill there.
    for failing_update in 1..=2u32 {
        let engine = static_engine(json!({"rotation_period": "1h", "grace_period": "1m"})).await;
        let first = creds(&engine).await;
        // The first update renames the old key, the second gives the alias to the new one.
        engine
            .litellm
            .fail_after(Op::Update, failing_update - 1, Fault::Status(503));
        let err = engine
            .call("update", "rotate-role/ci", json!({}))
            .await
            .expect_err("the hand-over fails");
        assert!(err.to_string().contains("retries continue"), "{err}");
        engine.litellm.clear_faults();
        assert_eq!(
            engine.wal_ids().await.len(),
            1,
            "the rotation's WAL entry stays"
        );
        assert_eq!(
            creds(&engine).await["key"],
            first["key"],
            "nothing stored yet"
        );
        // A new process: its first tick finishes the rotation.
        let restarted = engine.node(engine.storage.clone(), engine.system.clone());
        restarted.run_ticker().await;
        assert!(engine.wal_ids().await.is_empty());
        let now = creds_on(&restarted).await;
        assert_ne!(now["key"], first["key"]);
        assert_eq!(
            engine.litellm.find_by_alias(ALIAS).unwrap().token,
            now["token_id"],
            "step {failing_update}"
        );
        let aliases = live_aliases(&engine);
        assert_eq!(aliases.len(), 2, "current and previous: {aliases:?}");
        engine.advance(Duration::from_secs(61));
        restarted.run_ticker().await;
        assert_eq!(live_aliases(&engine), [ALIAS], "step {failing_update}");
    }
}

#[tokio::test]
async fn a_crash_before_the_successor_exists_drops_the_rotation_and_it_runs_again() {
    let engine = static_engine(json!({"rotation_period": "1m"})).await;
    let first = creds(&engine).await;
    // The answer is lost and the clean-up fails: the WAL entry stays, no key is known.
    engine.litellm.fail_next_n(Op::Generate, Fault::Reset, 1);
    engine
        .litellm
        .fail_next_n(Op::Delete, Fault::Status(503), 1);
    engine
        .call("update", "rotate-role/ci", json!({}))
        .await
        .expect_err("generate fails");
    assert_eq!(engine.wal_ids().await.len(), 1);
    engine.advance(Duration::from_secs(61));
    let restarted = engine.node(engine.storage.clone(), engine.system.clone());
    restarted.run_ticker().await;
    assert!(engine.wal_ids().await.is_empty());
    let now = creds_on(&restarted).await;
    assert_ne!(now["key"], first["key"], "the due rotation ran");
    assert_eq!(
        live_aliases(&engine).iter().filter(|a| *a == ALIAS).count(),
        1
    );
}

#[tokio::test]
async fn adopt_takes_over_a_live_key_with_the_alias_and_retires_it_after_the_grace_period() {
    let engine = Engine::start().await;
    let master = admin_client(&engine.litellm.url(), MASTER_KEY);
    let theirs = create_key(&master, ALIAS, "elsewhere/", "x", "30d").await;
    let refused = engine
        .call(
            "update",
            "static-roles/ci",
            json!({"rotation_period": "1h"}),
        )
        .await
        .expect_err("the alias is taken");
    assert!(refused.to_string().contains("adopt=true"), "{refused}");
    assert!(!static_role_exists(&engine).await);
    engine
        .call(
            "update",
            "static-roles/ci",
            json!({"rotation_period": "1h", "grace_period": "1m", "adopt": true}),
        )
        .await
        .expect("adopting");
    let ours = creds(&engine).await;
    assert_ne!(ours["token_id"].as_str(), Some(theirs.token.as_str()));
    assert_eq!(
        engine.litellm.find_by_alias(ALIAS).unwrap().token,
        ours["token_id"]
    );
    assert!(
        engine.litellm.get(&theirs.token).is_some(),
        "works in the grace period"
    );
    engine.advance(Duration::from_secs(61));
    engine.run_ticker().await;
    assert!(engine.litellm.get(&theirs.token).is_none());
    assert_eq!(live_aliases(&engine), [ALIAS]);
}

#[tokio::test]
async fn a_failed_create_leaves_nothing_and_names_are_either_roles_or_static_roles() {
    let engine = Engine::start().await;
    engine
        .litellm
        .fail_next_n(Op::Generate, Fault::Status(500), 1);
    let err = engine
        .call(
            "update",
            "static-roles/ci",
            json!({"rotation_period": "1h"}),
        )
        .await
        .expect_err("LiteLLM refuses");
    assert!(err.to_string().contains("LiteLLM"), "{err}");
    assert!(!static_role_exists(&engine).await);
    assert!(engine.wal_ids().await.is_empty());
    assert!(live_aliases(&engine).is_empty());

    for (path, body, word) in [
        (
            "static-roles/dev",
            json!({"rotation_period": "1h"}),
            "is a role already",
        ),
        (
            "static-roles/x",
            json!({}),
            "rotation_period or rotation_schedule",
        ),
        (
            "static-roles/x",
            json!({"rotation_period": "30s"}),
            "at least 60s",
        ),
        (
            "static-roles/x",
            json!({"rotation_period": "1h", "grace_period": "2h"}),
            "grace_period",
        ),
        (
            "static-roles/x",
            json!({"rotation_schedule": "0 0 * * * *"}),
            "5 fields",
        ),
        (
            "static-roles/x",
            json!({"rotation_period": "1h", "key_alias": "a..b"}),
            "key_alias",
        ),
    ] {
        let err = engine.call("update", path, body).await.expect_err(path);
        assert!(err.to_string().contains(word), "{path}: {err}");
        assert_eq!(
            err.kind(),
            vault_plugin_secrets_litellm::framework::ErrorKind::Response,
            "{err}"
        );
    }
    engine
        .call(
            "update",
            "static-roles/ci",
            json!({"rotation_period": "1h"}),
        )
        .await
        .unwrap();
    let err = engine
        .call("update", "roles/ci", json!({}))
        .await
        .expect_err("a static role's name");
    assert!(
        err.to_string().contains("is a static role already"),
        "{err}"
    );
    let err = engine
        .call("update", "static-roles/ci", json!({"key_alias": "other"}))
        .await
        .expect_err("immutable");
    assert!(err.to_string().contains("cannot change"), "{err}");
}

#[tokio::test]
async fn changed_settings_apply_to_the_current_key_and_delete_removes_every_key() {
    let engine = static_engine(json!({"rotation_period": "1h", "models": "fake-gpt"})).await;
    let first = creds(&engine).await;
    engine
        .call(
            "update",
            "static-roles/ci",
            json!({"models": "fake-gpt,fake-claude", "rpm_limit": 7, "metadata": "team=ml"}),
        )
        .await
        .expect("updating");
    assert_eq!(creds(&engine).await["key"], first["key"], "no rotation");
    let record = engine.litellm.find_by_alias(ALIAS).unwrap();
    assert_eq!(record.models, ["fake-gpt", "fake-claude"]);
    assert_eq!(record.rpm_limit, Some(7));
    assert_eq!(record.metadata["team"], "ml");
    assert_eq!(record.metadata["vault_static_role"], "ci");
    // Refused by LiteLLM: the role stays as it was.
    engine
        .litellm
        .fail_next_n(Op::Update, Fault::Status(500), 1);
    engine
        .call("update", "static-roles/ci", json!({"rpm_limit": 9}))
        .await
        .expect_err("LiteLLM refuses");
    assert_eq!(
        engine.data("read", "static-roles/ci", json!({})).await["rpm_limit"],
        7
    );
    // Tidy leaves static keys alone.
    engine
        .call("update", "rotate-role/ci", json!({}))
        .await
        .unwrap();
    engine.call("update", "tidy", json!({})).await.unwrap();
    assert_eq!(live_aliases(&engine).len(), 2);
    engine
        .call("delete", "static-roles/ci", json!({}))
        .await
        .unwrap();
    assert!(
        live_aliases(&engine).is_empty(),
        "current and previous deleted"
    );
    assert!(
        engine
            .call("read", "static-creds/ci", json!({}))
            .await
            .is_err(),
        "gone"
    );
}

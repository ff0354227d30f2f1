//! The HA rule, held by every path: nothing changes in LiteLLM before a storage write of the
//! same request has succeeded. On a standby that write fails ("cannot write to readonly
//! storage"), OpenBao forwards the request, and only the active node touches LiteLLM. Here the
//! engine runs on storage that refuses writes as a standby's does, and the fake counts every
//! call that could change something.

use std::time::Duration;

use crate::support::engine::{Engine, MASTER_KEY, MOUNT, ReadOnlyStorage};
use crate::support::fake_litellm::{Fault, Op};
use crate::support::{admin_client, admin_virtual_key, create_key, our_alias};
use serde_json::json;
use vault_plugin_secrets_litellm::framework::system_view::FixedSystemView;
use vault_plugin_secrets_litellm::framework::{Storage, SystemView};

/// Calls that change something in LiteLLM.
const CHANGING: [Op; 8] = [
    Op::Generate,
    Op::Update,
    Op::Delete,
    Op::Block,
    Op::TeamNew,
    Op::TeamUpdate,
    Op::TeamDelete,
    Op::MemberAdd,
];

fn changes(engine: &Engine) -> Vec<(Op, u64)> {
    CHANGING
        .iter()
        .map(|op| (*op, engine.litellm.requests(*op)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[tokio::test]
async fn on_read_only_storage_no_path_changes_anything_in_litellm() {
    // The active node's state: config (an admin virtual key, so rotate-root can run), roles,
    // an issued key, a pending WAL entry, auto-tidy due.
    let active = Engine::start().await;
    let admin = admin_virtual_key(&active.litellm, MASTER_KEY).await;
    let write = |path: &'static str, body: serde_json::Value| {
        let active = &active;
        async move {
            active
                .call("update", path, body)
                .await
                .unwrap_or_else(|e| panic!("{path}: {e}"));
        }
    };
    write(
        "config",
        json!({"base_url": active.litellm.url(), "master_key": admin.key}),
    )
    .await;
    write(
        "roles/capped",
        json!({"role_max_budget": 1, "user_id": "u", "user_max_budget": 0.5}),
    )
    .await;
    write(
        "config/auto-tidy",
        json!({"enabled": true, "interval_duration": "1s"}),
    )
    .await;
    active.issue().await.expect("a key in the index");
    // An orphan (this mount's alias shape and stamp, no lease) that tidy would delete, and an
    // issue whose answer was lost and whose clean-up failed: a WAL entry rollback would undo.
    let master = admin_client(&active.litellm.url(), MASTER_KEY);
    create_key(&master, &our_alias("vault", "dev"), MOUNT, "dev", "1h").await;
    active.litellm.set_fault(Op::Delete, Fault::Status(503));
    active
        .litellm
        .fail_next_n(Op::Generate, Fault::LoseResponse, 1);
    active.issue().await.expect_err("the answer is lost");
    active.litellm.clear_faults();
    assert_eq!(active.wal_ids().await.len(), 1, "a WAL entry is pending");
    active.advance(Duration::from_secs(5));

    // A standby: the same storage, read-only; its own plugin process (fresh caches).
    let standby = active.node(
        Storage::new(ReadOnlyStorage(active.storage.clone())),
        SystemView::new(FixedSystemView::default()),
    );
    let before = changes(&active);
    for (operation, path, body) in [
        ("read", "creds/dev", json!({})),
        ("read", "creds/capped", json!({})),
        ("update", "roles/capped", json!({"role_max_budget": 2})),
        ("update", "roles/fresh", json!({"role_max_budget": 2})),
        ("delete", "roles/capped", json!({})),
        ("update", "tidy", json!({})),
        ("update", "tidy", json!({"dry_run": true})),
        ("update", "rotate-root", json!({})),
        (
            "update",
            "config",
            json!({"base_url": active.litellm.url(), "master_key": MASTER_KEY}),
        ),
    ] {
        let err = standby
            .call(operation, path, body)
            .await
            .expect_err("a write-type request fails on read-only storage");
        assert!(
            err.to_string().contains("cannot write to readonly storage"),
            "{operation} {path}: the host forwards only on that text: {err}"
        );
        assert_eq!(
            changes(&active),
            before,
            "{operation} {path} changed LiteLLM first"
        );
    }
    // (Renew and revoke run where the lease manager runs: on the active node.) The rollback
    // tick on a node whose storage refuses writes does nothing either, even with a WAL entry
    // due and auto-tidy due.
    standby.rollback_now().await.expect("a quiet tick");
    assert_eq!(
        changes(&active),
        before,
        "the rollback tick changed LiteLLM"
    );
}

#[tokio::test]
async fn the_rollback_tick_on_a_standby_does_nothing_at_all() {
    let active = Engine::start().await;
    active
        .call(
            "update",
            "config/auto-tidy",
            json!({"enabled": true, "interval_duration": "1s"}),
        )
        .await
        .unwrap();
    active.advance(Duration::from_secs(5));
    let standby = active.node(
        active.storage.clone(),
        SystemView::new(FixedSystemView {
            replication_state: 1 << 14,
            ..FixedSystemView::default()
        }),
    );
    let calls = active.litellm.requests(Op::Any);
    standby.rollback_now().await.expect("a quiet tick");
    assert_eq!(
        active.litellm.requests(Op::Any),
        calls,
        "no LiteLLM call at all on a standby: no auto-tidy listing, no rollback"
    );
    // The active node's tick does run auto-tidy.
    active.rollback_now().await;
    assert!(
        active.litellm.requests(Op::List) > 0,
        "auto-tidy listed keys on the active node"
    );
}

#[tokio::test]
async fn a_role_missing_from_a_standbys_replica_hands_creds_to_the_active_node() {
    // The replica lags the active node by some ms: a role created a moment ago is not there yet.
    let active = Engine::start().await;
    let lagging = active.node(
        Storage::new(ReadOnlyStorage(Storage::memory())),
        SystemView::new(FixedSystemView {
            replication_state: 1 << 14,
            ..FixedSystemView::default()
        }),
    );
    for path in ["creds/dev", "static-creds/ci"] {
        let err = lagging
            .call("read", path, json!({}))
            .await
            .expect_err("not in this replica");
        assert!(
            err.to_string().contains("cannot write to readonly storage"),
            "{path}: forwarded only on that text: {err}"
        );
    }
    // The active node decides: a role that does not exist is the caller's 400.
    let err = active
        .call("read", "creds/nope", json!({}))
        .await
        .expect_err("no such role");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!err.to_string().contains("readonly"), "{err}");
}

//! `tidy` and `config/auto-tidy`: orphaned keys of this mount are deleted, keys a lease or an
//! issue in flight accounts for are kept, other mounts' and other aliases' keys are never
//! touched; the key index follows issue and revoke.
//!
//! Most cases drive the engine in-process against the stateful fake LiteLLM; one runs the real
//! `bao` CLI against a real OpenBao and the real LiteLLM proxy.

use std::time::{Duration, SystemTime};

use crate::support::engine::{BACKEND_UUID, Engine, MASTER_KEY, MOUNT};
use crate::support::fake_litellm::{FakeLiteLlm, Fault, Op};
use crate::support::{create_key, create_key_stamped, our_alias};
use serde_json::{Value, json};
use vault_plugin_secrets_litellm::engine::client::{Client, ClientConfig, GeneratedKey};
use vault_plugin_secrets_litellm::engine::key_index::{self, IndexEntry};
use vault_plugin_secrets_litellm::framework::{self, LeaseSecret, RawRequest, Response, wal};

/// Tidy's helpers on the in-process engine.
trait TidyEngine {
    /// `tidy` with `data`, returning the response data.
    async fn tidy(&self, data: Value) -> Value;
    /// Issues a key for role `dev`: its lease and its hash.
    async fn issue_indexed(&self) -> (LeaseSecret, String);
    /// The periodic rollback tick, as the host sends it (with the mount point, not immediate).
    async fn tick(&self) -> framework::Result<Option<Response>>;
    fn admin(&self) -> Client;
    /// A key created directly in LiteLLM, stamped as `mount` stamps its keys.
    async fn create_key(&self, alias: &str, mount: &str, duration: &str) -> GeneratedKey;
    /// The same, stamped with a mount's path and UUID as issue stamps them since v0.2.0.
    async fn create_key_of(&self, alias: &str, mount: &str, uuid: &str) -> GeneratedKey;
    fn alive(&self, alias: &str) -> bool;
    async fn indexed(&self, token: &str) -> bool;
}

impl TidyEngine for Engine {
    async fn tidy(&self, data: Value) -> Value {
        self.data("update", "tidy", data).await
    }

    async fn issue_indexed(&self) -> (LeaseSecret, String) {
        let response = self
            .call("read", "creds/dev", json!({}))
            .await
            .unwrap()
            .expect("a response");
        let token = response.data.as_ref().unwrap()["token_id"]
            .as_str()
            .unwrap()
            .to_string();
        (response.secret.expect("a lease"), token)
    }

    async fn tick(&self) -> framework::Result<Option<Response>> {
        let raw = RawRequest {
            operation: "rollback".into(),
            mount_point: MOUNT.to_string(),
            ..RawRequest::default()
        };
        self.backend
            .handle_request(raw, self.storage.clone(), self.system.clone())
            .await
    }

    fn admin(&self) -> Client {
        Client::new(&ClientConfig::new(self.litellm.url(), MASTER_KEY)).unwrap()
    }

    async fn create_key(&self, alias: &str, mount: &str, duration: &str) -> GeneratedKey {
        create_key(&self.admin(), alias, mount, "dev", duration).await
    }

    async fn create_key_of(&self, alias: &str, mount: &str, uuid: &str) -> GeneratedKey {
        let stamps = [
            ("vault_mount", mount),
            ("vault_mount_uuid", uuid),
            ("vault_role", "dev"),
        ];
        create_key_stamped(&self.admin(), alias, &stamps, "1h").await
    }

    fn alive(&self, alias: &str) -> bool {
        self.litellm.find_by_alias(alias).is_some()
    }

    async fn indexed(&self, token: &str) -> bool {
        key_index::contains(&self.storage, token).await.unwrap()
    }
}

fn aliases(report: &Value) -> Vec<String> {
    let mut list: Vec<String> = report["deleted"]
        .as_array()
        .expect("deleted is a list")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    list.sort();
    list
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn tidy_deletes_orphans_only() {
    let engine = Engine::start().await;
    let (lease_a, token_a) = engine.issue_indexed().await;
    let (lease_b, token_b) = engine.issue_indexed().await;
    assert!(engine.indexed(&token_a).await && engine.indexed(&token_b).await);

    // Orphans: a key created directly with this mount's alias shape and stamp (with the UUID,
    // and the path alone as before v0.2.0; with the UUID at another path, as after a remount),
    // and a key whose lease (and index entry) was lost, e.g. with a storage restore.
    let by_hand = our_alias("vault", "dev");
    engine.create_key_of(&by_hand, MOUNT, BACKEND_UUID).await;
    let by_hand_legacy = our_alias("vault", "dev");
    engine.create_key(&by_hand_legacy, MOUNT, "1h").await;
    let remounted = our_alias("vault", "dev");
    engine
        .create_key_of(&remounted, "old-path/", BACKEND_UUID)
        .await;
    let (_, lost_token) = engine.issue_indexed().await;
    key_index::remove(&engine.storage, &lost_token)
        .await
        .unwrap();
    let lost = engine.litellm.get(&lost_token).unwrap().key_alias.unwrap();
    // An issue in flight (young WAL entry) is kept; one the WAL no longer protects is not.
    let in_flight = our_alias("vault", "dev");
    wal::put(
        &engine.storage,
        "litellm_key",
        &json!({ "key_alias": in_flight }),
        engine.now(),
    )
    .await
    .unwrap();
    engine.create_key(&in_flight, MOUNT, "1h").await;
    let crashed = our_alias("vault", "dev");
    let old = wal::WalEntry {
        kind: "litellm_key".into(),
        data: json!({ "key_alias": crashed }),
        created_at: i64::try_from(
            engine
                .now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap()
            - 3600,
        attempts: 0,
    };
    engine
        .storage
        .put_json("wal/old", &old, false)
        .await
        .unwrap();
    engine.create_key(&crashed, MOUNT, "1h").await;

    // Never ours: the same shape from another mount (another path; the same path in another
    // cluster, told apart by its UUID), another role's shape, no shape at all, an upper-case
    // suffix.
    let other_mount = our_alias("vault", "dev");
    engine.create_key(&other_mount, "other/", "1h").await;
    let other_cluster = our_alias("vault", "dev");
    engine
        .create_key_of(&other_cluster, MOUNT, "0d4c3b2a-other-cluster")
        .await;
    let other_role = our_alias("vault", "ops");
    engine.create_key(&other_role, MOUNT, "1h").await;
    engine.create_key("vault-dev-by-hand", MOUNT, "1h").await;
    let upper = "vault-dev-ABCDEF012345".to_string();
    engine.create_key(&upper, MOUNT, "1h").await;

    let orphans = sorted(vec![
        by_hand.clone(),
        by_hand_legacy.clone(),
        remounted.clone(),
        lost.clone(),
        crashed.clone(),
    ]);
    let keys_before = engine.litellm.key_count();
    let dry = engine.tidy(json!({"dry_run": true})).await;
    assert_eq!(aliases(&dry), orphans, "{dry}");
    assert_eq!(dry["kept"], 3, "two leased keys and one in flight: {dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        engine.litellm.key_count(),
        keys_before,
        "a dry run deletes nothing"
    );
    assert_eq!(engine.litellm.requests(Op::Delete), 0);

    let done = engine.tidy(json!({})).await;
    assert_eq!(aliases(&done), orphans, "{done}");
    assert_eq!(done["kept"], 3);
    assert_eq!(done["dry_run"], false);
    for alias in &orphans {
        assert!(!engine.alive(alias), "{alias} survived");
    }
    for alias in [
        &in_flight,
        &other_mount,
        &other_cluster,
        &other_role,
        &upper,
    ] {
        assert!(engine.alive(alias), "{alias} was deleted");
    }
    assert!(engine.alive("vault-dev-by-hand"));
    assert_eq!(engine.litellm.key_count(), keys_before - orphans.len());

    // Nothing left to do; the leases revoke as before.
    let again = engine.tidy(json!({})).await;
    assert_eq!(aliases(&again), Vec::<String>::new());
    for lease in [&lease_a, &lease_b] {
        engine.lease_call("revoke", lease).await.unwrap();
    }
    assert!(engine.litellm.get(&token_a).is_none() && engine.litellm.get(&token_b).is_none());
    assert!(key_index::list(&engine.storage).await.unwrap().is_empty());
}

#[tokio::test]
async fn revoke_removes_the_index_entry_only_once_the_key_is_gone() {
    let engine = Engine::start().await;
    let (lease, token) = engine.issue_indexed().await;
    assert_eq!(
        key_index::get(&engine.storage, &token)
            .await
            .unwrap()
            .map(|e| e.role),
        Some("dev".to_string())
    );

    // A failed delete keeps the entry (Vault retries the revoke).
    engine.litellm.set_fault(Op::Delete, Fault::Status(500));
    engine.lease_call("revoke", &lease).await.unwrap_err();
    assert!(engine.indexed(&token).await);
    engine.litellm.clear_faults();
    engine.lease_call("revoke", &lease).await.unwrap();
    assert!(!engine.indexed(&token).await);

    // LiteLLM's 404 (deleted behind Vault's back) removes it too.
    let (lease, token) = engine.issue_indexed().await;
    engine
        .admin()
        .delete_keys(std::slice::from_ref(&token))
        .await
        .unwrap();
    engine.lease_call("revoke", &lease).await.unwrap();
    assert!(!engine.indexed(&token).await);

    // A failed issue leaves no entry behind.
    engine
        .litellm
        .fail_next_n(Op::Generate, Fault::Status(500), 1);
    engine
        .call("read", "creds/dev", json!({}))
        .await
        .unwrap_err();
    assert!(key_index::list(&engine.storage).await.unwrap().is_empty());
}

#[tokio::test]
async fn indexed_keys_go_once_expired_past_the_safety_buffer() {
    let engine = Engine::start().await;
    // A lease revoked with -force while LiteLLM was down: the key and its entry stay behind.
    let alias = our_alias("vault", "dev");
    let key = engine.create_key(&alias, MOUNT, "1s").await;
    let entry = IndexEntry::new(&alias, "dev", engine.now());
    key_index::put(&engine.storage, &key.token, &entry)
        .await
        .unwrap();
    engine.advance(Duration::from_millis(2500));

    let default_buffer = engine.tidy(json!({})).await;
    assert_eq!(aliases(&default_buffer), Vec::<String>::new());
    assert_eq!(default_buffer["kept"], 1);

    let short_buffer = engine.tidy(json!({"safety_buffer": "1s"})).await;
    assert_eq!(aliases(&short_buffer), std::slice::from_ref(&alias));
    assert!(!engine.alive(&alias));
    assert!(!engine.indexed(&key.token).await);
}

#[tokio::test]
async fn keys_created_before_the_index_existed_are_left_alone() {
    let engine = Engine::start().await;
    // As after an upgrade: the mount never recorded when it started indexing.
    engine.storage.delete("tidy/index-since").await.unwrap();
    let legacy = our_alias("vault", "dev");
    engine.create_key(&legacy, MOUNT, "1h").await;
    engine.advance(Duration::from_millis(20));

    let first = engine.tidy(json!({})).await;
    assert_eq!(aliases(&first), Vec::<String>::new());
    assert_eq!(first["kept"], 1);
    assert!(engine.alive(&legacy));

    // Keys created after the first tidy recorded the start are judged.
    engine.advance(Duration::from_millis(20));
    let orphan = our_alias("vault", "dev");
    engine.create_key(&orphan, MOUNT, "1h").await;
    let second = engine.tidy(json!({})).await;
    assert_eq!(aliases(&second), [orphan]);
    assert!(engine.alive(&legacy));
}

#[tokio::test]
async fn index_entries_of_deleted_keys_are_removed() {
    let engine = Engine::start().await;
    let old = engine.now() - Duration::from_secs(3600);
    // Rollback deleted the key of an issue that crashed after indexing it.
    let gone = engine
        .create_key(&our_alias("vault", "dev"), MOUNT, "1h")
        .await;
    engine
        .admin()
        .delete_keys(std::slice::from_ref(&gone.token))
        .await
        .unwrap();
    let entry = IndexEntry::new("vault-dev-000000000000", "dev", old);
    key_index::put(&engine.storage, &gone.token, &entry)
        .await
        .unwrap();
    // Never known to LiteLLM at all.
    let unknown = "ab".repeat(32);
    key_index::put(&engine.storage, &unknown, &entry)
        .await
        .unwrap();
    // A live key of a deleted role: its lease still accounts for it.
    let other_role = our_alias("vault", "gone");
    let live = create_key(&engine.admin(), &other_role, MOUNT, "gone", "1h").await;
    key_index::put(&engine.storage, &live.token, &entry)
        .await
        .unwrap();

    let dry = engine.tidy(json!({"dry_run": true})).await;
    assert_eq!(dry["stale_index_entries"], 2, "{dry}");
    assert_eq!(key_index::list(&engine.storage).await.unwrap().len(), 3);
    let done = engine.tidy(json!({})).await;
    assert_eq!(done["stale_index_entries"], 2, "{done}");
    assert_eq!(
        key_index::list(&engine.storage).await.unwrap(),
        std::slice::from_ref(&live.token)
    );
    assert!(engine.alive(&other_role));
}

#[tokio::test]
async fn auto_tidy_runs_on_the_rollback_tick_when_enabled_and_due() {
    let mut engine = Engine::start().await;
    let settings = engine.data("read", "config/auto-tidy", json!({})).await;
    assert_eq!(
        settings,
        json!({"enabled": false, "interval_duration": 3600, "safety_buffer": 259200, "last_auto_tidy": null})
    );

    let first = our_alias("vault", "dev");
    engine.create_key(&first, MOUNT, "1h").await;
    engine.tick().await.unwrap();
    assert!(engine.alive(&first), "auto-tidy is off by default");

    engine
        .call("update", "config/auto-tidy", json!({"enabled": true}))
        .await
        .unwrap();
    engine.tick().await.unwrap();
    assert!(!engine.alive(&first), "enabled and never run: due");
    let settings = engine.data("read", "config/auto-tidy", json!({})).await;
    assert!(settings["last_auto_tidy"].is_string(), "{settings}");

    let second = our_alias("vault", "dev");
    engine.create_key(&second, MOUNT, "1h").await;
    engine.tick().await.unwrap();
    assert!(engine.alive(&second), "not due again for an hour");

    // The schedule is in storage: a fresh engine on the same storage keeps it.
    let restarted = Engine::on(
        engine.storage.clone(),
        engine.system.clone(),
        FakeLiteLlm::start(MASTER_KEY).unwrap(),
    );
    restarted.tick().await.unwrap();
    assert!(engine.alive(&second));

    engine
        .call(
            "update",
            "config/auto-tidy",
            json!({"interval_duration": "1s"}),
        )
        .await
        .unwrap();
    engine.advance(Duration::from_millis(1100));
    engine.tick().await.unwrap();
    assert!(!engine.alive(&second), "due after the interval");

    // A failing auto-tidy never fails the rollback request (it could fail an unmount).
    engine.advance(Duration::from_millis(1100));
    engine.litellm.stop();
    engine.tick().await.unwrap();
    engine.litellm.restart().unwrap();

    engine
        .call("update", "config/auto-tidy", json!({"enabled": false}))
        .await
        .unwrap();
    let third = our_alias("vault", "dev");
    engine.create_key(&third, MOUNT, "1h").await;
    engine.advance(Duration::from_millis(1100));
    engine.tick().await.unwrap();
    assert!(engine.alive(&third), "disabled again");
}

#[tokio::test]
async fn bad_input_is_a_clear_400() {
    let engine = Engine::start().await;
    for (path, data, word) in [
        (
            "config/auto-tidy",
            json!({"interval_duration": "0s"}),
            "interval_duration",
        ),
        (
            "config/auto-tidy",
            json!({"interval_duration": "soon"}),
            "interval_duration",
        ),
        ("config/auto-tidy", json!({"enabled": "maybe"}), "enabled"),
        (
            "config/auto-tidy",
            json!({"safety_buffer": "0"}),
            "safety_buffer",
        ),
        ("tidy", json!({"safety_buffer": "0s"}), "safety_buffer"),
        ("tidy", json!({"dry_run": "perhaps"}), "dry_run"),
    ] {
        let err = engine.call("update", path, data.clone()).await.unwrap_err();
        assert_eq!(
            err.kind(),
            framework::ErrorKind::Response,
            "{path} {data}: {err}"
        );
        assert!(err.to_string().contains(word), "{path} {data}: {err}");
    }
    engine.call("delete", "config", json!({})).await.unwrap();
    let err = engine.call("update", "tidy", json!({})).await.unwrap_err();
    assert_eq!(err.kind(), framework::ErrorKind::Response);
    assert!(err.to_string().contains("config"), "{err}");
}

//! Config, client and roles are cached in memory; every change must still be seen by the very
//! next request: the plugin's own writes drop the cache, and so does the host's InvalidateKey
//! (a write by another node of an HA cluster).

use crate::support::engine::{Engine, MASTER_KEY};
use crate::support::fake_litellm::FakeLiteLlm;
use serde_json::json;

/// Models of the key the engine issues next.
async fn next_key_models(engine: &Engine, litellm: &FakeLiteLlm) -> Vec<String> {
    let lease = engine.issue().await.unwrap();
    let alias = lease.internal_str("key_alias").unwrap().to_string();
    litellm
        .find_by_alias(&alias)
        .expect("key in LiteLLM")
        .models
}

#[tokio::test]
async fn role_writes_and_deletes_apply_to_the_next_issue() {
    let engine = Engine::start().await;
    assert_eq!(
        next_key_models(&engine, &engine.litellm).await,
        ["fake-gpt"]
    );
    engine
        .call("update", "roles/dev", json!({"models": "fake-claude"}))
        .await
        .unwrap();
    assert_eq!(
        next_key_models(&engine, &engine.litellm).await,
        ["fake-claude"]
    );
    engine.call("delete", "roles/dev", json!({})).await.unwrap();
    let err = engine.issue().await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn config_writes_switch_the_client_at_once() {
    let engine = Engine::start().await;
    engine.issue().await.unwrap();
    let other = FakeLiteLlm::start(MASTER_KEY).unwrap();
    engine
        .call("update", "config", json!({"base_url": other.url()}))
        .await
        .unwrap();
    engine.issue().await.unwrap();
    assert_eq!((engine.litellm.key_count(), other.key_count()), (1, 1));
    engine.call("delete", "config", json!({})).await.unwrap();
    let err = engine.issue().await.unwrap_err();
    assert!(err.to_string().contains("not configured"), "{err}");
}

#[tokio::test]
async fn invalidate_key_drops_what_another_node_changed() {
    let engine = Engine::start().await;
    assert_eq!(
        next_key_models(&engine, &engine.litellm).await,
        ["fake-gpt"]
    );
    // Another node rewrites the role in replicated storage, behind this node's back.
    let mut role: serde_json::Value = engine.storage.get_json("roles/dev").await.unwrap().unwrap();
    role["models"] = json!(["fake-claude"]);
    engine
        .storage
        .put_json("roles/dev", &role, false)
        .await
        .unwrap();
    assert_eq!(
        next_key_models(&engine, &engine.litellm).await,
        ["fake-gpt"],
        "served from the cache"
    );
    assert_eq!(read_role_models(&engine).await, json!(["fake-gpt"]));
    engine.backend.invalidate_key("roles/dev");
    assert_eq!(
        next_key_models(&engine, &engine.litellm).await,
        ["fake-claude"]
    );
    assert_eq!(read_role_models(&engine).await, json!(["fake-claude"]));
}

/// `models` as `roles/dev` reads: from the same cache as issuing.
async fn read_role_models(engine: &Engine) -> serde_json::Value {
    engine.data("read", "roles/dev", json!({})).await["models"].clone()
}

#[tokio::test]
async fn role_reads_see_writes_and_deletes_at_once() {
    let engine = Engine::start().await;
    assert_eq!(read_role_models(&engine).await, json!(["fake-gpt"]));
    engine
        .call("update", "roles/dev", json!({"models": "fake-claude"}))
        .await
        .unwrap();
    assert_eq!(read_role_models(&engine).await, json!(["fake-claude"]));
    engine.call("delete", "roles/dev", json!({})).await.unwrap();
    let read = engine.call("read", "roles/dev", json!({})).await.unwrap();
    assert!(read.is_none(), "a deleted role reads as not found");
}

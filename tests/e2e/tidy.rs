//! `tidy` and `config/auto-tidy`: orphaned keys of this mount are deleted, keys a lease or an
//! issue in flight accounts for are kept, other mounts' and other aliases' keys are never
//! touched; the key index follows issue and revoke.
//!
//! Most cases drive the engine in-process against the stateful fake LiteLLM; one runs the real
//! `bao` CLI against a real OpenBao and the real LiteLLM proxy.

use crate::support::bao::{DevServer, DevServerOptions};
use crate::support::{
    KeyCleanup, RealLiteLlm, configure, create_key, mount, our_alias, revoke_role_leases, unique,
    write_role,
};
use serde_json::{Value, json};
use vault_plugin_secrets_litellm::engine::client::KeyStatus;

#[tokio::test]
async fn tidy_through_the_cli_against_the_real_litellm() {
    let litellm = RealLiteLlm::from_env();
    let admin = litellm.admin();
    let server = DevServer::start_with(DevServerOptions::default());
    mount(&server, &["litellm"]);
    configure(&server, "litellm", &litellm.url, &litellm.master_key);
    let role = unique("tidy");
    write_role(&server, &role, &["ttl=10m"]);
    let mut cleanup = KeyCleanup::new(&litellm);

    let leased: Vec<Value> = (0..2)
        .map(|_| {
            server
                .bao(&["read", "-format=json", &format!("litellm/creds/{role}")])
                .ok()
                .json()
        })
        .collect();
    let leased_tokens: Vec<String> = leased
        .iter()
        .map(|c| c["data"]["token_id"].as_str().unwrap().to_string())
        .collect();
    cleanup.tokens.extend(leased_tokens.iter().cloned());
    let orphan_alias = our_alias("vault", &role);
    let orphan = create_key(&admin, &orphan_alias, "litellm/", &role, "600s").await;
    cleanup.tokens.push(orphan.token.clone());
    // The same shape stamped by another mount is not ours.
    let foreign_alias = our_alias("vault", &role);
    let foreign = create_key(&admin, &foreign_alias, "elsewhere/", &role, "600s").await;
    cleanup.tokens.push(foreign.token.clone());

    let status = |token: String| {
        let admin = admin.clone();
        async move { admin.info(&token).await.unwrap().map(|i| i.status) }
    };

    let dry = server
        .bao(&["write", "-format=json", "litellm/tidy", "dry_run=true"])
        .ok()
        .json();
    assert_eq!(dry["data"]["deleted"], json!([orphan_alias]), "{dry}");
    assert_eq!(dry["data"]["kept"], 2, "{dry}");
    assert_eq!(dry["data"]["dry_run"], true);
    assert_eq!(
        status(orphan.token.clone()).await,
        Some(KeyStatus::Active),
        "a dry run deletes nothing"
    );

    // `-force`: the CLI refuses a write without data otherwise.
    let done = server
        .bao(&["write", "-format=json", "-force", "litellm/tidy"])
        .ok()
        .json();
    assert_eq!(done["data"]["deleted"], json!([orphan_alias]), "{done}");
    assert_eq!(done["data"]["kept"], 2, "{done}");
    assert_eq!(status(orphan.token.clone()).await, Some(KeyStatus::Deleted));
    assert_eq!(status(foreign.token.clone()).await, Some(KeyStatus::Active));
    for token in &leased_tokens {
        assert_eq!(status(token.clone()).await, Some(KeyStatus::Active));
    }

    // The leases still revoke cleanly.
    revoke_role_leases(&server, &role);
    for token in &leased_tokens {
        assert_eq!(status(token.clone()).await, Some(KeyStatus::Deleted));
    }
    for c in &leased {
        let lookup = server.bao(&["lease", "lookup", c["lease_id"].as_str().unwrap()]);
        assert!(!lookup.success(), "lease survived its revoke: {lookup}");
    }

    // The only key left is the foreign one, which this test created: remove it.
    admin
        .delete_keys(std::slice::from_ref(&foreign.token))
        .await
        .unwrap();
    cleanup.tokens.clear();
}

/// The mount UUID stamped on keys stays the mount's through a server restart and a
/// `secrets move`, so tidy at the new path still owns the keys issued at the old one: it keeps
/// the leased ones and deletes an orphan stamped with the old path and the UUID.
#[tokio::test]
async fn tidy_owns_a_moved_mounts_keys_by_its_uuid() {
    let litellm = RealLiteLlm::from_env();
    let admin = litellm.admin();
    let mut server =
        crate::support::server_with(&litellm, DevServerOptions::default().persistent());
    let role = unique("moved");
    write_role(&server, &role, &["ttl=10m"]);
    let mut cleanup = KeyCleanup::new(&litellm);
    let mut issue = |server: &DevServer, mount: &str| {
        let creds = server
            .bao(&["read", "-format=json", &format!("{mount}/creds/{role}")])
            .ok()
            .json();
        let token = creds["data"]["token_id"].as_str().unwrap().to_string();
        cleanup.tokens.push(token.clone());
        token
    };
    let stamps = |token: String| {
        let admin = admin.clone();
        async move {
            let info = admin.info(&token).await.unwrap().expect("the key");
            let stamp = |k: &str| info.metadata[k].as_str().unwrap().to_string();
            (stamp("vault_mount"), stamp("vault_mount_uuid"))
        }
    };

    let before = issue(&server, "litellm");
    let (path, uuid) = stamps(before.clone()).await;
    assert_eq!(path, "litellm/");
    server.restart();
    let after_restart = issue(&server, "litellm");
    assert_eq!(
        stamps(after_restart.clone()).await,
        (path.clone(), uuid.clone())
    );

    // OpenBao revokes a moved mount's leases: their keys go.
    server.bao(&["secrets", "move", "litellm/", "llm/"]).ok();
    for token in [&before, &after_restart] {
        let state = admin.info(token).await.unwrap().map(|i| i.status);
        assert_eq!(state, Some(KeyStatus::Deleted), "a lease survived the move");
    }
    let moved = issue(&server, "llm");
    let leased = issue(&server, "llm");
    assert_eq!(
        stamps(moved.clone()).await,
        ("llm/".to_string(), uuid.clone())
    );
    let orphan_alias = our_alias("vault", &role);
    let orphan = crate::support::create_key_stamped(
        &admin,
        &orphan_alias,
        &[
            ("vault_mount", "litellm/"),
            ("vault_mount_uuid", &uuid),
            ("vault_role", &role),
        ],
        "600s",
    )
    .await;
    cleanup.tokens.push(orphan.token.clone());

    let done = server
        .bao(&["write", "-format=json", "-force", "llm/tidy"])
        .ok()
        .json();
    assert_eq!(done["data"]["deleted"], json!([orphan_alias]), "{done}");
    assert_eq!(done["data"]["kept"], 2, "the leased keys: {done}");
    for token in [&moved, &leased] {
        let state = admin.info(token).await.unwrap().map(|i| i.status);
        assert_eq!(state, Some(KeyStatus::Active));
    }
    // The leases moved with the mount and revoke there.
    server
        .bao(&["lease", "revoke", "-sync", "-prefix", "llm/creds/"])
        .ok();
    for token in [&moved, &leased, &orphan.token] {
        let state = admin.info(token).await.unwrap().map(|i| i.status);
        assert_eq!(state, Some(KeyStatus::Deleted));
    }
    cleanup.tokens.clear();
}

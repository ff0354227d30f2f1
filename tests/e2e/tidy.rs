//! `tidy` and `config/auto-tidy`: orphaned keys of this mount are deleted, keys a lease or an
//! issue in flight accounts for are kept, other mounts' and other aliases' keys are never
//! touched; the key index follows issue and revoke.
//!
//! Most cases drive the engine in-process against the stateful fake LiteLLM; one runs the real
//! `bao` CLI against a real OpenBao and the real LiteLLM proxy.

use crate::support::bao::{DevServer, DevServerOptions};
use crate::support::{
    RealLiteLlm, configure, create_key, mount, our_alias, revoke_role_leases, unique, write_role,
};
use serde_json::{Value, json};
use vault_plugin_secrets_litellm::engine::client::KeyStatus;

/// Deletes the given keys from the real LiteLLM when dropped, so a failing test leaves none.
struct Cleanup {
    litellm: RealLiteLlm,
    tokens: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let litellm = self.litellm.clone();
        let tokens = std::mem::take(&mut self.tokens);
        if tokens.is_empty() {
            return;
        }
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async { litellm.admin().delete_keys(&tokens).await })
        })
        .join();
    }
}

#[tokio::test]
async fn tidy_through_the_cli_against_the_real_litellm() {
    let litellm = RealLiteLlm::from_env();
    let admin = litellm.admin();
    let server = DevServer::start_with(DevServerOptions::default());
    mount(&server, &["litellm"]);
    configure(&server, "litellm", &litellm.url, &litellm.master_key);
    let role = unique("tidy");
    write_role(&server, &role, &["ttl=10m"]);
    let mut cleanup = Cleanup {
        litellm: litellm.clone(),
        tokens: Vec::new(),
    };

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

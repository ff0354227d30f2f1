//! Identity binding: a role's `user_id_template` / `team_id_template` rendered for the caller's
//! Vault identity entity, so LiteLLM attributes each key's spend to a person or workload.
//!
//! Most cases drive the engine in-process against the fake LiteLLM, with the entities a fixed
//! system view knows; one case runs the real `bao` CLI against a real OpenBao (userpass login,
//! an entity with metadata and an alias) and a real LiteLLM.

use std::time::Duration;

use crate::support::bao::{BaoClient, DevServer};
use crate::support::{RealLiteLlm, configure, enable_userpass, mount};
use serde_json::Value;
use vault_plugin_secrets_litellm::engine::client::{Client, ClientConfig, KeyStatus};

// ---------------------------------------------------------------------------------------------
// End to end: real OpenBao, userpass login, real LiteLLM
// ---------------------------------------------------------------------------------------------

/// Revokes every lease of the mount when dropped, so the real LiteLLM keeps none of this
/// test's keys even when an assertion fails halfway (each issued key is in a lease).
struct RevokeAllOnDrop(BaoClient);

impl Drop for RevokeAllOnDrop {
    fn drop(&mut self) {
        let out = self
            .0
            .bao(&["lease", "revoke", "-sync", "-prefix", "litellm/creds/"]);
        if !out.success() {
            eprintln!("cleanup failed: {out}");
        }
    }
}

#[tokio::test]
async fn userpass_login_binds_keys_to_the_entity_in_real_litellm() {
    let litellm = RealLiteLlm::from_env();
    let server = DevServer::start();
    mount(&server, &["litellm"]);
    configure(&server, "litellm", &litellm.url, &litellm.master_key);
    let root = server.client();
    let _cleanup = RevokeAllOnDrop(root.clone());
    // Unique per run: the LiteLLM proxy is shared, and its spend is attributed by these ids.
    let run = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let person = format!("alice-{run}");
    let team = format!("research-{run}");

    // alice logs in with userpass; her entity carries the team in its metadata.
    let accessor = enable_userpass(&root);
    let password = uuid::Uuid::new_v4().to_string();
    root.bao(&[
        "write",
        "auth/userpass/users/alice",
        &format!("password={password}"),
        "token_policies=litellm-creds",
    ])
    .ok();
    let entity = root
        .bao(&[
            "write",
            "-format=json",
            "identity/entity",
            &format!("name={person}"),
            &format!("metadata=team={team}"),
        ])
        .ok()
        .json();
    let entity_id = entity["data"]["id"]
        .as_str()
        .expect("entity id")
        .to_string();
    root.bao(&[
        "write",
        "identity/entity-alias",
        "name=alice",
        &format!("canonical_id={entity_id}"),
        &format!("mount_accessor={accessor}"),
    ])
    .ok();
    let token = root
        .bao(&[
            "login",
            "-method=userpass",
            "-token-only",
            "username=alice",
            &format!("password={password}"),
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let alice = root.with_token(&token);

    // Two roles: entity name + metadata, and the alias on the userpass mount + entity id.
    let role = format!("bound-{run}");
    root.bao(&[
        "write",
        &format!("litellm/roles/{role}"),
        "user_id_template={{identity.entity.name}}",
        "team_id_template=team-{{identity.entity.metadata.team}}",
        "ttl=2m",
    ])
    .ok();
    let alias_role = format!("login-{run}");
    root.bao(&[
        "write",
        &format!("litellm/roles/{alias_role}"),
        &format!("user_id_template={{{{identity.entity.aliases.{accessor}.name}}}}"),
        "team_id_template={{identity.entity.id}}",
        "ttl=2m",
    ])
    .ok();
    let read = root
        .bao(&["read", "-format=json", &format!("litellm/roles/{role}")])
        .ok()
        .json();
    assert_eq!(
        read["data"]["team_id_template"],
        "team-{{identity.entity.metadata.team}}"
    );

    let admin = Client::new(&ClientConfig {
        base_url: litellm.url.clone(),
        master_key: litellm.master_key.clone(),
        request_timeout: Duration::from_secs(30),
        ca_cert: None,
        insecure_tls: false,
    })
    .unwrap();
    let mut tokens = Vec::new();
    for (role, user, team) in [
        (&role, person.clone(), format!("team-{team}")),
        (&alias_role, "alice".to_string(), entity_id.clone()),
    ] {
        let creds = alice
            .bao(&["read", "-format=json", &format!("litellm/creds/{role}")])
            .ok()
            .json();
        let token_id = creds["data"]["token_id"].as_str().unwrap().to_string();
        let info = admin
            .info(&token_id)
            .await
            .unwrap()
            .expect("LiteLLM knows the key");
        assert_eq!(info.user_id.as_deref(), Some(user.as_str()), "{role}");
        assert_eq!(info.team_id.as_deref(), Some(team.as_str()), "{role}");
        assert_eq!(
            info.metadata.get("vault_entity_id").and_then(Value::as_str),
            Some(entity_id.as_str())
        );
        tokens.push(token_id);
    }

    // The root token has no entity: the same role fails with a 400 that says why.
    let refused = root
        .bao(&["read", &format!("litellm/creds/{role}")])
        .err()
        .combined();
    assert!(refused.contains("Code: 400"), "{refused}");
    assert!(
        refused.contains("user_id_template") && refused.contains("root token"),
        "{refused}"
    );

    root.bao(&["lease", "revoke", "-sync", "-prefix", "litellm/creds/"])
        .ok();
    for token_id in &tokens {
        let info = admin.info(token_id).await.unwrap();
        assert_eq!(info.map(|i| i.status), Some(KeyStatus::Deleted));
    }
}

//! Roles checked against the real LiteLLM at write, through a real OpenBao: key_settings reach
//! LiteLLM (its `/key/info` shows them), a reserved name and enterprise-only fields are 400s at
//! role write with LiteLLM's message, an unknown model is a 400, `models` lists the catalogue,
//! and a group template resolves for a userpass user in an identity group.

use serde_json::{Value, json};

use crate::support::bao::{BaoClient, DevServer, DevServerOptions};
use crate::support::{RealLiteLlm, issue, revoke_role_leases, server_with, token_id, unique};

/// The status and body of an HTTP call to the mount.
fn http(server: &DevServer, method: &str, path: &str, body: Value) -> (u16, Value) {
    server.http(method, &format!("litellm/{path}"), Some(&body))
}

fn errors(answer: &Value) -> String {
    answer["errors"].to_string()
}

#[tokio::test]
async fn key_settings_reach_litellm_and_what_litellm_refuses_fails_the_role_write() {
    let litellm = RealLiteLlm::from_env();
    let server = server_with(&litellm, DevServerOptions::default());
    let role = unique("settings");
    let settings = json!({
        "soft_budget": 0.5,
        "model_rpm_limit": {"fake-gpt": 3},
        "model_tpm_limit": {"fake-gpt": 100},
        "allowed_routes": ["/v1/models"],
        "aliases": {"mine": "fake-gpt"},
    });
    let (status, answer) = http(
        &server,
        "POST",
        &format!("roles/{role}"),
        json!({"models": "fake-gpt", "key_type": "default", "key_settings": settings, "ttl": "5m"}),
    );
    assert_eq!(status, 204, "{answer}");
    let creds = issue(&server, &role);
    let info = litellm
        .admin()
        .info(&token_id(&creds))
        .await
        .expect("key info")
        .expect("the key exists");
    // KeyInfo models the engine's own fields; the rest from LiteLLM's raw answer.
    let raw: Value = reqwest::Client::new()
        .get(format!("{}/key/info", litellm.url))
        .bearer_auth(&litellm.master_key)
        .query(&[("key", token_id(&creds))])
        .send()
        .await
        .expect("key info")
        .json()
        .await
        .expect("JSON");
    let raw = &raw["info"];
    assert_eq!(raw["allowed_routes"], json!(["/v1/models"]), "{raw}");
    assert_eq!(raw["aliases"], json!({"mine": "fake-gpt"}), "{raw}");
    assert_eq!(raw["litellm_budget_table"]["soft_budget"], 0.5, "{raw}");
    assert_eq!(info.metadata["model_rpm_limit"], json!({"fake-gpt": 3}));
    assert_eq!(info.metadata["model_tpm_limit"], json!({"fake-gpt": 100}));
    assert_eq!(info.metadata["vault_role"], json!(role));
    // The write's test key is gone: the only live key of the role is the issued one.
    let prefix = format!("vault-{role}-");
    let live = litellm.admin().list_aliases(&prefix).await.expect("list");
    assert_eq!(live.len(), 1, "{live:?}");

    // A reserved name: refused before LiteLLM is asked.
    let (status, answer) = http(
        &server,
        "POST",
        &format!("roles/{role}"),
        json!({"key_settings": {"team_id": "elsewhere"}}),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        errors(&answer).contains("key_settings may not set team_id"),
        "{answer}"
    );
    // Enterprise-only fields: LiteLLM's 403, and its 500 that says "enterprise license".
    for (field, value, says) in [
        ("guardrails", json!(["pii"]), "Enterprise users: guardrails"),
        ("tags", json!(["team-a"]), "Enterprise users: tags"),
        (
            "model_max_budget",
            json!({"fake-gpt": {"budget_limit": 1}}),
            "enterprise license",
        ),
    ] {
        let (status, answer) = http(
            &server,
            "POST",
            &format!("roles/{role}"),
            json!({"key_settings": {field: value}}),
        );
        assert_eq!(status, 400, "{field}: {answer}");
        assert!(errors(&answer).contains(says), "{field}: {answer}");
    }
    // The refused writes changed nothing.
    let read = server
        .bao(&["read", "-format=json", &format!("litellm/roles/{role}")])
        .ok()
        .json();
    assert_eq!(read["data"]["key_settings"], settings);
    revoke_role_leases(&server, &role);
    assert!(
        litellm
            .admin()
            .list_aliases(&prefix)
            .await
            .expect("list")
            .is_empty(),
        "no key of the role is left in LiteLLM"
    );
    server
        .bao(&["delete", &format!("litellm/roles/{role}")])
        .ok();
}

#[tokio::test]
async fn unknown_models_are_refused_and_models_lists_the_catalogue() {
    let litellm = RealLiteLlm::from_env();
    let server = server_with(&litellm, DevServerOptions::default());
    let role = unique("models");
    let (status, answer) = http(
        &server,
        "POST",
        &format!("roles/{role}"),
        json!({"models": "fake-gpt,gpt-nope"}),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        errors(&answer).contains("does not serve \\\"gpt-nope\\\""),
        "{answer}"
    );
    let (status, _) = http(
        &server,
        "POST",
        &format!("roles/{role}"),
        json!({"models": "fake-gpt,fake-*,all-team-models"}),
    );
    assert_eq!(status, 204);
    let listed = server
        .bao(&["read", "-format=json", "litellm/models"])
        .ok()
        .json();
    let models = listed["data"]["models"].as_array().expect("models").clone();
    for served in ["fake-gpt", "fake-claude", "fake-priced"] {
        assert!(models.contains(&json!(served)), "{listed}");
    }
    assert_eq!(listed["data"]["source"], "/model/info");
    server
        .bao(&["delete", &format!("litellm/roles/{role}")])
        .ok();
}

#[tokio::test]
async fn a_group_template_resolves_for_a_userpass_user_in_an_identity_group() {
    let litellm = RealLiteLlm::from_env();
    let server = server_with(&litellm, DevServerOptions::default());
    let root = server.client();
    let run = &uuid::Uuid::new_v4().simple().to_string()[..6];
    root.bao(&["auth", "enable", "userpass"]).ok();
    let accessor = root.bao(&["auth", "list", "-format=json"]).ok().json()["userpass/"]["accessor"]
        .as_str()
        .expect("userpass accessor")
        .to_string();
    root.bao_with(
        &["policy", "write", "litellm-creds", "-"],
        &[],
        Some(r#"path "litellm/creds/*" { capabilities = ["read", "update"] }"#),
    )
    .ok();
    let password = uuid::Uuid::new_v4().to_string();
    root.bao(&[
        "write",
        "auth/userpass/users/bob",
        &format!("password={password}"),
        "token_policies=litellm-creds",
    ])
    .ok();
    let entity_id = root
        .bao(&[
            "write",
            "-format=json",
            "identity/entity",
            &format!("name=bob-{run}"),
        ])
        .ok()
        .json()["data"]["id"]
        .as_str()
        .expect("entity id")
        .to_string();
    root.bao(&[
        "write",
        "identity/entity-alias",
        "name=bob",
        &format!("canonical_id={entity_id}"),
        &format!("mount_accessor={accessor}"),
    ])
    .ok();
    let group = format!("ops-{run}");
    let group_id = root
        .bao(&[
            "write",
            "-format=json",
            "identity/group",
            &format!("name={group}"),
            &format!("member_entity_ids={entity_id}"),
            &format!("metadata=litellm_user=ops-user-{run}"),
        ])
        .ok()
        .json()["data"]["id"]
        .as_str()
        .expect("group id")
        .to_string();
    let token = root
        .bao(&[
            "login",
            "-method=userpass",
            "-token-only",
            "username=bob",
            &format!("password={password}"),
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let bob: BaoClient = root.with_token(&token);

    let role = unique("group");
    root.bao(&[
        "write",
        &format!("litellm/roles/{role}"),
        "models=fake-gpt",
        &format!("user_id_template={{{{identity.groups.names.{group}.metadata.litellm_user}}}}"),
        &format!("team_id_template=team-{{{{identity.groups.ids.{group_id}.name}}}}"),
    ])
    .ok();
    let creds = bob
        .bao(&["read", "-format=json", &format!("litellm/creds/{role}")])
        .ok()
        .json();
    let info = litellm
        .admin()
        .info(&token_id(&creds))
        .await
        .expect("key info")
        .expect("the key exists");
    assert_eq!(info.user_id, Some(format!("ops-user-{run}")));
    assert_eq!(info.team_id, Some(format!("team-{group}")));

    // A group bob is not in: a 400 naming the field and the group.
    let other = unique("nogroup");
    root.bao(&[
        "write",
        &format!("litellm/roles/{other}"),
        "models=fake-gpt",
        "user_id_template={{identity.groups.names.nobody-here.id}}",
    ])
    .ok();
    let refused = bob
        .bao(&["read", &format!("litellm/creds/{other}")])
        .err()
        .combined();
    assert!(
        refused.contains("user_id_template")
            && refused.contains("not a member of a group with name \"nobody-here\""),
        "{refused}"
    );
    revoke_role_leases(&server, &role);
    for r in [&role, &other] {
        root.bao(&["delete", &format!("litellm/roles/{r}")]).ok();
    }
}

//! Group placeholders in identity templates, as in Vault's templated policies: resolved
//! through the host's GroupsForEntity for the caller's entity, a missing group or key a 400
//! naming the field and what is missing, and no group lookup for templates without one.

use crate::support::engine::{ALICE, BARE, Engine, known_entities};
use serde_json::json;
use vault_plugin_secrets_litellm::framework::ErrorKind;
use vault_plugin_secrets_litellm::proto::logical;

const OPS: &str = "0a6f8f3e-0000-4000-8000-0000000000f5";

async fn engine() -> Engine {
    let mut system = known_entities();
    system.groups.insert(
        ALICE.to_string(),
        vec![logical::Group {
            id: OPS.into(),
            name: "ops".into(),
            metadata: [("litellm_team".to_string(), "team-ops".to_string())].into(),
            ..logical::Group::default()
        }],
    );
    Engine::start_with(system).await
}

async fn owner_of(engine: &Engine, entity: &str, role: &str) -> (Option<String>, Option<String>) {
    let data = engine
        .call_as(entity, "read", &format!("creds/{role}"), json!({}))
        .await
        .unwrap_or_else(|e| panic!("issuing {role}: {e}"))
        .and_then(|r| r.data)
        .expect("data");
    let key = engine
        .litellm
        .find_by_alias(data["key_alias"].as_str().unwrap())
        .unwrap();
    (key.user_id, key.team_id)
}

#[tokio::test]
async fn group_placeholders_resolve_for_the_callers_groups() {
    let engine = engine().await;
    engine
        .call(
            "update",
            "roles/by-group",
            json!({
                "user_id_template": "{{identity.entity.name}}@{{identity.groups.ids.0a6f8f3e-0000-4000-8000-0000000000f5.name}}",
                "team_id_template": "{{identity.groups.names.ops.metadata.litellm_team}}",
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        owner_of(&engine, ALICE, "by-group").await,
        (Some("alice@ops".into()), Some("team-ops".into()))
    );
    engine
        .call(
            "update",
            "roles/group-id",
            json!({"user_id_template": "g-{{identity.groups.names.ops.id}}"}),
        )
        .await
        .unwrap();
    assert_eq!(
        owner_of(&engine, ALICE, "group-id").await.0,
        Some(format!("g-{OPS}"))
    );
}

#[tokio::test]
async fn a_missing_group_or_key_is_a_400_naming_the_field_and_what_is_missing() {
    let engine = engine().await;
    for (role, template, missing) in [
        (
            "no-group",
            "{{identity.groups.names.dev.id}}",
            "not a member of a group with name \"dev\"",
        ),
        (
            "no-id",
            "{{identity.groups.ids.nope.name}}",
            "not a member of a group with id \"nope\"",
        ),
        (
            "no-key",
            "{{identity.groups.names.ops.metadata.region}}",
            "group \"ops\" of entity \"alice\" has no metadata key \"region\"",
        ),
    ] {
        engine
            .call(
                "update",
                &format!("roles/{role}"),
                json!({"user_id_template": template}),
            )
            .await
            .unwrap();
        let err = engine
            .call_as(ALICE, "read", &format!("creds/{role}"), json!({}))
            .await
            .expect_err("unresolvable");
        assert_eq!(err.kind(), ErrorKind::Response, "{err}");
        let text = err.to_string();
        assert!(
            text.contains("user_id_template") && text.contains(missing),
            "{text}"
        );
    }
    // An entity in no group at all.
    let err = engine
        .call_as(BARE, "read", "creds/no-group", json!({}))
        .await
        .expect_err("bare is in no group");
    assert!(
        err.to_string().contains("entity \"bare\" is not a member"),
        "{err}"
    );
    assert_eq!(engine.litellm.key_count(), 0);
    // Malformed group placeholders are refused when the role is written.
    let err = engine
        .call(
            "update",
            "roles/bad",
            json!({"team_id_template": "{{identity.groups.names.ops.name}}"}),
        )
        .await
        .expect_err("names.<name>.name is no placeholder");
    assert!(err.to_string().contains("team_id_template"), "{err}");
}

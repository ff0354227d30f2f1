//! Identity binding: a role's `user_id_template` / `team_id_template` rendered for the caller's
//! Vault identity entity, so LiteLLM attributes each key's spend to a person or workload.
//!
//! Most cases drive the engine in-process against the fake LiteLLM, with the entities a fixed
//! system view knows; one case runs the real `bao` CLI against a real OpenBao (userpass login,
//! an entity with metadata and an alias) and a real LiteLLM.

use crate::support::engine::{ALICE, BARE, Engine, USERPASS, known_entities};
use crate::support::fake_litellm::Op;
use serde_json::{Value, json};
use vault_plugin_secrets_litellm::framework::{self, ErrorKind, Response, wal};

/// A mount whose host knows the entities `alice` and `bare`.
async fn engine() -> Engine {
    Engine::start_with(known_entities()).await
}

/// Identity's helpers on the in-process engine.
trait IdentityEngine {
    async fn write_role(&self, name: &str, fields: Value) -> framework::Result<Option<Response>>;
    /// Issues a key for `role` as `entity_id`; returns the fake's (user_id, team_id) of it.
    async fn issue_as(
        &self,
        entity_id: &str,
        role: &str,
    ) -> framework::Result<(Option<String>, Option<String>)>;
}

impl IdentityEngine for Engine {
    async fn write_role(&self, name: &str, fields: Value) -> framework::Result<Option<Response>> {
        self.call("update", &format!("roles/{name}"), fields).await
    }

    async fn issue_as(
        &self,
        entity_id: &str,
        role: &str,
    ) -> framework::Result<(Option<String>, Option<String>)> {
        let response = self
            .call_as(entity_id, "read", &format!("creds/{role}"), json!({}))
            .await?
            .expect("a response");
        let data = response.data.expect("data");
        let alias = data["key_alias"].as_str().expect("key_alias");
        let key = self.litellm.find_by_alias(alias).expect("the key exists");
        Ok((key.user_id, key.team_id))
    }
}

fn owner(user: &str, team: &str) -> (Option<String>, Option<String>) {
    (Some(user.to_string()), Some(team.to_string()))
}

#[tokio::test]
async fn templates_render_the_callers_entity_into_the_key() {
    let engine = engine().await;
    let roles = [
        (
            "entity",
            json!({
                "user_id_template": "{{identity.entity.name}}",
                "team_id_template": "team-{{identity.entity.metadata.team}}",
            }),
            owner("alice", "team-research"),
        ),
        (
            "alias",
            json!({
                "user_id_template": format!("{{{{identity.entity.aliases.{USERPASS}.name}}}}"),
                "team_id_template": format!(
                    "{{{{ identity.entity.aliases.{USERPASS}.metadata.org }}}}/{{{{identity.entity.id}}}}"
                ),
            }),
            owner("alice-login", &format!("lab/{ALICE}")),
        ),
        (
            "mixed",
            json!({"user_id_template": "{{identity.entity.id}}", "team_id": "platform"}),
            owner(ALICE, "platform"),
        ),
    ];
    for (name, fields, expected) in roles {
        engine.write_role(name, fields.clone()).await.unwrap();
        assert_eq!(
            engine.issue_as(ALICE, name).await.unwrap(),
            expected,
            "{name}"
        );
    }

    // Reads return the templates as written.
    let read = engine
        .call("read", "roles/entity", json!({}))
        .await
        .unwrap()
        .unwrap()
        .data
        .unwrap();
    assert_eq!(read["user_id_template"], "{{identity.entity.name}}");
    assert_eq!(
        read["team_id_template"],
        "team-{{identity.entity.metadata.team}}"
    );
    assert_eq!(read["user_id"], Value::Null);

    // Roles without templates need no entity and keep their fixed ids.
    engine
        .write_role("fixed", json!({"user_id": "svc", "team_id": "ops"}))
        .await
        .unwrap();
    assert_eq!(
        engine.issue_as("", "fixed").await.unwrap(),
        owner("svc", "ops")
    );
}

#[tokio::test]
async fn unresolvable_templates_fail_the_issue_clearly_and_create_nothing() {
    let engine = engine().await;
    let missing_alias = format!("{{{{identity.entity.aliases.{USERPASS}.name}}}}");
    let missing_alias_metadata =
        format!("{{{{identity.entity.aliases.{USERPASS}.metadata.dept}}}}");
    // (caller, template field, template, words the error must contain)
    let cases: [(&str, &str, &str, &[&str]); 7] = [
        (
            "",
            "user_id_template",
            "{{identity.entity.name}}",
            &["user_id_template", "identity entity", "root token"],
        ),
        (
            "",
            "team_id_template",
            "t-{{identity.entity.id}}",
            &["team_id_template", "identity entity", "root token"],
        ),
        (
            "0000-unknown",
            "user_id_template",
            "{{identity.entity.name}}",
            &["user_id_template", "0000-unknown", "not found"],
        ),
        (
            ALICE,
            "team_id_template",
            "{{identity.entity.metadata.region}}",
            &["team_id_template", "no metadata key \"region\"", "alice"],
        ),
        (
            BARE,
            "user_id_template",
            &missing_alias,
            &["user_id_template", "no alias", USERPASS, "bare"],
        ),
        (
            ALICE,
            "user_id_template",
            &missing_alias_metadata,
            &["user_id_template", "no metadata key \"dept\"", USERPASS],
        ),
        (
            BARE,
            "team_id_template",
            "team-{{identity.entity.metadata.team}}",
            &["team_id_template", "no metadata key \"team\"", "bare"],
        ),
    ];
    for (i, (caller, field, template, words)) in cases.into_iter().enumerate() {
        let role = format!("bound-{i}");
        let fields = serde_json::Map::from_iter([(field.to_string(), json!(template))]);
        engine
            .write_role(&role, Value::Object(fields))
            .await
            .unwrap();
        let err = engine
            .issue_as(caller, &role)
            .await
            .expect_err("issue must fail");
        assert_eq!(err.kind(), ErrorKind::Response, "a 400, not a 500: {err}");
        for word in words {
            assert!(
                err.to_string().contains(word),
                "{field}={template} as {caller:?}: {err:?} lacks {word:?}"
            );
        }
    }
    // Refused before anything happened in LiteLLM or the WAL.
    assert_eq!(engine.litellm.requests(Op::Generate), 0);
    assert_eq!(engine.litellm.key_count(), 0);
    assert!(wal::list(&engine.storage).await.unwrap().is_empty());
}

#[tokio::test]
async fn role_writes_validate_templates_and_exclude_fixed_ids() {
    let engine = engine().await;
    let refused = [
        (
            json!({"user_id_template": "{{identity.entity.email}}"}),
            &["user_id_template", "unknown placeholder"][..],
        ),
        (
            json!({"team_id_template": "team-{{identity.entity.metadata.team"}),
            &["team_id_template", "unclosed"],
        ),
        (
            json!({"team_id_template": "team-{{ }}"}),
            &["team_id_template", "empty placeholder"],
        ),
        (
            json!({"user_id_template": "alice"}),
            &["user_id_template", "no {{…}} placeholder"],
        ),
        (
            json!({"user_id_template": "{{identity.groups.names}}"}),
            &["user_id_template", "{{identity.entity.metadata.<key>}}"],
        ),
        (
            json!({"user_id": "bob", "user_id_template": "{{identity.entity.name}}"}),
            &["user_id", "user_id_template", "not both"],
        ),
        (
            json!({"team_id": "ops", "team_id_template": "{{identity.entity.name}}"}),
            &["team_id", "team_id_template", "not both"],
        ),
    ];
    for (fields, words) in refused {
        let err = engine
            .write_role("r", fields.clone())
            .await
            .expect_err("write must fail");
        assert_eq!(err.kind(), ErrorKind::Response, "{fields}: {err}");
        for word in words {
            assert!(
                err.to_string().contains(word),
                "{fields}: {err:?} lacks {word:?}"
            );
        }
    }
    assert!(
        engine
            .call("read", "roles/r", json!({}))
            .await
            .unwrap()
            .is_none(),
        "refused writes store nothing"
    );

    // The rule holds for the merged role: a template cannot join a stored fixed id...
    engine
        .write_role("r", json!({"user_id": "bob"}))
        .await
        .unwrap();
    let err = engine
        .write_role("r", json!({"user_id_template": "{{identity.entity.name}}"}))
        .await
        .expect_err("both on the merged role");
    assert!(err.to_string().contains("not both"), "{err}");
    // ...until the fixed id is cleared in the same write; an empty template clears it again.
    engine
        .write_role(
            "r",
            json!({"user_id": "", "user_id_template": "{{identity.entity.name}}"}),
        )
        .await
        .unwrap();
    assert_eq!(
        engine.issue_as(ALICE, "r").await.unwrap(),
        (Some("alice".into()), None)
    );
    engine
        .write_role("r", json!({"user_id_template": "", "user_id": "bob"}))
        .await
        .unwrap();
    assert_eq!(
        engine.issue_as("", "r").await.unwrap(),
        (Some("bob".into()), None)
    );
}

// ---------------------------------------------------------------------------------------------
// End to end: real OpenBao, userpass login, real LiteLLM
// ---------------------------------------------------------------------------------------------

//! Identity binding: a role's `user_id_template` / `team_id_template` rendered for the caller's
//! Vault identity entity, so LiteLLM attributes each key's spend to a person or workload.
//!
//! Most cases drive the engine in-process against the fake LiteLLM, with the entities a fixed
//! system view knows; one case runs the real `bao` CLI against a real OpenBao (userpass login,
//! an entity with metadata and an alias) and a real LiteLLM.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use support::bao::{BaoClient, DevServer};
use support::engine::Engine;
use support::fake_litellm::Op;
use support::{RealLiteLlm, configure, mount};
use vault_plugin_secrets_litellm::engine::client::{Client, ClientConfig, KeyStatus};
use vault_plugin_secrets_litellm::framework::system_view::FixedSystemView;
use vault_plugin_secrets_litellm::framework::{self, ErrorKind, Response, wal};
use vault_plugin_secrets_litellm::proto::logical;

const ALICE: &str = "7d1b3c56-0000-4000-8000-00000000a11c";
/// An entity the host knows that has no metadata and no aliases.
const BARE: &str = "7d1b3c56-0000-4000-8000-00000000ba4e";
const USERPASS: &str = "auth_userpass_5e7f9a1b";

fn alice() -> logical::Entity {
    logical::Entity {
        id: ALICE.into(),
        name: "alice".into(),
        metadata: [("team".to_string(), "research".to_string())].into(),
        aliases: vec![logical::Alias {
            mount_type: "userpass".into(),
            mount_accessor: USERPASS.into(),
            name: "alice-login".into(),
            metadata: [("org".to_string(), "lab".to_string())].into(),
            ..logical::Alias::default()
        }],
        ..logical::Entity::default()
    }
}

/// A mount whose host knows the entities `alice` and `bare`.
async fn engine() -> Engine {
    let bare = logical::Entity {
        id: BARE.into(),
        name: "bare".into(),
        ..logical::Entity::default()
    };
    let entities = BTreeMap::from([(ALICE.to_string(), alice()), (BARE.to_string(), bare)]);
    Engine::start_with(FixedSystemView {
        entities,
        ..FixedSystemView::default()
    })
    .await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

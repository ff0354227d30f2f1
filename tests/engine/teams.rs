//! Roles that own a LiteLLM team (role-wide and per-user limits), in-process against the fake:
//! the team follows the role, keys go into it, a failed team creation leaves no team and no
//! role, a deleted role's team waits for its keys, members are added once.

use std::time::Duration;

use crate::support::engine::{BACKEND_UUID, Engine, MOUNT};
use crate::support::fake_litellm::{Fault, Op};
use serde_json::{Value, json};
use vault_plugin_secrets_litellm::framework::{self, ErrorKind};

async fn write(engine: &Engine, path: &str, body: Value) {
    engine
        .call("update", path, body)
        .await
        .unwrap_or_else(|e| panic!("writing {path}: {e}"));
}

async fn read_role(engine: &Engine, name: &str) -> Value {
    engine
        .data("read", &format!("roles/{name}"), json!({}))
        .await
}

async fn issue_from(engine: &Engine, role: &str) -> framework::LeaseSecret {
    engine
        .call("read", &format!("creds/{role}"), json!({}))
        .await
        .expect("issuing a key")
        .and_then(|r| r.secret)
        .expect("a lease")
}

#[tokio::test]
async fn role_limits_make_a_team_that_follows_the_role_and_holds_its_keys() {
    let engine = Engine::start().await;
    let body =
        json!({"models": "fake-gpt", "role_max_budget": 5, "role_rpm_limit": 60, "max_budget": 1});
    write(&engine, "roles/capped", body).await;
    let role = read_role(&engine, "capped").await;
    let team_id = role["role_team_id"]
        .as_str()
        .expect("the role names its team")
        .to_string();
    assert!(team_id.starts_with("vault-capped-"), "{role}");
    assert_eq!(role["role_max_budget"], 5.0);
    assert_eq!(
        role["max_budget"], 1.0,
        "per-key limits stay, beside the role's"
    );

    let team = engine
        .litellm
        .team(&team_id)
        .expect("the team exists in LiteLLM");
    assert_eq!(team.limits["max_budget"], 5.0);
    assert_eq!(team.limits["rpm_limit"], 60);
    assert_eq!(team.limits["models"], json!(["fake-gpt"]));
    assert_eq!(team.team_alias.as_deref(), Some("litellm/capped"));
    assert_eq!(team.metadata["vault_mount"], MOUNT);
    assert_eq!(team.metadata["vault_mount_uuid"], BACKEND_UUID);

    let lease = issue_from(&engine, "capped").await;
    let token = lease.internal_data["token_id"].as_str().unwrap();
    let key = engine.litellm.get(token).expect("the key");
    assert_eq!(key.team_id.as_deref(), Some(team_id.as_str()));
    assert_eq!(key.max_budget, Some(1.0));

    // A partial write keeps the team and moves its limits; removed limits are cleared.
    write(
        &engine,
        "roles/capped",
        json!({"role_max_budget": 7, "role_tpm_limit": 1000}),
    )
    .await;
    let team = engine.litellm.team(&team_id).unwrap();
    assert_eq!(team.limits["max_budget"], 7.0);
    assert_eq!(team.limits["tpm_limit"], 1000);
    assert_eq!(
        engine.litellm.team_ids(),
        std::slice::from_ref(&team_id),
        "no second team"
    );
    assert_eq!(engine.litellm.requests(Op::TeamNew), 1);

    // A role without limits owns no team, and its writes never call LiteLLM's team API.
    write(&engine, "roles/plain", json!({"max_budget": 2})).await;
    assert_eq!(
        read_role(&engine, "plain").await["role_team_id"],
        Value::Null
    );
    assert_eq!(engine.litellm.team_ids(), [team_id]);
}

#[tokio::test]
async fn limits_that_need_what_the_role_lacks_are_400s_naming_the_fields() {
    let engine = Engine::start().await;
    for (body, words) in [
        (
            json!({"role_max_budget": 1, "team_id": "ops"}),
            ["role_max_budget", "team_id"],
        ),
        (
            json!({"role_rpm_limit": 5, "team_id_template": "t-{{identity.entity.name}}"}),
            ["role_rpm_limit", "team_id_template"],
        ),
        (
            json!({"user_max_budget": 1}),
            ["user_max_budget", "user_id_template"],
        ),
        (
            json!({"role_max_budget": -1}),
            ["role_max_budget", "zero or more"],
        ),
        (
            json!({"user_budget_duration": "1h30m"}),
            ["user_budget_duration", "invalid"],
        ),
    ] {
        let err = engine
            .call("update", "roles/bad", body.clone())
            .await
            .expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::Response, "{body}: a 400: {err}");
        for word in words {
            assert!(err.to_string().contains(word), "{body}: {err}");
        }
    }
    assert!(engine.litellm.team_ids().is_empty());
    assert_eq!(engine.litellm.requests(Op::TeamNew), 0);
}

#[tokio::test]
async fn a_failed_team_creation_leaves_no_team_no_role_and_no_wal_and_a_retry_converges() {
    let engine = Engine::start().await;
    let body = json!({"models": "fake-gpt", "role_max_budget": 3});
    for (fault, status) in [
        (Fault::Status(500), 502),
        (Fault::Reset, 502),
        (Fault::LoseResponse, 502),
        (Fault::Delay(Duration::from_secs(3)), 504),
    ] {
        engine.litellm.fail_next_n(Op::TeamNew, fault.clone(), 1);
        let err = engine
            .call("update", "roles/capped", body.clone())
            .await
            .expect_err("the write fails");
        assert_eq!(err.kind(), ErrorKind::Coded(status), "{fault:?}: {err}");
        assert!(err.to_string().contains("team"), "{fault:?}: {err}");
        assert!(
            engine.litellm.team_ids().is_empty(),
            "{fault:?} left a team"
        );
        assert!(
            engine.wal_ids().await.is_empty(),
            "{fault:?} left a WAL entry"
        );
        let role = engine
            .call("read", "roles/capped", json!({}))
            .await
            .unwrap();
        assert!(role.is_none(), "{fault:?} stored a half-made role");
    }
    // LiteLLM is back: the same write (as a client's retry would send it) converges.
    write(&engine, "roles/capped", body).await;
    let team_id = read_role(&engine, "capped").await["role_team_id"].clone();
    assert_eq!(json!(engine.litellm.team_ids()), json!([team_id]));
    issue_from(&engine, "capped").await;
}

#[tokio::test]
async fn rollback_deletes_a_team_whose_role_was_never_stored() {
    let engine = Engine::start().await;
    // The answer is lost and the clean-up fails too: only the WAL entry knows of the team.
    engine
        .litellm
        .fail_next_n(Op::TeamNew, Fault::LoseResponse, 1);
    engine
        .litellm
        .fail_next_n(Op::TeamDelete, Fault::Status(503), 1);
    engine
        .call("update", "roles/capped", json!({"role_max_budget": 3}))
        .await
        .expect_err("the write fails");
    assert_eq!(engine.litellm.team_ids().len(), 1);
    assert_eq!(engine.wal_ids().await.len(), 1);
    engine.rollback_now().await;
    assert!(
        engine.litellm.team_ids().is_empty(),
        "rollback deleted the team"
    );
    assert!(engine.wal_ids().await.is_empty());

    // A team its role names survives rollback.
    write(&engine, "roles/kept", json!({"role_max_budget": 3})).await;
    engine.rollback_now().await;
    assert_eq!(engine.litellm.team_ids().len(), 1);
}

#[tokio::test]
async fn a_deleted_roles_team_outlives_its_keys_and_tidy_then_deletes_it() {
    let engine = Engine::start().await;
    write(
        &engine,
        "roles/capped",
        json!({"models": "fake-gpt", "role_max_budget": 3, "ttl": "5m"}),
    )
    .await;
    let team_id = read_role(&engine, "capped").await["role_team_id"]
        .as_str()
        .unwrap()
        .to_string();
    let lease = issue_from(&engine, "capped").await;
    engine
        .call("delete", "roles/capped", json!({}))
        .await
        .unwrap();
    assert!(
        engine.litellm.team(&team_id).is_some(),
        "deleting the team would kill the key"
    );

    let tidy = engine.data("update", "tidy", json!({})).await;
    assert_eq!(tidy["retired_teams_kept"], 1, "{tidy}");
    assert_eq!(tidy["deleted_teams"], json!([]));
    assert!(engine.litellm.team(&team_id).is_some());

    // The key expires in LiteLLM (lease TTL + 5 s): then nothing of the team is live.
    engine.advance(Duration::from_secs(6 * 60));
    let dry = engine
        .data("update", "tidy", json!({"dry_run": true}))
        .await;
    assert_eq!(dry["deleted_teams"], json!([team_id]), "{dry}");
    assert!(
        engine.litellm.team(&team_id).is_some(),
        "a dry run deletes nothing"
    );
    let tidy = engine.data("update", "tidy", json!({})).await;
    assert_eq!(tidy["deleted_teams"], json!([team_id]), "{tidy}");
    assert!(engine.litellm.team(&team_id).is_none());
    let again = engine.data("update", "tidy", json!({})).await;
    assert_eq!(
        again["deleted_teams"],
        json!([]),
        "forgotten once deleted: {again}"
    );

    // The lease still revokes; a re-created role gets a new team.
    engine.lease_call("revoke", &lease).await.unwrap();
    write(&engine, "roles/capped", json!({"role_max_budget": 3})).await;
    let new_team = read_role(&engine, "capped").await["role_team_id"].clone();
    assert_ne!(new_team, json!(team_id), "team ids are never reused");
}

#[tokio::test]
async fn per_user_limits_make_each_user_a_member_once() {
    let engine = Engine::start().await;
    write(&engine, "roles/people",
            json!({"models": "fake-gpt", "user_id": "alice", "user_max_budget": 0.5, "user_budget_duration": "1d"}),
        )
        .await;
    let team_id = read_role(&engine, "people").await["role_team_id"]
        .as_str()
        .unwrap()
        .to_string();
    let team = engine.litellm.team(&team_id).unwrap();
    assert_eq!(team.limits["team_member_budget"], 0.5);
    assert_eq!(team.limits["team_member_budget_duration"], "1d");

    for _ in 0..3 {
        let lease = issue_from(&engine, "people").await;
        let token = lease.internal_data["token_id"].as_str().unwrap();
        let key = engine.litellm.get(token).unwrap();
        assert_eq!(key.user_id.as_deref(), Some("alice"));
        assert_eq!(key.team_id.as_deref(), Some(team_id.as_str()));
    }
    let team = engine.litellm.team(&team_id).unwrap();
    assert!(team.members.contains("alice"), "{:?}", team.members);
    assert_eq!(
        engine.litellm.requests(Op::MemberAdd),
        1,
        "known members cost no LiteLLM call on later issues"
    );

    // Failing to add a member fails the issue with no key left; the next issue retries it.
    write(&engine, "roles/people", json!({"user_id": "bob"})).await;
    engine
        .litellm
        .fail_next_n(Op::MemberAdd, Fault::Status(500), 1);
    let keys_before = engine.litellm.key_count();
    let err = engine
        .call("read", "creds/people", json!({}))
        .await
        .expect_err("no member, no key");
    assert_eq!(err.kind(), ErrorKind::Coded(502), "{err}");
    assert_eq!(engine.litellm.key_count(), keys_before);
    assert!(engine.wal_ids().await.is_empty());
    issue_from(&engine, "people").await;
    assert!(
        engine
            .litellm
            .team(&team_id)
            .unwrap()
            .members
            .contains("bob")
    );
}

#[tokio::test]
async fn usage_reports_the_role_team_and_refuses_roles_without_one() {
    let engine = Engine::start().await;
    write(
        &engine,
        "roles/capped",
        json!({"role_max_budget": 4, "role_budget_duration": "30d"}),
    )
    .await;
    issue_from(&engine, "capped").await;
    let usage = engine.data("read", "usage/capped", json!({})).await;
    assert_eq!(usage["max_budget"], 4.0, "{usage}");
    assert_eq!(usage["spend"], 0.0);
    assert_eq!(usage["budget_duration"], "30d");
    assert_eq!(usage["live_keys"], 1);
    assert!(
        usage["role_team_id"]
            .as_str()
            .unwrap()
            .starts_with("vault-capped-")
    );

    let err = engine
        .call("read", "usage/dev", json!({}))
        .await
        .expect_err("no team");
    assert_eq!(err.kind(), ErrorKind::Response);
    assert!(
        err.to_string().contains("no role_* or user_* limits"),
        "{err}"
    );
    let err = engine
        .call("read", "usage/nope", json!({}))
        .await
        .expect_err("no role");
    assert!(err.to_string().contains("does not exist"), "{err}");

    engine.litellm.set_fault(Op::TeamInfo, Fault::Reset);
    let err = engine
        .call("read", "usage/capped", json!({}))
        .await
        .expect_err("LiteLLM down");
    assert_eq!(err.kind(), ErrorKind::Coded(502), "{err}");
    assert!(err.to_string().contains("LiteLLM"), "{err}");
}

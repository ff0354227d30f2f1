//! Limits that hold, proven by real spend: a real OpenBao, the release plugin and the real
//! LiteLLM proxy, whose `fake-priced` model answers at once and costs about 0.05 USD a call
//! (scripts/run-litellm.sh). LiteLLM enforces; the plugin only arranges teams and members.

use std::time::Duration;

use crate::support::bao::{BaoClient, DevServer, DevServerOptions};
use crate::support::{
    RealLiteLlm, assert_eventually, enable_userpass, issue, key, lease_id, revoke_lease,
    server_with, unique, userpass_login, write_role,
};
use serde_json::{Value, json};

/// One chat completion with `key` on the priced model: the status and LiteLLM's answer.
/// `max_tokens` keeps LiteLLM's budget reservation small (without it, a call reserves the
/// model's whole output budget and can be refused near the cap while it still has room).
async fn chat(litellm: &RealLiteLlm, key: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/chat/completions", litellm.url))
        .bearer_auth(key)
        .json(&json!({
            "model": "fake-priced",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 20,
        }))
        .send()
        .await
        .expect("calling the proxy");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Calls until LiteLLM refuses (at most `limit` calls); the refusal.
async fn spend_until_refused(
    litellm: &RealLiteLlm,
    key: &str,
    limit: usize,
) -> (usize, u16, Value) {
    for calls in 0..limit {
        let (status, answer) = chat(litellm, key).await;
        if status != 200 {
            return (calls, status, answer);
        }
    }
    panic!("LiteLLM admitted {limit} calls: the cap does not hold");
}

fn error_type(answer: &Value) -> &str {
    answer["error"]["type"].as_str().unwrap_or_default()
}

fn error_message(answer: &Value) -> String {
    answer["error"]["message"].to_string()
}

/// Revokes the mount's leases, deletes the roles and runs tidy, so the shared proxy keeps no
/// key or team of the test, and asserts tidy deleted the roles' teams.
fn clean_up(server: &DevServer, roles: &[&str]) {
    server
        .bao(&["lease", "revoke", "-sync", "-prefix", "litellm/creds/"])
        .ok();
    for role in roles {
        server
            .bao(&["delete", &format!("litellm/roles/{role}")])
            .ok();
    }
    let tidy = server
        .bao(&["write", "-f", "-format=json", "litellm/tidy"])
        .ok()
        .json();
    assert_eq!(
        tidy["data"]["deleted_teams"].as_array().map(Vec::len),
        Some(roles.len()),
        "tidy deletes the teams of the deleted roles once their keys are gone: {tidy}"
    );
}

#[tokio::test]
async fn a_role_budget_caps_all_its_keys_together_across_revocations_in_real_litellm() {
    let litellm = RealLiteLlm::from_env();
    let server = server_with(&litellm, DevServerOptions::default());
    let role = unique("capped");
    // About two calls' worth: key 1 is stopped after two or three calls.
    write_role(
        &server,
        &role,
        &["models=fake-priced", "role_max_budget=0.1", "ttl=5m"],
    );
    let read = server
        .bao(&["read", "-format=json", &format!("litellm/roles/{role}")])
        .ok()
        .json();
    let team_id = read["data"]["role_team_id"]
        .as_str()
        .expect("role_team_id")
        .to_string();

    let first = issue(&server, &role);
    let (admitted, status, refusal) = spend_until_refused(&litellm, &key(&first), 10).await;
    assert!(
        (1..=3).contains(&admitted),
        "{admitted} calls admitted under a 0.1 cap"
    );
    assert_eq!(
        error_type(&refusal),
        "budget_exceeded",
        "{status} {refusal}"
    );
    assert!(
        error_message(&refusal).contains(&format!("Team={team_id}")),
        "{refusal}"
    );

    // What stopped key 1 is the role's spend: a fresh key, after key 1's lease is gone, is
    // refused at its first call.
    revoke_lease(&server, &lease_id(&first));
    let second = issue(&server, &role);
    let (status, answer) = chat(&litellm, &key(&second)).await;
    assert_eq!(error_type(&answer), "budget_exceeded", "{status} {answer}");
    assert!(
        error_message(&answer).contains(&format!("Team={team_id}")),
        "{answer}"
    );

    // The spend shows in usage/<role> once LiteLLM has written it (10-15 s after the calls).
    let usage = || {
        server
            .bao(&["read", "-format=json", &format!("litellm/usage/{role}")])
            .ok()
            .json()
    };
    assert_eventually!(
        usage()["data"]["spend"].as_f64().unwrap_or(0.0) >= 0.1,
        within = Duration::from_secs(40),
        "the role's spend reaches its cap in usage: {}",
        usage()
    );
    assert_eq!(usage()["data"]["max_budget"], 0.1);
    clean_up(&server, &[&role]);
}

#[tokio::test]
async fn a_role_rpm_limit_counts_the_requests_of_all_its_keys() {
    let litellm = RealLiteLlm::from_env();
    let server = server_with(&litellm, DevServerOptions::default());
    let role = unique("paced");
    write_role(
        &server,
        &role,
        &["models=fake-priced", "role_rpm_limit=2", "ttl=5m"],
    );
    let (a, b) = (key(&issue(&server, &role)), key(&issue(&server, &role)));
    assert_eq!(chat(&litellm, &a).await.0, 200);
    assert_eq!(chat(&litellm, &b).await.0, 200);
    for key in [&a, &b] {
        let (status, answer) = chat(&litellm, key).await;
        assert_eq!(status, 429, "{answer}");
        assert_eq!(error_type(&answer), "throttling_error", "{answer}");
    }
    clean_up(&server, &[&role]);
}

/// Logs in a userpass user whose identity entity is named `entity`; its client.
fn login(root: &BaoClient, accessor: &str, user: &str, entity: &str) -> BaoClient {
    let password = uuid::Uuid::new_v4().to_string();
    root.bao(&[
        "write",
        &format!("auth/userpass/users/{user}"),
        &format!("password={password}"),
        "token_policies=litellm-creds",
    ])
    .ok();
    let created = root
        .bao(&[
            "write",
            "-format=json",
            "identity/entity",
            &format!("name={entity}"),
        ])
        .ok()
        .json();
    let entity_id = created["data"]["id"]
        .as_str()
        .expect("entity id")
        .to_string();
    root.bao(&[
        "write",
        "identity/entity-alias",
        &format!("name={user}"),
        &format!("canonical_id={entity_id}"),
        &format!("mount_accessor={accessor}"),
    ])
    .ok();
    userpass_login(root, user, &password)
}

#[tokio::test]
async fn a_user_budget_stops_one_user_while_another_keeps_working() {
    let litellm = RealLiteLlm::from_env();
    let server = server_with(&litellm, DevServerOptions::default());
    let root = server.client();
    let accessor = enable_userpass(&root);
    // Unique LiteLLM users per run: the proxy is shared and keeps their spend.
    let (alice_id, bob_id) = (unique("alice"), unique("bob"));
    let alice = login(&root, &accessor, "alice", &alice_id);
    let bob = login(&root, &accessor, "bob", &bob_id);
    let role = unique("people");
    write_role(
        &server,
        &role,
        &[
            "models=fake-priced",
            "user_id_template={{identity.entity.name}}",
            "user_max_budget=0.1",
            "ttl=5m",
        ],
    );
    let creds = |client: &BaoClient| {
        client
            .bao(&["read", "-format=json", &format!("litellm/creds/{role}")])
            .ok()
            .json()
    };
    let alice_key = key(&creds(&alice));
    let (_, status, refusal) = spend_until_refused(&litellm, &alice_key, 10).await;
    assert_eq!(
        error_type(&refusal),
        "budget_exceeded",
        "{status} {refusal}"
    );
    assert!(
        error_message(&refusal).contains(&format!("TeamMember={alice_id}")),
        "{refusal}"
    );
    // A second key does not give alice a fresh budget; bob's own budget is untouched.
    let (status, answer) = chat(&litellm, &key(&creds(&alice))).await;
    assert_eq!(error_type(&answer), "budget_exceeded", "{status} {answer}");
    let (status, answer) = chat(&litellm, &key(&creds(&bob))).await;
    assert_eq!(status, 200, "bob keeps working: {answer}");

    clean_up(&server, &[&role]);
    // member_add made the two LiteLLM users; remove them again.
    let deleted = reqwest::Client::new()
        .post(format!("{}/user/delete", litellm.url))
        .bearer_auth(&litellm.master_key)
        .json(&json!({"user_ids": [alice_id, bob_id]}))
        .send()
        .await
        .expect("deleting the test users");
    assert!(deleted.status().is_success(), "{:?}", deleted.text().await);
}

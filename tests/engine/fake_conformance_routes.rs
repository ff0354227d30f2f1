//! The fake's fidelity on the catalogue, the key settings a role may carry and the team
//! routes: identical raw requests to every target of the tier, answers compared with what
//! LiteLLM 1.108.7 says (measured with curl on the local proxy). The engine tier checks the
//! fake alone; the end-to-end tier compiles this file too and checks the real proxy beside it.

use serde_json::{Value, json};

use crate::support::target::{litellm, unique_alias};
use crate::targets;

const ENTERPRISE: &str = "You must be a LiteLLM Enterprise user to use this feature. If you have a license please set `LITELLM_LICENSE` in your env. Get a 7 day trial key here: https://www.litellm.ai/enterprise#trial. \\nPricing: https://www.litellm.ai/#pricing'}";

#[tokio::test]
async fn catalogue_key_settings_and_team_answers_match() {
    // No connection reuse: both servers drop the connection after some 500s.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("http");
    let alias = unique_alias("conf-routes");
    let with_alias =
        |fields: &str| format!(r#"{{"key_alias":"{alias}","duration":"60s",{fields}}}"#);
    let enterprise = |field: &str| {
        litellm(
            &format!(
                "{{'error': 'This feature is only available for LiteLLM Enterprise users: {field}. {ENTERPRISE}"
            ),
            "internal_server_error",
            Value::Null,
            403,
        )
    };
    let cases: Vec<Case> = vec![
        (
            "GET",
            "/model/info",
            false,
            None,
            401,
            litellm(
                "Authentication Error, No api key passed in.",
                "auth_error",
                json!("None"),
                401,
            ),
        ),
        (
            "POST",
            "/key/generate",
            true,
            Some(with_alias(r#""guardrails":["pii"]"#)),
            403,
            enterprise("guardrails"),
        ),
        (
            "POST",
            "/key/generate",
            true,
            Some(with_alias(r#""allowed_passthrough_routes":["/x"]"#)),
            403,
            enterprise("allowed_passthrough_routes"),
        ),
        (
            "POST",
            "/key/generate",
            true,
            Some(with_alias(r#""permissions":{"get_spend_routes":false}"#)),
            500,
            litellm(
                "{'error': 'Internal Server Error.'}",
                "internal_server_error",
                Value::Null,
                500,
            ),
        ),
        (
            "POST",
            "/key/generate",
            true,
            Some(with_alias(r#""soft_budget":"abc""#)),
            422,
            json!({"detail": [{"type": "float_parsing", "loc": ["body", "soft_budget"], "msg": "Input should be a valid number, unable to parse string as a number"}]}),
        ),
        (
            "POST",
            "/key/generate",
            true,
            Some(with_alias(r#""model_rpm_limit":5"#)),
            422,
            json!({"detail": [{"type": "dict_type", "loc": ["body", "model_rpm_limit"], "msg": "Input should be a valid dictionary"}]}),
        ),
        (
            "GET",
            "/team/info?team_id=conf-no-such-team",
            true,
            None,
            404,
            litellm(
                "{'message': 'Team not found, passed team id: conf-no-such-team.'}",
                "auth_error",
                json!("None"),
                404,
            ),
        ),
        (
            "POST",
            "/team/delete",
            true,
            Some(r#"{"team_ids":["conf-no-such-team"]}"#.into()),
            404,
            json!({"detail": {"error": "Team not found, passed team_id=conf-no-such-team"}}),
        ),
        (
            "POST",
            "/team/update",
            true,
            Some(r#"{"team_id":"conf-no-such-team","max_budget":1}"#.into()),
            404,
            litellm(
                "{'error': 'Team not found, passed team_id=conf-no-such-team'}",
                "internal_server_error",
                Value::Null,
                404,
            ),
        ),
        (
            "POST",
            "/team/member_add",
            true,
            Some(
                r#"{"team_id":"conf-no-such-team","member":[{"user_id":"u","role":"user"}]}"#
                    .into(),
            ),
            404,
            json!({"detail": {"error": "Team doesn't exist in db. Team=conf-no-such-team. Create team via `/team/new` call."}}),
        ),
        (
            "POST",
            "/team/new",
            true,
            Some(r#"{"team_id":"conf-never-made","budget_duration":"bogus"}"#.into()),
            400,
            litellm(
                "{'error': \"Invalid budget_duration 'bogus'. Use a format like '1h', '24h', '7d', or '30d'.\"}",
                "internal_server_error",
                Value::Null,
                400,
            ),
        ),
    ];
    let mut failures = Vec::new();
    for t in targets() {
        for (method, path, master, body, status, expected) in &cases {
            let mut rb = http.request(method.parse().expect("method"), format!("{}{path}", t.url));
            if *master {
                rb = rb.bearer_auth(&t.master_key);
            }
            if let Some(b) = body {
                rb = rb
                    .header("content-type", "application/json")
                    .body(b.clone());
            }
            let resp = rb.send().await.expect("send");
            let got_status = resp.status().as_u16();
            let got: Value = resp.json().await.unwrap_or(Value::Null);
            if got_status != *status || &got != expected {
                failures.push(format!(
                    "[{}] {method} {path} {body:?}: got {got_status} {got}, want {status} {expected}",
                    t.name
                ));
            }
        }
        // Nothing above may have made a key; clean up should one exist.
        let _ = t
            .client()
            .delete_aliases(std::slice::from_ref(&alias))
            .await;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// (method, path, with the master key, body, expected status, expected answer)
type Case = (&'static str, &'static str, bool, Option<String>, u16, Value);

/// `/model/info` and a key's settings as `/key/info` shows them: the fields the fake emits
/// exist on the real proxy with the same values.
#[tokio::test]
async fn model_info_and_key_settings_shapes_match() {
    let mut seen = Vec::new();
    for t in targets() {
        let http = reqwest::Client::new();
        let info: Value = http
            .get(format!("{}/model/info", t.url))
            .bearer_auth(&t.master_key)
            .send()
            .await
            .expect("model info")
            .json()
            .await
            .expect("JSON");
        let mut names: Vec<String> = info["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|m| {
                assert!(m["model_info"]["id"].is_string(), "[{}] {m}", t.name);
                assert!(m["litellm_params"]["model"].is_string(), "[{}] {m}", t.name);
                m["model_name"].as_str().expect("model_name").to_string()
            })
            .collect();
        names.sort();
        let alias = unique_alias("conf-settings");
        let generated: Value = http
            .post(format!("{}/key/generate", t.url))
            .bearer_auth(&t.master_key)
            .json(&json!({
                "key_alias": alias, "duration": "60s", "key_type": "default",
                "metadata": {"x": "y"}, "soft_budget": 0.5,
                "model_rpm_limit": {"fake-gpt": 3}, "allowed_routes": ["/v1/models"],
                "aliases": {"mine": "fake-gpt"},
            }))
            .send()
            .await
            .expect("generate")
            .json()
            .await
            .expect("JSON");
        let token = generated["token"].as_str().expect("token").to_string();
        let key: Value = http
            .get(format!("{}/key/info", t.url))
            .bearer_auth(&t.master_key)
            .query(&[("key", &token)])
            .send()
            .await
            .expect("key info")
            .json()
            .await
            .expect("JSON");
        let _ = t.client().delete_keys(&[token]).await;
        let k = &key["info"];
        seen.push((
            t.name,
            names,
            json!({
                "allowed_routes": k["allowed_routes"],
                "aliases": k["aliases"],
                "metadata": k["metadata"],
                "soft_budget": k["litellm_budget_table"]["soft_budget"],
                "budget_id_is_string": k["budget_id"].is_string(),
                "top_level_soft_budget": k.get("soft_budget").cloned().unwrap_or(Value::Null),
            }),
        ));
    }
    let (_, fake_names, fake_key) = &seen[0];
    assert_eq!(
        fake_key,
        &json!({
            "allowed_routes": ["/v1/models"], "aliases": {"mine": "fake-gpt"},
            "metadata": {"x": "y", "model_rpm_limit": {"fake-gpt": 3}},
            "soft_budget": 0.5, "budget_id_is_string": true, "top_level_soft_budget": null,
        })
    );
    for (name, names, key) in &seen[1..] {
        assert_eq!(names, fake_names, "[{name}] the models served");
        assert_eq!(key, fake_key, "[{name}] a key's settings");
    }
}

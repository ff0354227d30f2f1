//! A role's models are checked against the proxy's catalogue at write, and `models` lists it:
//! names, wildcard deployments and access groups from `/model/info`, names from `/v1/models`
//! where that route is closed.

use crate::support::engine::Engine;
use crate::support::fake_litellm::{Fault, Op};
use serde_json::json;
use vault_plugin_secrets_litellm::framework::ErrorKind;

#[tokio::test]
async fn unknown_models_are_400s_naming_them_and_wildcards_and_groups_are_understood() {
    let engine = Engine::start().await;
    engine.litellm.add_model("openai/*", &[]);
    engine.litellm.add_model("fake-beta", &["beta-models"]);
    let err = engine
        .call(
            "update",
            "roles/m",
            json!({"models": "fake-gpt,gpt-5,fake-gtp"}),
        )
        .await
        .expect_err("unknown models");
    assert_eq!(err.kind(), ErrorKind::Response, "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("models: ") && text.contains("\"gpt-5\", \"fake-gtp\""),
        "{text}"
    );
    assert!(
        text.contains("fake-claude") && text.contains("beta-models"),
        "{text}"
    );
    assert!(
        engine
            .call("read", "roles/m", json!({}))
            .await
            .unwrap()
            .is_none()
    );

    let served = "fake-gpt,openai/gpt-4o,beta-models,fake-*,all-team-models";
    engine
        .call("update", "roles/m", json!({"models": served}))
        .await
        .expect("served names, a wildcard's, a group, a wildcard, a special name");
    // Unchanged models are not checked again.
    let asked = engine.litellm.requests(Op::ModelInfo);
    engine
        .call("update", "roles/m", json!({"ttl": "1m", "models": served}))
        .await
        .unwrap();
    assert_eq!(engine.litellm.requests(Op::ModelInfo), asked);
    // verify=false stores any name.
    engine
        .call(
            "update",
            "roles/m",
            json!({"models": "gpt-5", "verify": false}),
        )
        .await
        .unwrap();
    assert_eq!(engine.litellm.requests(Op::ModelInfo), asked);
}

#[tokio::test]
async fn the_check_falls_back_to_v1_models_and_a_failing_proxy_is_a_502() {
    let engine = Engine::start().await;
    engine.litellm.set_fault(Op::ModelInfo, Fault::Status(404));
    let models = engine.litellm.requests(Op::Models);
    let err = engine
        .call("update", "roles/f", json!({"models": "fake-claude,nope"}))
        .await
        .expect_err("nope is unknown");
    assert!(err.to_string().contains("\"nope\""), "{err}");
    assert_eq!(engine.litellm.requests(Op::Models), models + 1);
    engine
        .call("update", "roles/f", json!({"models": "fake-claude"}))
        .await
        .unwrap();
    let listed = engine.data("read", "models", json!({})).await;
    assert_eq!(listed["source"], "/v1/models");

    engine.litellm.set_fault(Op::ModelInfo, Fault::Status(500));
    let err = engine
        .call("update", "roles/f", json!({"models": "fake-gpt"}))
        .await
        .expect_err("LiteLLM fails");
    assert_eq!(err.kind(), ErrorKind::Coded(502), "{err}");
    assert!(err.to_string().contains("verify=false"), "{err}");
    engine.litellm.set_fault(Op::ModelInfo, Fault::Reset);
    let err = engine.call("read", "models", json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Coded(502), "{err}");
    engine.litellm.clear_faults();
    let role = engine.data("read", "roles/f", json!({})).await;
    assert_eq!(
        role["models"],
        json!(["fake-claude"]),
        "the failed write changed nothing"
    );
}

#[tokio::test]
async fn a_key_that_may_not_read_the_catalogue_leaves_the_models_unchecked_with_a_warning() {
    // An admin key limited to the key routes (as rotate-root's successors are) gets 403 from
    // both catalogue routes: the role is stored, and the write says it was not checked.
    let engine = Engine::start().await;
    engine.litellm.set_fault(Op::ModelInfo, Fault::Status(403));
    engine.litellm.set_fault(Op::Models, Fault::Status(403));
    let written = engine
        .call("update", "roles/limited", json!({"models": "fake-gpt"}))
        .await
        .expect("stored unchecked")
        .expect("a response with a warning");
    let warnings = written.warnings.join(" ");
    assert!(warnings.contains("not checked"), "{warnings}");
    engine.litellm.clear_faults();
    let role = engine.data("read", "roles/limited", json!({})).await;
    assert_eq!(role["models"], json!(["fake-gpt"]));
}

#[tokio::test]
async fn the_models_path_lists_names_and_access_groups() {
    let engine = Engine::start().await;
    engine
        .litellm
        .add_model("fake-beta", &["beta-models", "all-beta"]);
    for path in ["models", "models/"] {
        let listed = engine.data("read", path, json!({})).await;
        assert_eq!(
            listed["models"],
            json!(["fake-beta", "fake-claude", "fake-gpt", "fake-priced"]),
            "{path}"
        );
        assert_eq!(
            listed["access_groups"],
            json!({"all-beta": ["fake-beta"], "beta-models": ["fake-beta"]})
        );
        assert_eq!(listed["source"], "/model/info");
        assert!(
            listed["special"]
                .as_array()
                .unwrap()
                .contains(&json!("all-proxy-models"))
        );
    }
}

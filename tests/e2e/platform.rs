//! The plugin platform against a real OpenBao: launch, AutoMTLS, multiplexing, the `config`
//! path, help and OpenAPI, bad input, reload and crash recovery, unmount.
//!
//! LiteLLM is the in-process fake here: these tests are about the host, not the proxy.

use std::process::Command;
use std::time::Duration;

use crate::support::bao::DevServer;
use crate::support::fake_litellm::FakeLiteLlm;
use crate::support::{
    PLUGIN, assert_eventually, configure, mount, plugin_binary, plugin_info, plugin_version,
};
use serde_json::json;

const MASTER_KEY: &str = "sk-platform-test-master-key-0123456789";

fn fake() -> FakeLiteLlm {
    FakeLiteLlm::start(MASTER_KEY).expect("fake LiteLLM")
}

#[test]
fn binary_run_by_hand_explains_itself_and_exits_1() {
    let out = Command::new(plugin_binary())
        .env_remove("VAULT_BACKEND_PLUGIN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "nothing may reach stdout: {:?}",
        out.stdout
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("plugin for HashiCorp Vault and OpenBao"),
        "{stderr}"
    );
    assert!(stderr.contains("bao plugin register"), "{stderr}");

    // Launched as for the v4 fallback: refused with the reason.
    let out = Command::new(plugin_binary())
        .env(
            "VAULT_BACKEND_PLUGIN",
            "6669da05-b1c8-4f49-97d9-c8e5bed98e20",
        )
        .env("PLUGIN_PROTOCOL_VERSIONS", "3,4")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only version 5"));
}

#[tokio::test]
async fn two_mounts_share_one_process_and_config_round_trips() {
    let litellm = fake();
    let server = DevServer::start();
    mount(&server, &["litellm", "litellm2"]);

    let info = plugin_info(&server, PLUGIN);
    assert_eq!(info["version"], plugin_version());
    // Registered without -version, the catalog adopts the version the plugin reports.
    let sha = server.install_plugin_binary(&plugin_binary(), "self-reporting");
    server
        .bao(&[
            "plugin",
            "register",
            &format!("-sha256={sha}"),
            "secret",
            "self-reporting",
        ])
        .ok();
    let info = plugin_info(&server, "self-reporting");
    assert_eq!(info["version"], plugin_version());
    assert_eq!(
        server.plugin_pids().len(),
        1,
        "multiplexing: one process serves both mounts"
    );

    server
        .bao(&[
            "write",
            "litellm/config",
            &format!("base_url={}", litellm.url()),
            &format!("master_key={MASTER_KEY}"),
            "request_timeout=10s",
        ])
        .ok();
    let read = server.bao(&["read", "-format=json", "litellm/config"]).ok();
    assert!(
        !read.stdout.contains(MASTER_KEY),
        "the key must never be returned: {}",
        read.stdout
    );
    let data = &read.json()["data"];
    assert_eq!(data["base_url"], litellm.url());
    assert_eq!(data["request_timeout"], 10);
    assert_eq!(data["insecure_tls"], false);
    assert!(data.get("master_key").is_none());

    // The second mount has its own storage.
    let other = server.bao(&["read", "-format=json", "litellm2/config"]);
    assert!(
        !other.success() && other.combined().contains("No value found"),
        "{other}"
    );

    // Partial update keeps the other fields (and re-verifies with the stored key).
    server
        .bao(&["write", "litellm/config", "request_timeout=20"])
        .ok();
    let data = server
        .bao(&["read", "-format=json", "litellm/config"])
        .ok()
        .json()["data"]
        .clone();
    assert_eq!(
        (data["base_url"].as_str(), data["request_timeout"].as_i64()),
        (Some(litellm.url().as_str()), Some(20))
    );

    server.bao(&["delete", "litellm/config"]).ok();
    assert!(!server.bao(&["read", "litellm/config"]).success());
    assert!(
        !server.server_log().contains(MASTER_KEY),
        "the key must never be logged"
    );
}

#[tokio::test]
async fn config_refuses_bad_input_with_400s_naming_the_field() {
    let litellm = fake();
    let server = DevServer::start();
    mount(&server, &["litellm"]);
    let url = litellm.url();
    // The caller's mistakes are 400s; an unreachable LiteLLM is not one (502, which clients retry).
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            json!({"base_url": url, "master_key": MASTER_KEY, "request_timeout": "abc"}),
            "request_timeout",
        ),
        (
            json!({"base_url": url, "master_key": MASTER_KEY, "insecure_tls": "maybe"}),
            "insecure_tls",
        ),
        (
            json!({"base_url": "ftp://127.0.0.1:1", "master_key": MASTER_KEY}),
            "base_url",
        ),
        (
            json!({"base_url": "not a url", "master_key": MASTER_KEY}),
            "base_url",
        ),
        (json!({"master_key": MASTER_KEY}), "base_url"),
        (json!({"base_url": url}), "master_key"),
        (
            json!({"base_url": url, "master_key": "sk-wrong-key"}),
            "verify_connection",
        ),
        (
            json!({"base_url": url, "master_key": MASTER_KEY, "request_timeout": -5}),
            "request_timeout",
        ),
    ];
    let unreachable = (
        json!({"base_url": "http://127.0.0.1:9", "master_key": MASTER_KEY}),
        "verify_connection",
    );
    let expected = cases
        .into_iter()
        .map(|(body, field)| (body, field, 400))
        .chain([(unreachable.0, unreachable.1, 502)]);
    for (body, field, expected) in expected {
        let (status, reply) = server.http("POST", "litellm/config", Some(&body));
        assert_eq!(status, expected, "{body} → {reply}");
        let errors = reply["errors"].to_string();
        assert!(
            errors.contains(field),
            "{body}: error should name {field}: {errors}"
        );
        assert!(
            !errors.contains(MASTER_KEY),
            "errors must not echo the key: {errors}"
        );
    }
    // verify_connection=false stores a config for a proxy that is down.
    let (status, _) = server.http(
        "POST",
        "litellm/config",
        Some(&json!({"base_url": "http://127.0.0.1:9", "master_key": MASTER_KEY, "verify_connection": false})),
    );
    assert_eq!(status, 204);
    // Unknown fields are a warning, as in Vault.
    let (status, reply) = server.http(
        "POST",
        "litellm/config",
        Some(&json!({"base_url": url, "master_key": MASTER_KEY, "colour": "blue"})),
    );
    assert_eq!(status, 200, "{reply}");
    assert!(reply["warnings"].to_string().contains("colour"), "{reply}");
    // Unknown paths and operations.
    assert_eq!(server.http("GET", "litellm/nope", None).0, 404);
    assert_eq!(server.http("DELETE", "litellm/creds/x", None).0, 405);
    assert_eq!(
        server.plugin_pids().len(),
        1,
        "the process survived all of it"
    );
}

#[tokio::test]
async fn help_and_openapi_describe_the_paths() {
    let server = DevServer::start();
    mount(&server, &["litellm"]);
    let root = server.bao(&["path-help", "litellm"]).ok().stdout;
    assert!(root.contains("LiteLLM virtual keys"), "{root}");
    for path in ["config", "roles/{name}", "creds/{name}"] {
        assert!(root.contains(path), "root help lists {path}: {root}");
    }
    let config = server.bao(&["path-help", "litellm/config"]).ok().stdout;
    assert!(
        config.contains("master_key") && config.contains("verify_connection"),
        "{config}"
    );

    let spec = server.http_ok("GET", "sys/internal/specs/openapi", None);
    let paths = spec["paths"].as_object().unwrap();
    for path in [
        "/litellm/config",
        "/litellm/roles/{name}",
        "/litellm/roles/",
        "/litellm/creds/{name}",
    ] {
        assert!(paths.contains_key(path), "OpenAPI lacks {path}");
    }
    let schema = spec["components"]["schemas"].to_string();
    assert!(
        schema.contains("\"sensitive\":true"),
        "master_key is marked sensitive"
    );
}

#[tokio::test]
async fn reload_and_sigkill_recover_and_disable_ends_the_process() {
    let litellm = fake();
    let server = DevServer::start();
    mount(&server, &["litellm", "other"]);
    configure(&server, "litellm", &litellm.url(), MASTER_KEY);
    let first = server.plugin_pids();
    assert_eq!(first.len(), 1);

    server
        .bao(&["plugin", "reload", &format!("-plugin={PLUGIN}")])
        .ok();
    assert_eventually!(
        {
            let pids = server.plugin_pids();
            pids.len() == 1 && pids != first
        },
        "reload starts a new process: {:?}",
        server.plugin_pids()
    );
    server.bao(&["read", "litellm/config"]).ok();

    let killed = server.kill_plugins();
    assert_eq!(killed.len(), 1);
    // The host respawns the plugin and retries; the caller sees no error.
    server.bao(&["read", "litellm/config"]).ok();
    server.bao(&["read", "-format=json", "other/config"]).err();
    let respawned = server.plugin_pids();
    assert_eq!(respawned.len(), 1);
    assert!(!killed.contains(&respawned[0]));

    server.bao(&["secrets", "disable", "litellm"]).ok();
    assert_eq!(
        server.plugin_pids().len(),
        1,
        "still serving the other mount"
    );
    server.bao(&["secrets", "disable", "other"]).ok();
    assert_eventually!(
        server.plugin_pids().is_empty(),
        within = Duration::from_secs(5),
        "disabling the last mount ends the process"
    );
    let log = server.server_log();
    assert!(
        !log.contains("plugin process exited") || !log.contains("exit status 1"),
        "clean exit"
    );
}

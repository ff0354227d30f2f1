//! Bad input, end to end: every request a caller or a misbehaving LiteLLM can make gets a
//! 4xx naming the field (or a warning), and never crashes the plugin.

use std::time::Duration;

use serde_json::{Value, json};

use crate::reliability::{MASTER_KEY, assert_no_panic_and_no_leak, fake};
use crate::support::bao::DevServer;
use crate::support::fake_litellm::{Fault, Op};
use crate::support::{assert_eventually, mount};

/// One row of the bad-input table: a request through OpenBao's HTTP API, an optional fault
/// the fake LiteLLM answers it with, the status expected, and a word the error (or, for 2xx,
/// a warning) must contain.
struct Case {
    method: &'static str,
    path: String,
    body: Value,
    fault: Option<(Op, Fault)>,
    status: u16,
    word: &'static str,
}

fn case(method: &'static str, path: &str, body: Value, status: u16, word: &'static str) -> Case {
    Case {
        method,
        path: path.to_string(),
        body,
        fault: None,
        status,
        word,
    }
}

fn upstream(mut case: Case, op: Op, fault: Fault) -> Case {
    case.fault = Some((op, fault));
    case
}

fn bad_input_table(lease: &str) -> Vec<Case> {
    const CONFIG: &str = "litellm/config";
    const ROLE: &str = "litellm/roles/bad";
    const CREDS: &str = "litellm/creds/dev";
    let role = |body: Value, word| case("POST", ROLE, body, 400, word);
    let config = |body: Value, word| case("POST", CONFIG, body, 400, word);
    // LiteLLM's refusals (4xx) are 400s; its failures 502, its timeouts 504 (retried by clients).
    let generate = |fault, status, word| {
        upstream(
            case("GET", CREDS, Value::Null, status, word),
            Op::Generate,
            fault,
        )
    };
    let verify = |fault, status, word| {
        upstream(
            case(
                "POST",
                CONFIG,
                json!({"request_timeout": "1s"}),
                status,
                word,
            ),
            Op::List,
            fault,
        )
    };
    let renew = json!({ "lease_id": lease });
    let echo =
        format!(r#"{{"error": {{"message": "invalid key {MASTER_KEY}", "type": "auth_error"}}}}"#);
    vec![
        // config: types, ranges, URLs (platform.rs covers more), upstream answers to verify.
        config(json!({"request_timeout": "0s"}), "request_timeout"),
        config(json!({"request_timeout": {"s": 1}}), "request_timeout"),
        config(json!({"request_timeout": "10 parsecs"}), "request_timeout"),
        config(json!({"base_url": "http://127.0.0.1:1/?a=1"}), "base_url"),
        config(json!({"base_url": ""}), "base_url"),
        config(json!({"base_url": 42}), "base_url"),
        config(json!({"master_key": "   "}), "master_key"),
        config(json!({"master_key": ["sk-a"]}), "master_key"),
        config(json!({"verify_connection": "perhaps"}), "verify_connection"),
        config(json!({"ca_cert": "not a certificate"}), "ca_cert"),
        case(
            "POST",
            CONFIG,
            json!({"master_kee": "sk-typo"}),
            200,
            "master_kee",
        ),
        verify(Fault::Status(401), 400, "401"),
        verify(Fault::Status(403), 400, "403"),
        verify(Fault::Status(500), 502, "500"),
        verify(Fault::NonJson, 502, "invalid response"),
        verify(Fault::Truncated, 502, "LiteLLM"),
        verify(Fault::Delay(Duration::from_secs(3)), 504, "timed out"),
        // roles: wrong types, negative numbers, durations, names, prefixes, metadata.
        role(json!({"max_budget": "lots"}), "max_budget"),
        role(json!({"max_budget": -1}), "max_budget"),
        role(json!({"tpm_limit": -5}), "tpm_limit"),
        role(json!({"rpm_limit": 1.5}), "rpm_limit"),
        role(
            json!({"max_parallel_requests": "x"}),
            "max_parallel_requests",
        ),
        role(json!({"ttl": "forever"}), "ttl"),
        role(json!({"ttl": -10}), "ttl"),
        role(json!({"max_ttl": "1x"}), "max_ttl"),
        role(json!({"ttl": "2h", "max_ttl": "1h"}), "max_ttl"),
        role(json!({"budget_duration": "1h30m"}), "budget_duration"),
        role(json!({"budget_duration": "1y"}), "budget_duration"),
        role(json!({"key_type": "management"}), "key_type"),
        role(json!({"key_alias_prefix": "a.b"}), "key_alias_prefix"),
        role(json!({"key_alias_prefix": ""}), "key_alias_prefix"),
        role(
            json!({"key_alias_prefix": "p".repeat(33)}),
            "key_alias_prefix",
        ),
        role(json!({"models": {"fake-gpt": 1}}), "models"),
        role(json!({"metadata": {"vault_role": "x"}}), "vault_role"),
        role(json!({"metadata": "novalue"}), "metadata"),
        role(json!({"metadata": 5}), "metadata"),
        role(json!({"metadata": {"k": {"nested": 1}}}), "metadata"),
        role(
            json!({"metadata": {"blob": "x".repeat(1 << 20)}}),
            "metadata",
        ),
        role(
            json!({"user_id_template": "{{identity.entity.email}}"}),
            "user_id_template",
        ),
        role(
            json!({"team_id": "a", "team_id_template": "{{identity.entity.name}}"}),
            "team_id_template",
        ),
        case("POST", "litellm/roles/-bad", json!({}), 400, "name"),
        case("POST", "litellm/roles/a%20b", json!({}), 400, "name"),
        case(
            "POST",
            &format!("litellm/roles/{}", "x".repeat(65)),
            json!({}),
            400,
            "name",
        ),
        case("GET", "litellm/roles/%C3%A4", Value::Null, 400, "name"),
        case(
            "POST",
            ROLE,
            json!({"ttl": "1m", "colour": "blue"}),
            200,
            "colour",
        ),
        // creds: unknown role, bad names and ttls, an unconfigured mount, upstream answers.
        case(
            "GET",
            "litellm/creds/missing",
            Value::Null,
            400,
            "does not exist",
        ),
        case("GET", "litellm/creds/-bad", Value::Null, 400, "name"),
        case("POST", CREDS, json!({"ttl": "soon"}), 400, "ttl"),
        case("POST", CREDS, json!({"ttl": -5}), 400, "ttl"),
        case(
            "GET",
            "unconfigured/creds/dev",
            Value::Null,
            400,
            "not configured",
        ),
        case("POST", CREDS, json!({"colour": "blue"}), 200, "colour"),
        generate(Fault::NonJson, 502, "invalid response"),
        generate(Fault::Truncated, 502, "LiteLLM"),
        generate(Fault::Status(401), 400, "401"),
        generate(Fault::Status(403), 400, "403"),
        generate(Fault::Status(422), 400, "422"),
        generate(Fault::Status(500), 502, "500"),
        generate(
            Fault::Body {
                status: 401,
                body: echo,
            },
            400,
            "401",
        ),
        generate(Fault::Delay(Duration::from_secs(3)), 504, "timed out"),
        // renew of a live lease: a bad increment, LiteLLM failing.
        case(
            "PUT",
            "sys/leases/renew",
            json!({"lease_id": lease, "increment": "soon"}),
            400,
            "increment",
        ),
        // The plugin answers 502 here too, but OpenBao's lease manager wraps a renew's error in
        // its own ("failed to renew entry: …") and answers 400 for all of them.
        upstream(
            case("PUT", "sys/leases/renew", renew.clone(), 400, "500"),
            Op::Update,
            Fault::Status(500),
        ),
        upstream(
            case("PUT", "sys/leases/renew", renew, 400, "invalid response"),
            Op::Update,
            Fault::NonJson,
        ),
    ]
}

#[tokio::test]
async fn bad_input_gets_a_400_naming_the_field_upstream_failures_a_5xx_and_nothing_crashes_the_plugin()
 {
    let litellm = fake();
    let server = DevServer::start();
    mount(&server, &["litellm", "unconfigured"]);
    let good_config =
        json!({"base_url": litellm.url(), "master_key": MASTER_KEY, "request_timeout": "1s"});
    server.http_ok("POST", "litellm/config", Some(&good_config));
    for mount in ["litellm", "unconfigured"] {
        server.http_ok(
            "POST",
            &format!("{mount}/roles/dev"),
            Some(&json!({"models": "fake-gpt", "ttl": "5m", "max_ttl": "1h"})),
        );
    }
    let lease = server.http_ok("GET", "litellm/creds/dev", None)["lease_id"]
        .as_str()
        .unwrap()
        .to_string();
    let pids = server.plugin_pids();
    assert_eq!(pids.len(), 1);

    let table = bad_input_table(&lease);
    assert!(table.len() >= 40, "{} cases", table.len());
    let mut mismatches = Vec::new();
    for case in &table {
        if let Some((op, fault)) = &case.fault {
            litellm.set_fault(*op, fault.clone());
        }
        let body = (!case.body.is_null()).then_some(&case.body);
        let (status, reply) = server.http(case.method, &case.path, body);
        litellm.clear_faults();
        let shown = |v: &Value| {
            let s = v.to_string();
            match s.char_indices().nth(200) {
                Some((cut, _)) => format!("{}…", &s[..cut]),
                None => s,
            }
        };
        let row = format!(
            "{} {} {} {:?}",
            case.method,
            case.path,
            shown(&case.body),
            case.fault
        );
        // Errors or warnings only: a 2xx creds reply holds a key, which is never printed.
        let said = if status >= 400 {
            &reply["errors"]
        } else {
            &reply["warnings"]
        };
        println!("observed: {status} {row} → {}", shown(said));
        if status != case.status || !said.to_string().contains(case.word) {
            mismatches.push(format!(
                "{row}: expected {} with {:?}, got {status}: {}",
                case.status,
                case.word,
                shown(&reply)
            ));
        }
        if reply.to_string().contains(MASTER_KEY) {
            mismatches.push(format!("{row}: the reply echoes the master key"));
        }
        if case.path == "litellm/config" && status < 400 {
            // A config write that went through must not change what the next rows run against.
            server.http_ok("POST", "litellm/config", Some(&good_config));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases:\n{}",
        mismatches.len(),
        table.len(),
        mismatches.join("\n")
    );
    println!("observed: {} bad-input cases as expected", table.len());

    // Failed issues left no key behind; the successful ones go with their leases.
    server.http_ok(
        "PUT",
        "sys/leases/revoke-prefix/litellm/creds",
        Some(&json!({"sync": true})),
    );
    assert_eventually!(
        litellm.key_count() == 0,
        "keys left: {:?}",
        litellm
            .live_keys()
            .iter()
            .map(|k| k.key_alias.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        server.plugin_pids(),
        pids,
        "the plugin process never restarted"
    );
    assert_no_panic_and_no_leak(&server, &[MASTER_KEY.to_string()]);
}

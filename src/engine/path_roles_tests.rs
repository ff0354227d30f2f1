//! Unit tests of `path_roles`: validation and partial updates of a role.

use serde_json::{Map, Value};

use super::*;

fn data(pairs: Value) -> FieldData {
    let Value::Object(map) = pairs else {
        panic!("object expected")
    };
    FieldData::parse(FIELDS, map).unwrap()
}

#[test]
fn names_follow_the_documented_pattern() {
    for good in ["a", "dev", "team-a.prod_1", "9lives", &"x".repeat(64)] {
        assert!(validate_name(good).is_ok(), "{good:?} refused");
    }
    for bad in ["", "-a", ".a", "_a", "a/b", "a b", "ä", &"x".repeat(65)] {
        assert!(validate_name(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn alias_prefixes_are_short_and_plain() {
    assert!(validate_alias_prefix("vault").is_ok());
    assert!(validate_alias_prefix("ci_bot-2").is_ok());
    for bad in ["", "a.b", "a b", &"p".repeat(33)] {
        assert!(validate_alias_prefix(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn budget_durations_match_litellm_without_its_surprises() {
    for good in ["30s", "10m", "1h", "30d", "2w", "1mo", "daily", "monthly"] {
        assert!(validate_budget_duration(good).is_ok(), "{good:?} refused");
    }
    for bad in ["", "30", "1h30m", "zz", "0d", "-1d", "1y", "d", "1 d"] {
        assert!(validate_budget_duration(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn partial_updates_keep_other_fields() {
    let mut role = Role::default();
    role.apply(&data(
        json!({"models": "a,b", "max_budget": "2.5", "ttl": "5m", "max_ttl": "1h"}),
    ))
    .unwrap();
    role.apply(&data(json!({"rpm_limit": 10}))).unwrap();
    assert_eq!(role.models, ["a", "b"]);
    assert_eq!(role.max_budget, Some(2.5));
    assert_eq!((role.ttl, role.max_ttl), (300, 3600));
    assert_eq!(role.rpm_limit, Some(10));
    assert_eq!(role.key_type, "llm_api");
    assert_eq!(role.key_alias_prefix, "vault");
}

#[test]
fn invalid_values_are_refused_with_the_field_name() {
    let cases = [
        (json!({"max_budget": -1}), "max_budget"),
        (json!({"tpm_limit": -5}), "tpm_limit"),
        (json!({"ttl": "2h", "max_ttl": "1h"}), "ttl"),
        (json!({"key_type": "management"}), "key_type"),
        (json!({"key_alias_prefix": "a.b"}), "key_alias_prefix"),
        (json!({"budget_duration": "1h30m"}), "budget_duration"),
        (json!({"metadata": {"vault_role": "x"}}), "vault_role"),
        (
            json!({"user_id_template": "{{identity.entity.email}}"}),
            "user_id_template",
        ),
        (
            json!({"team_id_template": "t-{{identity.entity.name"}),
            "team_id_template",
        ),
        (
            json!({"team_id": "a", "team_id_template": "{{identity.entity.name}}"}),
            "team_id_template",
        ),
    ];
    for (input, field) in cases {
        let err = Role::default()
            .apply(&data(input.clone()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{input}: {err}");
    }
    // Type errors are caught by the field schema.
    let err = FieldData::parse(
        FIELDS,
        Map::from_iter([("rpm_limit".to_string(), json!("many"))]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("rpm_limit"));
}

#[test]
fn metadata_is_bounded() {
    let at_limit = "x".repeat(MAX_METADATA_BYTES - "blob".len());
    let mut role = Role::default();
    role.apply(&data(json!({"metadata": {"blob": at_limit}})))
        .unwrap();
    let err = role
        .apply(&data(json!({"metadata": {"blob": "x".repeat(1 << 20)}})))
        .unwrap_err()
        .to_string();
    assert!(err.contains("metadata is too large"), "{err}");
    assert_eq!(role.metadata["blob"].len(), MAX_METADATA_BYTES - 4, "kept");
}

#[test]
fn templates_are_stored_as_written_and_cleared_when_empty() {
    let mut role = Role::default();
    role.apply(&data(json!({
        "user_id_template": " {{identity.entity.name}} ",
        "team_id_template": "team-{{ identity.entity.metadata.team }}",
    })))
    .unwrap();
    assert_eq!(
        role.user_id_template.as_deref(),
        Some("{{identity.entity.name}}")
    );
    assert_eq!(
        role.team_id_template.as_deref(),
        Some("team-{{ identity.entity.metadata.team }}")
    );
    role.apply(&data(json!({"team_id_template": "", "team_id": "ops"})))
        .unwrap();
    assert_eq!(role.team_id_template, None);
    assert_eq!(role.team_id.as_deref(), Some("ops"));
    assert!(role.user_id_template.is_some(), "partial update kept it");
}

#[test]
fn roles_stored_before_templates_still_load() {
    let stored = json!({
        "models": ["fake-gpt"], "max_budget": null, "budget_duration": null,
        "tpm_limit": null, "rpm_limit": null, "max_parallel_requests": null,
        "team_id": "ops", "user_id": null, "metadata": {},
        "key_alias_prefix": "vault", "key_type": "llm_api", "ttl": 300, "max_ttl": 0,
    });
    let role: Role = serde_json::from_value(stored).unwrap();
    assert_eq!(role.team_id.as_deref(), Some("ops"));
    assert_eq!((role.user_id_template, role.team_id_template), (None, None));
}

#[test]
fn ttl_rule_applies_to_the_merged_role() {
    let mut role = Role::default();
    role.apply(&data(json!({"ttl": "10m", "max_ttl": "1h"})))
        .unwrap();
    assert!(role.apply(&data(json!({"max_ttl": "5m"}))).is_err());
    // Unset (0) max_ttl puts no bound on ttl.
    role.apply(&data(json!({"max_ttl": 0, "ttl": "2h"})))
        .unwrap();
    assert_eq!((role.ttl, role.max_ttl), (7200, 0));
}

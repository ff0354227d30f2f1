//! Least-privilege policies, end to end: the three policies the README shows (the files under
//! `tests/e2e/policies/`, included here verbatim) are written to a real OpenBao, a userpass
//! user logs in with each, and every call the policy should allow succeeds while every call it
//! should not is a 403 that changed nothing. LiteLLM is the in-process fake: this is about
//! OpenBao's ACLs on the plugin's paths, and the fake shows which keys exist.

use serde_json::{Value, json};

use crate::support::bao::{BaoClient, DevServer};
use crate::support::fake_litellm::FakeLiteLlm;
use crate::support::{
    admin_virtual_key, assert_eventually, configure, enable_userpass, key, lease_exists, lease_id,
    mount, token_id, userpass_login,
};
use vault_plugin_secrets_litellm::engine::client::token_hash;

/// An application: `creds/research`, and renew/revoke of that role's leases.
pub(crate) const APPLICATION: &str = include_str!("policies/application.hcl");
/// A role operator: `roles/*`, nothing else.
pub(crate) const ROLE_OPERATOR: &str = include_str!("policies/role-operator.hcl");
/// An administrator: config, rotate-root, tidy, auto-tidy, roles; no keys.
pub(crate) const ADMINISTRATOR: &str = include_str!("policies/administrator.hcl");

/// The role [`APPLICATION`] names.
pub(crate) const APP_ROLE: &str = "research";
/// A role the application policy does not name.
const OTHER_ROLE: &str = "other";

const MASTER_KEY: &str = "sk-policies-test-master-key-0123456789";

/// A real OpenBao with the plugin at `litellm/` on the fake LiteLLM (configured with an admin
/// virtual key, so that rotate-root works), the three policies written under their README
/// names, userpass enabled, and the roles `research` and `other`.
pub(crate) struct Setup {
    pub(crate) fake: FakeLiteLlm,
    pub(crate) server: DevServer,
    pub(crate) root: BaoClient,
}

impl Setup {
    pub(crate) async fn start() -> Setup {
        let fake = FakeLiteLlm::start(MASTER_KEY).expect("fake LiteLLM");
        let admin_key = admin_virtual_key(&fake, MASTER_KEY).await;
        let server = DevServer::start();
        mount(&server, &["litellm"]);
        configure(&server, "litellm", &fake.url(), &admin_key.key);
        let root = server.client();
        enable_userpass(&root);
        write_policies(&root);
        for role in [APP_ROLE, OTHER_ROLE] {
            root.bao(&["write", &format!("litellm/roles/{role}"), "ttl=5m"])
                .ok();
        }
        Setup { fake, server, root }
    }

    /// Creates userpass user `user` with `policy` and logs in as it.
    pub(crate) fn login(&self, user: &str, policy: &str) -> BaoClient {
        login(&self.root, user, policy)
    }

    /// Whether the fake holds a live key with this hash.
    fn live(&self, token: &str) -> bool {
        self.fake.get(token).is_some()
    }
}

/// Writes the README's three policies as `litellm-application`, `litellm-role-operator` and
/// `litellm-administrator`, from the files the README copies.
pub(crate) fn write_policies(root: &BaoClient) {
    for (name, hcl) in [
        ("litellm-application", APPLICATION),
        ("litellm-role-operator", ROLE_OPERATOR),
        ("litellm-administrator", ADMINISTRATOR),
    ] {
        root.bao_with(&["policy", "write", name, "-"], &[], Some(hcl))
            .ok();
    }
}

/// Creates userpass user `user` (userpass enabled) with token policy `policy`, logs in with
/// the real CLI and returns a client holding that token.
pub(crate) fn login(root: &BaoClient, user: &str, policy: &str) -> BaoClient {
    let password = uuid::Uuid::new_v4().to_string();
    root.bao(&[
        "write",
        &format!("auth/userpass/users/{user}"),
        &format!("password={password}"),
        &format!("token_policies={policy}"),
    ])
    .ok();
    userpass_login(root, user, &password)
}

/// `bao read litellm/creds/research` as `who`: the whole response.
#[track_caller]
fn issue_as(who: &BaoClient) -> Value {
    who.bao(&["read", "-format=json", &format!("litellm/creds/{APP_ROLE}")])
        .ok()
        .json()
}

/// `method path` as `who`: must succeed (2xx); the body.
#[track_caller]
fn allowed(who: &BaoClient, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, response) = who.http(method, path, body.as_ref());
    assert!(
        (200..300).contains(&status),
        "{method} {path} should be allowed, got {status}: {response}"
    );
    response
}

/// `method path` as `who`: must be refused by the ACL (403 "permission denied").
#[track_caller]
fn refused(who: &BaoClient, method: &str, path: &str, body: Option<Value>) {
    let (status, response) = who.http(method, path, body.as_ref());
    assert_eq!(
        status, 403,
        "{method} {path} should be refused, got {status}: {response}"
    );
    assert!(
        response.to_string().contains("permission denied"),
        "{method} {path}: {response}"
    );
}

/// The CLI's view of a refusal: exit 2 with OpenBao's 403.
#[track_caller]
fn refused_cli(who: &BaoClient, args: &[&str]) {
    let out = who.bao(args).err().combined();
    assert!(
        out.contains("Code: 403") && out.contains("permission denied"),
        "{args:?}: {out}"
    );
}

/// The `expire_time` OpenBao reports for `lease`.
#[track_caller]
fn lease_expiry(root: &BaoClient, lease: &str) -> std::time::SystemTime {
    let info = root.http_ok(
        "PUT",
        "sys/leases/lookup",
        Some(&json!({ "lease_id": lease })),
    );
    let text = info["data"]["expire_time"].as_str().expect("expire_time");
    humantime::parse_rfc3339_weak(text).unwrap_or_else(|e| panic!("expire_time {text}: {e}"))
}

#[tokio::test]
async fn application_policy_issues_renews_and_revokes_its_own_role_only() {
    let s = Setup::start().await;
    let app = s.login("app", "litellm-application");

    // Issue: read through the CLI, and update (with a shorter ttl) through the API.
    let creds = issue_as(&app);
    let lease = lease_id(&creds);
    let token = token_id(&creds);
    assert_eq!(token_hash(&key(&creds)), token);
    assert!(s.live(&token), "the issued key exists in LiteLLM");
    let short = allowed(
        &app,
        "POST",
        &format!("litellm/creds/{APP_ROLE}"),
        Some(json!({ "ttl": "1m" })),
    );
    assert_eq!(short["lease_duration"], 60, "{short}");
    let short_lease = lease_id(&short);
    let short_token = token_id(&short);
    assert!(s.live(&short_token));

    // Renew its own lease: the CLI (lease id in the body) and the API (lease id in the URL).
    let before = lease_expiry(&s.root, &short_lease);
    let renewed = app
        .bao(&[
            "lease",
            "renew",
            "-format=json",
            "-increment=3m",
            &short_lease,
        ])
        .ok()
        .json();
    assert_eq!(renewed["lease_duration"], 180, "{renewed}");
    let after = lease_expiry(&s.root, &short_lease);
    assert!(
        after
            .duration_since(before)
            .is_ok_and(|d| d.as_secs() >= 60),
        "the renewal moved the lease's end: {before:?} -> {after:?}"
    );
    allowed(&app, "PUT", &format!("sys/leases/renew/{lease}"), None);
    let renewed = allowed(
        &app,
        "PUT",
        "sys/leases/renew",
        Some(json!({ "lease_id": lease, "increment": 120 })),
    );
    assert_eq!(renewed["lease_duration"], 120, "{renewed}");

    // Everything outside the policy is a 403, and none of it made a key.
    let keys_before = s.fake.key_count();
    refused(&app, "GET", "litellm/config", None);
    refused(
        &app,
        "POST",
        "litellm/config",
        Some(json!({"base_url": "http://127.0.0.1:1"})),
    );
    refused(&app, "DELETE", "litellm/config", None);
    refused(&app, "LIST", "litellm/roles", None);
    refused(&app, "GET", &format!("litellm/roles/{APP_ROLE}"), None);
    refused(
        &app,
        "POST",
        &format!("litellm/roles/{APP_ROLE}"),
        Some(json!({"ttl": "24h"})),
    );
    refused(
        &app,
        "POST",
        "litellm/roles/mine",
        Some(json!({"ttl": "1h"})),
    );
    refused(&app, "DELETE", &format!("litellm/roles/{APP_ROLE}"), None);
    refused(&app, "GET", &format!("litellm/creds/{OTHER_ROLE}"), None);
    refused(
        &app,
        "POST",
        &format!("litellm/creds/{OTHER_ROLE}"),
        Some(json!({})),
    );
    refused(&app, "POST", "litellm/rotate-root", Some(json!({})));
    refused(&app, "POST", "litellm/tidy", Some(json!({"dry_run": true})));
    refused(&app, "GET", "litellm/config/auto-tidy", None);
    refused(&app, "GET", "litellm/models", None);
    refused(&app, "GET", &format!("litellm/usage/{APP_ROLE}"), None);
    refused(
        &app,
        "PUT",
        &format!("sys/leases/revoke-prefix/litellm/creds/{APP_ROLE}"),
        None,
    );
    refused_cli(&app, &["read", &format!("litellm/creds/{OTHER_ROLE}")]);
    refused_cli(&app, &["list", "litellm/roles"]);
    refused_cli(&app, &["read", "litellm/config"]);
    assert_eq!(s.fake.key_count(), keys_before, "a refused call made a key");
    // The role it may not write is unchanged.
    let role = s
        .root
        .http_ok("GET", &format!("litellm/roles/{APP_ROLE}"), None);
    assert_eq!(role["data"]["ttl"], 300, "{role}");

    // Another role's lease (issued to someone else) can be neither renewed nor revoked, in
    // either form.
    let other = s
        .root
        .bao(&[
            "read",
            "-format=json",
            &format!("litellm/creds/{OTHER_ROLE}"),
        ])
        .ok()
        .json();
    let other_lease = lease_id(&other);
    refused(
        &app,
        "PUT",
        "sys/leases/renew",
        Some(json!({ "lease_id": other_lease })),
    );
    refused(
        &app,
        "PUT",
        &format!("sys/leases/renew/{other_lease}"),
        None,
    );
    refused(
        &app,
        "PUT",
        "sys/leases/revoke",
        Some(json!({ "lease_id": other_lease })),
    );
    refused(
        &app,
        "PUT",
        &format!("sys/leases/revoke/{other_lease}"),
        None,
    );
    refused_cli(&app, &["lease", "renew", &other_lease]);
    refused_cli(&app, &["lease", "revoke", &other_lease]);
    assert!(lease_exists(&s.server, &other_lease));
    assert!(
        s.live(&token_id(&other)),
        "the other role's key is untouched"
    );

    // Revoking its own leases deletes their keys: the CLI, and the API with the id in the URL
    // and in the body.
    app.bao(&["lease", "revoke", "-sync", &lease]).ok();
    allowed(
        &app,
        "PUT",
        &format!("sys/leases/revoke/{short_lease}"),
        None,
    );
    let third = issue_as(&app);
    allowed(
        &app,
        "PUT",
        "sys/leases/revoke",
        Some(json!({ "lease_id": lease_id(&third), "sync": true })),
    );
    let third_token = token_id(&third);
    assert_eventually!(
        !s.live(&token) && !s.live(&short_token) && !s.live(&third_token),
        "revoking the application's leases deletes their keys"
    );
    for gone in [&lease, &short_lease, &lease_id(&third)] {
        assert!(!lease_exists(&s.server, gone), "{gone}");
    }
    assert!(s.live(&token_id(&other)));
}

#[tokio::test]
async fn role_operator_policy_manages_roles_and_nothing_else() {
    let s = Setup::start().await;
    let operator = s.login("operator", "litellm-role-operator");

    // Roles: create, read, update, list, delete, through the CLI and the API.
    operator
        .bao(&["write", "litellm/roles/made", "ttl=10m", "max_budget=2"])
        .ok();
    let read = allowed(&operator, "GET", "litellm/roles/made", None);
    assert_eq!(read["data"]["max_budget"], 2.0, "{read}");
    allowed(
        &operator,
        "POST",
        "litellm/roles/made",
        Some(json!({"max_budget": 3})),
    );
    let read = operator
        .bao(&["read", "-format=json", "litellm/roles/made"])
        .ok()
        .json();
    assert_eq!(read["data"]["max_budget"], 3.0, "{read}");
    assert_eq!(read["data"]["ttl"], 600, "a partial update keeps the rest");
    let listed = operator
        .bao(&["list", "-format=json", "litellm/roles"])
        .ok()
        .json();
    assert_eq!(listed, json!(["made", OTHER_ROLE, APP_ROLE]), "{listed}");
    allowed(&operator, "DELETE", "litellm/roles/made", None);
    let (status, _) = s.root.http("GET", "litellm/roles/made", None);
    assert_eq!(status, 404, "the operator's delete took effect");

    // No config, no keys, no leases, no maintenance.
    let keys_before = s.fake.key_count();
    let lease = lease_id(
        &s.root
            .bao(&["read", "-format=json", &format!("litellm/creds/{APP_ROLE}")])
            .ok()
            .json(),
    );
    let keys_before = keys_before + 1;
    refused(&operator, "GET", "litellm/config", None);
    refused(
        &operator,
        "POST",
        "litellm/config",
        Some(json!({"request_timeout": "5s"})),
    );
    refused(&operator, "GET", &format!("litellm/creds/{APP_ROLE}"), None);
    refused(
        &operator,
        "POST",
        &format!("litellm/creds/{APP_ROLE}"),
        Some(json!({})),
    );
    refused(&operator, "POST", "litellm/rotate-root", Some(json!({})));
    refused(
        &operator,
        "POST",
        "litellm/tidy",
        Some(json!({"dry_run": true})),
    );
    refused(&operator, "GET", "litellm/config/auto-tidy", None);
    refused(
        &operator,
        "POST",
        "litellm/config/auto-tidy",
        Some(json!({"enabled": true})),
    );
    refused(&operator, "GET", &format!("litellm/usage/{APP_ROLE}"), None);
    refused(&operator, "PUT", &format!("sys/leases/renew/{lease}"), None);
    refused(
        &operator,
        "PUT",
        &format!("sys/leases/revoke/{lease}"),
        None,
    );
    refused(
        &operator,
        "PUT",
        "sys/leases/revoke",
        Some(json!({ "lease_id": lease })),
    );
    refused_cli(&operator, &["lease", "revoke", &lease]);
    // OpenBao's `default` policy grants `sys/leases/renew` with the lease id in the body to
    // every token: anyone who knows a lease id may renew it (never past its max_ttl). The
    // README says so; this pins it.
    allowed(
        &operator,
        "PUT",
        "sys/leases/renew",
        Some(json!({ "lease_id": lease })),
    );
    refused_cli(&operator, &["read", &format!("litellm/creds/{APP_ROLE}")]);
    refused_cli(&operator, &["read", "litellm/config"]);
    assert_eq!(s.fake.key_count(), keys_before, "a refused call made a key");
    assert!(lease_exists(&s.server, &lease));
    let config = s.root.http_ok("GET", "litellm/config", None);
    assert_eq!(config["data"]["request_timeout"], 30, "{config}");
}

#[tokio::test]
async fn administrator_policy_runs_the_mount_but_issues_no_keys() {
    let s = Setup::start().await;
    let admin = s.login("admin", "litellm-administrator");

    // config: read (the key never shown), update.
    let config = admin
        .bao(&["read", "-format=json", "litellm/config"])
        .ok()
        .json();
    assert_eq!(config["data"]["base_url"], s.fake.url(), "{config}");
    assert!(
        !config.to_string().contains("sk-"),
        "no key in a config read"
    );
    allowed(
        &admin,
        "POST",
        "litellm/config",
        Some(json!({"request_timeout": "20s"})),
    );

    // rotate-root: the admin virtual key is replaced by one only OpenBao knows.
    let before: Vec<String> = s.fake.live_keys().into_iter().map(|k| k.token).collect();
    let rotated = allowed(&admin, "POST", "litellm/rotate-root", Some(json!({})));
    assert_eq!(rotated["data"]["key_alias"], "vault-admin", "{rotated}");
    let after: Vec<String> = s.fake.live_keys().into_iter().map(|k| k.token).collect();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, before, "rotate-root replaced the admin key");

    // tidy and auto-tidy.
    let tidy = allowed(
        &admin,
        "POST",
        "litellm/tidy",
        Some(json!({"dry_run": true})),
    );
    assert_eq!(tidy["data"]["dry_run"], true, "{tidy}");
    allowed(
        &admin,
        "POST",
        "litellm/config/auto-tidy",
        Some(json!({"enabled": true, "interval_duration": "2h"})),
    );
    let auto = allowed(&admin, "GET", "litellm/config/auto-tidy", None);
    assert_eq!(auto["data"]["enabled"], true, "{auto}");
    assert_eq!(auto["data"]["interval_duration"], 7200, "{auto}");

    // Roles: the whole life of one.
    admin
        .bao(&["write", "litellm/roles/ops", "ttl=1m", "rpm_limit=5"])
        .ok();
    let listed = admin
        .bao(&["list", "-format=json", "litellm/roles"])
        .ok()
        .json();
    assert_eq!(listed, json!(["ops", OTHER_ROLE, APP_ROLE]), "{listed}");
    assert_eq!(
        allowed(&admin, "GET", "litellm/roles/ops", None)["data"]["rpm_limit"],
        5
    );
    allowed(&admin, "DELETE", "litellm/roles/ops", None);

    // No keys: the administrator cannot issue, renew or revoke.
    let keys_before = s.fake.key_count();
    refused(&admin, "GET", &format!("litellm/creds/{APP_ROLE}"), None);
    refused(
        &admin,
        "POST",
        &format!("litellm/creds/{APP_ROLE}"),
        Some(json!({})),
    );
    refused_cli(&admin, &["read", &format!("litellm/creds/{OTHER_ROLE}")]);
    assert_eq!(s.fake.key_count(), keys_before, "a refused call made a key");
    let lease = lease_id(
        &s.root
            .bao(&["read", "-format=json", &format!("litellm/creds/{APP_ROLE}")])
            .ok()
            .json(),
    );
    refused(&admin, "PUT", &format!("sys/leases/renew/{lease}"), None);
    refused(&admin, "PUT", &format!("sys/leases/revoke/{lease}"), None);
    refused(
        &admin,
        "PUT",
        "sys/leases/revoke",
        Some(json!({ "lease_id": lease })),
    );
    refused_cli(&admin, &["lease", "revoke", &lease]);
    assert!(lease_exists(&s.server, &lease));

    // And it may start over: delete the config, create it again (the `create` capability).
    allowed(&admin, "DELETE", "litellm/config", None);
    let (status, _) = s.root.http("GET", "litellm/config", None);
    assert_eq!(status, 404, "the administrator's delete took effect");
    configure_as(&admin, &s.fake.url(), MASTER_KEY);
    let config = s.root.http_ok("GET", "litellm/config", None);
    assert_eq!(config["data"]["base_url"], s.fake.url());
    s.root.bao(&["lease", "revoke", "-sync", &lease]).ok();
}

/// `bao write litellm/config` as `who`.
#[track_caller]
fn configure_as(who: &BaoClient, url: &str, master_key: &str) {
    who.bao(&[
        "write",
        "litellm/config",
        &format!("base_url={url}"),
        &format!("master_key={master_key}"),
    ])
    .ok();
}

#[test]
fn the_readme_shows_these_policies() {
    let readme = include_str!("../../README.md");
    for (file, hcl) in [
        ("application.hcl", APPLICATION),
        ("role-operator.hcl", ROLE_OPERATOR),
        ("administrator.hcl", ADMINISTRATOR),
    ] {
        assert!(
            readme.contains(hcl.trim_end()),
            "README.md's \"Policies\" section must show tests/e2e/policies/{file} verbatim"
        );
    }
}

//! OpenBao namespaces: the engine mounted at the same path (`litellm/`) in the root namespace
//! and in two child namespaces, against one real LiteLLM, with the same role name in each.
//! Each mount's keys carry its own path (the namespace in front) and UUID; tidy and revoke in
//! one namespace never touch another's keys.

use serde_json::Value;
use vault_plugin_secrets_litellm::engine::client::{Client, KeyStatus};

use crate::support::bao::{CmdOutput, DevServer, DevServerOptions};
use crate::support::{
    KeyCleanup, PLUGIN, RealLiteLlm, create_key_stamped, our_alias, plugin_binary, plugin_version,
    unique,
};

/// The engine at `litellm/` of one namespace (`""`: the root namespace).
struct Tenant<'a> {
    server: &'a DevServer,
    namespace: &'static str,
}

impl Tenant<'_> {
    /// The real CLI in this namespace (`BAO_NAMESPACE`).
    #[track_caller]
    fn bao(&self, args: &[&str]) -> CmdOutput {
        self.server
            .bao_with(args, &[("BAO_NAMESPACE", self.namespace)], None)
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.insert(1, "-format=json");
        self.bao(&args).ok().json()
    }

    /// The mount path its keys are stamped with.
    fn stamped_path(&self) -> String {
        match self.namespace {
            "" => "litellm/".to_string(),
            ns => format!("{ns}/litellm/"),
        }
    }
}

/// A key's LiteLLM record: its status and metadata.
async fn record(admin: &Client, token: &str) -> (KeyStatus, serde_json::Map<String, Value>) {
    let info = admin
        .info(token)
        .await
        .expect("key info")
        .unwrap_or_else(|| panic!("LiteLLM has no record of key {token}"));
    (info.status, info.metadata)
}

async fn status(admin: &Client, token: &str) -> Option<KeyStatus> {
    admin.info(token).await.expect("key info").map(|i| i.status)
}

fn token_id(creds: &Value) -> String {
    creds["data"]["token_id"].as_str().unwrap().to_string()
}

fn deleted(report: &Value) -> Vec<String> {
    report["data"]["deleted"]
        .as_array()
        .unwrap_or_else(|| panic!("a tidy report: {report}"))
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn mounts_at_one_path_in_three_namespaces_keep_their_keys_apart() {
    let litellm = RealLiteLlm::from_env();
    let admin = litellm.admin();
    let server = DevServer::start_with(DevServerOptions::default());
    server.register_plugin(&plugin_binary(), PLUGIN, &plugin_version());
    for ns in ["team-a", "team-b"] {
        server.bao(&["namespace", "create", ns]).ok();
    }
    let tenants: Vec<Tenant> = ["", "team-a", "team-b"]
        .into_iter()
        .map(|namespace| Tenant {
            server: &server,
            namespace,
        })
        .collect();
    let role = unique("ns");
    let mut cleanup = KeyCleanup::new(&litellm);
    let mut issued = Vec::new();
    for tenant in &tenants {
        tenant
            .bao(&["secrets", "enable", "-path=litellm", PLUGIN])
            .ok();
        tenant
            .bao(&[
                "write",
                "litellm/config",
                &format!("base_url={}", litellm.url),
                &format!("master_key={}", litellm.master_key),
            ])
            .ok();
        tenant
            .bao(&["write", &format!("litellm/roles/{role}"), "ttl=10m"])
            .ok();
        let creds = tenant.json(&["read", &format!("litellm/creds/{role}")]);
        cleanup.tokens.push(token_id(&creds));
        issued.push(creds);
    }

    // Each key names its own mount: the namespace's path, and a UUID of its own.
    let mut uuids = Vec::new();
    for (tenant, creds) in tenants.iter().zip(&issued) {
        let (state, metadata) = record(&admin, &token_id(creds)).await;
        assert_eq!(state, KeyStatus::Active);
        assert_eq!(metadata["vault_mount"], tenant.stamped_path().as_str());
        assert_eq!(metadata["vault_role"], role.as_str());
        let uuid = metadata["vault_mount_uuid"]
            .as_str()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| panic!("no mount UUID stamped: {metadata:?}"))
            .to_string();
        uuids.push(uuid);
    }
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), 3, "every mount has its own UUID");
    // A namespace sees only its own mount's leases.
    let leases = |tenant: &Tenant| {
        let out = tenant.bao(&[
            "list",
            "-format=json",
            &format!("sys/leases/lookup/litellm/creds/{role}"),
        ]);
        out.ok().json()
    };
    for (tenant, creds) in tenants.iter().zip(&issued) {
        let listed = leases(tenant);
        let id = creds["lease_id"].as_str().unwrap();
        assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
        assert!(
            id.ends_with(listed[0].as_str().unwrap()),
            "{listed} vs {id}"
        );
    }

    // An orphan of each child namespace's mount: its alias shape and stamps, no lease.
    let mut orphans = Vec::new();
    for creds in &issued[1..] {
        let (_, metadata) = record(&admin, &token_id(creds)).await;
        let stamps: Vec<(&str, &str)> = ["vault_mount", "vault_mount_uuid", "vault_role"]
            .into_iter()
            .map(|k| (k, metadata[k].as_str().unwrap()))
            .collect();
        let alias = our_alias("vault", &role);
        let orphan = create_key_stamped(&admin, &alias, &stamps, "600s").await;
        cleanup.tokens.push(orphan.token.clone());
        orphans.push((alias, orphan.token));
    }
    let (team_a, team_b) = (&tenants[1], &tenants[2]);

    // Tidy in team-a deletes team-a's orphan only.
    let report = team_a.json(&["write", "-force", "litellm/tidy"]);
    assert_eq!(deleted(&report), vec![orphans[0].0.clone()], "{report}");
    assert_eq!(report["data"]["kept"], 1, "team-a's leased key: {report}");
    assert_eq!(
        status(&admin, &orphans[0].1).await,
        Some(KeyStatus::Deleted)
    );
    assert_eq!(status(&admin, &orphans[1].1).await, Some(KeyStatus::Active));
    for creds in &issued {
        assert_eq!(
            status(&admin, &token_id(creds)).await,
            Some(KeyStatus::Active)
        );
    }

    // Revoking every lease of team-a's mount deletes team-a's key only.
    team_a
        .bao(&["lease", "revoke", "-sync", "-prefix", "litellm/creds/"])
        .ok();
    assert_eq!(
        status(&admin, &token_id(&issued[1])).await,
        Some(KeyStatus::Deleted)
    );
    for creds in [&issued[0], &issued[2]] {
        assert_eq!(
            status(&admin, &token_id(creds)).await,
            Some(KeyStatus::Active)
        );
    }

    // team-b's tidy finds its own orphan; the root mount's finds none.
    let report = team_b.json(&["write", "-force", "litellm/tidy"]);
    assert_eq!(deleted(&report), vec![orphans[1].0.clone()], "{report}");
    let report = tenants[0].json(&["write", "-force", "litellm/tidy"]);
    assert_eq!(deleted(&report), Vec::<String>::new(), "{report}");

    // Deleting a namespace's mount revokes its leases, and only those.
    team_b.bao(&["secrets", "disable", "litellm"]).ok();
    assert_eq!(
        status(&admin, &token_id(&issued[2])).await,
        Some(KeyStatus::Deleted)
    );
    assert_eq!(
        status(&admin, &token_id(&issued[0])).await,
        Some(KeyStatus::Active)
    );
    tenants[0]
        .bao(&["lease", "revoke", "-sync", "-prefix", "litellm/creds/"])
        .ok();
    for creds in &issued {
        assert_eq!(
            status(&admin, &token_id(creds)).await,
            Some(KeyStatus::Deleted)
        );
    }
    cleanup.tokens.clear();
}

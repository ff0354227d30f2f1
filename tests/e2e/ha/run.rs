//! What the scenarios share: leases and the calls that make them, the cleanup, and [`Ha`],
//! the cluster run with its invariants.

use super::*;

/// A lease of an issued key.
#[derive(Clone, Debug)]
pub(super) struct Lease {
    pub(super) id: String,
    pub(super) token: String,
    pub(super) alias: String,
}

impl Lease {
    pub(super) fn from_response(body: &Value) -> Option<Lease> {
        Some(Lease {
            id: body["lease_id"].as_str()?.to_string(),
            token: body["data"]["token_id"].as_str()?.to_string(),
            alias: body["data"]["key_alias"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
    }
}

/// `creds/<role>` of `mount` through `client` (a `ttl` makes it a write); `Err` describes any
/// failure: a status and its errors, or the transport error.
pub(super) fn issue(
    client: &BaoClient,
    mount: &str,
    role: &str,
    ttl: Option<&str>,
) -> Result<Lease, String> {
    let path = format!("{mount}/creds/{role}");
    let result = match ttl {
        Some(ttl) => try_http(
            client,
            "PUT",
            &path,
            Some(&json!({ "ttl": ttl })),
            REQUEST_TIMEOUT,
        ),
        None => try_http(client, "GET", &path, None, REQUEST_TIMEOUT),
    };
    match result {
        Ok((200, body)) => {
            Lease::from_response(&body).ok_or_else(|| format!("200 without a lease: {body}"))
        }
        Ok((status, body)) => Err(format!("HTTP {status}: {}", errors_of(&body))),
        Err(e) => Err(format!("transport: {e}")),
    }
}

pub(super) fn revoke(client: &BaoClient, lease: &str) -> Result<(), String> {
    match try_http(
        client,
        "PUT",
        "sys/leases/revoke",
        Some(&json!({ "lease_id": lease })),
        REQUEST_TIMEOUT,
    ) {
        Ok((200 | 204, _)) => Ok(()),
        Ok((status, body)) => Err(format!("HTTP {status}: {}", errors_of(&body))),
        Err(e) => Err(format!("transport: {e}")),
    }
}

pub(super) fn renew(client: &BaoClient, lease: &str, increment: &str) -> Result<Value, String> {
    match try_http(
        client,
        "PUT",
        "sys/leases/renew",
        Some(&json!({ "lease_id": lease, "increment": increment })),
        REQUEST_TIMEOUT,
    ) {
        Ok((200, body)) => Ok(body),
        Ok((status, body)) => Err(format!("HTTP {status}: {}", errors_of(&body))),
        Err(e) => Err(format!("transport: {e}")),
    }
}

pub(super) fn errors_of(body: &Value) -> String {
    match &body["errors"] {
        Value::Array(errors) => errors
            .iter()
            .map(|e| e.as_str().unwrap_or_default().replace('\n', " "))
            .collect::<Vec<_>>()
            .join("; "),
        _ => body.to_string(),
    }
}

/// Lines of `log` that contain `needle`.
pub(super) fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

/// Runs an async admin call from this synchronous test, on a runtime of its own thread.
pub(super) fn block_on<T: Send>(f: impl std::future::Future<Output = T> + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime")
                    .block_on(f)
            })
            .join()
            .expect("admin call panicked")
    })
}

/// What the scenarios share: the cluster, the proxy, the admin client, the roles and every
/// lease issued, per `(mount, role)`.
pub(super) struct Ha {
    pub(super) cluster: Cluster,
    pub(super) litellm: RealLiteLlm,
    pub(super) admin: Client,
    pub(super) proxy: HoldingProxy,
    /// The main role on `litellm/`.
    pub(super) role: String,
    /// A role on `litellm/` with 20 s leases (step-down scenario).
    pub(super) short_role: String,
    /// The role on `held/` (the mount behind the holding proxy).
    pub(super) held_role: String,
    pub(super) leases: Mutex<BTreeMap<(String, String), Vec<Lease>>>,
    pub(super) figures: Mutex<Vec<String>>,
}

impl Ha {
    pub(super) fn client(&self, i: usize) -> BaoClient {
        self.cluster.client(i)
    }

    pub(super) fn record(&self, mount: &str, role: &str, lease: &Lease) {
        self.leases
            .lock()
            .unwrap()
            .entry((mount.to_string(), role.to_string()))
            .or_default()
            .push(lease.clone());
    }

    #[track_caller]
    pub(super) fn issue_ok(
        &self,
        node: usize,
        mount: &str,
        role: &str,
        ttl: Option<&str>,
    ) -> Lease {
        let lease = issue(&self.client(node), mount, role, ttl).unwrap_or_else(|e| {
            panic!(
                "creds {mount}/{role} through {}: {e}",
                self.cluster.node_id(node)
            )
        });
        self.record(mount, role, &lease);
        lease
    }

    pub(super) fn figure(&self, line: String) {
        println!("[ha figure] {line}");
        self.figures.lock().unwrap().push(line);
    }

    #[track_caller]
    pub(super) fn key_status(&self, token: &str) -> Option<KeyStatus> {
        let admin = self.admin.clone();
        let token = token.to_string();
        block_on(async move { admin.info(&token).await })
            .expect("/key/info")
            .map(|i| i.status)
    }

    #[track_caller]
    pub(super) fn key_expiry(&self, token: &str) -> Option<SystemTime> {
        let admin = self.admin.clone();
        let token = token.to_string();
        block_on(async move { admin.info(&token).await })
            .expect("/key/info")
            .and_then(|i| i.expires_at)
    }

    /// Hashes of the live keys whose alias starts with `vault-<role>-`.
    #[track_caller]
    pub(super) fn live_keys(&self, role: &str) -> HashSet<String> {
        self.listed_keys(role)
            .into_iter()
            .map(|k| k.token)
            .collect()
    }

    /// The live keys whose alias starts with `vault-<role>-`.
    #[track_caller]
    pub(super) fn listed_keys(&self, role: &str) -> Vec<ListedKey> {
        let admin = self.admin.clone();
        let stem = format!("vault-{role}-");
        block_on(async move { admin.list_aliases(&stem).await }).expect("/key/list")
    }

    /// What mount `mount` stored under `prefix` (`sys/raw`, through the active node): each
    /// entry's key and value.
    #[track_caller]
    pub(super) fn stored(&self, mount: &str, prefix: &str) -> Vec<(String, String)> {
        let client = self.client(self.cluster.active());
        let (status, body) = client.http("GET", &format!("sys/mounts/{mount}"), None);
        assert_eq!(status, 200, "sys/mounts/{mount}: {body}");
        let uuid = body["uuid"].as_str().expect("the mount's uuid").to_string();
        let dir = format!("sys/raw/logical/{uuid}/{prefix}");
        let (status, body) = client.http("LIST", &dir, None);
        let keys: Vec<String> = match status {
            404 => Vec::new(),
            200 => body["data"]["keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => panic!("LIST {dir}: {status} {body}"),
        };
        keys.into_iter()
            .map(|key| {
                let (status, body) = client.http("GET", &format!("{dir}{key}"), None);
                assert_eq!(status, 200, "GET {dir}{key}: {body}");
                let value = body["data"]["value"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                (key, value)
            })
            .collect()
    }

    /// Ids of the WAL entries on `litellm/` of issues under `role`.
    #[track_caller]
    pub(super) fn issue_wal_entries(&self, role: &str) -> Vec<String> {
        let stem = format!("vault-{role}-");
        self.stored("litellm", "wal/")
            .into_iter()
            .filter(|(_, value)| value.contains(&stem))
            .map(|(id, _)| id)
            .collect()
    }

    /// Ids of the leases OpenBao holds under `<mount>/creds/<role>/`.
    #[track_caller]
    pub(super) fn live_leases(&self, mount: &str, role: &str) -> HashSet<String> {
        let prefix = format!("{mount}/creds/{role}/");
        let active = self.cluster.active();
        let (status, body) =
            self.client(active)
                .http("LIST", &format!("sys/leases/lookup/{prefix}"), None);
        match status {
            404 => HashSet::new(),
            200 => body["data"]["keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|k| format!("{prefix}{k}"))
                .collect(),
            _ => panic!("listing the leases under {prefix}: {status} {body}"),
        }
    }

    /// The invariants after a scenario, for every `(mount, role)` the test issued under: each
    /// known lease that OpenBao still holds has an active key, each one it no longer holds has
    /// a deleted key, and the live keys are exactly as many as the live leases (so a lease whose
    /// answer a client never got still accounts for one key, and no key lacks a lease). Keys
    /// in `in_flight` (an issue that crashed, until its rollback) are left out.
    ///
    /// `pending`: issues the failover cut off between `/key/generate` and the lease, whose keys
    /// wait for the new leader's WAL rollback: up to that many keys of `litellm/<role>` may
    /// lack a lease (they are counted and must be gone after the rollback).
    #[track_caller]
    pub(super) fn check_invariants(&self, after: &str, in_flight: &[String]) {
        self.check_invariants_pending(after, in_flight, 0);
    }

    #[track_caller]
    pub(super) fn check_invariants_pending(
        &self,
        after: &str,
        in_flight: &[String],
        pending: usize,
    ) {
        let leases = self.leases.lock().unwrap().clone();
        let mut problems = Vec::new();
        let mut summary = Vec::new();
        for ((mount, role), known) in &leases {
            let live_leases = self.live_leases(mount, role);
            let mut live_keys = self.live_keys(role);
            live_keys.retain(|t| !in_flight.contains(t));
            for lease in known {
                let status = self.key_status(&lease.token);
                let alive = live_leases.contains(&lease.id);
                let want = if alive {
                    KeyStatus::Active
                } else {
                    KeyStatus::Deleted
                };
                if status.as_ref() != Some(&want) {
                    problems.push(format!(
                        "{mount}/{role}: lease {} ({}) is {}, its key {} is {status:?}",
                        lease.id,
                        lease.alias,
                        if alive { "live" } else { "gone" },
                        lease.token
                    ));
                }
                if alive && !live_keys.contains(&lease.token) {
                    problems.push(format!(
                        "{mount}/{role}: live lease {}'s key is not listed",
                        lease.id
                    ));
                }
            }
            let allowed = if role == &self.role { pending } else { 0 };
            if live_keys.len() < live_leases.len() || live_keys.len() > live_leases.len() + allowed
            {
                problems.push(format!(
                    "{mount}/{role}: {} live keys but {} live leases ({allowed} cut-off issues may \
                     still wait for their rollback)",
                    live_keys.len(),
                    live_leases.len()
                ));
            }
            summary.push(format!(
                "{mount}/{role}: {} issued, {} live leases = {} live keys",
                known.len(),
                live_leases.len(),
                live_keys.len()
            ));
        }
        println!("[ha] invariants after {after}: {}", summary.join("; "));
        assert!(
            problems.is_empty(),
            "invariants after {after}:\n{}",
            problems.join("\n")
        );
    }
}

//! `tidy` and `config/auto-tidy`: delete the LiteLLM keys of this mount that no lease accounts
//! for, on demand or periodically.
//!
//! **This mount's keys** are the live keys whose alias has the shape `<prefix>-<role>-<12 hex>`
//! of one of the mount's roles and whose `vault_mount` metadata stamp (set at issue) is this
//! mount's path. They are found with `/key/list` filtered by alias, one paged listing per
//! distinct alias prefix of the roles.
//!
//! Of those, a key is **kept** when
//! - a WAL entry younger than the rollback minimum age names its alias (an issue in flight), or
//! - it is in the [`key_index`] (a lease accounts for it), or it was created before this mount
//!   started indexing (issued by an older version of the plugin), unless it expired more than
//!   `safety_buffer` ago: a lease never outlives its key, so such a key's lease is gone (e.g.
//!   revoked with `-force` while LiteLLM was down).
//!
//! Every other key is an **orphan** (its lease was lost with a storage restore, its issue
//! crashed and the rollback has not run, it was created by hand with this mount's stamps) and
//! is deleted by hash. Index entries whose key LiteLLM no longer has are removed as well.
//!
//! Every run starts with a storage write (`tidy/last-tidy`), so on an HA standby it fails before
//! LiteLLM is called and the host forwards it to the active node.
//!
//! Order matters with concurrent issues: LiteLLM is listed first, then the WAL is read, then
//! the index. A listed key's WAL entry was written before the key was generated, and an issue
//! writes its index entry before removing its WAL entry, so a key being issued is always seen
//! under one of the two.
//!
//! **Retired teams** (of deleted roles, or of roles that stopped setting role-wide or per-user
//! limits) are deleted in LiteLLM once none of their keys is live, and forgotten once LiteLLM
//! no longer has them; deleting a team earlier would delete its keys with it.
//!
//! Limitations: keys of deleted roles, or issued under a role's former `key_alias_prefix`, are
//! not looked at (they still expire in LiteLLM on their own). A mount of the same path on
//! another Vault cluster or namespace that shares the LiteLLM, the role names and the prefixes
//! stamps the same `vault_mount`, so its keys look like this mount's orphans: give each such
//! mount its own `key_alias_prefix` before running tidy.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::engine::alias;
use crate::engine::client::{Client, KeyStatus, ListedKey};
use crate::engine::error::{Error, Result};
use crate::engine::key_index;
use crate::engine::layout;
use crate::engine::path_config::Config;
use crate::engine::path_roles::Role;
use crate::engine::schema;
use crate::engine::secret_key::{self, IssueWal};
use crate::engine::stamps::{self, Mount};
use crate::engine::{self, MountState};
use crate::framework::{
    DefaultValue, Field, FieldType, Operation, Path, Request, Response, Storage, handler, wal,
};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);

/// As in Vault's PKI tidy: how long past its expiry a key is left alone.
const DEFAULT_SAFETY_BUFFER: Duration = Duration::from_secs(72 * 3600);

/// Keys per `/key/delete` call.
const DELETE_BATCH: usize = 100;

const SAFETY_BUFFER_HELP: &str = "How long past its expiry in LiteLLM an indexed key (or one issued before this mount indexed its keys) is kept; after that no lease can account for it and tidy deletes it.";

static TIDY_FIELDS: &[Field] = &[
    Field::new(
        "dry_run",
        FieldType::Bool,
        "Report what would be deleted, and delete nothing.",
    )
    .default_value(DefaultValue::Bool(false)),
    Field::new("safety_buffer", FieldType::Duration, SAFETY_BUFFER_HELP)
        .default_value(DefaultValue::DurationSecs(DEFAULT_SAFETY_BUFFER.as_secs())),
];

static AUTO_TIDY_FIELDS: &[Field] = &[
    Field::new(
        "enabled",
        FieldType::Bool,
        "Run tidy periodically.",
    )
    .default_value(DefaultValue::Bool(false)),
    Field::new(
        "interval_duration",
        FieldType::Duration,
        "Time between two automatic tidy runs. Checked on the host's rollback tick, about once a minute.",
    )
    .default_value(DefaultValue::DurationSecs(DEFAULT_INTERVAL.as_secs())),
    Field::new("safety_buffer", FieldType::Duration, SAFETY_BUFFER_HELP)
        .default_value(DefaultValue::DurationSecs(DEFAULT_SAFETY_BUFFER.as_secs())),
];

const TIDY_SYNOPSIS: &str = "Delete this mount's LiteLLM keys that no lease accounts for.";
const TIDY_DESCRIPTION: &str = "\
Lists the LiteLLM keys whose alias has the shape <prefix>-<role>-<random> of one of this mount's
roles and whose vault_mount metadata is this mount, and deletes those that neither a lease nor an
issue in progress accounts for. Keys a lease accounts for are kept until safety_buffer after
their expiry. With dry_run=true nothing is deleted. The response lists the aliases deleted (or,
in a dry run, to be deleted) and counts the keys kept.

Keys issued by another mount of the same path (another cluster or namespace) sharing this
LiteLLM, role names and key_alias_prefix cannot be told apart: give such mounts their own prefix.";

const AUTO_TIDY_SYNOPSIS: &str = "Run tidy periodically.";
const AUTO_TIDY_DESCRIPTION: &str = "\
With enabled=true, tidy runs every interval_duration (checked on the host's rollback tick, about
once a minute); the time of the last run is stored, so restarts keep the schedule. Writes change
only the fields given; reads return durations in seconds and the time of the last run.";

/// The `tidy` and `config/auto-tidy` paths.
pub fn paths() -> Vec<Path<MountState>> {
    vec![
        Path::new("tidy", TIDY_FIELDS)
            .operation(Operation::Update, handler(tidy))
            .help(TIDY_SYNOPSIS, TIDY_DESCRIPTION),
        Path::new("config/auto-tidy", AUTO_TIDY_FIELDS)
            .operation(Operation::Read, handler(read_auto_tidy))
            .operation(Operation::Update, handler(write_auto_tidy))
            .help(AUTO_TIDY_SYNOPSIS, AUTO_TIDY_DESCRIPTION),
    ]
}

/// How a tidy run behaves.
#[derive(Debug, Clone, Copy)]
pub struct TidyOptions {
    /// Report only; delete nothing.
    pub dry_run: bool,
    /// How long past expiry an accounted-for key is kept.
    pub safety_buffer: Duration,
    /// WAL entries younger than this mark an issue in flight.
    pub wal_min_age: Duration,
}

/// What a tidy run found and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TidyReport {
    /// Aliases of the orphaned keys deleted (in a dry run: to be deleted), sorted.
    pub deleted: Vec<String>,
    /// This mount's keys that a lease or an issue in flight accounts for.
    pub kept: usize,
    /// Index entries whose key LiteLLM no longer has (removed unless a dry run).
    pub stale_index_entries: usize,
    /// Retired teams deleted (in a dry run: to be deleted), sorted.
    pub deleted_teams: Vec<String>,
    /// Retired teams kept because keys of theirs are still live.
    pub retired_teams_kept: usize,
}

/// Runs one tidy pass for `mount`.
pub async fn run(
    client: &Client,
    storage: &Storage,
    mount: Mount<'_>,
    options: TidyOptions,
    now: SystemTime,
) -> Result<TidyReport> {
    if mount.path.is_empty() {
        return Err(Error::invalid(
            "tidy needs the request's mount point to tell this mount's keys from other mounts' keys",
        ));
    }
    // A storage write before any LiteLLM call: on an HA standby it fails, the host forwards the
    // request, and only the active node (whose index is current) judges and deletes keys.
    schema::store(storage, layout::LAST_TIDY, &LastRun::at(now), false).await?;
    // Keys created from now on are all indexed; older ones may predate the index.
    let index_since = key_index::mark_start(storage, now).await?;
    let stems = role_alias_stems(storage).await?;

    // 1. LiteLLM, 2. the WAL, 3. the index: see the module docs for why in this order.
    let prefixes: BTreeSet<&str> = stems.iter().map(|(prefix, _)| prefix.as_str()).collect();
    let mut ours: BTreeMap<String, ListedKey> = BTreeMap::new();
    for prefix in prefixes {
        let listed = client
            .list_aliases(&format!("{prefix}-"))
            .await
            .map_err(|e| Error::litellm("tidy could not list keys", e))?;
        for key in listed {
            if is_ours(&key, &stems, mount) {
                ours.entry(key.token.clone()).or_insert(key);
            }
        }
    }
    let in_flight = issues_in_flight(storage, now, options.wal_min_age).await?;
    let indexed: HashSet<String> = key_index::list(storage).await?.into_iter().collect();

    let mut report = TidyReport::default();
    let mut orphans: Vec<&ListedKey> = Vec::new();
    for key in ours.values() {
        let expired_long_ago = key.expires_at.is_some_and(|expires| {
            expires
                .checked_add(options.safety_buffer)
                .is_some_and(|limit| limit < now)
        });
        // A missing creation time counts as old: never delete what cannot be judged.
        let predates_index = key.created_at.is_none_or(|created| created < index_since);
        let leased = (indexed.contains(&key.token) || predates_index) && !expired_long_ago;
        if in_flight.contains(&key.key_alias) || leased {
            report.kept += 1;
        } else {
            orphans.push(key);
        }
    }
    orphans.sort_by(|a, b| a.key_alias.cmp(&b.key_alias));

    if !options.dry_run {
        let mut done = 0;
        for batch in orphans.chunks(DELETE_BATCH) {
            let hashes: Vec<String> = batch.iter().map(|k| k.token.clone()).collect();
            // Nothing found means someone else deleted them first: just as good.
            client.delete_keys(&hashes).await.map_err(|e| {
                Error::litellm("tidy could not delete orphaned keys", e).noted(format!(
                    " ({done} of {} deleted before the failure; run tidy again)",
                    orphans.len()
                ))
            })?;
            for key in batch {
                tracing::info!(key_alias = %key.key_alias, "tidy deleted an orphaned key");
                // Only after LiteLLM confirmed, as revoke does.
                if indexed.contains(&key.token) {
                    key_index::remove(storage, &key.token).await?;
                }
            }
            done += batch.len();
        }
    }
    report.deleted = orphans.iter().map(|k| k.key_alias.clone()).collect();

    for token in indexed.iter().filter(|t| !ours.contains_key(*t)) {
        let Some(entry) = key_index::get(storage, token).await? else {
            continue; // revoked meanwhile
        };
        // A young entry may belong to a key issued after the listing; not worth a lookup.
        if entry.age(now) < options.wal_min_age {
            continue;
        }
        let gone = match client.info(token).await {
            Ok(None) => true,
            Ok(Some(info)) => info.status == KeyStatus::Deleted,
            Err(e) => {
                let context = format!("tidy could not look up indexed key {}", entry.key_alias);
                return Err(Error::litellm(context, e));
            }
        };
        if gone {
            report.stale_index_entries += 1;
            if !options.dry_run {
                key_index::remove(storage, token).await?;
            }
        }
    }
    tidy_retired_teams(client, storage, options, now, &mut report).await?;
    Ok(report)
}

/// Deletes retired teams none of whose keys is live, and forgets those LiteLLM no longer has.
async fn tidy_retired_teams(
    client: &Client,
    storage: &Storage,
    options: TidyOptions,
    now: SystemTime,
    report: &mut TidyReport,
) -> Result<()> {
    let mut retired = storage.list(layout::RETIRED_TEAMS).await?;
    retired.sort();
    for team_id in retired {
        let usage = client.team_usage(&team_id, now).await.map_err(|e| {
            Error::litellm(format!("tidy could not look up retired team {team_id}"), e)
        })?;
        match usage {
            Some(usage) if usage.live_keys > 0 => {
                report.retired_teams_kept += 1;
                continue;
            }
            Some(_) => {
                if !options.dry_run {
                    client.delete_team(&team_id).await.map_err(|e| {
                        Error::litellm(format!("tidy could not delete retired team {team_id}"), e)
                    })?;
                    tracing::info!(team_id = %team_id, "tidy deleted a retired team");
                }
                report.deleted_teams.push(team_id.clone());
            }
            // Deleted in LiteLLM already: nothing left to wait for.
            None => {}
        }
        if !options.dry_run {
            storage.delete(&layout::retired_team(&team_id)).await?;
        }
    }
    Ok(())
}

impl TidyReport {
    fn to_json(&self, dry_run: bool) -> Value {
        json!({
            "deleted": self.deleted,
            "kept": self.kept,
            "stale_index_entries": self.stale_index_entries,
            "deleted_teams": self.deleted_teams,
            "retired_teams_kept": self.retired_teams_kept,
            "dry_run": dry_run,
        })
    }
}

/// Runs one tidy for the request's mount and logs what it did.
async fn run_logged(
    state: &MountState,
    req: &Request,
    options: TidyOptions,
    message: &'static str,
) -> Result<TidyReport> {
    let client = state.client(&req.storage).await?;
    let report = run(&client, &req.storage, Mount::of(req), options, req.now).await?;
    tracing::info!(
        deleted = report.deleted.len(),
        kept = report.kept,
        stale_index_entries = report.stale_index_entries,
        dry_run = options.dry_run,
        "{message}"
    );
    Ok(report)
}

async fn tidy(state: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    let options = TidyOptions {
        dry_run: req.data.bool_or_default("dry_run"),
        safety_buffer: safety_buffer(&req)?,
        wal_min_age: engine::wal_rollback_min_age(),
    };
    let report = run_logged(&state, &req, options, "tidy ran").await?;
    Ok(Some(Response::data(report.to_json(options.dry_run))))
}

/// The stored auto-tidy settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoTidy {
    /// Whether tidy runs periodically.
    pub enabled: bool,
    /// Seconds between runs.
    pub interval_duration: u64,
    /// Seconds past expiry an accounted-for key is kept.
    pub safety_buffer: u64,
}

impl Default for AutoTidy {
    fn default() -> AutoTidy {
        AutoTidy {
            enabled: false,
            interval_duration: DEFAULT_INTERVAL.as_secs(),
            safety_buffer: DEFAULT_SAFETY_BUFFER.as_secs(),
        }
    }
}

impl AutoTidy {
    /// The stored settings, or the defaults (disabled).
    pub async fn load(storage: &Storage) -> Result<AutoTidy> {
        Ok(schema::load(storage, layout::AUTO_TIDY)
            .await?
            .unwrap_or_default())
    }
}

/// When a tidy (or auto-tidy) run started.
#[derive(Serialize, Deserialize)]
struct LastRun {
    unix_secs: u64,
}

impl LastRun {
    fn at(now: SystemTime) -> LastRun {
        LastRun {
            unix_secs: now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }
}

async fn last_auto_tidy(storage: &Storage) -> Result<Option<SystemTime>> {
    Ok(schema::load::<LastRun>(storage, layout::LAST_AUTO_TIDY)
        .await?
        .map(|l| SystemTime::UNIX_EPOCH + Duration::from_secs(l.unix_secs)))
}

async fn read_auto_tidy(_: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    let settings = AutoTidy::load(&req.storage).await?;
    let last = last_auto_tidy(&req.storage)
        .await?
        .map(|t| humantime::format_rfc3339_seconds(t).to_string());
    Ok(Some(Response::data(json!({
        "enabled": settings.enabled,
        "interval_duration": settings.interval_duration,
        "safety_buffer": settings.safety_buffer,
        "last_auto_tidy": last,
    }))))
}

async fn write_auto_tidy(_: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    let mut settings = AutoTidy::load(&req.storage).await?;
    if let Some(enabled) = req.data.bool("enabled") {
        settings.enabled = enabled;
    }
    if let Some(interval) = req.data.duration("interval_duration") {
        if interval.is_zero() {
            return Err(Error::invalid(
                "interval_duration must be greater than zero",
            ));
        }
        settings.interval_duration = interval.as_secs().max(1);
    }
    if req.data.is_set("safety_buffer") {
        settings.safety_buffer = safety_buffer(&req)?.as_secs();
    }
    schema::store(&req.storage, layout::AUTO_TIDY, &settings, false).await?;
    Ok(None)
}

fn safety_buffer(req: &Request) -> Result<Duration> {
    let buffer = req.data.duration_or_default("safety_buffer");
    if buffer.is_zero() {
        return Err(Error::invalid("safety_buffer must be greater than zero"));
    }
    Ok(buffer)
}

/// Runs tidy from the host's rollback tick when auto-tidy is enabled and due. Failures are
/// logged, never returned: a failed rollback request can fail an unmount.
pub async fn periodic(state: Arc<MountState>, req: Request) -> Result<()> {
    if let Err(e) = auto_tidy(&state, &req).await {
        tracing::warn!(error = %e, "auto-tidy failed; it runs again after the next interval");
    }
    Ok(())
}

async fn auto_tidy(state: &MountState, req: &Request) -> Result<()> {
    let settings = AutoTidy::load(&req.storage).await?;
    if !settings.enabled {
        return Ok(());
    }
    let now = req.now;
    let interval = Duration::from_secs(settings.interval_duration);
    // A clock that went back counts as due rather than stalling the schedule.
    let due = match last_auto_tidy(&req.storage).await? {
        Some(last) => now
            .duration_since(last)
            .map_or(true, |since| since >= interval),
        None => true,
    };
    if !due || Config::load(&req.storage).await?.is_none() {
        return Ok(());
    }
    // Recorded before running, so a failing tidy waits for the next interval instead of
    // retrying (and logging) every minute.
    schema::store(
        &req.storage,
        layout::LAST_AUTO_TIDY,
        &LastRun::at(now),
        false,
    )
    .await?;
    let options = TidyOptions {
        dry_run: false,
        safety_buffer: Duration::from_secs(settings.safety_buffer),
        wal_min_age: engine::wal_rollback_min_age(),
    };
    run_logged(state, req, options, "auto-tidy ran").await?;
    Ok(())
}

/// `(prefix, "<prefix>-<role>")` for every role of the mount.
async fn role_alias_stems(storage: &Storage) -> Result<BTreeSet<(String, String)>> {
    let mut stems = BTreeSet::new();
    for name in storage.list(layout::ROLES).await? {
        if let Some(role) = Role::load(storage, &name).await? {
            let stem = alias::stem(&role.key_alias_prefix, &name);
            stems.insert((role.key_alias_prefix, stem));
        }
    }
    Ok(stems)
}

/// Whether a listed key is one this mount issues: alias `<prefix>-<role>-<12 hex>` of one of
/// its roles (the shape `creds/<role>` gives), stamped with this mount at issue, and not a
/// static role's (whose name may look like `<role>-<12 hex>`).
fn is_ours(key: &ListedKey, stems: &BTreeSet<(String, String)>, mount: Mount<'_>) -> bool {
    alias::issued_stem(&key.key_alias).is_some_and(|stem| stems.iter().any(|(_, s)| s == stem))
        && mount.owns(&key.metadata)
        && !stamps::is_static(&key.metadata)
}

/// Aliases named by WAL entries of issues that may still be running.
async fn issues_in_flight(
    storage: &Storage,
    now: SystemTime,
    min_age: Duration,
) -> Result<HashSet<String>> {
    let mut aliases = HashSet::new();
    for id in wal::list(storage).await? {
        // An unreadable entry might guard any key: better to stop than to guess.
        let Some(entry) = wal::get(storage, &id).await? else {
            continue;
        };
        if entry.kind != secret_key::WAL_KIND || entry.age(now) >= min_age {
            continue;
        }
        // An entry of this kind that does not decode guards no key we could name.
        if let Ok(wal) = entry.decode::<IssueWal>() {
            aliases.insert(wal.key_alias);
        }
    }
    Ok(aliases)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    const OURS: Mount<'static> = Mount {
        path: "litellm/",
        uuid: "u-1",
    };

    fn listed(alias: &str, mount: &str) -> ListedKey {
        let mut metadata = Map::new();
        Mount {
            path: mount,
            uuid: "u-1",
        }
        .apply(&mut metadata);
        ListedKey {
            token: "t".into(),
            key_alias: alias.into(),
            metadata,
            expires_at: None,
            created_at: None,
        }
    }

    #[test]
    fn only_our_alias_shape_and_mount_are_ours() {
        let stems: BTreeSet<(String, String)> = [
            ("vault".to_string(), "vault-dev".to_string()),
            ("team".to_string(), "team-a.b".to_string()),
        ]
        .into();
        let ours = |alias: &str| is_ours(&listed(alias, "litellm/"), &stems, OURS);
        assert!(ours("vault-dev-0123456789ab"));
        assert!(ours("team-a.b-abcdefabcdef"));
        // Another role sharing the prefix, or the name as a prefix of another role's.
        assert!(!ours("vault-other-0123456789ab"));
        assert!(!ours("vault-dev-x-0123456789ab"));
        // Not the random suffix issue gives: wrong length, upper case, not hex.
        assert!(!ours("vault-dev-0123456789a"));
        assert!(!ours("vault-dev-0123456789abc"));
        assert!(!ours("vault-dev-0123456789AB"));
        assert!(!ours("vault-dev-0123456789ag"));
        assert!(!ours("vault-dev"));
        assert!(!ours("dev-0123456789ab"));
        // Same shape, other mount or no stamp.
        let mut other = listed("vault-dev-0123456789ab", "litellm/");
        other.metadata[stamps::MOUNT_UUID] = json!("u-2");
        assert!(!is_ours(&other, &stems, OURS));
        let mut unstamped = listed("vault-dev-0123456789ab", "litellm/");
        unstamped.metadata.clear();
        assert!(!is_ours(&unstamped, &stems, OURS));
    }
}

//! `roles/<name>` and `roles/`: what a credential issued for a role may do in LiteLLM, and how
//! long its lease lives.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::engine::client::{ChosenKey, GenerateKeyRequest, duration_string};
use crate::engine::error::{Error, Result};
use crate::engine::key_owner::{self, KeyOwner};
use crate::engine::key_settings::{self, Wanted};
use crate::engine::role_team::{self, RoleLimits};
use crate::engine::schema;
use crate::engine::stamps::{self, Stamps};
use crate::engine::{MountState, layout};
use crate::framework::{
    DefaultValue, Field, FieldData, FieldType, Operation, Path, Request, Response, Storage,
    existence_check, handler,
};

/// What issued keys' aliases start with unless the role says otherwise.
const DEFAULT_KEY_ALIAS_PREFIX: &str = "vault";
/// Keys that can call models but not LiteLLM's management API.
const DEFAULT_KEY_TYPE: &str = "llm_api";

/// What a budget window may be, as error messages say it.
const BUDGET_WINDOWS: &str = "use <number><unit> with unit s, m, h, d, w or mo (e.g. 30d, 1mo), or hourly, daily, weekly, monthly";

const MAX_NAME_LEN: usize = 64;
const MAX_PREFIX_LEN: usize = 32;
/// Bytes of metadata keys and values a role may carry: they travel with every key issued and
/// are stored with it in LiteLLM's database, and the role entry must stay well within storage
/// entry limits (raft's default `max_entry_size` is 1 MiB).
const MAX_METADATA_BYTES: usize = 16 * 1024;

static FIELDS: &[Field] = &[
    Field::new("name", FieldType::String, "Name of the role.").required(),
    Field::new(
        "models",
        FieldType::CommaStringSlice,
        "Models the key may call; empty means all models the proxy allows.",
    ),
    Field::new(
        "max_budget",
        FieldType::Float,
        "Maximum spend of each key, in USD; unset means no limit.",
    ),
    Field::new(
        "budget_duration",
        FieldType::String,
        "Window after which a key's spend resets, in LiteLLM's format: e.g. 30s, 10m, 1h, 7d, 2w, 1mo, hourly, daily, weekly, monthly.",
    ),
    Field::new(
        "tpm_limit",
        FieldType::Int,
        "Tokens per minute allowed to each key.",
    ),
    Field::new(
        "rpm_limit",
        FieldType::Int,
        "Requests per minute allowed to each key.",
    ),
    Field::new(
        "max_parallel_requests",
        FieldType::Int,
        "Concurrent requests allowed to each key.",
    ),
    Field::new(
        "role_max_budget",
        FieldType::Float,
        "Maximum spend of all keys of the role together, in USD, enforced by a LiteLLM team the role owns; survives revocations and re-issues.",
    ),
    Field::new(
        "role_budget_duration",
        FieldType::String,
        "Window after which the role's spend resets (LiteLLM resets on calendar boundaries: 1d at 00:00 UTC, 1mo on the 1st).",
    ),
    Field::new(
        "role_rpm_limit",
        FieldType::Int,
        "Requests per minute of all keys of the role together.",
    ),
    Field::new(
        "role_tpm_limit",
        FieldType::Int,
        "Tokens per minute of all keys of the role together.",
    ),
    Field::new(
        "user_max_budget",
        FieldType::Float,
        "Maximum spend of all keys one LiteLLM user holds under this role, in USD (a team-member budget). Needs user_id or user_id_template.",
    ),
    Field::new(
        "user_budget_duration",
        FieldType::String,
        "Window after which each user's spend under this role resets.",
    ),
    Field::new(
        "user_rpm_limit",
        FieldType::Int,
        "Requests per minute of all keys one user holds under this role.",
    ),
    Field::new(
        "user_tpm_limit",
        FieldType::Int,
        "Tokens per minute of all keys one user holds under this role.",
    ),
    Field::new(
        "team_id",
        FieldType::String,
        "LiteLLM team the keys belong to. Excludes team_id_template and the role_*/user_* limits (which use a team the role owns).",
    ),
    Field::new(
        "user_id",
        FieldType::String,
        "LiteLLM user the keys belong to. Excludes user_id_template.",
    ),
    Field::new(
        "team_id_template",
        FieldType::String,
        "LiteLLM team of each key, from the caller's identity entity, e.g. team-{{identity.entity.metadata.team}}. Placeholders: {{identity.entity.id}}, {{identity.entity.name}}, {{identity.entity.metadata.<key>}}, {{identity.entity.aliases.<mount accessor>.name}}, {{identity.entity.aliases.<mount accessor>.metadata.<key>}}, and the caller's groups: {{identity.groups.ids.<group id>.name}}, {{identity.groups.ids.<group id>.metadata.<key>}}, {{identity.groups.names.<group name>.id}}, {{identity.groups.names.<group name>.metadata.<key>}}. Callers without an entity, the group or the value get an error. Excludes team_id; empty clears.",
    ),
    Field::new(
        "user_id_template",
        FieldType::String,
        "LiteLLM user of each key, from the caller's identity entity, e.g. {{identity.entity.name}}. Same placeholders as team_id_template. Callers without an entity or the value get an error. Excludes user_id; empty clears.",
    ),
    Field::new(
        "metadata",
        FieldType::KeyValueMap,
        "Metadata attached to each key (keys starting with vault_ are reserved).",
    ),
    Field::new(
        "key_alias_prefix",
        FieldType::String,
        "Prefix of each key's alias: <prefix>-<role>-<random>.",
    )
    .default_value(DefaultValue::Str(DEFAULT_KEY_ALIAS_PREFIX)),
    Field::new(
        "key_type",
        FieldType::String,
        "LiteLLM key type: llm_api (LLM routes only, the default) or default.",
    )
    .default_value(DefaultValue::Str(DEFAULT_KEY_TYPE)),
    key_settings::FIELD,
    key_settings::VERIFY_FIELD,
    Field::new(
        "ttl",
        FieldType::Duration,
        "Default lease TTL; 0 uses the mount's default.",
    ),
    Field::new(
        "max_ttl",
        FieldType::Duration,
        "Maximum lease TTL; 0 uses the mount's maximum.",
    ),
];

static LIST_FIELDS: &[Field] = &[];

/// The fields of `names`, as roles define them: static roles shape their key with the same ones.
pub(crate) fn shared_fields(names: &[&str]) -> Vec<Field> {
    names
        .iter()
        .filter_map(|name| FIELDS.iter().find(|f| f.name == *name).copied())
        .collect()
}

const SYNOPSIS: &str = "Manage the roles credentials are issued for.";
const DESCRIPTION: &str = "\
A role scopes the LiteLLM keys issued by creds/<name>: the models they may call, budget and
rate limits, team and user, metadata, and the lease TTLs. Writes change only the fields given.
Deleting a role does not revoke its leases; they stay revocable.

Three kinds of limit: max_budget, budget_duration, tpm_limit, rpm_limit and
max_parallel_requests cap each key (one lease) on its own. role_max_budget, role_budget_duration,
role_rpm_limit and role_tpm_limit cap all keys of the role together, through a LiteLLM team the
role owns (its id is role_team_id; a deleted role's team is deleted by tidy once its keys are
gone). user_max_budget, user_budget_duration, user_rpm_limit and user_tpm_limit cap all keys
one LiteLLM user holds under the role (needs user_id or user_id_template). LiteLLM enforces the
team limits at once in each proxy instance; spend shows in usage/<name> 10-15 s later.

key_settings carries every other /key/generate field (soft_budget, model_rpm_limit,
allowed_routes, aliases, object_permission, ...). A write checks the role against LiteLLM
before storing it: models the proxy does not serve are refused (see the models path), and new
key_settings are tried on a test key that is deleted at once, so LiteLLM's refusal fails the
write. verify=false skips both checks.

Team and user are either fixed (team_id, user_id) or derived from the caller's Vault identity
entity when the key is issued (team_id_template, user_id_template), so LiteLLM attributes spend
to the person or workload that asked for the key.";

/// A stored role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    /// Allowed models (empty = all).
    #[serde(default)]
    pub models: Vec<String>,
    /// Spend limit per key.
    pub max_budget: Option<f64>,
    /// Spend reset window (LiteLLM format).
    pub budget_duration: Option<String>,
    /// Tokens per minute.
    pub tpm_limit: Option<i64>,
    /// Requests per minute.
    pub rpm_limit: Option<i64>,
    /// Concurrent requests.
    pub max_parallel_requests: Option<i64>,
    /// LiteLLM team.
    pub team_id: Option<String>,
    /// LiteLLM user.
    pub user_id: Option<String>,
    /// Identity template for the team, as written (validated on write; see [`identity`](crate::engine::identity)).
    /// Defaulted so roles stored before templates existed still load.
    #[serde(default)]
    pub team_id_template: Option<String>,
    /// Identity template for the user, as written.
    #[serde(default)]
    pub user_id_template: Option<String>,
    /// Extra key metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Alias prefix.
    pub key_alias_prefix: String,
    /// LiteLLM key type.
    pub key_type: String,
    /// Lease TTL in seconds (0 = mount default).
    pub ttl: u64,
    /// Lease max TTL in seconds (0 = mount max).
    pub max_ttl: u64,
    /// Limits of all the role's keys together and per user (see [`role_team`]).
    #[serde(default, flatten)]
    pub limits: RoleLimits,
    /// The LiteLLM team the role owns while it sets limits; new for each incarnation.
    #[serde(default)]
    pub team: Option<String>,
    /// Further `/key/generate` fields (see [`key_settings`]).
    #[serde(default)]
    pub key_settings: Map<String, Value>,
}

impl Default for Role {
    fn default() -> Role {
        Role {
            models: Vec::new(),
            max_budget: None,
            budget_duration: None,
            tpm_limit: None,
            rpm_limit: None,
            max_parallel_requests: None,
            team_id: None,
            user_id: None,
            team_id_template: None,
            user_id_template: None,
            metadata: BTreeMap::new(),
            key_alias_prefix: DEFAULT_KEY_ALIAS_PREFIX.to_string(),
            key_type: DEFAULT_KEY_TYPE.to_string(),
            ttl: 0,
            max_ttl: 0,
            limits: RoleLimits::default(),
            team: None,
            key_settings: Map::new(),
        }
    }
}

impl Role {
    /// Loads role `name`.
    pub async fn load(storage: &Storage, name: &str) -> Result<Option<Role>> {
        Ok(schema::load(storage, &layout::role(name)).await?)
    }

    /// The lease TTL.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl)
    }

    /// The lease max TTL.
    pub fn max_ttl(&self) -> Duration {
        Duration::from_secs(self.max_ttl)
    }

    /// The `/key/generate` request for a key of this role: its typed fields, `owner`, and the
    /// role's metadata under the engine's `stamps` (which win). The role's `key_settings` go
    /// along separately ([`Client::generate_with`](crate::engine::client::Client::generate_with)).
    pub fn generate_request(
        &self,
        key_alias: String,
        key: Option<ChosenKey>,
        lifetime: Duration,
        owner: KeyOwner,
        stamps: &Stamps<'_>,
    ) -> GenerateKeyRequest {
        let mut metadata: Map<String, Value> = self
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        stamps.apply(&mut metadata);
        GenerateKeyRequest {
            key,
            key_alias,
            duration: Some(duration_string(lifetime.as_secs())),
            models: self.models.clone(),
            max_budget: self.max_budget,
            budget_duration: self.budget_duration.clone(),
            tpm_limit: self.tpm_limit,
            rpm_limit: self.rpm_limit,
            max_parallel_requests: self.max_parallel_requests,
            team_id: owner.team_id,
            user_id: owner.user_id,
            metadata,
            key_type: Some(self.key_type.clone()),
        }
    }

    /// How reads show what a key of the role is made with (roles and static roles alike).
    pub fn key_fields_json(&self) -> Map<String, Value> {
        let fields = json!({
            "models": self.models,
            "max_budget": self.max_budget,
            "budget_duration": self.budget_duration,
            "tpm_limit": self.tpm_limit,
            "rpm_limit": self.rpm_limit,
            "max_parallel_requests": self.max_parallel_requests,
            "team_id": self.team_id,
            "user_id": self.user_id,
            "metadata": self.metadata,
            "key_alias_prefix": self.key_alias_prefix,
            "key_type": self.key_type,
            "key_settings": self.key_settings,
        });
        match fields {
            Value::Object(fields) => fields,
            _ => Map::new(),
        }
    }

    /// Applies the fields present in `d` (partial update), validating each. Fields absent
    /// from the path's table (a static role has no templates, team limits or TTLs) are
    /// simply never present.
    pub(crate) fn apply(&mut self, d: &FieldData) -> Result<()> {
        if let Some(models) = d.strings("models") {
            self.models = models.to_vec();
        }
        if let Some(budget) = d.float("max_budget") {
            if budget < 0.0 {
                return Err(Error::invalid("max_budget must be zero or more"));
            }
            self.max_budget = Some(budget);
        }
        if let Some(window) = d.str("budget_duration") {
            let window = window.trim();
            self.budget_duration = if window.is_empty() {
                None
            } else {
                validate_budget_duration(window)?;
                Some(window.to_string())
            };
        }
        for (name, slot) in [
            ("tpm_limit", &mut self.tpm_limit),
            ("rpm_limit", &mut self.rpm_limit),
            ("max_parallel_requests", &mut self.max_parallel_requests),
        ] {
            if let Some(limit) = d.int(name) {
                if limit < 0 {
                    return Err(Error::invalid(format!("{name} must be zero or more")));
                }
                *slot = Some(limit);
            }
        }
        for (name, slot) in [
            ("team_id", &mut self.team_id),
            ("user_id", &mut self.user_id),
        ] {
            if let Some(id) = d.str(name) {
                let id = id.trim();
                *slot = (!id.is_empty()).then(|| id.to_string());
            }
        }
        for (name, slot) in [
            ("team_id_template", &mut self.team_id_template),
            ("user_id_template", &mut self.user_id_template),
        ] {
            if let Some(source) = d.str(name) {
                let source = source.trim();
                // Empty clears, as for team_id / user_id: the way to switch back to a fixed id.
                *slot = if source.is_empty() {
                    None
                } else {
                    key_owner::parse_template(name, source)?;
                    Some(source.to_string())
                };
            }
        }
        // Checked on the merged role, so a partial update cannot end up with both.
        for (id, id_name, template, template_name) in [
            (
                &self.team_id,
                "team_id",
                &self.team_id_template,
                "team_id_template",
            ),
            (
                &self.user_id,
                "user_id",
                &self.user_id_template,
                "user_id_template",
            ),
        ] {
            if id.is_some() && template.is_some() {
                return Err(Error::invalid(format!(
                    "set either {id_name} or {template_name}, not both (write the other one empty to clear it)"
                )));
            }
        }
        if let Some(metadata) = d.map("metadata") {
            if let Some(reserved) = metadata
                .keys()
                .find(|k| k.starts_with(stamps::RESERVED_PREFIX))
            {
                return Err(Error::invalid(format!(
                    "metadata key {reserved:?} is reserved: keys starting with {:?} are set by the engine",
                    stamps::RESERVED_PREFIX
                )));
            }
            let size: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
            if size > MAX_METADATA_BYTES {
                return Err(Error::invalid(format!(
                    "metadata is too large: {size} bytes of keys and values, at most {MAX_METADATA_BYTES}"
                )));
            }
            self.metadata = metadata.clone();
        }
        if let Some(prefix) = d.str("key_alias_prefix") {
            validate_alias_prefix(prefix)?;
            self.key_alias_prefix = prefix.to_string();
        }
        if let Some(key_type) = d.str("key_type") {
            if !matches!(key_type, "llm_api" | "default") {
                return Err(Error::invalid(format!(
                    "key_type must be llm_api or default, not {key_type:?}"
                )));
            }
            self.key_type = key_type.to_string();
        }
        if let Some(settings) = key_settings::parse(d)? {
            self.key_settings = settings;
        }
        if let Some(ttl) = d.duration("ttl") {
            self.ttl = ttl.as_secs();
        }
        if let Some(max_ttl) = d.duration("max_ttl") {
            self.max_ttl = max_ttl.as_secs();
        }
        self.limits.apply(d, |name, window| {
            validate_budget_duration(window).map_err(|_| {
                Error::invalid(format!("{name} {window:?} is invalid: {BUDGET_WINDOWS}"))
            })
        })?;
        role_team::validate(self)?;
        key_settings::validate(self)?;
        if self.ttl > 0 && self.max_ttl > 0 && self.ttl > self.max_ttl {
            return Err(Error::invalid(format!(
                "ttl ({}s) must not be greater than max_ttl ({}s)",
                self.ttl, self.max_ttl
            )));
        }
        Ok(())
    }
}

/// The `roles/<name>` and `roles/` paths.
pub fn paths() -> Vec<Path<MountState>> {
    vec![
        Path::new("roles/", LIST_FIELDS)
            .operation(Operation::List, handler(list))
            .help("List the roles.", "Lists the names of all roles."),
        Path::new("roles/{name}", FIELDS)
            .operation(Operation::Read, handler(read))
            .operation(Operation::Create, handler(write))
            .operation(Operation::Update, handler(write))
            .operation(Operation::Delete, handler(delete))
            .existence(existence_check(exists))
            .help(SYNOPSIS, DESCRIPTION),
    ]
}

/// The role name from the path, checked.
pub fn role_name(d: &FieldData) -> Result<&str> {
    let name = d.str("name").unwrap_or_default();
    validate_name(name)?;
    Ok(name)
}

async fn exists(_: Arc<MountState>, req: Request) -> Result<bool> {
    // An invalid name does not exist: the write then refuses it with a 400 naming the field,
    // where an error here would reach the caller as a 500 "internal error".
    let Ok(name) = role_name(&req.data) else {
        return Ok(false);
    };
    Ok(req.storage.get(&layout::role(name)).await?.is_some())
}

async fn list(_: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    Ok(Some(Response::list(req.storage.list(layout::ROLES).await?)))
}

async fn read(state: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    let name = role_name(&req.data)?;
    // The role issue uses, from the same cache.
    let Some(role) = state.role(&req.storage, name).await? else {
        return Ok(None);
    };
    let mut data = role.key_fields_json();
    for (name, value) in [
        ("team_id_template", json!(role.team_id_template)),
        ("user_id_template", json!(role.user_id_template)),
        ("ttl", json!(role.ttl)),
        ("max_ttl", json!(role.max_ttl)),
        ("role_team_id", json!(role.team)),
    ] {
        data.insert(name.into(), value);
    }
    data.extend(role.limits.to_json());
    Ok(Some(Response::data(Value::Object(data))))
}

async fn write(state: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    let name = role_name(&req.data)?;
    if req.storage.get(&layout::static_role(name)).await?.is_some() {
        return Err(Error::invalid(format!(
            "name {name:?} is a static role already: a name may not be both a role and a static role"
        )));
    }
    let before = Role::load(&req.storage, name).await?;
    let mut role = before.clone().unwrap_or_default();
    role.apply(&req.data)?;
    // A role with limits owns a team in LiteLLM, and a write may check the role against it;
    // otherwise the write touches only storage.
    let owns_team = role.limits.any() || before.as_ref().is_some_and(|b| b.team.is_some());
    let wanted = Wanted::of(&req, before.as_ref(), &role);
    let client = match (owns_team || wanted.any(), owns_team) {
        (false, _) => None,
        (true, true) => Some(state.client(&req.storage).await?),
        (true, false) => match state.client(&req.storage).await {
            Err(Error::NotConfigured) => None,
            client => Some(client?),
        },
    };
    let checked = key_settings::check(client.as_ref(), &req, name, &role, wanted).await?;
    let stored = role_team::store(client.as_ref(), &req, name, before.as_ref(), role).await;
    state.invalidate(&layout::role(name));
    let warnings = checked.finish(&req).await;
    stored?;
    Ok((!warnings.is_empty()).then(|| Response {
        warnings,
        ..Response::default()
    }))
}

async fn delete(state: Arc<MountState>, req: Request) -> Result<Option<Response>> {
    let name = role_name(&req.data)?;
    let key = layout::role(name);
    // The team would take the role's live keys with it: tidy deletes it once they are gone.
    if let Some(team_id) = Role::load(&req.storage, name).await?.and_then(|r| r.team) {
        role_team::retire(&req.storage, name, &team_id, req.now).await?;
    }
    req.storage.delete(&key).await?;
    state.invalidate(&key);
    Ok(None)
}

/// `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 64 characters.
fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = name.len() <= MAX_NAME_LEN
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "name {name:?} is invalid: use 1 to {MAX_NAME_LEN} letters, digits, '_', '.' or '-', starting with a letter or digit"
        )))
    }
}

/// `[A-Za-z0-9_-]`, 1 to 32 characters.
fn validate_alias_prefix(prefix: &str) -> Result<()> {
    let valid = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "key_alias_prefix {prefix:?} is invalid: use 1 to {MAX_PREFIX_LEN} letters, digits, '_' or '-'"
        )))
    }
}

/// Accepts exactly what LiteLLM parses without surprises: `<n><unit>` with unit s, m, h, d, w
/// or mo, or the words hourly, daily, weekly, monthly. LiteLLM itself silently ignores trailing
/// text ("1h30m" means one hour) and fails on bare numbers, so both are refused here.
fn validate_budget_duration(window: &str) -> Result<()> {
    if matches!(window, "hourly" | "daily" | "weekly" | "monthly") {
        return Ok(());
    }
    let digits = window.chars().take_while(char::is_ascii_digit).count();
    let unit = &window[digits..];
    let number_ok = digits > 0 && window[..digits].parse::<u32>().is_ok_and(|n| n > 0);
    if number_ok && matches!(unit, "s" | "m" | "h" | "d" | "w" | "mo") {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "budget_duration {window:?} is invalid: {BUDGET_WINDOWS}"
        )))
    }
}

#[cfg(test)]
#[path = "path_roles_tests.rs"]
mod tests;

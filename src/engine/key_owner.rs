//! Who a key is issued for: the LiteLLM team and user of a role's key, fixed or rendered from
//! the caller's identity entity (and its groups) with the role's templates ([`identity`]).

use crate::engine::error::{Error, Result};
use crate::engine::identity::{self, Template};
use crate::engine::path_roles::Role;
use crate::framework::Request;
use crate::proto::logical;

/// The LiteLLM team and user a key is issued for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyOwner {
    /// LiteLLM team.
    pub team_id: Option<String>,
    /// LiteLLM user.
    pub user_id: Option<String>,
}

/// The team and user of a key issued for `role` to the caller of `req`: the fixed ids, or the
/// templates rendered for the caller's identity entity. The entity is looked up once, and only
/// when a template is set. Any failure to resolve is the caller's 400, naming the template
/// field and what is missing.
pub async fn resolve(role: &Role, req: &Request) -> Result<KeyOwner> {
    // A role that owns a team puts every key into it (it cannot set team_id or a template).
    let fixed_team = role.team.clone().or_else(|| role.team_id.clone());
    let team = RoleTemplate::load("team_id_template", &role.team_id_template)?;
    let user = RoleTemplate::load("user_id_template", &role.user_id_template)?;
    if team.is_none() && user.is_none() {
        return Ok(KeyOwner {
            team_id: fixed_team,
            user_id: role.user_id.clone(),
        });
    }
    let fields: Vec<&str> = [&team, &user]
        .into_iter()
        .flatten()
        .map(|t| t.field)
        .collect();
    let need = if fields.len() > 1 { "need" } else { "needs" };
    let fields = fields.join(" and ");
    if req.entity_id.is_empty() {
        return Err(Error::invalid(format!(
            "the role's {fields} {need} the caller's identity entity, but the token has none (root tokens and tokens without an entity cannot use this role)"
        )));
    }
    let entity = req.system.entity(&req.entity_id).await?.ok_or_else(|| {
        Error::invalid(format!(
            "the role's {fields} {need} the caller's identity entity, but entity {:?} was not found",
            req.entity_id
        ))
    })?;
    // Groups only when a template names one: a host call more.
    let groups = match [&team, &user]
        .into_iter()
        .flatten()
        .any(|t| t.template.uses_groups())
    {
        true => req.system.groups_for_entity(&req.entity_id).await?,
        false => Vec::new(),
    };
    Ok(KeyOwner {
        team_id: match team {
            Some(team) => Some(team.render(&entity, &groups)?),
            None => fixed_team,
        },
        user_id: match user {
            Some(user) => Some(user.render(&entity, &groups)?),
            None => role.user_id.clone(),
        },
    })
}

/// A role's template field, parsed.
struct RoleTemplate<'a> {
    field: &'static str,
    source: &'a str,
    template: Template,
}

impl<'a> RoleTemplate<'a> {
    /// Parses the stored template of `field`, if set. Parsed again at issue rather than
    /// trusted, so a template stored by a laxer version fails clearly, before any host call.
    fn load(field: &'static str, source: &'a Option<String>) -> Result<Option<RoleTemplate<'a>>> {
        let Some(source) = source.as_deref() else {
            return Ok(None);
        };
        Ok(Some(RoleTemplate {
            field,
            source,
            template: parse_template(field, source)?,
        }))
    }

    /// The value for `entity` (a member of `groups`), or a 400 naming the field and what the
    /// entity lacks.
    fn render(&self, entity: &logical::Entity, groups: &[logical::Group]) -> Result<String> {
        identity::render(&self.template, entity, groups).map_err(|e| {
            Error::invalid(format!(
                "{} {:?} cannot be resolved for the caller: {e}",
                self.field, self.source
            ))
        })
    }
}

/// Parses template field `name`, with an error naming the field.
pub fn parse_template(name: &str, source: &str) -> Result<Template> {
    Template::parse(source)
        .map_err(|e| Error::invalid(format!("{name} {source:?} is invalid: {e}")))
}

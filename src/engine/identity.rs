//! Identity templates: strings such as `team-{{identity.entity.metadata.team}}` that a role uses
//! to derive a key's LiteLLM `user_id` / `team_id` from the caller's Vault identity entity.
//!
//! The syntax is the subset of Vault's identity templating (`sdk/helper/identitytpl`) that
//! names one entity:
//!
//! | placeholder | value |
//! |---|---|
//! | `{{identity.entity.id}}` | the entity's id |
//! | `{{identity.entity.name}}` | the entity's name |
//! | `{{identity.entity.metadata.<key>}}` | a metadata value of the entity |
//! | `{{identity.entity.aliases.<mount accessor>.name}}` | the name of the entity's alias on that auth mount |
//! | `{{identity.entity.aliases.<mount accessor>.metadata.<key>}}` | a metadata value of that alias |
//! | `{{identity.groups.ids.<group id>.name}}` | the name of a group the entity is in |
//! | `{{identity.groups.ids.<group id>.metadata.<key>}}` | a metadata value of that group |
//! | `{{identity.groups.names.<group name>.id}}` | the id of a group the entity is in |
//! | `{{identity.groups.names.<group name>.metadata.<key>}}` | a metadata value of that group |
//!
//! Groups are the entity's groups as the host reports them (Vault's `GroupsForEntity`: direct
//! and inherited memberships); a group id or name is what follows `ids.` / `names.` up to the
//! next dot, as in Vault.
//!
//! Text around placeholders is kept as is; spaces just inside the braces are ignored, as in
//! Vault. A template is parsed (and so validated) once, then rendered per entity. Unlike Vault's
//! ACL templating, a value that is missing is an error, never an empty string: a key must not
//! silently lose its owner.

use crate::proto::logical;

const OPEN: &str = "{{";
const CLOSE: &str = "}}";
const ENTITY_PREFIX: &str = "identity.entity.";
const GROUPS_PREFIX: &str = "identity.groups.";
const SUPPORTED: &str = "{{identity.entity.id}}, {{identity.entity.name}}, \
{{identity.entity.metadata.<key>}}, {{identity.entity.aliases.<mount accessor>.name}}, \
{{identity.entity.aliases.<mount accessor>.metadata.<key>}}, \
{{identity.groups.ids.<group id>.name}}, {{identity.groups.ids.<group id>.metadata.<key>}}, \
{{identity.groups.names.<group name>.id}} and {{identity.groups.names.<group name>.metadata.<key>}}";

/// A parsed identity template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Value(Placeholder),
}

/// One `{{…}}` of a template: which value of the entity it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Placeholder {
    /// `identity.entity.id`.
    EntityId,
    /// `identity.entity.name`.
    EntityName,
    /// `identity.entity.metadata.<key>`.
    EntityMetadata(String),
    /// `identity.entity.aliases.<accessor>.name`.
    AliasName {
        /// Mount accessor of the auth method, e.g. `auth_userpass_1a2b3c4d`.
        accessor: String,
    },
    /// `identity.entity.aliases.<accessor>.metadata.<key>`.
    AliasMetadata {
        /// Mount accessor of the auth method.
        accessor: String,
        /// Metadata key of the alias.
        key: String,
    },
    /// `identity.groups.ids.<id>.name` or `identity.groups.names.<name>.id`: a field of one of
    /// the entity's groups.
    Group {
        /// Which group.
        group: GroupRef,
        /// What of it.
        field: GroupField,
    },
}

/// A group named in a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GroupRef {
    /// `identity.groups.ids.<id>`.
    Id(String),
    /// `identity.groups.names.<name>`.
    Name(String),
}

/// A value of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GroupField {
    Id,
    Name,
    Metadata(String),
}

/// Why a template cannot be parsed, or cannot be rendered for an entity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template is empty.
    #[error("the template is empty")]
    Empty,
    /// `{{` without a following `}}`, at this character index (0-based; shown 1-based).
    #[error("unclosed placeholder: the {{{{ at position {} has no matching }}}}", .0 + 1)]
    Unclosed(usize),
    /// `}}` without an opening `{{`, at this character index (0-based; shown 1-based).
    #[error("the }}}} at position {} closes no placeholder", .0 + 1)]
    Unopened(usize),
    /// Only literal text: a fixed value belongs in the role's `user_id` / `team_id`, and a
    /// template without placeholders is usually a typo such as single braces.
    #[error("it has no {{{{…}}}} placeholder; supported: {SUPPORTED}")]
    NoPlaceholder,
    /// `{{}}` (or only spaces between the braces).
    #[error("empty placeholder {{{{}}}}; supported: {SUPPORTED}")]
    EmptyPlaceholder,
    /// A placeholder this engine does not know (e.g. Vault's `identity.groups.*`).
    #[error("unknown placeholder {{{{{0}}}}}; supported: {SUPPORTED}")]
    UnknownPlaceholder(String),
    /// The entity lacks an entity metadata key.
    #[error("entity {entity:?} has no metadata key {key:?}")]
    MissingMetadata {
        /// Name of the entity.
        entity: String,
        /// The missing key.
        key: String,
    },
    /// The entity has no alias on the auth mount.
    #[error("entity {entity:?} has no alias on the auth mount with accessor {accessor:?}")]
    MissingAlias {
        /// Name of the entity.
        entity: String,
        /// The mount accessor.
        accessor: String,
    },
    /// The entity's alias lacks a metadata key.
    #[error(
        "the alias of entity {entity:?} on the auth mount with accessor {accessor:?} has no metadata key {key:?}"
    )]
    MissingAliasMetadata {
        /// Name of the entity.
        entity: String,
        /// The mount accessor.
        accessor: String,
        /// The missing key.
        key: String,
    },
    /// The entity is in no group with this id or name.
    #[error("entity {entity:?} is not a member of a group with {by} {group:?}")]
    MissingGroup {
        /// Name of the entity.
        entity: String,
        /// `id` or `name`.
        by: &'static str,
        /// The group id or name.
        group: String,
    },
    /// The entity's group lacks a metadata key.
    #[error("group {group:?} of entity {entity:?} has no metadata key {key:?}")]
    MissingGroupMetadata {
        /// Name of the entity.
        entity: String,
        /// Name of the group.
        group: String,
        /// The missing key.
        key: String,
    },
    /// Every placeholder resolved, but to empty strings and there is no literal text.
    #[error("it renders to an empty string for entity {0:?}")]
    EmptyResult(String),
}

impl Template {
    /// Parses `source`, refusing anything [`render`] could not handle.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        if source.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut segments = Vec::new();
        let mut rest = source;
        loop {
            let consumed = source.len() - rest.len();
            let Some(open) = rest.find(OPEN) else {
                push_text(&mut segments, source, consumed, rest)?;
                break;
            };
            push_text(&mut segments, source, consumed, &rest[..open])?;
            let inner_start = open + OPEN.len();
            let Some(close) = rest[inner_start..].find(CLOSE) else {
                return Err(TemplateError::Unclosed(char_index(source, consumed + open)));
            };
            let inner = &rest[inner_start..inner_start + close];
            segments.push(Segment::Value(parse_placeholder(inner.trim())?));
            rest = &rest[inner_start + close + CLOSE.len()..];
        }
        if !segments.iter().any(|s| matches!(s, Segment::Value(_))) {
            return Err(TemplateError::NoPlaceholder);
        }
        Ok(Template { segments })
    }

    /// Whether rendering needs the entity's groups (one host call more).
    pub fn uses_groups(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Value(Placeholder::Group { .. })))
    }
}

/// The value of `template` for `entity`, a member of `groups`; fails naming the first missing
/// value.
pub fn render(
    template: &Template,
    entity: &logical::Entity,
    groups: &[logical::Group],
) -> Result<String, TemplateError> {
    let mut out = String::new();
    for segment in &template.segments {
        match segment {
            Segment::Text(text) => out.push_str(text),
            Segment::Value(Placeholder::Group { group, field }) => {
                out.push_str(group_value(group, field, entity, groups)?)
            }
            Segment::Value(placeholder) => out.push_str(value(placeholder, entity)?),
        }
    }
    if out.is_empty() {
        return Err(TemplateError::EmptyResult(entity.name.clone()));
    }
    Ok(out)
}

/// Appends literal text; a stray `}}` is refused because it is almost always a typo.
fn push_text(
    segments: &mut Vec<Segment>,
    source: &str,
    start: usize,
    text: &str,
) -> Result<(), TemplateError> {
    if let Some(at) = text.find(CLOSE) {
        return Err(TemplateError::Unopened(char_index(source, start + at)));
    }
    if !text.is_empty() {
        segments.push(Segment::Text(text.to_string()));
    }
    Ok(())
}

/// Byte offset to character offset, so error positions match what the operator typed.
fn char_index(s: &str, byte: usize) -> usize {
    s.get(..byte).map_or(byte, |prefix| prefix.chars().count())
}

fn parse_placeholder(inner: &str) -> Result<Placeholder, TemplateError> {
    if inner.is_empty() {
        return Err(TemplateError::EmptyPlaceholder);
    }
    let unknown = || TemplateError::UnknownPlaceholder(inner.to_string());
    if let Some(selector) = inner.strip_prefix(GROUPS_PREFIX) {
        return parse_group(selector).ok_or_else(unknown);
    }
    let selector = inner.strip_prefix(ENTITY_PREFIX).ok_or_else(unknown)?;
    if selector == "id" {
        return Ok(Placeholder::EntityId);
    }
    if selector == "name" {
        return Ok(Placeholder::EntityName);
    }
    // Metadata keys may contain dots (Vault takes everything after `metadata.`).
    if let Some(key) = selector.strip_prefix("metadata.") {
        return non_empty(key)
            .map(|key| Placeholder::EntityMetadata(key.to_string()))
            .ok_or_else(unknown);
    }
    let alias = selector.strip_prefix("aliases.").ok_or_else(unknown)?;
    let (accessor, field) = alias.split_once('.').ok_or_else(unknown)?;
    let accessor = non_empty(accessor).ok_or_else(unknown)?.to_string();
    if field == "name" {
        return Ok(Placeholder::AliasName { accessor });
    }
    let key = field
        .strip_prefix("metadata.")
        .and_then(non_empty)
        .ok_or_else(unknown)?;
    Ok(Placeholder::AliasMetadata {
        accessor,
        key: key.to_string(),
    })
}

/// `ids.<id>.name`, `ids.<id>.metadata.<key>`, `names.<name>.id`, `names.<name>.metadata.<key>`.
fn parse_group(selector: &str) -> Option<Placeholder> {
    let (kind, rest) = selector.split_once('.')?;
    let (which, field) = rest.split_once('.')?;
    let which = non_empty(which)?.to_string();
    let (group, own) = match kind {
        "ids" => (GroupRef::Id(which), ("name", GroupField::Name)),
        "names" => (GroupRef::Name(which), ("id", GroupField::Id)),
        _ => return None,
    };
    let field = if field == own.0 {
        own.1
    } else {
        GroupField::Metadata(non_empty(field.strip_prefix("metadata.")?)?.to_string())
    };
    Some(Placeholder::Group { group, field })
}

fn group_value<'g>(
    group: &GroupRef,
    field: &GroupField,
    entity: &logical::Entity,
    groups: &'g [logical::Group],
) -> Result<&'g str, TemplateError> {
    let (by, wanted) = match group {
        GroupRef::Id(id) => ("id", id),
        GroupRef::Name(name) => ("name", name),
    };
    let found = groups
        .iter()
        .find(|g| match group {
            GroupRef::Id(id) => &g.id == id,
            GroupRef::Name(name) => &g.name == name,
        })
        .ok_or_else(|| TemplateError::MissingGroup {
            entity: entity.name.clone(),
            by,
            group: wanted.clone(),
        })?;
    match field {
        GroupField::Id => Ok(&found.id),
        GroupField::Name => Ok(&found.name),
        GroupField::Metadata(key) => found.metadata.get(key).map(String::as_str).ok_or_else(|| {
            TemplateError::MissingGroupMetadata {
                entity: entity.name.clone(),
                group: found.name.clone(),
                key: key.clone(),
            }
        }),
    }
}

/// `s` unless it is empty or holds spaces (never part of a key or accessor Vault accepts).
fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty() && !s.contains(char::is_whitespace)).then_some(s)
}

fn value<'e>(
    placeholder: &Placeholder,
    entity: &'e logical::Entity,
) -> Result<&'e str, TemplateError> {
    let alias = |accessor: &str| {
        entity
            .aliases
            .iter()
            .find(|a| a.mount_accessor == accessor)
            .ok_or_else(|| TemplateError::MissingAlias {
                entity: entity.name.clone(),
                accessor: accessor.to_string(),
            })
    };
    match placeholder {
        Placeholder::EntityId => Ok(&entity.id),
        Placeholder::EntityName => Ok(&entity.name),
        Placeholder::EntityMetadata(key) => {
            entity.metadata.get(key).map(String::as_str).ok_or_else(|| {
                TemplateError::MissingMetadata {
                    entity: entity.name.clone(),
                    key: key.clone(),
                }
            })
        }
        Placeholder::AliasName { accessor } => Ok(&alias(accessor)?.name),
        // Rendered by `group_value`; never reached.
        Placeholder::Group { .. } => Ok(""),
        Placeholder::AliasMetadata { accessor, key } => alias(accessor)?
            .metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| TemplateError::MissingAliasMetadata {
                entity: entity.name.clone(),
                accessor: accessor.clone(),
                key: key.clone(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USERPASS: &str = "auth_userpass_1a2b3c4d";

    fn entity() -> logical::Entity {
        logical::Entity {
            id: "5c1f6a5e-0000-4000-8000-000000000001".into(),
            name: "alice".into(),
            metadata: [
                ("team".to_string(), "research".to_string()),
                ("cost.center".to_string(), "cc-42".to_string()),
                ("blank".to_string(), String::new()),
            ]
            .into(),
            aliases: vec![logical::Alias {
                mount_type: "userpass".into(),
                mount_accessor: USERPASS.into(),
                name: "alice-login".into(),
                metadata: [("org".to_string(), "lab".to_string())].into(),
                ..logical::Alias::default()
            }],
            ..logical::Entity::default()
        }
    }

    fn groups() -> Vec<logical::Group> {
        vec![logical::Group {
            id: "g-1".into(),
            name: "ops".into(),
            metadata: [("budget".to_string(), "ops-team".to_string())].into(),
            ..logical::Group::default()
        }]
    }

    #[test]
    fn each_placeholder_and_literal_text_renders() {
        let cases = [
            (
                "{{identity.entity.id}}",
                "5c1f6a5e-0000-4000-8000-000000000001",
            ),
            ("{{identity.entity.name}}", "alice"),
            ("{{identity.entity.metadata.team}}", "research"),
            ("{{identity.entity.metadata.cost.center}}", "cc-42"),
            (
                "{{identity.entity.aliases.auth_userpass_1a2b3c4d.name}}",
                "alice-login",
            ),
            (
                "{{identity.entity.aliases.auth_userpass_1a2b3c4d.metadata.org}}",
                "lab",
            ),
            ("team-{{identity.entity.metadata.team}}", "team-research"),
            (
                "{{identity.entity.name}}@{{identity.entity.metadata.team}}.x",
                "alice@research.x",
            ),
            ("{{ identity.entity.name }}", "alice"),
            ("a{b}c-{{identity.entity.name}}", "a{b}c-alice"),
            ("ünï-{{identity.entity.name}}", "ünï-alice"),
            ("{{identity.groups.ids.g-1.name}}", "ops"),
            ("{{identity.groups.names.ops.id}}", "g-1"),
            (
                "t-{{identity.groups.names.ops.metadata.budget}}",
                "t-ops-team",
            ),
            ("{{identity.groups.ids.g-1.metadata.budget}}", "ops-team"),
        ];
        for (source, expected) in cases {
            let template = Template::parse(source).unwrap_or_else(|e| panic!("{source}: {e}"));
            assert_eq!(
                render(&template, &entity(), &groups()).as_deref(),
                Ok(expected),
                "{source}"
            );
        }
    }

    #[test]
    fn malformed_templates_are_refused_when_parsed() {
        use TemplateError::*;
        let unknown = |s: &str| UnknownPlaceholder(s.to_string());
        let cases = [
            ("", Empty),
            ("plain-text", NoPlaceholder),
            ("{identity.entity.name}", NoPlaceholder),
            ("{{identity.entity.name", Unclosed(0)),
            ("ab{{identity.entity.name}", Unclosed(2)),
            ("é{{x", Unclosed(1)),
            ("{{identity.entity.name}}{{", Unclosed(24)),
            ("team}}", Unopened(4)),
            ("é-{{identity.entity.name}}-}}", Unopened(27)),
            ("{{}}", EmptyPlaceholder),
            ("x-{{  }}", EmptyPlaceholder),
            (
                "{{identity.entity.email}}",
                unknown("identity.entity.email"),
            ),
            ("{{identity.entity}}", unknown("identity.entity")),
            (
                "{{identity.entity.metadata.}}",
                unknown("identity.entity.metadata."),
            ),
            (
                "{{identity.entity.metadata}}",
                unknown("identity.entity.metadata"),
            ),
            (
                "{{identity.entity.metadata.a b}}",
                unknown("identity.entity.metadata.a b"),
            ),
            (
                "{{identity.groups.ids.x.id}}",
                unknown("identity.groups.ids.x.id"),
            ),
            (
                "{{identity.groups.names.x.name}}",
                unknown("identity.groups.names.x.name"),
            ),
            (
                "{{identity.groups.ids..name}}",
                unknown("identity.groups.ids..name"),
            ),
            (
                "{{identity.groups.names.x.metadata.}}",
                unknown("identity.groups.names.x.metadata."),
            ),
            (
                "{{identity.groups.x.ops.id}}",
                unknown("identity.groups.x.ops.id"),
            ),
            (
                "{{identity.groups.names.ops}}",
                unknown("identity.groups.names.ops"),
            ),
            ("{{entity.name}}", unknown("entity.name")),
            ("{{Identity.Entity.Name}}", unknown("Identity.Entity.Name")),
            (
                "{{identity.entity.aliases.acc}}",
                unknown("identity.entity.aliases.acc"),
            ),
            (
                "{{identity.entity.aliases..name}}",
                unknown("identity.entity.aliases..name"),
            ),
            (
                "{{identity.entity.aliases.acc.id}}",
                unknown("identity.entity.aliases.acc.id"),
            ),
            (
                "{{identity.entity.aliases.acc.metadata.}}",
                unknown("identity.entity.aliases.acc.metadata."),
            ),
        ];
        for (source, expected) in cases {
            assert_eq!(Template::parse(source), Err(expected), "{source:?}");
        }
    }

    #[test]
    fn parse_errors_say_what_is_supported() {
        let err = Template::parse("{{identity.entity.email}}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("{{identity.entity.email}}"), "{err}");
        assert!(err.contains("{{identity.entity.metadata.<key>}}"), "{err}");
    }

    #[test]
    fn missing_values_are_errors_naming_what_is_missing() {
        let cases = [
            (
                "{{identity.entity.metadata.region}}",
                TemplateError::MissingMetadata {
                    entity: "alice".into(),
                    key: "region".into(),
                },
            ),
            (
                "x-{{identity.entity.aliases.auth_ldap_9.name}}",
                TemplateError::MissingAlias {
                    entity: "alice".into(),
                    accessor: "auth_ldap_9".into(),
                },
            ),
            (
                "{{identity.entity.aliases.auth_userpass_1a2b3c4d.metadata.dept}}",
                TemplateError::MissingAliasMetadata {
                    entity: "alice".into(),
                    accessor: USERPASS.into(),
                    key: "dept".into(),
                },
            ),
            (
                "{{identity.entity.metadata.blank}}",
                TemplateError::EmptyResult("alice".into()),
            ),
            (
                "{{identity.groups.ids.g-2.name}}",
                TemplateError::MissingGroup {
                    entity: "alice".into(),
                    by: "id",
                    group: "g-2".into(),
                },
            ),
            (
                "{{identity.groups.names.dev.id}}",
                TemplateError::MissingGroup {
                    entity: "alice".into(),
                    by: "name",
                    group: "dev".into(),
                },
            ),
            (
                "{{identity.groups.names.ops.metadata.region}}",
                TemplateError::MissingGroupMetadata {
                    entity: "alice".into(),
                    group: "ops".into(),
                    key: "region".into(),
                },
            ),
        ];
        for (source, expected) in cases {
            let template = Template::parse(source).unwrap();
            assert_eq!(
                render(&template, &entity(), &groups()),
                Err(expected),
                "{source}"
            );
        }
        let template = Template::parse("{{identity.entity.metadata.region}}").unwrap();
        let err = render(&template, &entity(), &groups())
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"region\"") && err.contains("alice"), "{err}");
        // An empty value inside literal text is not an error: the result is still non-empty.
        let template = Template::parse("t-{{identity.entity.metadata.blank}}").unwrap();
        assert_eq!(render(&template, &entity(), &groups()).as_deref(), Ok("t-"));
    }
}

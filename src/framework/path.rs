//! The path table: URL patterns with named captures, and the operations each path serves.

use std::fmt;
use std::sync::Arc;

use super::field::Field;
use super::{BoxFuture, Request, Response, Result};

/// What the host asks a path to do (`Request.operation` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// `read`.
    Read,
    /// `create`: a write to a path whose existence check found nothing.
    Create,
    /// `update`: any other write.
    Update,
    /// `patch`.
    Patch,
    /// `delete`.
    Delete,
    /// `list`.
    List,
    /// `help`: answered by the framework from the path table.
    Help,
    /// `renew` of a lease this backend issued.
    Renew,
    /// `revoke` of a lease this backend issued.
    Revoke,
    /// `rollback`: the host's periodic tick (periodic function, then WAL rollback).
    Rollback,
    /// OpenBao 2.7 asks before each user request whether the plugin rewrites the path.
    ResolvePath,
    /// Anything else the host may send (`scan`, `header`, auth-only operations).
    Other,
}

impl Operation {
    /// Parses the wire name of an operation.
    pub fn from_wire(name: &str) -> Operation {
        match name {
            "read" => Operation::Read,
            "create" => Operation::Create,
            "update" => Operation::Update,
            "patch" => Operation::Patch,
            "delete" => Operation::Delete,
            "list" => Operation::List,
            "help" => Operation::Help,
            "renew" => Operation::Renew,
            "revoke" => Operation::Revoke,
            "rollback" => Operation::Rollback,
            "resolve-path" => Operation::ResolvePath,
            _ => Operation::Other,
        }
    }

    /// The wire name of the operation.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
            Operation::List => "list",
            Operation::Help => "help",
            Operation::Renew => "renew",
            Operation::Revoke => "revoke",
            Operation::Rollback => "rollback",
            Operation::ResolvePath => "resolve-path",
            Operation::Other => "other",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An async request handler: the backend's shared state and the request, to an optional response.
pub type Handler<S> =
    Arc<dyn Fn(Arc<S>, Request) -> BoxFuture<Result<Option<Response>>> + Send + Sync>;

/// Tells whether the item a write targets exists, so the host can tell `create` from `update`
/// (they are separate ACL capabilities).
pub type ExistenceCheck<S> = Arc<dyn Fn(Arc<S>, Request) -> BoxFuture<Result<bool>> + Send + Sync>;

/// Wraps an `async fn(Arc<S>, Request) -> Result<Option<Response>>` as a [`Handler`].
/// The handler's own error type converts into [`Error`](super::Error), which decides the
/// status.
pub fn handler<S, F, Fut, E>(f: F) -> Handler<S>
where
    F: Fn(Arc<S>, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Response>, E>> + Send + 'static,
    E: Into<super::Error>,
{
    Arc::new(move |state, req| {
        let answer = f(state, req);
        Box::pin(async move { answer.await.map_err(Into::into) })
    })
}

/// Wraps an `async fn(Arc<S>, Request) -> Result<bool>` as an [`ExistenceCheck`].
pub fn existence_check<S, F, Fut, E>(f: F) -> ExistenceCheck<S>
where
    F: Fn(Arc<S>, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<bool, E>> + Send + 'static,
    E: Into<super::Error>,
{
    Arc::new(move |state, req| {
        let answer = f(state, req);
        Box::pin(async move { answer.await.map_err(Into::into) })
    })
}

/// One entry of the path table.
pub struct Path<S> {
    /// Pattern relative to the mount: literal segments and `{name}` captures of one non-empty
    /// segment each, e.g. `roles/{name}`. A trailing `/` (as in `roles/`) is part of the pattern.
    pub pattern: &'static str,
    /// The fields the path accepts; captures must be declared here too.
    pub fields: &'static [Field],
    /// The operations served, each with its handler.
    pub operations: Vec<(Operation, Handler<S>)>,
    /// Present when create and update are distinct for this path.
    pub existence_check: Option<ExistenceCheck<S>>,
    /// One line for `path-help` and OpenAPI summaries.
    pub synopsis: &'static str,
    /// Longer help text.
    pub description: &'static str,
}

impl<S> Path<S> {
    /// Starts a path with no operations.
    pub fn new(pattern: &'static str, fields: &'static [Field]) -> Path<S> {
        Path {
            pattern,
            fields,
            operations: Vec::new(),
            existence_check: None,
            synopsis: "",
            description: "",
        }
    }

    /// Adds an operation.
    pub fn operation(mut self, op: Operation, h: Handler<S>) -> Path<S> {
        self.operations.push((op, h));
        self
    }

    /// Sets the existence check.
    pub fn existence(mut self, check: ExistenceCheck<S>) -> Path<S> {
        self.existence_check = Some(check);
        self
    }

    /// Sets the help texts.
    pub fn help(mut self, synopsis: &'static str, description: &'static str) -> Path<S> {
        self.synopsis = synopsis;
        self.description = description;
        self
    }

    /// The handler for `op`, if this path serves it.
    pub fn handler(&self, op: Operation) -> Option<&Handler<S>> {
        self.operations
            .iter()
            .find(|(o, _)| *o == op)
            .map(|(_, h)| h)
    }

    /// Matches `path` against the pattern, returning the captures in pattern order.
    pub fn matches(&self, path: &str) -> Option<Vec<(&'static str, String)>> {
        match_pattern(self.pattern, path)
    }
}

/// Matches a request path against a pattern (see [`Path::pattern`]).
pub fn match_pattern(pattern: &'static str, path: &str) -> Option<Vec<(&'static str, String)>> {
    let mut captures = Vec::new();
    let mut pattern_segments = pattern.split('/');
    let mut path_segments = path.split('/');
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return Some(captures),
            (Some(p), Some(s)) => {
                if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    if s.is_empty() {
                        return None;
                    }
                    captures.push((name, s.to_string()));
                } else if p != s {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

/// The pattern written as an OpenAPI path template (it already uses `{name}` captures).
pub fn openapi_path(pattern: &str) -> String {
    format!("/{pattern}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_patterns_match_exactly() {
        assert_eq!(match_pattern("config", "config"), Some(vec![]));
        assert_eq!(match_pattern("config", "config/"), None);
        assert_eq!(match_pattern("config", "configs"), None);
        assert_eq!(match_pattern("roles/", "roles/"), Some(vec![]));
        assert_eq!(match_pattern("roles/", "roles"), None);
    }

    #[test]
    fn captures_take_one_non_empty_segment() {
        assert_eq!(
            match_pattern("roles/{name}", "roles/dev"),
            Some(vec![("name", "dev".to_string())])
        );
        assert_eq!(match_pattern("roles/{name}", "roles/"), None);
        assert_eq!(match_pattern("roles/{name}", "roles/a/b"), None);
        assert_eq!(match_pattern("roles/{name}", "creds/a"), None);
    }

    #[test]
    fn operations_round_trip_their_wire_names() {
        for op in [
            Operation::Read,
            Operation::Create,
            Operation::Update,
            Operation::Patch,
            Operation::Delete,
            Operation::List,
            Operation::Help,
            Operation::Renew,
            Operation::Revoke,
            Operation::Rollback,
            Operation::ResolvePath,
        ] {
            assert_eq!(Operation::from_wire(op.as_str()), op);
        }
        assert_eq!(Operation::from_wire("scan"), Operation::Other);
    }
}

//! Why an engine request failed, and the one place that decides how each failure reaches the
//! caller.
//!
//! | failure | status | why |
//! |---|---|---|
//! | bad input, missing role, unconfigured mount | 400 | the caller can fix it |
//! | LiteLLM refused the request (its 4xx) | 400 | the role or config must change; a retry cannot help |
//! | LiteLLM unreachable, disconnected, answering 5xx, 429 or nonsense | 502 | not the caller's fault: Vault's clients retry |
//! | LiteLLM timed out | 504 | as above |
//! | storage or host failure, unreadable stored data | 500 | a fault in Vault or the plugin |
//!
//! Vault's CLI and API client retry every 5xx but 501 (three tries), Vault Agent up to 13:
//! every path that answers 502/504 must leave no key behind in LiteLLM.

use std::borrow::Cow;

use crate::engine::client::ApiError;
use crate::framework::{self, FieldError, StorageError, SystemViewError};

/// The result of an engine step.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An engine failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing is configured at `config` yet.
    #[error("the LiteLLM connection is not configured: write to config first")]
    NotConfigured,
    /// The role named in the path does not exist.
    #[error("role {0:?} does not exist")]
    NoSuchRole(String),
    /// The static role named in the path does not exist.
    #[error("static role {0:?} does not exist")]
    NoSuchStaticRole(String),
    /// The caller's input is wrong; the message names the field and why.
    #[error("{0}")]
    Invalid(String),
    /// A call to LiteLLM failed; `context` says what the engine was doing, in a sentence that
    /// starts with "LiteLLM could not …" or names LiteLLM otherwise.
    #[error("{context}: {source}")]
    LiteLlm {
        /// What the engine was doing.
        context: Cow<'static, str>,
        /// How the call failed.
        #[source]
        source: ApiError,
    },
    /// LiteLLM answered, but with something the engine cannot act on.
    #[error("{0}")]
    LiteLlmAnswer(String),
    /// Something the engine stored, or the host kept for it, cannot be read back.
    #[error("{0}")]
    Unreadable(String),
    /// The stored config no longer builds a client (written by another version, or edited).
    #[error("stored config is unusable: {0}")]
    StoredConfigUnusable(#[source] ApiError),
    /// A failure with a note about cleanup appended, e.g. a key the operator must delete.
    #[error("{error}{note}")]
    Noted {
        /// The failure itself; it decides the status.
        error: Box<Error>,
        /// Appended as is, e.g. "; delete key x by hand".
        note: String,
    },
    /// A framework failure (storage, host, field coercion).
    #[error(transparent)]
    Framework(#[from] framework::Error),
}

impl Error {
    /// A 400 naming the field and why.
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid(message.into())
    }

    /// A failed LiteLLM call while doing `context`.
    pub fn litellm(context: impl Into<Cow<'static, str>>, source: ApiError) -> Error {
        Error::LiteLlm {
            context: context.into(),
            source,
        }
    }

    /// The same failure, with `note` appended to its message as is.
    pub fn noted(self, note: String) -> Error {
        Error::Noted {
            error: Box::new(self),
            note,
        }
    }

    /// The HTTP status the caller gets, for the engine's own failures.
    fn status(&self) -> u16 {
        match self {
            Error::NotConfigured
            | Error::NoSuchRole(_)
            | Error::NoSuchStaticRole(_)
            | Error::Invalid(_) => 400,
            Error::LiteLlm { source, .. } => litellm_status(source),
            Error::LiteLlmAnswer(_) => 502,
            Error::StoredConfigUnusable(_) | Error::Unreadable(_) => 500,
            // Decided by what they wrap (see `From<Error> for framework::Error`).
            Error::Noted { .. } | Error::Framework(_) => 500,
        }
    }
}

/// The status for a failed LiteLLM call (see the table in the module doc).
fn litellm_status(e: &ApiError) -> u16 {
    match e {
        ApiError::Timeout { .. } => 504,
        ApiError::Status { status, .. } if (400..500).contains(status) && *status != 429 => 400,
        ApiError::InvalidConfig(_) => 500,
        ApiError::Unreachable { .. }
        | ApiError::Disconnected { .. }
        | ApiError::Status { .. }
        | ApiError::InvalidResponse { .. } => 502,
    }
}

impl From<Error> for framework::Error {
    fn from(e: Error) -> framework::Error {
        match e {
            Error::Framework(inner) => inner,
            Error::Noted { error, note } => with_note(framework::Error::from(*error), &note),
            e => {
                let status = e.status();
                let message = e.to_string();
                match status {
                    400 => framework::Error::BadRequest(message),
                    500 => framework::Error::Internal(message),
                    _ => framework::Error::Upstream { status, message },
                }
            }
        }
    }
}

fn with_note(e: framework::Error, note: &str) -> framework::Error {
    use framework::Error as E;
    match e {
        E::BadRequest(m) => E::BadRequest(m + note),
        E::Field(f) => E::BadRequest(f.to_string() + note),
        E::Upstream { status, message } => E::Upstream {
            status,
            message: message + note,
        },
        E::Internal(m) => E::Internal(m + note),
        other => other,
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Error {
        Error::Framework(e.into())
    }
}

impl From<SystemViewError> for Error {
    fn from(e: SystemViewError) -> Error {
        Error::Framework(e.into())
    }
}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Error {
        Error::Framework(e.into())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn status_of(e: Error) -> (Option<u16>, String) {
        let message = e.to_string();
        match framework::Error::from(e) {
            framework::Error::BadRequest(m) => {
                assert_eq!(m, message);
                (Some(400), m)
            }
            framework::Error::Internal(m) => (Some(500), m),
            framework::Error::Upstream { status, message } => (Some(status), message),
            _ => (None, message),
        }
    }

    fn status(op: &'static str, status: u16) -> ApiError {
        ApiError::Status {
            op,
            status,
            message: "m".into(),
        }
    }

    #[test]
    fn litellm_failures_that_are_not_the_callers_fault_are_retryable_5xx() {
        let unreachable = ApiError::Unreachable {
            op: "/key/generate",
            base_url: "http://127.0.0.1:1".into(),
            reason: "connection refused".into(),
        };
        let timeout = ApiError::Timeout {
            op: "/key/generate",
            after: Duration::from_secs(2),
        };
        let disconnected = ApiError::Disconnected {
            op: "/key/update",
            reason: "reset".into(),
        };
        let nonsense = ApiError::InvalidResponse {
            op: "/key/info",
            reason: "not JSON".into(),
        };
        let cases = [
            (unreachable, 502),
            (timeout, 504),
            (disconnected, 502),
            (nonsense, 502),
            (status("/key/generate", 500), 502),
            (status("/key/generate", 503), 502),
            (status("/key/generate", 429), 502),
            (status("/key/generate", 400), 400),
            (status("/key/generate", 401), 400),
            (status("/key/delete", 404), 400),
            (ApiError::InvalidConfig("x".into()), 500),
        ];
        for (source, expected) in cases {
            let what = source.to_string();
            let (got, message) =
                status_of(Error::litellm("LiteLLM could not issue the key", source));
            assert_eq!(got, Some(expected), "{what}");
            assert!(
                message.starts_with("LiteLLM could not issue the key: "),
                "{message}"
            );
        }
    }

    #[test]
    fn callers_mistakes_are_400_and_faults_inside_vault_500() {
        assert_eq!(
            status_of(Error::NotConfigured),
            (
                Some(400),
                "the LiteLLM connection is not configured: write to config first".into()
            )
        );
        assert_eq!(
            status_of(Error::NoSuchRole("dev".into())),
            (Some(400), "role \"dev\" does not exist".into())
        );
        assert_eq!(
            status_of(Error::NoSuchStaticRole("st".into())),
            (Some(400), "static role \"st\" does not exist".into())
        );
        assert_eq!(status_of(Error::invalid("ttl is bad")).0, Some(400));
        assert_eq!(
            status_of(Error::StoredConfigUnusable(ApiError::InvalidConfig(
                "x".into()
            )))
            .0,
            Some(500)
        );
        assert_eq!(
            status_of(StorageError("down".into()).into()),
            (Some(500), "storage: down".into())
        );
    }

    #[test]
    fn a_note_keeps_the_status_of_the_failure_it_is_added_to() {
        let timeout = ApiError::Timeout {
            op: "/key/list",
            after: Duration::from_secs(1),
        };
        let noted = Error::litellm("the successor key failed its check", timeout)
            .noted("; delete key x by hand".into());
        let (status, message) = status_of(noted);
        assert_eq!(status, Some(504));
        assert!(message.ends_with("; delete key x by hand"), "{message}");
        let refused = Error::invalid("config was written during the rotation").noted("; n".into());
        assert_eq!(
            status_of(refused),
            (
                Some(400),
                "config was written during the rotation; n".into()
            )
        );
    }
}

//! What can go wrong talking to LiteLLM, classified by whether LiteLLM may have acted.

use std::time::Duration;

/// Errors from talking to LiteLLM.
///
/// Variants separate "did not reach LiteLLM" ([`Unreachable`](Self::Unreachable): nothing was
/// processed, a retry is safe) from outcomes where LiteLLM may have acted
/// ([`Timeout`](Self::Timeout), [`Disconnected`](Self::Disconnected),
/// [`InvalidResponse`](Self::InvalidResponse)), and from LiteLLM's own refusals
/// ([`Status`](Self::Status)). Every message is safe to show to an operator: keys are redacted.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The TCP/TLS connection could not be established (DNS failure, refused, TLS handshake).
    #[error("LiteLLM at {base_url} is unreachable: {reason}")]
    Unreachable {
        /// The route that was being called.
        op: &'static str,
        /// The configured base URL.
        base_url: String,
        /// Why the connection failed, e.g. `connection refused`.
        reason: String,
    },
    /// No complete response within the configured request timeout.
    #[error("LiteLLM {op} timed out after {}", humantime::format_duration(*after))]
    Timeout {
        /// The route that was being called.
        op: &'static str,
        /// The configured request timeout.
        after: Duration,
    },
    /// The connection was closed after the request was sent but before a response arrived,
    /// so the request may or may not have been carried out. Operations that are safe to
    /// repeat (all but generate) have already been retried once when this is returned.
    #[error("LiteLLM {op} failed: connection closed before a response was received ({reason})")]
    Disconnected {
        /// The route that was being called.
        op: &'static str,
        /// Transport detail.
        reason: String,
    },
    /// LiteLLM answered with a non-success HTTP status.
    #[error("LiteLLM {op} failed: HTTP {status}: {message}")]
    Status {
        /// The route that was being called.
        op: &'static str,
        /// HTTP status code.
        status: u16,
        /// LiteLLM's `error.message`, FastAPI's `detail`, or the start of the body (redacted).
        message: String,
    },
    /// A success status with a body that is not the expected JSON (not JSON, truncated,
    /// larger than [`MAX_RESPONSE_BYTES`](super::MAX_RESPONSE_BYTES), or missing a required field).
    #[error("LiteLLM {op} returned an invalid response: {reason}")]
    InvalidResponse {
        /// The route that was being called.
        op: &'static str,
        /// What was wrong with the body.
        reason: String,
    },
    /// The [`ClientConfig`](super::ClientConfig) cannot be used.
    #[error("invalid LiteLLM client configuration: {0}")]
    InvalidConfig(String),
}

impl ApiError {
    /// True when LiteLLM rejected the credentials (HTTP 401 or 403).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }

    /// True for HTTP 404 (e.g. renewing a key that no longer exists).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The HTTP status, for [`ApiError::Status`] only.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The LiteLLM route the failed call went to, if a call was made.
    pub fn op(&self) -> Option<&'static str> {
        match self {
            Self::Unreachable { op, .. }
            | Self::Timeout { op, .. }
            | Self::Disconnected { op, .. }
            | Self::Status { op, .. }
            | Self::InvalidResponse { op, .. } => Some(op),
            Self::InvalidConfig(_) => None,
        }
    }

    /// False only when the request certainly never reached LiteLLM, so it had no effect
    /// (e.g. a refused connection). A generate that fails with `true` may have created a key.
    pub fn may_have_reached_server(&self) -> bool {
        !matches!(self, Self::Unreachable { .. } | Self::InvalidConfig(_))
    }
}

pub(super) fn invalid(op: &'static str, reason: impl Into<String>) -> ApiError {
    ApiError::InvalidResponse {
        op,
        reason: reason.into(),
    }
}

pub(super) fn error_chain(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut messages: Vec<String> = Vec::new();
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            let plain = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Some("connection refused"),
                std::io::ErrorKind::ConnectionReset => Some("connection reset by peer"),
                std::io::ErrorKind::ConnectionAborted => Some("connection aborted"),
                std::io::ErrorKind::UnexpectedEof => Some("unexpected end of stream"),
                std::io::ErrorKind::TimedOut => Some("connection timed out"),
                _ => None,
            };
            if let Some(plain) = plain {
                return plain.to_owned();
            }
        }
        let text = e.to_string();
        // hyper-util wraps causes in generic layers ("client error (Connect)") that say
        // nothing an operator can act on; keep each remaining distinct message once.
        if !text.starts_with("client error (") && !messages.iter().any(|m| m == &text) {
            messages.push(text);
        }
        source = e.source();
    }
    if messages.is_empty() {
        return err.to_string();
    }
    // The last two layers are the specific ones ("tcp connect error: Connection refused").
    let start = messages.len().saturating_sub(2);
    messages[start..].join(": ")
}

//! One exchange with LiteLLM: sending, the one retry after a dropped connection, reading a
//! bounded body, and turning failures and refusals into [`ApiError`]s that quote no secret.

use reqwest::header::AUTHORIZATION;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use super::error::{ApiError, error_chain, invalid};
use super::parse::{litellm_message, redact, truncate_chars};
use super::{Client, MAX_MESSAGE_CHARS, MAX_RESPONSE_BYTES};

impl Client {
    pub(super) fn request(&self, method: Method, url: &Url) -> reqwest::RequestBuilder {
        self.inner
            .http
            .request(method, url.clone())
            .header(AUTHORIZATION, self.inner.auth.clone())
    }

    /// Sends a request and reads the body (bounded), mapping transport failures.
    pub(super) async fn exchange(
        &self,
        op: &'static str,
        rb: reqwest::RequestBuilder,
        retry: Retry,
    ) -> Result<(StatusCode, Vec<u8>), ApiError> {
        let started = std::time::Instant::now();
        let again = match retry {
            Retry::Once => rb.try_clone(),
            Retry::Never => None,
        };
        let mut resp = match rb.send().await {
            Ok(resp) => resp,
            Err(e) => match (self.transport_error(op, &e), again) {
                // uvicorn closes a keep-alive connection after some error answers without
                // saying so, and a request sent on it at that moment dies unanswered. One
                // immediate retry (on a new connection) absorbs that race for operations
                // that are safe to repeat.
                (ApiError::Disconnected { reason, .. }, Some(again)) => {
                    tracing::debug!(
                        op,
                        reason,
                        "LiteLLM connection closed under the request; retrying once"
                    );
                    again
                        .send()
                        .await
                        .map_err(|e| self.transport_error(op, &e))?
                }
                (err, _) => return Err(err),
            },
        };
        let status = resp.status();
        let body = self.read_body(&mut resp).await;
        tracing::debug!(
            op,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_micros() as f64 / 1000.0,
            "LiteLLM call"
        );
        match body {
            Ok(body) => Ok((status, body)),
            // An error status explains itself even if its body is cut short.
            Err(BodyError::TooLarge(partial) | BodyError::Broken(partial, _))
                if !status.is_success() =>
            {
                Ok((status, partial))
            }
            Err(BodyError::TooLarge(_)) => Err(invalid(
                op,
                format!("response body exceeds {MAX_RESPONSE_BYTES} bytes"),
            )),
            Err(BodyError::Broken(_, e)) if e.is_timeout() => Err(ApiError::Timeout {
                op,
                after: self.inner.timeout,
            }),
            Err(BodyError::Broken(_, e)) => Err(invalid(
                op,
                format!(
                    "response body truncated: {}",
                    self.redacted(&error_chain(&e))
                ),
            )),
        }
    }

    pub(super) async fn read_body(
        &self,
        resp: &mut reqwest::Response,
    ) -> Result<Vec<u8>, BodyError> {
        if resp
            .content_length()
            .is_some_and(|len| len > MAX_RESPONSE_BYTES as u64)
        {
            return Err(BodyError::TooLarge(Vec::new()));
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        let room = MAX_RESPONSE_BYTES - body.len();
                        body.extend_from_slice(chunk.get(..room).unwrap_or_default());
                        return Err(BodyError::TooLarge(body));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) => return Err(BodyError::Broken(body, e)),
            }
        }
    }

    pub(super) fn transport_error(&self, op: &'static str, e: &reqwest::Error) -> ApiError {
        if e.is_timeout() {
            ApiError::Timeout {
                op,
                after: self.inner.timeout,
            }
        } else if e.is_connect() {
            ApiError::Unreachable {
                op,
                base_url: self.inner.base.clone(),
                reason: self.redacted(&error_chain(e)),
            }
        } else if e.is_builder() {
            ApiError::InvalidConfig(self.redacted(&error_chain(e)))
        } else {
            ApiError::Disconnected {
                op,
                reason: self.redacted(&error_chain(e)),
            }
        }
    }

    /// Parses a 2xx body, which must be a JSON object, as `T` (a map, or one of the `…Answer`
    /// structs, which read only the fields the client uses); turns a non-2xx answer into
    /// [`ApiError::Status`].
    pub(super) fn expect_success<T: DeserializeOwned>(
        &self,
        op: &'static str,
        status: StatusCode,
        body: &[u8],
    ) -> Result<T, ApiError> {
        if !status.is_success() {
            return Err(ApiError::Status {
                op,
                status: status.as_u16(),
                message: self.error_message(status, body),
            });
        }
        // Every target takes any object, so a data error means the body is not one (serde
        // would also fill a struct from an array: that is refused too). The message of a
        // syntax error gives a position, never the input.
        let object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        match serde_json::from_slice::<T>(body) {
            Ok(answer) if object => Ok(answer),
            Ok(_) => Err(invalid(op, "body is not a JSON object")),
            Err(e) if e.is_data() => Err(invalid(op, "body is not a JSON object")),
            Err(e) if e.is_eof() => Err(invalid(op, format!("body is truncated JSON ({e})"))),
            Err(e) => Err(invalid(op, format!("body is not JSON ({e})"))),
        }
    }

    /// The human part of an error body, redacted.
    pub(super) fn error_message(&self, status: StatusCode, body: &[u8]) -> String {
        let message = litellm_message(body).unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("no response body")
                    .to_owned()
            } else {
                text.to_owned()
            }
        });
        // Redact before truncating, so a cut never leaves a partial key that is too short
        // to be recognised.
        truncate_chars(&self.redacted(&message), MAX_MESSAGE_CHARS)
    }

    pub(super) fn redacted(&self, text: &str) -> String {
        redact(text, &[self.inner.master_key.as_str()])
    }
}

/// Whether a request may be sent again after the connection died under it. Generate is
/// not: the first attempt may have created a key, and a second would create another.
#[derive(Clone, Copy)]
pub(super) enum Retry {
    Once,
    Never,
}

pub(super) enum BodyError {
    /// More than [`MAX_RESPONSE_BYTES`]; carries what was read up to the limit.
    TooLarge(Vec<u8>),
    /// The body stream failed; carries what was read before.
    Broken(Vec<u8>, reqwest::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::client::types::DeleteAnswer;
    use crate::engine::client::{ClientConfig, OP_DELETE};

    #[test]
    fn success_bodies_must_be_json_objects() {
        let client = Client::new(&ClientConfig::new("http://127.0.0.1:1", "sk-master")).unwrap();
        let answer = |body: &str| {
            client
                .expect_success::<DeleteAnswer>(OP_DELETE, StatusCode::OK, body.as_bytes())
                .map(|a| a.deleted_keys)
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            answer(r#" {"deleted_keys":[]}"#),
            Ok(Some(serde_json::json!([])))
        );
        // serde alone would fill the struct from an array.
        for not_an_object in ["[[]]", "[]", "1", "\"x\"", "null"] {
            let err = answer(not_an_object).unwrap_err();
            assert!(
                err.ends_with("body is not a JSON object"),
                "{not_an_object}: {err}"
            );
        }
        assert!(
            answer("{\"deleted_keys\":")
                .unwrap_err()
                .contains("truncated")
        );
        assert!(answer("<html>").unwrap_err().contains("not JSON"));
    }
}

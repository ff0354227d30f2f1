//! How to reach a LiteLLM proxy: the client's settings and the one `base_url` rule.

use std::fmt;
use std::time::Duration;

use reqwest::Url;

/// Request timeout used by [`ClientConfig::new`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Connection settings for a LiteLLM proxy.
#[derive(Clone)]
pub struct ClientConfig {
    /// Base URL of the proxy, `http://` or `https://`, optionally with a path prefix
    /// (for a proxy mounted below a sub-path). A trailing `/` is ignored.
    pub base_url: String,
    /// Master key (or any admin-capable key) sent as `Authorization: Bearer …`.
    pub master_key: String,
    /// Deadline for one whole exchange: connect, send, and read the response body.
    pub request_timeout: Duration,
    /// PEM bundle of CA certificates. When set, it is the only trust anchor: the platform's
    /// roots are not consulted, so a private CA cannot be bypassed by a public one.
    pub ca_cert: Option<String>,
    /// Skip TLS certificate verification entirely (development only).
    pub insecure_tls: bool,
}

impl ClientConfig {
    /// A configuration with [`DEFAULT_REQUEST_TIMEOUT`], platform trust roots and
    /// certificate verification on.
    pub fn new(base_url: impl Into<String>, master_key: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            master_key: master_key.into(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            ca_cert: None,
            insecure_tls: false,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("master_key", &"[redacted]")
            .field("request_timeout", &self.request_timeout)
            .field("ca_cert", &self.ca_cert.as_ref().map(|_| "<PEM>"))
            .field("insecure_tls", &self.insecure_tls)
            .finish()
    }
}

/// The base URL as the client uses it: an absolute http(s) URL with a host, without user
/// info, query or fragment, and without a trailing slash. The error names `base_url` and why.
pub fn validate_base_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url =
        Url::parse(trimmed).map_err(|e| format!("base_url {trimmed:?} is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "base_url must use http or https, not {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("base_url must name a host".into());
    }
    // Credentials in the URL would end up in error messages; the master key is the only
    // credential and it travels in a header.
    if !url.username().is_empty() || url.password().is_some() {
        return Err("base_url must not contain a user name or password".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("base_url must not contain a query or fragment".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_validation() {
        let ok = |u: &str| validate_base_url(u);
        assert_eq!(
            ok("http://127.0.0.1:4000/").as_deref(),
            Ok("http://127.0.0.1:4000")
        );
        assert_eq!(
            ok("https://gw.example/litellm/").as_deref(),
            Ok("https://gw.example/litellm")
        );
        assert!(ok("ftp://x").is_err());
        assert!(ok("http://user:pw@x").is_err());
        assert!(ok("http://x/?a=b").is_err());
        assert!(ok("not a url").is_err());
        assert!(ok("").is_err());
        assert!(ok("http://").is_err());
        assert!(ok("litellm:4000").is_err());
        assert!(ok("http://x/#f").is_err());
        let named = ok("ftp://x").unwrap_err();
        assert!(
            named.starts_with("base_url must use http or https"),
            "{named}"
        );
    }
}

//! Secret types: what a lease is, and how renew and revoke find their handler.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use super::Response;
use super::path::Handler;

/// Key in a lease's internal data naming its secret type (the Go framework's convention, so
/// renew and revoke reach the right handler).
pub const SECRET_TYPE_KEY: &str = "secret_type";

/// Lease timing, as the host stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseOptions {
    /// Time to live requested (issue) or current (renew).
    pub ttl: Duration,
    /// The plugin's own maximum; the host lowers it to the mount's.
    pub max_ttl: Duration,
    /// Whether `lease renew` is allowed.
    pub renewable: bool,
    /// The caller's `-increment` on renew (zero when not given).
    pub increment: Duration,
    /// When the lease was first issued (renewals count max TTL from here).
    pub issue_time: SystemTime,
}

/// A lease: timing plus the internal data renew and revoke need. The internal data is stored by
/// the host and never shown to users, but it is still not a place for plaintext credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseSecret {
    /// Lease timing.
    pub lease: LeaseOptions,
    /// Data for renew and revoke, including [`SECRET_TYPE_KEY`].
    pub internal_data: Map<String, Value>,
    /// The lease id (set by the host, present on revoke).
    pub lease_id: String,
}

impl LeaseSecret {
    /// The secret type recorded in the internal data.
    pub fn secret_type(&self) -> Option<&str> {
        self.internal_data
            .get(SECRET_TYPE_KEY)
            .and_then(Value::as_str)
    }

    /// A string from the internal data.
    pub fn internal_str(&self, key: &str) -> Option<&str> {
        self.internal_data.get(key).and_then(Value::as_str)
    }
}

/// A kind of secret the backend issues, with its lease handlers.
pub struct SecretType<S> {
    /// The name stored in each lease's internal data.
    pub name: &'static str,
    /// Extends a lease; `None` makes leases of this type non-renewable.
    pub renew: Option<Handler<S>>,
    /// Ends a lease: must delete the credential, and treat "already gone" as success.
    pub revoke: Handler<S>,
}

impl<S> SecretType<S> {
    /// A response that issues a lease of this type.
    pub fn response(
        &self,
        data: Value,
        mut internal_data: Map<String, Value>,
        lease: LeaseOptions,
    ) -> Response {
        internal_data.insert(
            SECRET_TYPE_KEY.to_string(),
            Value::String(self.name.to_string()),
        );
        Response {
            data: Some(data),
            warnings: Vec::new(),
            secret: Some(LeaseSecret {
                lease: LeaseOptions {
                    renewable: lease.renewable && self.renew.is_some(),
                    ..lease
                },
                internal_data,
                lease_id: String::new(),
            }),
        }
    }
}

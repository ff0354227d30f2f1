//! The host's system view: lease limits of this mount and identity lookups.

use std::collections::BTreeMap;
use std::time::Duration;

use super::lease::MountLeaseLimits;
use super::storage::StorageError;
use crate::proto::logical;
use crate::proto::pb;
use crate::proto::pb::system_view_client::SystemViewClient;
use crate::transport::host_channel::HostChannel;

/// Read access to the host's view of this mount. Cheap to clone.
#[derive(Clone)]
pub enum SystemView {
    /// The host's `pb.SystemView`, reached through the broker.
    Host(SystemViewClient<HostChannel>),
    /// Fixed answers (tests).
    Fixed(FixedSystemView),
}

/// Fixed system-view answers for tests.
#[derive(Debug, Clone)]
pub struct FixedSystemView {
    /// Mount default lease TTL.
    pub default_ttl: Duration,
    /// Mount maximum lease TTL.
    pub max_ttl: Duration,
    /// Known identity entities by id.
    pub entities: BTreeMap<String, logical::Entity>,
}

impl Default for FixedSystemView {
    /// A dev server's defaults: 768 h default and max.
    fn default() -> Self {
        FixedSystemView {
            default_ttl: Duration::from_secs(768 * 3600),
            max_ttl: Duration::from_secs(768 * 3600),
            entities: BTreeMap::new(),
        }
    }
}

impl SystemView {
    /// This mount's default and maximum lease TTLs (mount tuning included).
    pub async fn lease_limits(&self) -> Result<MountLeaseLimits, StorageError> {
        match self {
            SystemView::Host(client) => {
                let mut c1 = client.clone();
                let mut c2 = client.clone();
                let (default_ttl, max_ttl) = tokio::try_join!(
                    c1.default_lease_ttl(pb::Empty {}),
                    c2.max_lease_ttl(pb::Empty {})
                )
                .map_err(|s| StorageError(format!("system view: {}", s.message())))?;
                Ok(MountLeaseLimits {
                    default_ttl: nanos(default_ttl.into_inner().ttl),
                    max_ttl: nanos(max_ttl.into_inner().ttl),
                })
            }
            SystemView::Fixed(f) => Ok(MountLeaseLimits {
                default_ttl: f.default_ttl,
                max_ttl: f.max_ttl,
            }),
        }
    }

    /// The limits `calculate_ttl` needs for a lease that asks for `own_ttl` itself (a role's TTL
    /// or a renewal's increment). When that is non-zero the mount default cannot matter, so it is
    /// not fetched (one host call less on the hot path) and reported as zero.
    pub async fn lease_limits_for(
        &self,
        own_ttl: Duration,
    ) -> Result<MountLeaseLimits, StorageError> {
        if own_ttl.is_zero() {
            return self.lease_limits().await;
        }
        let max_ttl = match self {
            SystemView::Host(client) => nanos(
                client
                    .clone()
                    .max_lease_ttl(pb::Empty {})
                    .await
                    .map_err(|s| StorageError(format!("system view: {}", s.message())))?
                    .into_inner()
                    .ttl,
            ),
            SystemView::Fixed(f) => f.max_ttl,
        };
        Ok(MountLeaseLimits {
            default_ttl: Duration::ZERO,
            max_ttl,
        })
    }

    /// The identity entity `id`, or `None` when the host knows no such entity.
    pub async fn entity(&self, id: &str) -> Result<Option<logical::Entity>, StorageError> {
        match self {
            SystemView::Host(client) => {
                let reply = client
                    .clone()
                    .entity_info(pb::EntityInfoArgs {
                        entity_id: id.to_string(),
                    })
                    .await
                    .map_err(|s| StorageError(format!("system view: {}", s.message())))?
                    .into_inner();
                if !reply.err.is_empty() {
                    return Err(StorageError(format!("system view: {}", reply.err)));
                }
                Ok(reply.entity)
            }
            SystemView::Fixed(f) => Ok(f.entities.get(id).cloned()),
        }
    }
}

/// A Go `time.Duration` (int64 nanoseconds) as a `Duration`; negatives become zero.
pub fn nanos(ns: i64) -> Duration {
    Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

//! The host's system view: lease limits of this mount and identity lookups. The transport
//! implements [`SystemViewBackend`] over the broker connection; [`FixedSystemView`] answers
//! tests, as Go's `logical.StaticSystemView` does.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::lease::MountLeaseLimits;
use crate::proto::logical;

/// The host could not answer a system-view call.
#[derive(Debug, thiserror::Error)]
#[error("system view: {0}")]
pub struct SystemViewError(pub String);

/// What a system-view call returns.
pub type SystemViewFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, SystemViewError>> + Send + 'a>>;

/// The system-view calls the framework makes of its host.
pub trait SystemViewBackend: Send + Sync {
    /// The mount's default lease TTL (mount tuning included).
    fn default_lease_ttl(&self) -> SystemViewFuture<'_, Duration>;
    /// The mount's maximum lease TTL (mount tuning included).
    fn max_lease_ttl(&self) -> SystemViewFuture<'_, Duration>;
    /// The identity entity `id`, or `None` when the host knows no such entity.
    fn entity<'a>(&'a self, id: &'a str) -> SystemViewFuture<'a, Option<logical::Entity>>;
    /// The host's replication state: Vault's `consts.ReplicationState` bit flags.
    fn replication_state(&self) -> SystemViewFuture<'_, u32>;
    /// The identity groups entity `id` is in, directly or inherited (Vault's
    /// `GroupsForEntity`); empty for an unknown entity.
    fn groups_for_entity<'a>(&'a self, id: &'a str) -> SystemViewFuture<'a, Vec<logical::Group>>;
}

/// `consts.ReplicationPerformanceStandby`: OpenBao sets it on read-enabled HA standbys.
const REPLICATION_PERFORMANCE_STANDBY: u32 = 1 << 14;

/// Read access to the host's view of this mount. Cheap to clone.
#[derive(Clone)]
pub struct SystemView(Arc<dyn SystemViewBackend>);

impl SystemView {
    /// A system view served by `backend`.
    pub fn new(backend: impl SystemViewBackend + 'static) -> SystemView {
        SystemView(Arc::new(backend))
    }

    /// This mount's default and maximum lease TTLs (mount tuning included).
    pub async fn lease_limits(&self) -> Result<MountLeaseLimits, SystemViewError> {
        let (default_ttl, max_ttl) =
            tokio::try_join!(self.0.default_lease_ttl(), self.0.max_lease_ttl())?;
        Ok(MountLeaseLimits {
            default_ttl,
            max_ttl,
        })
    }

    /// The limits `calculate_ttl` needs for a lease that asks for `own_ttl` itself (a role's TTL
    /// or a renewal's increment). When that is non-zero the mount default cannot matter, so it is
    /// not fetched (one host call less on the hot path) and reported as zero.
    pub async fn lease_limits_for(
        &self,
        own_ttl: Duration,
    ) -> Result<MountLeaseLimits, SystemViewError> {
        if own_ttl.is_zero() {
            return self.lease_limits().await;
        }
        Ok(MountLeaseLimits {
            default_ttl: Duration::ZERO,
            max_ttl: self.0.max_lease_ttl().await?,
        })
    }

    /// The identity entity `id`, or `None` when the host knows no such entity.
    pub async fn entity(&self, id: &str) -> Result<Option<logical::Entity>, SystemViewError> {
        self.0.entity(id).await
    }

    /// The identity groups entity `id` is in (direct and inherited memberships).
    pub async fn groups_for_entity(
        &self,
        id: &str,
    ) -> Result<Vec<logical::Group>, SystemViewError> {
        self.0.groups_for_entity(id).await
    }

    /// Whether this node is an HA standby (its storage is read-only; writes are forwarded to
    /// the active node). Periodic work skips standbys: only the active node may act on it.
    pub async fn is_standby(&self) -> Result<bool, SystemViewError> {
        Ok(self.0.replication_state().await? & REPLICATION_PERFORMANCE_STANDBY != 0)
    }
}

/// Fixed system-view answers for tests.
#[derive(Debug, Clone)]
pub struct FixedSystemView {
    /// Replication state flags (0: a single node; set bit 14 for a standby).
    pub replication_state: u32,
    /// Mount default lease TTL.
    pub default_ttl: Duration,
    /// Mount maximum lease TTL.
    pub max_ttl: Duration,
    /// Known identity entities by id.
    pub entities: BTreeMap<String, logical::Entity>,
    /// The groups of each entity, by entity id.
    pub groups: BTreeMap<String, Vec<logical::Group>>,
}

impl Default for FixedSystemView {
    /// A dev server's defaults: 768 h default and max.
    fn default() -> Self {
        FixedSystemView {
            replication_state: 0,
            default_ttl: Duration::from_secs(768 * 3600),
            max_ttl: Duration::from_secs(768 * 3600),
            entities: BTreeMap::new(),
            groups: BTreeMap::new(),
        }
    }
}

impl SystemViewBackend for FixedSystemView {
    fn default_lease_ttl(&self) -> SystemViewFuture<'_, Duration> {
        Box::pin(async move { Ok(self.default_ttl) })
    }

    fn max_lease_ttl(&self) -> SystemViewFuture<'_, Duration> {
        Box::pin(async move { Ok(self.max_ttl) })
    }

    fn entity<'a>(&'a self, id: &'a str) -> SystemViewFuture<'a, Option<logical::Entity>> {
        Box::pin(async move { Ok(self.entities.get(id).cloned()) })
    }

    fn replication_state(&self) -> SystemViewFuture<'_, u32> {
        Box::pin(async move { Ok(self.replication_state) })
    }

    fn groups_for_entity<'a>(&'a self, id: &'a str) -> SystemViewFuture<'a, Vec<logical::Group>> {
        Box::pin(async move { Ok(self.groups.get(id).cloned().unwrap_or_default()) })
    }
}

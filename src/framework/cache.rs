//! A cache of values derived from storage entries, dropped when the entry changes: on the
//! plugin's own writes, and on the host's `InvalidateKey` (HA standbys, replication).

use std::collections::HashMap;
use std::sync::RwLock;

/// Values by storage key. Misses are loaded by the caller's function; `None` (no entry) is not
/// cached, so a later write is seen at once.
pub struct StorageCache<V> {
    inner: RwLock<Inner<V>>,
}

struct Inner<V> {
    /// Bumped by every invalidation, so a load that started before a write cannot put the
    /// stale value back.
    generation: u64,
    values: HashMap<String, V>,
}

impl<V> Default for StorageCache<V> {
    fn default() -> Self {
        StorageCache {
            inner: RwLock::new(Inner {
                generation: 0,
                values: HashMap::new(),
            }),
        }
    }
}

impl<V: Clone> StorageCache<V> {
    /// The cached value for `key`, or the result of `load` (cached when it is `Some`).
    pub async fn get_or_load<E, Fut>(
        &self,
        key: &str,
        load: impl FnOnce() -> Fut,
    ) -> Result<Option<V>, E>
    where
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        // The guard is dropped at the end of this statement, before any await.
        let lookup = self
            .inner
            .read()
            .ok()
            .map(|inner| match inner.values.get(key) {
                Some(value) => Ok(value.clone()),
                None => Err(inner.generation),
            });
        let generation = match lookup {
            Some(Ok(value)) => return Ok(Some(value)),
            Some(Err(generation)) => generation,
            // A poisoned lock only costs us the cache.
            None => return load().await,
        };
        let loaded = load().await?;
        if let (Some(value), Ok(mut inner)) = (&loaded, self.inner.write())
            && inner.generation == generation
        {
            inner.values.insert(key.to_string(), value.clone());
        }
        Ok(loaded)
    }

    /// Forgets `key`.
    pub fn invalidate(&self, key: &str) {
        if let Ok(mut inner) = self.inner.write() {
            inner.generation += 1;
            inner.values.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn load(value: Option<u32>) -> Result<Option<u32>, ()> {
        Ok(value)
    }

    #[tokio::test]
    async fn hits_until_invalidated_and_never_caches_misses() {
        let cache = StorageCache::default();
        assert_eq!(cache.get_or_load("a", || load(None)).await, Ok(None));
        assert_eq!(cache.get_or_load("a", || load(Some(1))).await, Ok(Some(1)));
        assert_eq!(
            cache.get_or_load("a", || load(Some(2))).await,
            Ok(Some(1)),
            "cached"
        );
        cache.invalidate("a");
        assert_eq!(cache.get_or_load("a", || load(Some(3))).await, Ok(Some(3)));
    }

    #[tokio::test]
    async fn a_load_overtaken_by_an_invalidation_is_not_cached() {
        let cache = StorageCache::default();
        let value = cache
            .get_or_load("a", || async {
                // A write lands while this (now stale) load is in flight.
                cache.invalidate("a");
                Ok::<_, ()>(Some(1))
            })
            .await;
        assert_eq!(value, Ok(Some(1)));
        assert_eq!(cache.get_or_load("a", || load(Some(2))).await, Ok(Some(2)));
    }

    #[tokio::test]
    async fn errors_pass_through_uncached() {
        let cache: StorageCache<u32> = StorageCache::default();
        assert_eq!(
            cache.get_or_load("a", || async { Err("down") }).await,
            Err("down")
        );
        assert_eq!(
            cache
                .get_or_load("a", || async { Ok::<_, &str>(Some(5)) })
                .await,
            Ok(Some(5))
        );
    }
}

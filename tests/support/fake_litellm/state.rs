//! The fake's state: the key database, faults, counters and the movable clock.

use super::*;

pub(crate) struct Shared {
    pub(crate) master_key: String,
    pub(crate) db: Mutex<Db>,
    pub(crate) faults: Mutex<HashMap<Op, FaultSlot>>,
    pub(crate) counters: [AtomicU64; Op::COUNT],
    pub(crate) clock_offset_ms: AtomicU64,
    /// Unix milliseconds the clock stands still at (plus the offset); 0: it follows real time.
    pub(crate) frozen_at_ms: AtomicU64,
    pub(crate) conns: Mutex<Vec<Weak<ConnCtl>>>,
    /// User ids with `user_role: proxy_admin`.
    pub(crate) proxy_admins: Mutex<HashSet<String>>,
    /// `general_settings.disable_custom_api_keys`.
    pub(crate) custom_keys_disabled: AtomicBool,
    /// Models served besides [`FAKE_MODELS`], with their access groups.
    pub(crate) extra_models: Mutex<Vec<(String, Vec<String>)>>,
}

#[derive(Default)]
pub(crate) struct Db {
    pub(crate) live: HashMap<String, KeyRecord>,
    pub(crate) deleted: HashMap<String, KeyRecord>,
    /// alias → tokens of live keys, so alias checks stay O(1) with many keys (benchmarks).
    pub(crate) by_alias: HashMap<String, HashSet<String>>,
    pub(crate) teams: HashMap<String, TeamRecord>,
    pub(crate) seq: u64,
}

impl Db {
    pub(crate) fn insert(&mut self, record: KeyRecord) {
        if let Some(alias) = &record.key_alias {
            self.by_alias
                .entry(alias.clone())
                .or_default()
                .insert(record.token.clone());
        }
        self.live.insert(record.token.clone(), record);
    }

    pub(crate) fn remove(&mut self, token: &str) -> Option<KeyRecord> {
        let record = self.live.remove(token)?;
        if let Some(alias) = &record.key_alias {
            self.unindex(alias, token);
        }
        Some(record)
    }

    pub(crate) fn set_alias(&mut self, token: &str, alias: Option<String>) {
        let Some(record) = self.live.get_mut(token) else {
            return;
        };
        let old = std::mem::replace(&mut record.key_alias, alias.clone());
        if let Some(old) = old {
            self.unindex(&old, token);
        }
        if let Some(alias) = alias {
            self.by_alias
                .entry(alias)
                .or_default()
                .insert(token.to_owned());
        }
    }

    pub(crate) fn unindex(&mut self, alias: &str, token: &str) {
        if let Some(tokens) = self.by_alias.get_mut(alias) {
            tokens.remove(token);
            if tokens.is_empty() {
                self.by_alias.remove(alias);
            }
        }
    }

    /// The oldest live key with this alias (aliases are unique here, but not always upstream).
    pub(crate) fn by_alias(&self, alias: &str) -> Option<&KeyRecord> {
        self.by_alias
            .get(alias)?
            .iter()
            .filter_map(|t| self.live.get(t))
            .min_by_key(|k| k.seq)
    }

    pub(crate) fn alias_taken(&self, alias: &str, except: Option<&str>) -> bool {
        self.by_alias
            .get(alias)
            .is_some_and(|tokens| tokens.iter().any(|t| Some(t.as_str()) != except))
    }
}

pub(crate) struct FaultSlot {
    pub(crate) fault: Fault,
    pub(crate) remaining: Option<u32>,
    /// Requests let through untouched before the fault applies.
    pub(crate) skip: u32,
}

impl Shared {
    // A panic while holding a lock must not wedge every later request of the test.
    pub(crate) fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every model served, with its access groups.
    pub(crate) fn served_models(&self) -> Vec<(String, Vec<String>)> {
        let extra = self.extra_models.lock().unwrap_or_else(|e| e.into_inner());
        FAKE_MODELS
            .iter()
            .map(|m| ((*m).to_owned(), Vec::new()))
            .chain(extra.iter().cloned())
            .collect()
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, HashMap<Op, FaultSlot>> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn now(&self) -> SystemTime {
        let base = match self.frozen_at_ms.load(Ordering::Relaxed) {
            0 => SystemTime::now(),
            frozen => UNIX_EPOCH + Duration::from_millis(frozen),
        };
        base + Duration::from_millis(self.clock_offset_ms.load(Ordering::Relaxed))
    }

    /// Whether a virtual key may manage keys: its owner is a proxy admin and its type does not
    /// confine it to LLM routes (an `llm_api` key never may, whoever owns it).
    pub(crate) fn is_admin_key(&self, key: &KeyRecord) -> bool {
        key.key_type != "llm_api"
            && key.user_id.as_ref().is_some_and(|user| {
                self.proxy_admins
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(user)
            })
    }

    pub(crate) fn count(&self, op: Op) {
        self.counters[op.index()].fetch_add(1, Ordering::Relaxed);
        self.counters[Op::Any.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The fault for this request, consuming one use of a counted fault.
    pub(crate) fn take_fault(&self, op: Op) -> Fault {
        let mut faults = self.faults();
        let slot_op = if faults.contains_key(&op) {
            op
        } else {
            Op::Any
        };
        let Some(slot) = faults.get_mut(&slot_op) else {
            return Fault::None;
        };
        if slot.skip > 0 {
            slot.skip -= 1;
            return Fault::None;
        }
        let fault = slot.fault.clone();
        if let Some(n) = slot.remaining.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                faults.remove(&slot_op);
            }
        }
        fault
    }

    pub(crate) fn kill_connections(&self) {
        let conns = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|e| e.into_inner()));
        for conn in conns.iter().filter_map(Weak::upgrade) {
            conn.kill();
        }
    }
}

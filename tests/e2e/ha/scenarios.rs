//! Scenarios (a), (e), cache staleness, (c) and (h).

use super::*;

// === (a) ======================================================================================

pub(super) fn issue_through_a_standby(ha: &Ha) {
    let active = ha.cluster.active();
    for standby in ha.cluster.standbys() {
        let offsets: Vec<u64> = (0..NODES).map(|i| ha.cluster.log_offset(i)).collect();
        let started = Instant::now();
        let lease = ha.issue_ok(standby, "litellm", &ha.role, None);
        let took = started.elapsed();
        // The lines are written before the answer, but through the host's log pipe.
        std::thread::sleep(Duration::from_millis(300));
        let logs: Vec<String> = (0..NODES)
            .map(|i| ha.cluster.log_since(i, offsets[i]))
            .collect();
        let issued = |i: usize| lines_with(&logs[i], "issued key").len();
        let generates = |i: usize| {
            lines_with(&logs[i], "LiteLLM call")
                .iter()
                .filter(|l| l.contains("/key/generate"))
                .count()
        };
        assert_eq!(
            (issued(active), generates(active)),
            (1, 1),
            "the active node {} issued the key once:\n{}",
            ha.cluster.node_id(active),
            logs[active]
        );
        for i in (0..NODES).filter(|&i| i != active) {
            assert_eq!(
                (issued(i), generates(i)),
                (0, 0),
                "the standby {} called LiteLLM:\n{}",
                ha.cluster.node_id(i),
                logs[i]
            );
        }
        assert!(
            lines_with(&logs[active], "issued key")[0].contains(&lease.alias),
            "the active node's issue is this lease's key ({})",
            lease.alias
        );
        assert_eq!(ha.key_status(&lease.token), Some(KeyStatus::Active));
        ha.figure(format!(
            "(a) creds through standby {}: {:.0} ms; 1 /key/generate, on the active node {}",
            ha.cluster.node_id(standby),
            took.as_secs_f64() * 1000.0,
            ha.cluster.node_id(active)
        ));
    }
    let live = ha.live_keys(&ha.role);
    assert_eq!(live.len(), 2, "one key per issue: {live:?}");
}

// === (e) ======================================================================================

pub(super) fn tidy_through_a_standby(ha: &Ha) {
    let active = ha.cluster.active();
    let standbys = ha.cluster.standbys();
    let orphan_alias = our_alias("vault", &ha.role);
    let admin = ha.admin.clone();
    let (alias, role) = (orphan_alias.clone(), ha.role.clone());
    let orphan =
        block_on(async move { create_key(&admin, &alias, "litellm/", &role, "600s").await });
    let mut deleted_total = Vec::new();
    let rounds = 6;
    for round in 0..rounds {
        // A key issued through the active node, and tidy through a standby right after it,
        // when the standby's copy of the key index may not have it yet.
        let fresh = ha.issue_ok(active, "litellm", &ha.role, None);
        let standby = standbys[round % standbys.len()];
        let offsets: Vec<u64> = (0..NODES).map(|i| ha.cluster.log_offset(i)).collect();
        let body = ha
            .client(standby)
            .http_ok("PUT", "litellm/tidy", Some(&json!({})));
        std::thread::sleep(Duration::from_millis(300));
        let deleted: Vec<String> = body["data"]["deleted"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        assert!(
            !deleted.contains(&fresh.alias),
            "round {round}: tidy through {} deleted the key issued a moment before: {body}",
            ha.cluster.node_id(standby)
        );
        assert_eq!(
            ha.key_status(&fresh.token),
            Some(KeyStatus::Active),
            "round {round}: the fresh key"
        );
        let ran_on: Vec<&str> = (0..NODES)
            .filter(|&i| !lines_with(&ha.cluster.log_since(i, offsets[i]), "tidy ran").is_empty())
            .map(|i| ha.cluster.node_id(i))
            .collect();
        assert_eq!(
            ran_on,
            vec![ha.cluster.node_id(active)],
            "round {round}: tidy sent to standby {} must run on the active node {} (the only one \
             that may change LiteLLM), ran on {ran_on:?}",
            ha.cluster.node_id(standby),
            ha.cluster.node_id(active)
        );
        deleted_total.extend(deleted);
    }
    assert_eq!(
        deleted_total,
        vec![orphan_alias.clone()],
        "tidy deleted exactly the orphan, once"
    );
    assert_eq!(ha.key_status(&orphan.token), Some(KeyStatus::Deleted));
    ha.figure(format!(
        "(e) {rounds} tidies through standbys right after an issue: deleted only the orphan {orphan_alias}"
    ));
}

// === cache staleness ==========================================================================

pub(super) fn cache_lag(ha: &Ha) {
    let active = ha.cluster.active();
    let standbys = ha.cluster.standbys();
    let mut lags = Vec::new();
    let mut appear = Vec::new();
    for _ in 0..5 {
        let role = unique("hacache");
        let path = format!("litellm/roles/{role}");
        ha.client(active)
            .http_ok("PUT", &path, Some(&json!({ "ttl": "5m" })));
        // How long until each standby sees the new role (the replication lag); its read
        // also fills that standby's role cache.
        let written_at = Instant::now();
        let appeared: Vec<Duration> = std::thread::scope(|scope| {
            let polls: Vec<_> = standbys
                .iter()
                .map(|&s| {
                    let path = &path;
                    scope.spawn(move || {
                        loop {
                            if let Ok((200, _)) =
                                ha.cluster.try_http(s, "GET", path, None, REQUEST_TIMEOUT)
                            {
                                return written_at.elapsed();
                            }
                            assert!(
                                written_at.elapsed() < Duration::from_secs(5),
                                "a new role reached standby {} within 5 s",
                                ha.cluster.node_id(s)
                            );
                        }
                    })
                })
                .collect();
            polls
                .into_iter()
                .map(|p| p.join().expect("poller"))
                .collect()
        });
        appear.extend(appeared);
        ha.client(active).http_ok("DELETE", &path, None);
        let deleted_at = Instant::now();
        // Both standbys polled at once: (last stale answer, first 404, stale answers).
        let per_standby: Vec<(Duration, Duration, u32, usize)> = std::thread::scope(|scope| {
            let polls: Vec<_> = standbys
                .iter()
                .map(|&s| {
                    let path = &path;
                    let role = &role;
                    scope.spawn(move || {
                        let mut served = 0u32;
                        let mut last_stale = Duration::ZERO;
                        loop {
                            match ha.cluster.try_http(s, "GET", path, None, REQUEST_TIMEOUT) {
                                Ok((200, _)) => {
                                    served += 1;
                                    last_stale = deleted_at.elapsed();
                                }
                                Ok((404, _)) => break,
                                other => panic!("reading a deleted role on a standby: {other:?}"),
                            }
                            assert!(
                                deleted_at.elapsed() < Duration::from_secs(5),
                                "standby {} still serves role {role} 5 s after its delete",
                                ha.cluster.node_id(s)
                            );
                        }
                        (last_stale, deleted_at.elapsed(), served, s)
                    })
                })
                .collect();
            polls
                .into_iter()
                .map(|p| p.join().expect("poller"))
                .collect()
        });
        lags.extend(per_standby);
    }
    let worst_stale = lags.iter().map(|l| l.0).max().unwrap_or_default();
    let worst = lags.iter().map(|l| l.1).max().unwrap_or_default();
    let served: u32 = lags.iter().map(|l| l.2).sum();
    let ms = |d: Duration| (d.as_secs_f64() * 10000.0).round() / 10.0;
    ha.figure(format!(
        "cache: a role deleted through the active node (cached on both standbys first) was still \
         served by a standby up to {:.1} ms after the delete returned; first 404 at most {:.1} ms \
         after ({} stale answers over {} standby × delete cases; per case (last stale, first 404) \
         ms: {:?}); for comparison a new role reached a standby after at most {:.1} ms ({:?})",
        ms(worst_stale),
        ms(worst),
        served,
        lags.len(),
        lags.iter().map(|l| (ms(l.0), ms(l.1))).collect::<Vec<_>>(),
        ms(appear.iter().copied().max().unwrap_or_default()),
        appear.iter().map(|d| ms(*d)).collect::<Vec<_>>()
    ));
    // The bound the README states: the replication lag, a few ms on loopback; 1 s is the
    // failure threshold.
    assert!(
        worst < Duration::from_secs(1),
        "standby cache lag {worst:?}"
    );
}

// === (c) ======================================================================================

pub(super) fn step_down_then_expiry(ha: &Ha) {
    let old = ha.cluster.active();
    let short = ha.issue_ok(
        old,
        "litellm",
        &ha.short_role,
        Some(&format!("{SHORT_TTL_SECS}s")),
    );
    let issued_at = Instant::now();
    let long = ha.issue_ok(old, "litellm", &ha.short_role, None);
    let stepped = Instant::now();
    ha.cluster.step_down(old);
    // First creds through another node after the step-down.
    let probe_node = (old + 1) % NODES;
    let mut failures = Vec::new();
    let gap = loop {
        match issue(&ha.client(probe_node), "litellm", &ha.short_role, None) {
            Ok(lease) => {
                ha.record("litellm", &ha.short_role, &lease);
                break stepped.elapsed();
            }
            Err(e) => failures.push(e),
        }
        assert!(
            stepped.elapsed() < Duration::from_secs(30),
            "no creds 30 s after the step-down: {failures:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let new = ha.cluster.wait_new_active(old, Duration::from_secs(30));
    ha.figure(format!(
        "(c) step-down of {}: {} active; first creds through {} {:.2} s after the step-down command ({} failed probes: {:?})",
        ha.cluster.node_id(old),
        ha.cluster.node_id(new),
        ha.cluster.node_id(probe_node),
        gap.as_secs_f64(),
        failures.len(),
        failures.iter().take(3).collect::<Vec<_>>()
    ));
    // Renew through the old leader, now a standby: the key's expiry moves.
    let before = ha.key_expiry(&long.token).expect("an expiry");
    renew(&ha.client(old), &long.id, "20m").expect("renew through the old leader");
    let after = ha.key_expiry(&long.token).expect("an expiry");
    assert!(
        secs_from_now(after) > 19.0 * 60.0 && after > before,
        "renew moved the key's expiry to now + 20 m: {before:?} -> {after:?}"
    );
    // The short lease expires on the new leader, which deletes its key.
    let deadline = issued_at + patient(Duration::from_secs(SHORT_TTL_SECS + 20));
    loop {
        let gone = !ha
            .live_leases("litellm", &ha.short_role)
            .contains(&short.id);
        if gone && ha.key_status(&short.token) == Some(KeyStatus::Deleted) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the {SHORT_TTL_SECS} s lease issued before the step-down: lease gone {gone}, key {:?}",
            ha.key_status(&short.token)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let expired_after = issued_at.elapsed();
    assert_eq!(
        ha.cluster.find_active(),
        Some(new),
        "no other leader change happened meanwhile"
    );
    ha.figure(format!(
        "(c) the {SHORT_TTL_SECS} s lease issued on {} expired on {}: key deleted {:.1} s after issue",
        ha.cluster.node_id(old),
        ha.cluster.node_id(new),
        expired_after.as_secs_f64()
    ));
}

// === (h) ======================================================================================

/// A static role written and rotated through standbys (forwarded: only the active node changes
/// LiteLLM), read on every node, then rotated on schedule by the node that became active after
/// a step-down; one key under the alias at the end, none after the delete.
pub(super) fn static_role_across_nodes(ha: &Ha, name: &str) {
    let alias = format!("vault-{name}");
    let path = format!("litellm/static-roles/{name}");
    let creds_path = format!("litellm/static-creds/{name}");
    let standby = (ha.cluster.active() + 1) % NODES;
    ha.client(standby).http_ok(
        "PUT",
        &path,
        Some(&json!({"rotation_period": "1m", "grace_period": "5s", "models": "fake-gpt"})),
    );
    let read_on = |i: usize| -> Option<Value> {
        let (status, body) = ha.client(i).http("GET", &creds_path, None);
        (status == 200).then(|| body["data"].clone())
    };
    let all_serve = |token: &Value| -> bool {
        (0..NODES).all(|i| read_on(i).is_some_and(|d| d["token_id"] == *token))
    };
    let first = read_on(ha.cluster.active()).expect("static-creds on the active node");
    let deadline = Instant::now() + patient(Duration::from_secs(5));
    while !all_serve(&first["token_id"]) {
        assert!(Instant::now() < deadline, "every node serves the same key");
        std::thread::sleep(Duration::from_millis(50));
    }
    // rotate-role through a standby.
    ha.client(standby)
        .http_ok("PUT", &format!("litellm/rotate-role/{name}"), None);
    let second = read_on(ha.cluster.active()).expect("static-creds after rotate-role");
    assert_ne!(second["token_id"], first["token_id"]);
    let deadline = Instant::now() + patient(Duration::from_secs(5));
    while !all_serve(&second["token_id"]) {
        assert!(
            Instant::now() < deadline,
            "every node serves the rotated key"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A leader change; the new active node's queue rotates on schedule.
    let old = ha.cluster.active();
    ha.cluster.step_down(old);
    let new = ha.cluster.wait_new_active(old, Duration::from_secs(30));
    let stepped = Instant::now();
    let deadline = stepped + patient(Duration::from_secs(100));
    let third = loop {
        if let Some(d) = read_on(new).filter(|d| d["token_id"] != second["token_id"]) {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled rotation on the new active node {}",
            ha.cluster.node_id(new)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    ha.figure(format!(
        "(h) static role: rotated on schedule by {} {:.1} s after the step-down of {} (its rotation was due {} s after rotate-role)",
        ha.cluster.node_id(new),
        stepped.elapsed().as_secs_f64(),
        ha.cluster.node_id(old),
        second["ttl"]
    ));
    let deadline = Instant::now() + patient(Duration::from_secs(30));
    loop {
        let keys = block_on(ha.admin.list_aliases(&alias)).expect("listing the static keys");
        let stable: Vec<_> = keys.iter().filter(|k| k.key_alias == alias).collect();
        if keys.len() == 1
            && stable.len() == 1
            && Some(stable[0].token.as_str()) == third["token_id"].as_str()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "one key under {alias} after the grace period: {keys:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    ha.client(standby).http_ok("DELETE", &path, None);
    let left = block_on(ha.admin.list_aliases(&alias)).expect("listing the static keys");
    assert!(left.is_empty(), "the delete left {left:?}");
}

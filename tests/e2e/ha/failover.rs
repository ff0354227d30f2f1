//! Scenarios (f), (b), (d), (f2) and (g): crashes and the failover under load.

use super::*;

// === (f) ======================================================================================

pub(super) struct Crash {
    pub(super) node: usize,
    pub(super) orphan_token: String,
    pub(super) orphan_alias: String,
    pub(super) crashed_at: Instant,
}

pub(super) fn crash_mid_issue(ha: &Ha) -> Crash {
    let active = ha.cluster.active();
    ha.proxy.hold_next_generate();
    let client = ha.client(active);
    let role = ha.held_role.clone();
    let reader = std::thread::spawn(move || {
        try_http(
            &client,
            "GET",
            &format!("held/creds/{role}"),
            None,
            Duration::from_secs(60),
        )
    });
    let held = ha.cluster.wait_for(
        Duration::from_secs(20),
        "LiteLLM's answer to /key/generate, held by the proxy",
        || ha.proxy.held().first().cloned(),
    );
    let orphan_token = held["token"]
        .as_str()
        .expect("token in /key/generate's answer")
        .to_string();
    let orphan_alias = held["key_alias"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        ha.key_status(&orphan_token),
        Some(KeyStatus::Active),
        "LiteLLM made the key"
    );
    let killed = ha.cluster.kill_plugins(active);
    let crashed_at = Instant::now();
    assert!(
        !killed.is_empty(),
        "a plugin process to kill on the active node"
    );
    // The host respawns the plugin and retries the read once; that issue goes through.
    let retried = reader.join().expect("reader thread");
    let outcome = match &retried {
        Ok((200, body)) => {
            let lease = Lease::from_response(body).expect("a lease");
            ha.record("held", &ha.held_role, &lease);
            format!("the host's retry issued {}", lease.alias)
        }
        other => format!("the read failed: {other:?}"),
    };
    ha.figure(format!(
        "(f) plugin pids {killed:?} SIGKILLed on the active node {} while LiteLLM's answer for {orphan_alias} was held; {outcome}",
        ha.cluster.node_id(active)
    ));
    Crash {
        node: active,
        orphan_token,
        orphan_alias,
        crashed_at,
    }
}

// === (b) ======================================================================================

pub(super) struct Failover {
    pub(super) killed: usize,
    pub(super) new_active: usize,
    pub(super) killed_at: Instant,
    /// Every lease a client got, and what became of the client's revoke of it.
    pub(super) issued: Vec<(Lease, Revoke)>,
    /// Issues in flight when the node died that failed: each may have left a key whose lease
    /// was never written (the new leader's rollback deletes it, or see [`LostLeases`]).
    pub(super) cut_off: usize,
    /// Where each node's log stood at the kill.
    pub(super) log_offsets_at_kill: Vec<u64>,
    /// The issue WAL entries of the main role on the new leader, before its first rollback tick.
    pub(super) wal_entries_left: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Revoke {
    NotTried,
    Done,
    Failed,
}

/// One request a client made.
pub(super) struct Outcome {
    pub(super) client: usize,
    pub(super) cli: bool,
    pub(super) op: &'static str,
    pub(super) node: usize,
    pub(super) started: Instant,
    pub(super) ended: Instant,
    pub(super) result: Result<(), String>,
}

pub(super) fn cli_issue(client: &BaoClient, role: &str) -> Result<Lease, String> {
    let out = client.bao(&["read", "-format=json", &format!("litellm/creds/{role}")]);
    if !out.success() {
        return Err(format!(
            "CLI exit {}: {}",
            out.status,
            out.stderr.trim().replace('\n', " ")
        ));
    }
    serde_json::from_str::<Value>(&out.stdout)
        .ok()
        .and_then(|v| Lease::from_response(&v))
        .ok_or_else(|| format!("CLI printed no lease: {}", out.stdout))
}

pub(super) fn cli_revoke(client: &BaoClient, lease: &str) -> Result<(), String> {
    let out = client.bao(&["lease", "revoke", "-sync", lease]);
    if out.success() {
        Ok(())
    } else {
        Err(format!(
            "CLI exit {}: {}",
            out.status,
            out.stderr.trim().replace('\n', " ")
        ))
    }
}

/// What an error was, in a few words: the victim's port in it means a 307 to the killed
/// leader was followed (reqwest and the CLI both follow it).
pub(super) fn classify(error: &str, victim_addr: &str, to_victim: bool) -> String {
    let cause = match error.find(")): ").or_else(|| error.find("): ")) {
        Some(at) if error.contains("error sending request") => {
            error[at..].trim_start_matches(['(', ')', ':', ' '])
        }
        _ => error,
    };
    let refused = cause.contains("onnection refused");
    // A survivor is listening: a refusal on the way to it is the 307 to the killed leader,
    // followed (reqwest names the first URL, the CLI the one it was sent to).
    if !to_victim && (error.contains(victim_addr) || refused) {
        "307 to the killed leader, followed: refused".to_string()
    } else if refused {
        "connection refused".to_string()
    } else {
        let mut short: String = cause.chars().take(140).collect();
        if let Some(at) = short.find("litellm/creds/") {
            short.truncate(at);
        }
        short
    }
}

pub(super) fn failover_under_load(ha: &Ha) -> Failover {
    let victim = ha.cluster.active();
    let clients = ha.cluster.clients();
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let issued = Arc::new(Mutex::new(Vec::<(Lease, Revoke)>::new()));
    let mut workers = Vec::new();
    for c in 0..HTTP_CLIENTS + CLI_CLIENTS {
        let cli = c >= HTTP_CLIENTS;
        let (clients, stop, outcomes, issued) = (
            clients.clone(),
            stop.clone(),
            outcomes.clone(),
            issued.clone(),
        );
        let role = ha.role.clone();
        workers.push(std::thread::spawn(move || {
            let mut n = c;
            let mut successes = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let node = n % NODES;
                n += 1;
                let started = Instant::now();
                let result = if cli {
                    cli_issue(&clients[node], &role)
                } else {
                    issue(&clients[node], "litellm", &role, None)
                };
                let ok = result.is_ok();
                let lease = result.as_ref().ok().cloned();
                outcomes.lock().unwrap().push(Outcome {
                    client: c,
                    cli,
                    op: "issue",
                    node,
                    started,
                    ended: Instant::now(),
                    result: result.map(|_| ()),
                });
                if let Some(lease) = lease {
                    successes += 1;
                    // Every other lease is revoked at once, through the next node.
                    let revoked = if successes.is_multiple_of(2) {
                        let rnode = n % NODES;
                        let started = Instant::now();
                        let result = if cli {
                            cli_revoke(&clients[rnode], &lease.id)
                        } else {
                            revoke(&clients[rnode], &lease.id)
                        };
                        let done = if result.is_ok() {
                            Revoke::Done
                        } else {
                            Revoke::Failed
                        };
                        outcomes.lock().unwrap().push(Outcome {
                            client: c,
                            cli,
                            op: "revoke",
                            node: rnode,
                            started,
                            ended: Instant::now(),
                            result,
                        });
                        done
                    } else {
                        Revoke::NotTried
                    };
                    issued.lock().unwrap().push((lease, revoked));
                }
                if !ok {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(3));
    let log_offsets_at_kill: Vec<u64> = (0..NODES).map(|i| ha.cluster.log_offset(i)).collect();
    let killed_at = Instant::now();
    ha.cluster.kill(victim);
    // Run until the clients have been served again for a while (at most 20 s after the kill).
    let served_again = |outcomes: &[Outcome]| {
        outcomes
            .iter()
            .filter(|o| o.op == "issue" && o.started >= killed_at && o.result.is_ok())
            .map(|o| o.ended)
            .min()
    };
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let first = served_again(&outcomes.lock().unwrap());
        if first.is_some_and(|t| t.elapsed() > Duration::from_secs(4))
            || killed_at.elapsed() > Duration::from_secs(20)
        {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("client thread");
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let issued = std::mem::take(&mut *issued.lock().unwrap());
    for (lease, _) in &issued {
        ha.record("litellm", &ha.role, lease);
    }
    let first = served_again(&outcomes).expect("creds served again after the kill");
    let gap = first - killed_at;
    let cut_off = outcomes
        .iter()
        .filter(|o| {
            o.op == "issue" && o.started < killed_at && o.ended > killed_at && o.result.is_err()
        })
        .count();

    // Errors, by client kind, target and what they were.
    let victim_addr = ha.client(victim).addr();
    let mut errors: BTreeMap<String, (usize, f64, f64)> = BTreeMap::new();
    for o in &outcomes {
        if let Err(e) = &o.result {
            let to_victim = o.node == victim;
            let to = if to_victim { "killed node" } else { "survivor" };
            let kind = if o.cli { "CLI" } else { "HTTP" };
            let at = if o.ended >= killed_at {
                (o.ended - killed_at).as_secs_f64()
            } else {
                -(killed_at - o.ended).as_secs_f64()
            };
            let entry = errors
                .entry(format!(
                    "{kind} {} → {to}: {}",
                    o.op,
                    classify(e, &victim_addr, to_victim)
                ))
                .or_insert((0, f64::MAX, f64::MIN));
            entry.0 += 1;
            entry.1 = entry.1.min(at);
            entry.2 = entry.2.max(at);
        }
    }
    let total = outcomes.len();
    let ok = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let to_survivors = outcomes.iter().filter(|o| o.node != victim).count();
    let survivor_errors = outcomes
        .iter()
        .filter(|o| o.node != victim && o.result.is_err())
        .count();
    let clients_served: HashSet<usize> = outcomes
        .iter()
        .filter(|o| o.started >= killed_at && o.result.is_ok())
        .map(|o| o.client)
        .collect();
    ha.figure(format!(
        "(b) SIGKILL of the active node {} under {} clients ({HTTP_CLIENTS} HTTP, {CLI_CLIENTS} CLI, \
         round robin over the 3 nodes): first creds served again {:.2} s after the kill; \
         {total} requests, {ok} ok; {survivor_errors} of {to_survivors} requests to survivors failed; \
         {cut_off} issues cut off in flight",
        ha.cluster.node_id(victim),
        HTTP_CLIENTS + CLI_CLIENTS,
        gap.as_secs_f64(),
    ));
    for (what, (count, from, to)) in &errors {
        ha.figure(format!(
            "(b)   {count:>4} × {what}  [{from:+.2} s .. {to:+.2} s after the kill]"
        ));
    }
    let new_active = ha.cluster.wait_new_active(victim, Duration::from_secs(30));
    let wal_entries_left = ha.issue_wal_entries(&ha.role).len();
    assert_eq!(
        clients_served.len(),
        HTTP_CLIENTS + CLI_CLIENTS,
        "every client was served again"
    );
    Failover {
        killed: victim,
        new_active,
        killed_at,
        issued,
        cut_off,
        log_offsets_at_kill,
        wal_entries_left,
    }
}

/// The leases the clients kept (no revoke tried) are renewed, then revoked, through the new
/// leader; the ones whose revoke failed in the failover are revoked again.
pub(super) fn renew_and_revoke_survivors(ha: &Ha, failover: &Failover) {
    let leader = ha.client(failover.new_active);
    let live = ha.live_leases("litellm", &ha.role);
    let survivors: Vec<&Lease> = failover
        .issued
        .iter()
        .filter(|(l, r)| *r == Revoke::NotTried && live.contains(&l.id))
        .map(|(l, _)| l)
        .collect();
    assert!(
        survivors.len() >= 4,
        "at least 4 leases survive to be renewed: {}",
        survivors.len()
    );
    for lease in &survivors {
        renew(&leader, &lease.id, "15m")
            .unwrap_or_else(|e| panic!("renew {} through the new leader: {e}", lease.id));
        let expiry = ha.key_expiry(&lease.token).expect("an expiry");
        assert!(
            secs_from_now(expiry) > 14.0 * 60.0,
            "renew moved {}'s expiry to now + 15 m",
            lease.alias
        );
    }
    let failed: Vec<&Lease> = failover
        .issued
        .iter()
        .filter(|(l, r)| *r == Revoke::Failed && live.contains(&l.id))
        .map(|(l, _)| l)
        .collect();
    let already_deleted = failed
        .iter()
        .filter(|l| ha.key_status(&l.token) == Some(KeyStatus::Deleted))
        .count();
    for lease in survivors.iter().chain(&failed) {
        revoke(&leader, &lease.id)
            .unwrap_or_else(|e| panic!("revoke {} through the new leader: {e}", lease.id));
        assert_eq!(ha.key_status(&lease.token), Some(KeyStatus::Deleted));
    }
    ha.figure(format!(
        "(b) {} leases reached the clients ({} revoked by them, {} revokes failed in the failover); \
         {} kept leases renewed (+15 m in LiteLLM) and revoked through the new leader {}, and the {} \
         with a failed revoke revoked again ({} of those already had their key deleted)",
        failover.issued.len(),
        failover
            .issued
            .iter()
            .filter(|(_, r)| *r == Revoke::Done)
            .count(),
        failover
            .issued
            .iter()
            .filter(|(_, r)| *r == Revoke::Failed)
            .count(),
        survivors.len(),
        ha.cluster.node_id(failover.new_active),
        failed.len(),
        already_deleted
    ));
}

// === (d) ======================================================================================

pub(super) fn rejoin(ha: &Ha, killed: usize) {
    let started = Instant::now();
    ha.cluster.restart(killed);
    let caught_up = started.elapsed();
    let active = ha.cluster.active();
    assert_ne!(active, killed, "the restarted node comes back as a standby");
    assert!(
        !ha.cluster.plugin_pids(killed).is_empty(),
        "it runs its plugin"
    );
    let role_read = ha.cluster.try_http(
        killed,
        "GET",
        &format!("litellm/roles/{}", ha.role),
        None,
        REQUEST_TIMEOUT,
    );
    assert!(
        matches!(role_read, Ok((200, _))),
        "role read on the rejoined node: {role_read:?}"
    );
    let lease = ha.issue_ok(killed, "litellm", &ha.role, None);
    assert_eq!(ha.key_status(&lease.token), Some(KeyStatus::Active));
    renew(&ha.client(killed), &lease.id, "12m").expect("renew through the rejoined node");
    assert!(secs_from_now(ha.key_expiry(&lease.token).expect("an expiry")) > 11.0 * 60.0);
    revoke(&ha.client(killed), &lease.id).expect("revoke through the rejoined node");
    assert_eq!(ha.key_status(&lease.token), Some(KeyStatus::Deleted));
    ha.figure(format!(
        "(d) {} restarted: a caught-up standby (knows the leader, same raft index) {:.1} s after the restart; creds, renew, revoke and a role read through it work",
        ha.cluster.node_id(killed),
        caught_up.as_secs_f64()
    ));
}

// === (f2) + (g) ===============================================================================

pub(super) fn rollback_on_the_new_leader_and_silent_standbys(
    ha: &Ha,
    crash: &Crash,
    failover: &Failover,
) -> LostLeases {
    let active = ha.cluster.active();
    assert_eq!(active, failover.new_active, "no leader change since (b)");
    let standbys = ha.cluster.standbys();
    let offsets: Vec<u64> = (0..NODES).map(|i| ha.cluster.log_offset(i)).collect();
    let window = Instant::now();
    // The new leader's first rollback tick comes 60 s after it became active; a standby's tick
    // comes once a minute too. Wait for both: the orphan deleted, and a standby's tick seen.
    // The cut-off issues' WAL entries are older than the minimum age by then, so the tick that
    // deletes the orphan deletes their keys too; a few seconds are left for it to finish.
    let deadline = failover.killed_at + patient(Duration::from_secs(100));
    let mut rolled_back = None;
    let mut standby_tick = None;
    let extra_keys = || {
        let leases = ha.live_leases("litellm", &ha.role).len();
        ha.live_keys(&ha.role).len().saturating_sub(leases)
    };
    let cut_off_keys = extra_keys();
    loop {
        if rolled_back.is_none() && ha.key_status(&crash.orphan_token) == Some(KeyStatus::Deleted) {
            rolled_back = Some(Instant::now());
        }
        if standby_tick.is_none()
            && standbys.iter().any(|&s| {
                !lines_with(
                    &ha.cluster.log_since(s, offsets[s]),
                    "rollback tick on a standby",
                )
                .is_empty()
            })
        {
            standby_tick = Some(Instant::now());
        }
        let tick_done = rolled_back
            .is_some_and(|at| extra_keys() == 0 || at.elapsed() > Duration::from_secs(5));
        if tick_done && standby_tick.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{:.0} s after the kill: orphan {} rolled back: {}, keys of cut-off issues left: {}, \
             a standby tick seen: {}",
            failover.killed_at.elapsed().as_secs_f64(),
            crash.orphan_alias,
            rolled_back.is_some(),
            extra_keys(),
            standby_tick.is_some()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    // Every cut-off key that had a WAL entry is rolled back; a key left over got past the plugin
    // (its WAL entry removed, its answer sent) and OpenBao died before it wrote the lease.
    let stem = format!("vault-{}-", ha.role);
    let cut_offs_rolled_back: HashSet<String> = lines_with(
        &ha.cluster
            .log_since(active, failover.log_offsets_at_kill[active]),
        "rolled back a key whose issue did not complete",
    )
    .iter()
    .filter_map(|line| alias_in(line, &stem))
    .collect();
    let lost = LostLeases {
        count: extra_keys(),
        killed_at: SystemTime::now() - failover.killed_at.elapsed(),
    };
    // Told apart from a rollback that did not happen: every WAL entry the kill left is rolled
    // back and none is left, while the index still holds every key it leaves (the plugin
    // believes a lease has it; see the final step).
    assert_eq!(
        cut_offs_rolled_back.len(),
        failover.wal_entries_left,
        "the WAL entries left by the kill are the keys rolled back"
    );
    let pending = ha.issue_wal_entries(&ha.role);
    assert!(
        pending.is_empty(),
        "WAL entries of cut-off issues left after the rollback tick: {pending:?}"
    );
    assert_eq!(
        cut_offs_rolled_back.len() + lost.count,
        cut_off_keys,
        "each key of a cut-off issue is rolled back ({cut_offs_rolled_back:?}) or lost its lease \
         write ({} keys)",
        lost.count
    );
    assert!(
        lost.count <= failover.cut_off,
        "{} keys without a lease, {} issues cut off",
        lost.count,
        failover.cut_off
    );
    std::thread::sleep(Duration::from_millis(500));
    let logs: Vec<String> = (0..NODES)
        .map(|i| ha.cluster.log_since(i, offsets[i]))
        .collect();
    // (f): the new active node did it.
    let rolled = lines_with(
        &logs[active],
        "rolled back a key whose issue did not complete",
    );
    assert!(
        rolled.iter().any(|l| l.contains(&crash.orphan_alias)),
        "the new active node {} logged the rollback of {}:\n{}",
        ha.cluster.node_id(active),
        crash.orphan_alias,
        rolled.join("\n")
    );
    let crashed_node_log = ha.cluster.server_log(crash.node);
    assert!(
        lines_with(&crashed_node_log, "rolled back a key").is_empty(),
        "the node whose plugin crashed ({}) did not roll back itself",
        ha.cluster.node_id(crash.node)
    );
    let tidied = lines_with(&logs[active], "auto-tidy ran");
    assert!(
        !tidied.is_empty(),
        "auto-tidy ran on the active node meanwhile"
    );
    // (g): the standbys' ticks did nothing.
    let mut ticks = Vec::new();
    for &s in &standbys {
        let log = &logs[s];
        ticks.push((
            ha.cluster.node_id(s),
            lines_with(log, "rollback tick on a standby").len(),
        ));
        for needle in [
            "LiteLLM call",
            "auto-tidy failed",
            "auto-tidy ran",
            "WAL rollback",
            "cannot claim WAL entry",
            "rolled back a key",
            "periodic function failed",
        ] {
            let found = lines_with(log, needle);
            assert!(
                found.is_empty(),
                "standby {} logged {needle:?} during its rollback tick:\n{}",
                ha.cluster.node_id(s),
                found.join("\n")
            );
        }
    }
    ha.figure(format!(
        "(b) {cut_off_keys} key(s) of issues cut off by the kill (of {} cut off in flight): {} \
         rolled back by the new active node within {:.1} s of the kill, {} past its WAL entry \
         but never leased (OpenBao died before writing the lease; see the final step)",
        failover.cut_off,
        cut_offs_rolled_back.len(),
        (rolled_back.unwrap() - failover.killed_at).as_secs_f64(),
        lost.count
    ));
    ha.figure(format!(
        "(f) the crash's orphan {} was rolled back by the new active node {} {:.1} s after the failover ({:.1} s after the crash)",
        crash.orphan_alias,
        ha.cluster.node_id(active),
        (rolled_back.unwrap() - failover.killed_at).as_secs_f64(),
        (rolled_back.unwrap() - crash.crashed_at).as_secs_f64()
    ));
    ha.figure(format!(
        "(g) over {:.0} s with auto-tidy due every 1 s and a WAL entry pending: standby ticks {ticks:?}, none made a LiteLLM call or logged auto-tidy/WAL lines; the active node logged {} auto-tidy run(s)",
        window.elapsed().as_secs_f64(),
        tidied.len()
    ));
    lost
}

/// Keys of issues the failover cut off after the plugin answered and before OpenBao wrote the
/// lease. OpenBao tells a plugin nothing about that write, so no lease, WAL entry or tick will
/// ever revoke them: each expires in LiteLLM at the end its lease would have had, and tidy
/// deletes it `safety_buffer` later.
pub(super) struct LostLeases {
    pub(super) count: usize,
    pub(super) killed_at: SystemTime,
}

/// The alias starting with `stem` in a log line, if any.
fn alias_in(line: &str, stem: &str) -> Option<String> {
    let start = line.find(stem)?;
    let alias: String = line[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    Some(alias)
}

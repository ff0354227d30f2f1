//! Fault injection: LiteLLM down, failing, slow or answering garbage at issue, renew and revoke;
//! the plugin dying between `/key/generate` and its reply. Every case must end with a clear
//! error, a plugin that keeps serving, and no key left behind.
//!
//! Most cases drive the engine in-process (fast, precise) against the stateful fake LiteLLM; the
//! crash case runs the real binary under a real OpenBao.

use std::time::Duration;

use crate::support::bao::{DevServer, DevServerOptions};
use crate::support::engine::MASTER_KEY;
use crate::support::fake_litellm::{FakeLiteLlm, Fault, Op};
use crate::support::{assert_eventually, configure, mount};

#[tokio::test]
async fn plugin_killed_between_generate_and_reply_leaves_no_key() {
    let litellm = FakeLiteLlm::start(MASTER_KEY).unwrap();
    let server =
        DevServer::start_with(DevServerOptions::default().env("LITELLM_PLUGIN_WAL_MIN_AGE", "1s"));
    mount(&server, &["litellm"]);
    let client = server.client();
    configure(&server, "litellm", &litellm.url(), MASTER_KEY);
    client.bao(&["write", "litellm/roles/dev", "ttl=10m"]).ok();

    // LiteLLM creates the key, then holds the answer back while we kill the plugin.
    litellm.fail_next_n(Op::Generate, Fault::Delay(Duration::from_secs(30)), 1);
    let reader = {
        let client = client.clone();
        std::thread::spawn(move || client.bao(&["read", "-format=json", "litellm/creds/dev"]))
    };
    assert_eventually!(litellm.key_count() == 1, "generate reached LiteLLM");
    assert_eq!(server.kill_plugins().len(), 1);
    // The host respawns the plugin and retries the read once: that issue succeeds.
    let retried = reader.join().unwrap();
    let leased = if retried.success() { 1 } else { 0 };
    assert_eq!(
        litellm.key_count(),
        1 + leased,
        "the orphan and the retried key: {retried}"
    );

    // Rollback (run by the host before unmount, and every minute) deletes the orphan; unmount
    // revokes the lease of the retried key. Nothing is left. Rollback only takes WAL entries
    // older than LITELLM_PLUGIN_WAL_MIN_AGE (1 s), judged by the plugin process's own clock
    // under a real OpenBao, which no test can move: so this waits, in real time, for the orphan's
    // entry to come of age (and nothing observable says when it has).
    std::thread::sleep(Duration::from_millis(1500));
    client.bao(&["secrets", "disable", "litellm"]).ok();
    assert_eventually!(
        litellm.key_count() == 0,
        "keys left in LiteLLM: {:?}",
        litellm
            .live_keys()
            .iter()
            .map(|k| k.key_alias.clone())
            .collect::<Vec<_>>()
    );
    assert!(
        server.server_log().contains("rolled back a key"),
        "rollback ran"
    );
}

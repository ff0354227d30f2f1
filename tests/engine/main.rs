//! The engine tier: in-process tests that need no OpenBao, no real LiteLLM and no release build.
//! The engine runs in this process ([`support::engine::Engine`]: in-memory storage, a fixed system
//! view, a clock the tests move) against the fake LiteLLM, and the client against the fake.
//! The quick loop: `cargo test --lib --test engine`. This tier never reads the real proxy's
//! environment; `tests/e2e` is the other tier.
//!
//! One crate with the scenario files as modules (as linkerd2-proxy's integration tests do), so
//! the support code is compiled and linked once.

// Test crates: their items are documented for readers where it helps, not as an API.
#![allow(missing_docs)]

// Shared with the end-to-end tier and the benchmark: each uses a part of it.
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

mod caching;
mod client;
mod client_faults;
mod client_self_info;
mod client_tls;
mod fake_conformance;
mod fake_conformance_routes;
mod faults;
mod identity;
mod identity_groups;
mod key_settings;
mod models;
mod standby;
mod static_roles;
mod teams;
mod tidy;

use support::target::Target;

/// What the client scenarios and the conformance table run against here: the fake.
fn targets() -> Vec<Target> {
    vec![Target::fake()]
}

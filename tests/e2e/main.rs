//! The end-to-end tier: a real OpenBao (`BAO_BIN`, see `scripts/install-openbao.sh`) launches
//! the freshly built plugin, which talks to the fake LiteLLM or to a real LiteLLM proxy
//! (`LITELLM_BASE_URL`, `LITELLM_MASTER_KEY`: `scripts/run-litellm.sh && .
//! /tmp/litellm-local/env`). Tests that need the real proxy fail, naming that command, when it
//! is not configured. The whole suite: `scripts/test.sh`.
//!
//! The client scenarios and the fake's conformance table are the engine tier's files, compiled
//! here again with [`targets`] naming the real proxy too.

// Test crates: their items are documented for readers where it helps, not as an API.
#![allow(missing_docs)]

// Shared with the engine tier and the benchmark: each uses a part of it.
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

mod agent;
mod bad_input;
mod budgets;
#[path = "../engine/client.rs"]
mod client;
#[path = "../engine/client_self_info.rs"]
mod client_self_info;
mod dev_script;
#[path = "../engine/fake_conformance.rs"]
mod fake_conformance;
#[path = "../engine/fake_conformance_routes.rs"]
mod fake_conformance_routes;
mod faults;
mod ha;
mod identity;
mod key_settings;
mod lifecycle;
mod namespaces;
mod platform;
mod policies;
mod proxy;
mod reliability;
mod rotate_root;
mod soak;
mod static_roles;
mod tidy;
mod transport;
mod upgrade;
mod wrapping;

use support::RealLiteLlm;
use support::target::Target;

/// What the client scenarios and the conformance table run against here: the fake and the
/// real proxy, side by side.
fn targets() -> Vec<Target> {
    vec![Target::fake(), Target::real(&RealLiteLlm::from_env())]
}

//! The plugin executable: Vault or OpenBao launches it and talks to it over go-plugin.

use std::process::ExitCode;

// Cheaper than glibc malloc for the many small, short-lived buffers of each request (BENCH.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    vault_plugin_secrets_litellm::transport::serve(vault_plugin_secrets_litellm::engine::factory)
}

//! The plugin executable: Vault or OpenBao launches it and talks to it over go-plugin.

use std::process::ExitCode;

use vault_plugin_secrets_litellm::{engine, transport};

// Cheaper than glibc malloc for the many small, short-lived buffers of each request (BENCH.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    transport::serve(
        engine::factory,
        transport::PluginInfo {
            log_level_env: "LITELLM_PLUGIN_LOG_LEVEL",
            log_module: "litellm",
            usage: concat!(
                "Register it in the server's plugin directory and enable it as a secrets engine:\n\n",
                "  bao plugin register -sha256=<sha256 of this file> -version=v",
                env!("CARGO_PKG_VERSION"),
                " secret ",
                env!("CARGO_PKG_NAME"),
                "\n  bao secrets enable -path=litellm ",
                env!("CARGO_PKG_NAME"),
            ),
        },
    )
}

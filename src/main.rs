//! The plugin executable: Vault or OpenBao launches it and talks to it over go-plugin.

use std::process::ExitCode;

fn main() -> ExitCode {
    vault_plugin_secrets_litellm::transport::serve(vault_plugin_secrets_litellm::backend::factory)
}

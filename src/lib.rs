//! A HashiCorp Vault / OpenBao secrets engine that issues short-lived LiteLLM virtual keys.
//!
//! An operator configures the LiteLLM proxy (`config`) and defines roles (`roles/<name>`); an
//! application reads `creds/<name>` and gets a fresh LiteLLM key wrapped in a Vault lease.
//! Renewing the lease extends the key; revoking or expiring it deletes the key.
//!
//! # Layout
//!
//! The plugin is a separate process that Vault launches. Three layers, from the wire up:
//!
//! - [`transport`]: HashiCorp's go-plugin protocol: handshake, AutoMTLS, the gRPC services the
//!   host calls, the broker that reaches back into the host's storage, hclog logging.
//! - [`framework`]: the Rust counterpart of Vault's Go `sdk/framework`: the path table, field
//!   coercion, help and OpenAPI, secrets with renew/revoke, lease TTLs, the write-ahead log.
//! - [`engine`]: the LiteLLM engine, one module per path as a Vault developer expects
//!   (`path_config`, `path_roles`, `path_creds`, …), the lease's secret type, the index of
//!   issued keys and the LiteLLM client. It uses the framework; the framework knows nothing of
//!   it, and the transport knows only the framework.
//!
//! [`proto`] holds the code generated from the protocol definitions in `proto/`.

// The module maps link to crate-private modules on purpose: `cargo doc --document-private-items`
// is how this crate is read.
#![allow(rustdoc::private_intra_doc_links)]

pub mod engine;
pub mod framework;
pub mod proto;
pub mod transport;

#[cfg(test)]
mod layering {
    //! The arrows between the layers point one way: `transport` → `framework` ← `engine`.
    //! Checked on the source text, so a new `use` that points back fails here at once.

    use std::path::{Path, PathBuf};

    /// Every `.rs` file under `src/<layer>`, with its code lines (comments dropped).
    fn code_of(layer: &str) -> Vec<(PathBuf, Vec<String>)> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).expect("reading the source tree") {
                let path = entry.expect("reading the source tree").path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        walk(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("src")
                .join(layer),
            &mut files,
        );
        assert!(!files.is_empty(), "no sources under src/{layer}");
        files
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path).expect("reading a source file");
                let code = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .map(str::to_owned)
                    .collect();
                (path, code)
            })
            .collect()
    }

    fn offending(layer: &str, forbidden: &[&str]) -> Vec<String> {
        let mut found = Vec::new();
        for (path, lines) in code_of(layer) {
            for (n, line) in lines.iter().enumerate() {
                let lower = line.to_ascii_lowercase();
                if forbidden.iter().any(|f| lower.contains(f)) {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
        found
    }

    #[test]
    fn the_framework_names_neither_the_transport_nor_the_engine() {
        let found = offending("framework", &["crate::transport", "crate::engine"]);
        assert!(
            found.is_empty(),
            "framework/ points back:\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn the_transport_names_no_engine_and_nothing_of_litellm() {
        let found = offending("transport", &["crate::engine", "litellm"]);
        assert!(
            found.is_empty(),
            "transport/ knows the engine:\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn the_engine_reaches_the_host_only_through_the_framework() {
        let found = offending("engine", &["crate::transport"]);
        assert!(
            found.is_empty(),
            "engine/ uses the transport:\n{}",
            found.join("\n")
        );
    }
}

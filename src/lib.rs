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

pub mod engine;
pub mod framework;
pub mod proto;
pub mod transport;

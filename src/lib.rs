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
//! - The LiteLLM engine itself, one module per path as a Vault developer expects:
//!   [`backend`] (assembles the engine and its caches), [`path_config`] (connection to
//!   LiteLLM), [`path_rotate_root`] (replacing the admin key with one only Vault knows),
//!   [`path_roles`] (what a credential may do), [`path_creds`] (issuing a key),
//!   [`secret_key`] (the lease: renew, revoke, WAL rollback), [`key_index`] (the keys this
//!   mount issued and has not revoked), [`path_tidy`] (`tidy` and `config/auto-tidy`: deleting
//!   keys no lease accounts for) and [`client`] (LiteLLM's key API). [`identity`] renders a
//!   role's `user_id_template` / `team_id_template` for the caller's Vault identity entity.
//!
//! [`proto`] holds the code generated from the protocol definitions in `proto/`.

pub mod backend;
pub mod client;
pub mod framework;
pub mod identity;
pub mod key_index;
pub mod path_config;
pub mod path_creds;
pub mod path_roles;
pub mod path_rotate_root;
pub mod path_tidy;
pub mod proto;
pub mod secret_key;
pub mod transport;

//! go-plugin's launch contract: the environment the host sets, and the one line the plugin
//! prints on stdout to say where it listens.

use std::env;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;

/// The cookie Vault and OpenBao set for backend plugins (the same key and value in both).
pub const MAGIC_COOKIE_KEY: &str = "VAULT_BACKEND_PLUGIN";
/// The expected cookie value.
pub const MAGIC_COOKIE_VALUE: &str = "6669da05-b1c8-4f49-97d9-c8e5bed98e20";
/// go-plugin's core protocol version.
pub const CORE_PROTOCOL_VERSION: u32 = 1;
/// The backend plugin protocol we speak: v5 (gRPC with AutoMTLS).
pub const APP_PROTOCOL_VERSION: u32 = 5;

/// Why the process refuses to serve.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HandshakeError {
    /// Not launched by Vault/OpenBao (or launched as another kind of plugin).
    #[error(
        "This binary is a plugin for HashiCorp Vault and OpenBao, not meant to be run directly.\n\
         (The server launches it with the {cookie} environment variable set.)",
        cookie = MAGIC_COOKIE_KEY
    )]
    NotLaunchedByHost,
    /// The host offers no protocol version we speak.
    #[error(
        "the host offers plugin protocol versions {offered:?}, but this plugin speaks only version 5 \
         (gRPC with automatic mutual TLS); use Vault 1.12+ or OpenBao"
    )]
    UnsupportedProtocol {
        /// What `PLUGIN_PROTOCOL_VERSIONS` listed.
        offered: String,
    },
    /// AutoMTLS is off: the host did not send its client certificate.
    #[error(
        "PLUGIN_CLIENT_CERT is not set: this plugin requires automatic mutual TLS (plugin protocol v5)"
    )]
    NoClientCert,
}

/// The launch environment, checked.
#[derive(Debug, Clone)]
pub struct LaunchEnv {
    /// PEM of the host's certificate (the only one our TLS accepts).
    pub client_cert_pem: String,
    /// Where to create the Unix socket.
    pub socket_dir: std::path::PathBuf,
}

impl LaunchEnv {
    /// Reads and checks the process environment.
    pub fn from_env() -> Result<LaunchEnv, HandshakeError> {
        Self::from_lookup(|k| env::var(k).ok())
    }

    /// Checks an environment given as a lookup function (testable without touching the process env).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<LaunchEnv, HandshakeError> {
        if get(MAGIC_COOKIE_KEY).as_deref() != Some(MAGIC_COOKIE_VALUE) {
            return Err(HandshakeError::NotLaunchedByHost);
        }
        let offered = get("PLUGIN_PROTOCOL_VERSIONS").unwrap_or_default();
        if !offered
            .split(',')
            .any(|v| v.trim() == APP_PROTOCOL_VERSION.to_string())
        {
            return Err(HandshakeError::UnsupportedProtocol { offered });
        }
        let client_cert_pem = get("PLUGIN_CLIENT_CERT")
            .filter(|c| !c.trim().is_empty())
            .ok_or(HandshakeError::NoClientCert)?;
        let socket_dir = get("PLUGIN_UNIX_SOCKET_DIR")
            .filter(|d| !d.is_empty())
            .or_else(|| get("TMPDIR").filter(|d| !d.is_empty()))
            .unwrap_or_else(|| "/tmp".to_string())
            .into();
        Ok(LaunchEnv {
            client_cert_pem,
            socket_dir,
        })
    }
}

/// The handshake line: `1|5|unix|<socket>|grpc|<server cert DER, base64 without padding>`.
/// No 7th field: we do not offer go-plugin's broker multiplexing.
pub fn handshake_line(socket_path: &str, server_cert_der: &[u8]) -> String {
    format!(
        "{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|unix|{socket_path}|grpc|{}\n",
        STANDARD_NO_PAD.encode(server_cert_der)
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn accepts_a_v5_launch() {
        let env = LaunchEnv::from_lookup(env_of(&[
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            ("PLUGIN_PROTOCOL_VERSIONS", "5"),
            ("PLUGIN_CLIENT_CERT", CERT),
            ("PLUGIN_UNIX_SOCKET_DIR", "/run/x"),
        ]))
        .unwrap();
        assert_eq!(env.client_cert_pem, CERT);
        assert_eq!(env.socket_dir, std::path::PathBuf::from("/run/x"));
    }

    #[test]
    fn socket_dir_falls_back_to_tmpdir_then_tmp() {
        let base = [
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            ("PLUGIN_PROTOCOL_VERSIONS", "5"),
            ("PLUGIN_CLIENT_CERT", CERT),
        ];
        let env = LaunchEnv::from_lookup(env_of(&base)).unwrap();
        assert_eq!(env.socket_dir, std::path::PathBuf::from("/tmp"));
        let mut with_tmpdir = base.to_vec();
        with_tmpdir.push(("TMPDIR", "/var/tmp"));
        let env = LaunchEnv::from_lookup(env_of(&with_tmpdir)).unwrap();
        assert_eq!(env.socket_dir, std::path::PathBuf::from("/var/tmp"));
    }

    #[test]
    fn refuses_launches_that_are_not_ours() {
        assert_eq!(
            LaunchEnv::from_lookup(env_of(&[])).unwrap_err(),
            HandshakeError::NotLaunchedByHost
        );
        // Dev-mode auto-registration probes every plugin as a database plugin too.
        let db_probe = env_of(&[
            (
                "VAULT_DATABASE_PLUGIN",
                "926a0820-aea2-be28-51d6-83cdf00e8edb",
            ),
            ("PLUGIN_PROTOCOL_VERSIONS", "5,6"),
        ]);
        assert_eq!(
            LaunchEnv::from_lookup(db_probe).unwrap_err(),
            HandshakeError::NotLaunchedByHost
        );
        let wrong_cookie = env_of(&[
            (MAGIC_COOKIE_KEY, "nope"),
            ("PLUGIN_PROTOCOL_VERSIONS", "5"),
        ]);
        assert_eq!(
            LaunchEnv::from_lookup(wrong_cookie).unwrap_err(),
            HandshakeError::NotLaunchedByHost
        );
    }

    #[test]
    fn refuses_v4_fallback_and_missing_mtls() {
        let v4 = env_of(&[
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            ("PLUGIN_PROTOCOL_VERSIONS", "3,4"),
        ]);
        assert_eq!(
            LaunchEnv::from_lookup(v4).unwrap_err(),
            HandshakeError::UnsupportedProtocol {
                offered: "3,4".into()
            }
        );
        let no_cert = env_of(&[
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            ("PLUGIN_PROTOCOL_VERSIONS", "4,5"),
        ]);
        assert_eq!(
            LaunchEnv::from_lookup(no_cert).unwrap_err(),
            HandshakeError::NoClientCert
        );
    }

    #[test]
    fn handshake_line_uses_unpadded_base64() {
        // 4 bytes would need "==" padding in standard base64.
        let line = handshake_line("/tmp/plugin123", &[1, 2, 3, 4]);
        assert_eq!(line, "1|5|unix|/tmp/plugin123|grpc|AQIDBA\n");
        let fields: Vec<&str> = line.trim_end().split('|').collect();
        assert_eq!(fields.len(), 6);
    }
}

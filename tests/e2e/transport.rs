//! The plugin's socket talks only to the host that launched it: the plugin is started by hand
//! exactly as OpenBao starts it (cookie, protocol 5, the host's P-521 certificate in
//! `PLUGIN_CLIENT_CERT`), and clients with another certificate or none are refused at the TLS
//! layer, while the pinned one gets gRPC answers.
//!
//! Without the cookie the binary exits 1 with an explanation: see
//! `platform.rs::binary_run_by_hand_explains_itself_and_exits_1`.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::Status;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint, Uri};
use vault_plugin_secrets_litellm::proto::logical::Empty;
use vault_plugin_secrets_litellm::proto::logical::plugin_version_client::PluginVersionClient;
use vault_plugin_secrets_litellm::transport::tls::PinnedCert;

/// A certificate and key shaped like go-plugin's host identity: self-signed P-521 CA.
struct HostIdentity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    pem: String,
}

impl HostIdentity {
    fn generate() -> HostIdentity {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyCertSign,
        ];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        ];
        let cert = params.self_signed(&key).unwrap();
        HostIdentity {
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            pem: cert.pem(),
        }
    }
}

/// The plugin process; killed (and its socket dir removed) on drop, whatever the test did.
struct Plugin {
    child: Child,
    socket: PathBuf,
    server_cert: CertificateDer<'static>,
    dir: PathBuf,
}

impl Plugin {
    /// Launches the binary as a v5 host does and reads its handshake line.
    fn launch(host: &HostIdentity) -> Plugin {
        let dir = std::env::temp_dir().join(format!(
            "plugin-transport-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir(&dir).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_vault-plugin-secrets-litellm"))
            .env(
                "VAULT_BACKEND_PLUGIN",
                "6669da05-b1c8-4f49-97d9-c8e5bed98e20",
            )
            .env("PLUGIN_PROTOCOL_VERSIONS", "5")
            .env("PLUGIN_CLIENT_CERT", &host.pem)
            .env("PLUGIN_UNIX_SOCKET_DIR", &dir)
            .env("LITELLM_PLUGIN_LOG_LEVEL", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let mut plugin = Plugin {
            child,
            socket: PathBuf::new(),
            server_cert: CertificateDer::from(Vec::new()),
            dir,
        };
        // 1|5|unix|<socket>|grpc|<server cert DER, unpadded base64>
        let fields: Vec<&str> = line.trim_end().split('|').collect();
        assert_eq!(fields.len(), 6, "handshake line {line:?}");
        assert_eq!(
            (fields[0], fields[1], fields[2], fields[4]),
            ("1", "5", "unix", "grpc")
        );
        plugin.socket = PathBuf::from(fields[3]);
        assert!(plugin.socket.starts_with(&plugin.dir), "{line:?}");
        plugin.server_cert = CertificateDer::from(STANDARD_NO_PAD.decode(fields[5]).unwrap());
        plugin
    }

    /// Kills the process and returns what it wrote on stderr.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        stderr
    }

    /// A TLS 1.3 session to the plugin's socket that trusts only the handshake's certificate
    /// and presents `client` (if any).
    async fn connect(
        &self,
        client: Option<&HostIdentity>,
    ) -> std::io::Result<TlsStream<UnixStream>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = Arc::new(PinnedCert::new(self.server_cert.clone(), &provider));
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match client {
            Some(id) => builder
                .with_client_auth_cert(
                    vec![id.cert.clone()],
                    PrivateKeyDer::Pkcs8(id.key.clone_key()),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        let stream = UnixStream::connect(&self.socket).await?;
        TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), stream)
            .await
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the plugin does with a session from `client`: in TLS 1.3 the client finishes its side
/// of the handshake before the server has judged its certificate, so the verdict is the first
/// read (a refused client gets a fatal alert, an accepted one the server's HTTP/2 settings).
async fn first_read(plugin: &Plugin, client: Option<&HostIdentity>) -> Result<usize, String> {
    let mut tls = plugin.connect(client).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await {
        Ok(Ok(0)) => Err("closed without a byte".into()),
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 10 s".into()),
    }
}

/// A gRPC channel to the plugin over one TLS session from `client`.
async fn channel(plugin: &Plugin, client: &HostIdentity) -> Result<Channel, String> {
    let tls = plugin
        .connect(Some(client))
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = Some(tls);
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let stream = stream.take();
            async move {
                stream
                    .map(TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("one connection only"))
            }
        }))
        .await
        .map_err(|e| e.to_string())
}

/// `logical.PluginVersion/Version` over a session from `client`.
async fn version(plugin: &Plugin, client: &HostIdentity) -> Result<String, String> {
    let reply = PluginVersionClient::new(channel(plugin, client).await?)
        .version(Empty {})
        .await
        .map_err(|e| e.to_string())?;
    Ok(reply.into_inner().plugin_version)
}

/// A unary call with an empty message to any gRPC path.
async fn call_path(channel: Channel, path: &'static str) -> Result<Empty, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<Empty, Empty>::default();
    grpc.unary(
        tonic::Request::new(Empty {}),
        PathAndQuery::from_static(path),
        codec,
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn only_the_pinned_client_certificate_can_talk_to_the_plugin() {
    let host = HostIdentity::generate();
    let impostor = HostIdentity::generate();
    let plugin = Plugin::launch(&host);

    let refused = first_read(&plugin, Some(&impostor)).await;
    println!("observed: another client certificate: {refused:?}");
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("alert")),
        "a client with another certificate was not refused by TLS: {refused:?}"
    );
    let refused = first_read(&plugin, None).await;
    println!("observed: no client certificate: {refused:?}");
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("alert")),
        "a client without a certificate was not refused by TLS: {refused:?}"
    );
    // gRPC from the impostor fails too (it never gets past TLS).
    assert!(version(&plugin, &impostor).await.is_err());

    // The pinned host certificate gets through, and the plugin kept serving after the refusals.
    assert!(first_read(&plugin, Some(&host)).await.is_ok());
    assert_eq!(
        version(&plugin, &host).await,
        Ok(format!("v{}", env!("CARGO_PKG_VERSION")))
    );

    let stderr = plugin.stop();
    assert!(
        stderr.matches("TLS handshake failed").count() >= 3,
        "each refusal is logged: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn calls_to_services_or_methods_the_plugin_lacks_get_unimplemented() {
    let host = HostIdentity::generate();
    let plugin = Plugin::launch(&host);
    let channel = channel(&plugin, &host).await.expect("channel");

    for path in [
        "/plugin.NoSuchService/Call",
        "/plugin.Backend/NoSuchMethod",
        "/",
    ] {
        let answer = call_path(channel.clone(), path).await;
        println!("observed: {path}: {answer:?}");
        assert_eq!(
            answer.map_err(|s| s.code()),
            Err(tonic::Code::Unimplemented),
            "{path}"
        );
    }
    // A served method on the same connection still answers.
    let version = PluginVersionClient::new(channel)
        .version(Empty {})
        .await
        .expect("version after unknown calls");
    assert_eq!(
        version.into_inner().plugin_version,
        format!("v{}", env!("CARGO_PKG_VERSION"))
    );
    assert!(!plugin.stop().contains("panicked"));
}

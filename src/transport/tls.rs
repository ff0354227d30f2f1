//! AutoMTLS: a fresh certificate per launch, and verifiers that accept exactly one peer
//! certificate.
//!
//! The host's certificate is a self-signed ECDSA P-521 CA certificate. Stock webpki verifiers
//! reject it (a CA used as an end entity), and the *ring* provider cannot verify P-521, so we pin
//! the exact DER the host handed us in `PLUGIN_CLIENT_CERT` and verify handshake signatures with
//! the aws-lc-rs provider, which supports P-521/SHA-512. Client authentication is mandatory.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

/// ALPN protocol both sides must negotiate (grpc-go enforces it).
const ALPN_H2: &[u8] = b"h2";

/// TLS setup failures.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `PLUGIN_CLIENT_CERT` holds no PEM certificate.
    #[error("PLUGIN_CLIENT_CERT holds no PEM certificate: {0}")]
    BadHostCert(String),
    /// Key or certificate generation failed.
    #[error("generating the plugin certificate: {0}")]
    CertGen(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// This process's identity: a fresh P-256 key and a self-signed certificate for `localhost`,
/// valid as both server and client (it is our client certificate on broker connections).
pub struct PluginIdentity {
    /// The certificate, also announced in the handshake line.
    pub cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl PluginIdentity {
    /// Generates a new key and certificate.
    pub fn generate() -> Result<PluginIdentity, TlsError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, env!("CARGO_PKG_NAME"));
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key)?;
        Ok(PluginIdentity {
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

/// Parses the host certificate from `PLUGIN_CLIENT_CERT` (PEM with real newlines).
pub fn parse_host_cert(pem: &str) -> Result<CertificateDer<'static>, TlsError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| TlsError::BadHostCert(e.to_string()))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// TLS for our gRPC server: present `identity`, require the host's certificate.
pub fn server_config(
    identity: &PluginIdentity,
    host_cert: CertificateDer<'static>,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(PinnedCert::new(host_cert, &provider));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![identity.cert.clone()], identity.key())?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

/// TLS for dialing the host's broker: present `identity` as client certificate, accept only the
/// host's certificate.
pub fn client_config(
    identity: &PluginIdentity,
    host_cert: CertificateDer<'static>,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(PinnedCert::new(host_cert, &provider));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![identity.cert.clone()], identity.key())?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

/// Accepts exactly one certificate (byte for byte) and checks the peer's handshake signature
/// with it. Used in both directions.
#[derive(Debug)]
pub struct PinnedCert {
    cert: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedCert {
    /// Pins `cert`, verifying signatures with `provider`'s algorithms.
    pub fn new(cert: CertificateDer<'static>, provider: &CryptoProvider) -> PinnedCert {
        PinnedCert {
            cert,
            algorithms: provider.signature_verification_algorithms,
        }
    }

    fn check(&self, presented: &CertificateDer<'_>) -> Result<(), Error> {
        if presented.as_ref() == self.cert.as_ref() {
            Ok(())
        } else {
            Err(Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }
}

impl ClientCertVerifier for PinnedCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.check(end_entity)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.check(end_entity)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::PrivatePkcs8KeyDer;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    /// A certificate shaped like go-plugin's host certificate: self-signed P-521/SHA-512 CA.
    fn host_like_identity() -> PluginIdentity {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "HashiCorp");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
            rcgen::KeyUsagePurpose::KeyAgreement,
            rcgen::KeyUsagePurpose::KeyCertSign,
        ];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        ];
        let cert = params.self_signed(&key).unwrap();
        PluginIdentity {
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }

    /// The host's side of our server: it pins our certificate and presents `client` (if any).
    fn host_client(
        plugin: &PluginIdentity,
        client: Option<&PluginIdentity>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> rustls::ClientConfig {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCert::new(
                plugin.cert.clone(),
                &provider,
            )));
        let mut config = match client {
            Some(id) => builder
                .with_client_auth_cert(vec![id.cert.clone()], id.key())
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        config
    }

    /// Runs one TLS handshake plus a byte exchange; returns the server's negotiated ALPN.
    async fn handshake(
        server: rustls::ServerConfig,
        client: rustls::ClientConfig,
    ) -> Result<Option<Vec<u8>>, String> {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let acceptor = TlsAcceptor::from(Arc::new(server));
        let connector = TlsConnector::from(Arc::new(client));
        let server = tokio::spawn(async move {
            let mut tls = acceptor.accept(a).await.map_err(|e| e.to_string())?;
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec))
        });
        let name = ServerName::try_from("localhost").unwrap();
        // The client stream is returned, not dropped, so it stays open until the server is done
        // (a TLS 1.3 server still writes session tickets after the handshake).
        let client_result = async {
            let mut tls = connector
                .connect(name, b)
                .await
                .map_err(|e| e.to_string())?;
            tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
            tls.flush().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(tls)
        }
        .await;
        let server_result = server.await.unwrap();
        client_result?;
        server_result
    }

    #[tokio::test]
    async fn host_with_a_p521_ca_cert_connects_over_tls13_and_tls12() {
        let plugin = PluginIdentity::generate().unwrap();
        let host = host_like_identity();
        for versions in [
            &[&rustls::version::TLS13][..],
            &[&rustls::version::TLS12][..],
        ] {
            let server = server_config(&plugin, host.cert.clone()).unwrap();
            let alpn = handshake(server, host_client(&plugin, Some(&host), versions))
                .await
                .unwrap();
            assert_eq!(alpn.as_deref(), Some(ALPN_H2));
        }
    }

    #[tokio::test]
    async fn server_requires_exactly_the_pinned_client_cert() {
        let plugin = PluginIdentity::generate().unwrap();
        let host = host_like_identity();
        let impostor = host_like_identity();
        let server = || server_config(&plugin, host.cert.clone()).unwrap();
        let versions = &[&rustls::version::TLS13][..];
        assert!(
            handshake(server(), host_client(&plugin, Some(&impostor), versions))
                .await
                .is_err()
        );
        assert!(
            handshake(server(), host_client(&plugin, None, versions))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn broker_dial_accepts_only_the_host_cert() {
        let plugin = PluginIdentity::generate().unwrap();
        let host = host_like_identity();
        let impostor = host_like_identity();
        // The host's broker listener: presents its P-521 cert, requires ours.
        let broker_server = |id: &PluginIdentity| server_config(id, plugin.cert.clone()).unwrap();
        let ours = || client_config(&plugin, host.cert.clone()).unwrap();
        assert!(handshake(broker_server(&host), ours()).await.is_ok());
        assert!(handshake(broker_server(&impostor), ours()).await.is_err());
    }

    #[test]
    fn plugin_cert_is_for_localhost_with_both_usages() {
        let plugin = PluginIdentity::generate().unwrap();
        let der = plugin.cert.as_ref();
        // SAN dNSName "localhost" and the serverAuth / clientAuth EKU OIDs are in the DER.
        let contains = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
        assert!(contains(b"\x82\x09localhost"));
        assert!(contains(&[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01]));
        assert!(contains(&[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02]));
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der)
        );
        assert_eq!(parse_host_cert(&pem).unwrap(), plugin.cert);
        assert!(parse_host_cert("not pem").is_err());
    }
}

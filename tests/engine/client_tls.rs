//! `ca_cert` and `insecure_tls` against a minimal TLS server with a self-signed certificate.

use std::sync::Arc;

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vault_plugin_secrets_litellm::engine::client::{ApiError, Client, ClientConfig};

/// Serves `{"keys":[]}` over TLS to every connection; returns the URL and the CA PEM.
async fn tls_server() -> (String, String) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("cert");
    let pem = ck.cert.pem();
    let certs = vec![CertificateDer::from(ck.cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                let _ = tls.read(&mut buf).await;
                let body = r#"{"keys":[],"total_count":0,"current_page":1,"total_pages":0}"#;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (format!("https://localhost:{port}"), pem)
}

#[tokio::test]
async fn ca_cert_and_insecure_tls() {
    let (url, pem) = tls_server().await;
    let cfg = ClientConfig::new(url.clone(), "sk-master-0123456789");

    // Unknown issuer without the CA: a connection failure, explained.
    let err = Client::new(&cfg)
        .expect("client")
        .verify()
        .await
        .expect_err("untrusted");
    assert!(matches!(err, ApiError::Unreachable { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("LiteLLM at {url} is unreachable: invalid peer certificate: UnknownIssuer")
    );

    let mut with_ca = cfg.clone();
    with_ca.ca_cert = Some(pem);
    Client::new(&with_ca)
        .expect("client")
        .verify()
        .await
        .expect("trusted via ca_cert");

    let mut insecure = cfg.clone();
    insecure.insecure_tls = true;
    Client::new(&insecure)
        .expect("client")
        .verify()
        .await
        .expect("insecure_tls");
}

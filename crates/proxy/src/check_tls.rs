//! TLS of `https` health checks: the server's verification (`tls_verify`) and the client
//! certificate of mTLS (`client_certificate`, `client_key`). Every file is read when the checker is
//! built, at start and at each reload, so a bad file fails that start or reload with its name.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::TlsConnector;

use crate::Error;
use crate::config::{ClientCertificate, TlsVerify};

/// The connector of a backend's `https` checks.
pub(crate) fn tls_connector(
    backend: &str,
    verify: &TlsVerify,
    client: Option<&ClientCertificate>,
) -> Result<TlsConnector, Error> {
    let tls_error = |reason: String| Error::Tls {
        backend: backend.to_owned(),
        reason,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| tls_error(error.to_string()))?;
    let builder = match verify {
        TlsVerify::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider })),
        TlsVerify::CaFile(path) => builder.with_root_certificates(roots(path).map_err(tls_error)?),
    };
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(client) => {
            let (chain, key) = client_identity(client).map_err(tls_error)?;
            builder.with_client_auth_cert(chain, key).map_err(|error| {
                tls_error(format!(
                    "client certificate {}: {error}",
                    client.certificate_file.display()
                ))
            })?
        }
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|error| format!("cannot read {what} {}: {error}", path.display()))
}

fn roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates(path, "CA file")? {
        roots
            .add(certificate)
            .map_err(|error| format!("CA file {}: {error}", path.display()))?;
    }
    Ok(roots)
}

/// Every certificate of a PEM file; at least one.
fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(path, what)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("{what} {}: {error}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{what} {} holds no certificate", path.display()));
    }
    Ok(certificates)
}

/// The chain and key of `client`; the key from the certificate file when no key file is given.
fn client_identity(
    client: &ClientCertificate,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain = certificates(&client.certificate_file, "client certificate")?;
    let key_path = client
        .key_file
        .as_deref()
        .unwrap_or(&client.certificate_file);
    let key = PrivateKeyDer::from_pem_slice(&read(key_path, "client key")?).map_err(|error| {
        format!(
            "client key {}: no private key ({error})",
            key_path.display()
        )
    })?;
    Ok((chain, key))
}

/// `tls_verify: none`: any certificate chain and name is accepted, but the handshake signatures are
/// still verified so the session is a real TLS session with whoever holds the key.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

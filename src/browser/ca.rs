//! The recording proxy's certificate authority: made in memory for one
//! capture, never written to disk or installed anywhere.
//!
//! Every certificate it issues carries the same key (the capture's leaf
//! key), so the browser is told to accept exactly that key with
//! `--ignore-certificate-errors-spki-list=<its SHA-256>`, and nothing else.
//! custody's own connection to the real origin checks the origin's
//! certificate as every capture does, and records it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType,
};
use sha2::Digest;

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[error("making the recording proxy's certificate failed: {0}")]
pub struct CaError(String);

fn ca_error(e: impl std::fmt::Display) -> CaError {
    CaError(e.to_string())
}

/// A capture's certificate authority and the certificates it issued.
pub struct InterceptCa {
    issuer: Issuer<'static, KeyPair>,
    ca_der: rustls_pki_types::CertificateDer<'static>,
    ca_pem: String,
    leaf_key: KeyPair,
    spki_sha256: String,
    issued: Mutex<HashMap<String, Arc<rustls::ServerConfig>>>,
}

impl InterceptCa {
    /// A new authority with a fresh ECDSA P-256 key for itself and one for
    /// the certificates it issues.
    pub fn new() -> Result<InterceptCa, CaError> {
        let ca_key = KeyPair::generate().map_err(ca_error)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(ca_error)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "custody recording proxy (one capture)");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let cert = params.self_signed(&ca_key).map_err(ca_error)?;
        let leaf_key = KeyPair::generate().map_err(ca_error)?;
        let spki = sha2::Sha256::digest(leaf_key.subject_public_key_info());
        Ok(InterceptCa {
            ca_der: cert.der().clone(),
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, ca_key),
            leaf_key,
            spki_sha256: base64::engine::general_purpose::STANDARD.encode(spki),
            issued: Mutex::new(HashMap::new()),
        })
    }

    /// The authority's certificate in PEM (for clients that take a CA file,
    /// such as yt-dlp or curl).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Base64 SHA-256 of the issued certificates' public key, the form
    /// Chromium's `--ignore-certificate-errors-spki-list` takes.
    pub fn spki_sha256(&self) -> &str {
        &self.spki_sha256
    }

    /// A TLS server configuration presenting a certificate for `host`
    /// (a name or an IP address), made once per host.
    pub fn server_config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, CaError> {
        let mut issued = self.issued.lock().map_err(ca_error)?;
        if let Some(config) = issued.get(host) {
            return Ok(config.clone());
        }
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(ca_error)?;
        params.subject_alt_names = vec![match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.try_into().map_err(ca_error)?),
        }];
        params.distinguished_name.push(DnType::CommonName, host);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&self.leaf_key, &self.issuer)
            .map_err(ca_error)?;
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(self.leaf_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(ca_error)?
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone(), self.ca_der.clone()], key)
            .map_err(ca_error)?;
        // The proxy speaks HTTP/1.1 to the browser, as custody does to
        // the origin.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        issued.insert(host.to_string(), config.clone());
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_for_names_and_addresses_share_the_pinned_key() {
        let ca = InterceptCa::new().unwrap();
        assert!(ca.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(ca.spki_sha256().len(), 44, "base64 of 32 bytes");
        let a = ca.server_config("aleppo-news.test").unwrap();
        let again = ca.server_config("aleppo-news.test").unwrap();
        assert!(Arc::ptr_eq(&a, &again), "made once per host");
        ca.server_config("127.0.0.1").unwrap();
        ca.server_config("::1").unwrap();
        let other = InterceptCa::new().unwrap();
        assert_ne!(ca.spki_sha256(), other.spki_sha256(), "fresh per capture");
    }
}

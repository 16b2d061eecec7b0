//! Mutual TLS whose only root of trust is the cluster secret.
//!
//! Why this design: nodes must authenticate each other without an operator running a
//! PKI. Every node derives the same CA key pair from the shared secret
//! (HKDF-SHA256 → a 32-byte Ed25519 seed), builds the CA certificate from it, and at
//! start-up signs a fresh per-node key with it. Both sides of every QUIC handshake
//! present their certificate and require the peer's to chain to a CA in their root store
//! (rustls' WebPKI verifiers), so a process without the secret cannot complete a
//! handshake: it can neither read gossip nor inject any. The per-node key is random and
//! lives only in memory, so a leaked node certificate dies with the process.
//!
//! The CA's subject carries a fingerprint of its public key, so the CAs of two secrets
//! never share a subject name and certificate path building cannot confuse them.
//!
//! Rotation: the root store holds the CA of the current secret and, if configured, of the
//! previous one; the node always presents a certificate from the current one. Because a
//! node presents only its current CA's certificate, a rotation is rolled out in two
//! restarts: first every node trusts the new secret as well (`current` = old, `previous` =
//! new), then every node switches (`current` = new, `previous` = old), then `previous` is
//! dropped. Connections never break during either step.
//!
//! The secret is never logged: only [`ca_fingerprint`] (a hash of the derived *public* key)
//! is safe to print, to compare nodes' configurations.

use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber, PKCS_ED25519,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use crate::config::{Secret, Secrets};

/// The DNS name every node certificate carries and every client asks for. Nodes are
/// dialled by address, so a per-node name would add nothing: trust is the CA.
pub const SERVER_NAME: &str = "aurora-node";
/// ALPN of the gossip protocol; a QUIC client of another protocol is refused early.
pub const ALPN: &[u8] = b"aurora-gossip/1";

const HKDF_SALT: &[u8] = b"aurora cluster CA v1";
const HKDF_INFO: &[u8] = b"ed25519 CA seed";
/// PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410): this prefix, then the 32 bytes.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("key derivation failed")]
    Derive,
    #[error("certificate generation failed: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("TLS configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("QUIC crypto configuration: {0}")]
    Quic(String),
}

/// A CA derived from a secret.
struct ClusterCa {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    fingerprint: String,
}

/// Derives the CA of `secret`. Deterministic: the same secret gives the same key on
/// every node and every run.
fn derive_ca(secret: &Secret) -> Result<ClusterCa, TlsError> {
    let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, HKDF_SALT);
    let prk = salt.extract(secret.expose());
    let okm = prk
        .expand(&[HKDF_INFO], ring::hkdf::HKDF_SHA256)
        .map_err(|_| TlsError::Derive)?;
    let mut seed = [0u8; 32];
    okm.fill(&mut seed).map_err(|_| TlsError::Derive)?;
    let mut pkcs8 = Vec::with_capacity(48);
    pkcs8.extend_from_slice(&ED25519_PKCS8_PREFIX);
    pkcs8.extend_from_slice(&seed);
    let key =
        KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8), &PKCS_ED25519)?;
    let fingerprint = fingerprint_of(key.public_key_raw());

    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("Aurora cluster CA {fingerprint}"),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(SerialNumber::from_slice(&key.public_key_raw()[..16]));
    let cert = params.self_signed(&key)?;
    Ok(ClusterCa {
        cert: cert.der().clone(),
        issuer: Issuer::new(params, key),
        fingerprint,
    })
}

/// A short, printable hash of a public key.
fn fingerprint_of(public: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, public);
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The fingerprint of the CA a secret derives, safe to log and compare across nodes
/// (it identifies the secret without revealing it).
pub fn ca_fingerprint(secret: &Secret) -> Result<String, TlsError> {
    Ok(derive_ca(secret)?.fingerprint)
}

/// The QUIC crypto configurations of one node.
#[derive(Clone)]
pub struct TlsConfig {
    pub server: Arc<QuicServerConfig>,
    pub client: Arc<QuicClientConfig>,
    /// Fingerprint of the current CA (for logs).
    pub fingerprint: String,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Builds this node's mutual-TLS configuration: a fresh node key signed by the current
/// CA, and a root store with the current and previous CAs. `node_name` only labels the
/// certificate's subject.
pub fn node_tls(secrets: &Secrets, node_name: &str) -> Result<TlsConfig, TlsError> {
    let current = derive_ca(&secrets.current)?;
    let previous = secrets.previous.as_ref().map(derive_ca).transpose()?;

    let mut roots = RootCertStore::empty();
    roots.add(current.cert.clone())?;
    if let Some(prev) = &previous {
        roots.add(prev.cert.clone())?;
    }
    let roots = Arc::new(roots);

    let node_key = KeyPair::generate_for(&PKCS_ED25519)?;
    let mut params = CertificateParams::new(vec![SERVER_NAME.to_string()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, node_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&node_key, &current.issuer)?;
    let chain = vec![cert.der().clone()];
    let key = || PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(node_key.serialize_der()));

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone()).build()?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key())?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key())?;
    client.alpn_protocols = vec![ALPN.to_vec()];

    Ok(TlsConfig {
        server: Arc::new(
            QuicServerConfig::try_from(server).map_err(|e| TlsError::Quic(e.to_string()))?,
        ),
        client: Arc::new(
            QuicClientConfig::try_from(client).map_err(|e| TlsError::Quic(e.to_string()))?,
        ),
        fingerprint: current.fingerprint,
    })
}

/// The 32-byte key of this node's stateless resets: secret (derived from the cluster
/// secret, which outsiders lack, so they cannot forge resets) and stable across the node's
/// restarts (so a restarted node can reset connections to its previous process).
pub fn reset_key(secret: &Secret, node_label: &str) -> Result<[u8; 32], TlsError> {
    let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"aurora stateless reset v1");
    let prk = salt.extract(secret.expose());
    let info = [node_label.as_bytes()];
    let okm = prk
        .expand(&info, ring::hkdf::HKDF_SHA256)
        .map_err(|_| TlsError::Derive)?;
    let mut key = [0u8; 32];
    okm.fill(&mut key).map_err(|_| TlsError::Derive)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new("test", s.as_bytes()).expect("valid secret")
    }

    #[test]
    fn derivation_is_deterministic_and_secret_specific() -> Result<(), TlsError> {
        let a = secret("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        let b = secret("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
        assert_eq!(ca_fingerprint(&a)?, ca_fingerprint(&a)?);
        assert_ne!(ca_fingerprint(&a)?, ca_fingerprint(&b)?);
        let ca1 = derive_ca(&a)?;
        let ca2 = derive_ca(&a)?;
        assert_eq!(ca1.cert, ca2.cert, "Ed25519 signing is deterministic");
        Ok(())
    }

    #[test]
    fn node_config_builds_with_rotation() -> Result<(), TlsError> {
        let secrets = Secrets {
            current: secret("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            previous: Some(secret("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")),
        };
        let tls = node_tls(&secrets, "n1")?;
        assert_eq!(tls.fingerprint.len(), 16);
        assert!(!format!("{tls:?}").contains("aaaa"));
        Ok(())
    }
}

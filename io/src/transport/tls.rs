//! Mutual TLS whose only root of trust is the cluster secret, and whose leaf keys are the
//! nodes' own.
//!
//! Why this design: nodes must authenticate each other without an operator running a
//! PKI. Every node derives the same CA key pair from the shared secret and signs its own
//! certificate with it. Both sides of every QUIC handshake present their certificate and
//! require the peer's to chain to a CA in their root store (rustls' WebPKI verifiers), so
//! a process without the secret cannot complete a handshake: it can neither read gossip
//! nor inject any.
//!
//! **The secret cannot be tested offline cheaply.** Anyone who reaches the UDP port and
//! completes a QUIC key exchange receives the server's certificate, which is signed by
//! the CA key; anyone who sends a packet for an unknown connection receives a stateless
//! reset whose token is keyed from the secret. Either lets a stranger check a guess of
//! the secret offline. So nothing a stranger sees is derived from the secret by a fast
//! function: the secret first goes through Argon2id ([`KdfParams::PRODUCTION`], about half a
//! second of CPU and 64 MiB per guess), and the CA seed, the stateless-reset key and the
//! operator fingerprint are all derived (HKDF-SHA256) from that output. The CA's subject
//! is a constant name (no fingerprint), node certificates carry no authority key
//! identifier, and the server sends no CA names in its certificate request. The salt is
//! a fixed domain string plus the cluster name, so every node derives the same CA and
//! two clusters with the same secret still get different ones.
//!
//! **Each node's certificate carries its own key and id.** The leaf key is the node's
//! persistent Ed25519 key ([`NodeKey`]), and the certificate names the node id
//! (`n<16 hex digits>.aurora-node`) beside the generic [`SERVER_NAME`] the verifiers
//! check. After a handshake, [`peer_identity`] reads (node id, key life) back from the
//! verified certificate; the transport drops every message whose header claims another
//! sender.
//!
//! Rotation: the root store holds the CA of the current secret and, if configured, of the
//! previous one; the node always presents a certificate from the current one. Both CAs
//! have the same subject name; WebPKI path building tries every anchor of a matching
//! name until one verifies the signature. Because a node presents only its current CA's
//! certificate, a rotation is rolled out in two restarts: first every node trusts the new
//! secret as well (`current` = old, `previous` = new), then every node switches (`current`
//! = new, `previous` = old), then `previous` is dropped. Connections never break during
//! either step.
//!
//! The secret is never logged: only [`SecretKeys::fingerprint`] (derived from the Argon2
//! output, so it costs a stranger as much per guess as the handshake does) is printed,
//! to compare nodes' configurations.

use std::sync::{Arc, Mutex};

use aurora_core::NodeId;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber, PKCS_ED25519,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use crate::config::{Secret, Secrets};
use crate::identity::{ed25519_from_spki, life_of_public_key, NodeKey, PeerIdentity};

/// The DNS name every node certificate carries and every client asks for. Nodes are
/// dialled by address, so the verifiers check only this; the node's own id rides in a
/// second name ([`node_dns_name`]) read back after the handshake.
pub const SERVER_NAME: &str = "aurora-node";
/// ALPN of the gossip protocol; a QUIC client of another protocol is refused early.
pub const ALPN: &[u8] = b"aurora-gossip/1";
/// The CA's subject: the same for every secret, so it tells a stranger nothing.
const CA_NAME: &str = "Aurora cluster CA";

/// Argon2id salt prefix; the cluster name follows it.
const KDF_SALT: &[u8] = b"aurora cluster secret v2\0";
const HKDF_SALT: &[u8] = b"aurora cluster keys v2";
const INFO_CA: &[u8] = b"ed25519 CA seed";
const INFO_FINGERPRINT: &[u8] = b"operator fingerprint";
const INFO_RESET: &[u8] = b"stateless reset";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("key derivation failed")]
    Derive,
    #[error("memory-hard key derivation (Argon2id) failed: {0}")]
    Kdf(String),
    #[error("certificate generation failed: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("TLS configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("QUIC crypto configuration: {0}")]
    Quic(String),
}

/// Cost of the Argon2id derivation of the cluster keys from the secret.
///
/// The cost is what a stranger pays per guess of the secret, so production uses
/// [`KdfParams::PRODUCTION`]; [`KdfParams::MINIMAL`] exists only for a secret that is
/// itself a full-entropy random key no one else holds (the single-node run generates
/// one) and for tests that start many nodes. It is not settable from `aurora.yaml`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct KdfParams {
    /// Memory, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Parallel lanes.
    pub lanes: u32,
}

impl KdfParams {
    /// 64 MiB and 1 lane as in RFC 9106's second recommended option (§4), with 8 passes
    /// instead of 3: about 0.5 s of CPU on the reference machine (1-2 s of wall time
    /// when it is loaded; see docs/operations.md). Each guess of the secret costs a
    /// stranger as much.
    pub const PRODUCTION: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        iterations: 8,
        lanes: 1,
    };
    /// The cheapest Argon2id allows: tests, and a random secret that never leaves the
    /// process.
    pub const MINIMAL: KdfParams = KdfParams {
        memory_kib: 8,
        iterations: 1,
        lanes: 1,
    };
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams::PRODUCTION
    }
}

/// What one secret derives: the Argon2id output, from which every key is expanded.
#[derive(Clone)]
pub struct SecretKeys {
    master: [u8; 32],
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKeys")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// Derivations already done in this process, keyed by their inputs. A node derives
/// once or twice (rotation), but a test process starts many nodes with one secret; the
/// cache makes that cost one derivation. Bounded: the oldest entry goes first.
type KdfCacheEntry = ((Vec<u8>, Vec<u8>, KdfParams), [u8; 32]);
static KDF_CACHE: Mutex<Vec<KdfCacheEntry>> = Mutex::new(Vec::new());
const KDF_CACHE_MAX: usize = 16;

impl SecretKeys {
    /// Runs Argon2id over `secret` with the salt of `cluster_name`. The same secret and
    /// cluster name give the same keys on every node and every run.
    pub fn derive(
        secret: &Secret,
        cluster_name: &str,
        params: KdfParams,
    ) -> Result<SecretKeys, TlsError> {
        let mut salt = KDF_SALT.to_vec();
        salt.extend_from_slice(cluster_name.as_bytes());
        let key = (secret.expose().to_vec(), salt, params);
        let mut cache = KDF_CACHE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, master)) = cache.iter().find(|(k, _)| *k == key) {
            return Ok(SecretKeys { master: *master });
        }
        let master = argon2id(&key.0, &key.1, params)?;
        if cache.len() >= KDF_CACHE_MAX {
            cache.remove(0);
        }
        cache.push((key, master));
        Ok(SecretKeys { master })
    }

    fn expand(&self, info: &[u8], out: &mut [u8]) -> Result<(), TlsError> {
        struct Len(usize);
        impl ring::hkdf::KeyType for Len {
            fn len(&self) -> usize {
                self.0
            }
        }
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, HKDF_SALT);
        let prk = salt.extract(&self.master);
        let infos = [info];
        let okm = prk
            .expand(&infos, Len(out.len()))
            .map_err(|_| TlsError::Derive)?;
        okm.fill(out).map_err(|_| TlsError::Derive)
    }

    /// A short printable fingerprint of the secret, safe to log and compare across
    /// nodes: derived from the Argon2id output, so testing a guess against it costs as
    /// much as the derivation.
    pub fn fingerprint(&self) -> String {
        let mut out = [0u8; 8];
        match self.expand(INFO_FINGERPRINT, &mut out) {
            Ok(()) => out.iter().map(|b| format!("{b:02x}")).collect(),
            Err(_) => "unavailable".into(),
        }
    }

    /// The 32-byte key of this node's stateless resets: secret (outsiders cannot forge
    /// resets), stable across the node's restarts (a restarted node can reset
    /// connections to its previous process), and — because reset tokens are sent to
    /// anyone — derived from the Argon2id output, not the secret.
    pub fn reset_key(&self, node_label: &str) -> Result<[u8; 32], TlsError> {
        let mut info = INFO_RESET.to_vec();
        info.push(0);
        info.extend_from_slice(node_label.as_bytes());
        let mut key = [0u8; 32];
        self.expand(&info, &mut key)?;
        Ok(key)
    }

    fn ca(&self) -> Result<ClusterCa, TlsError> {
        let mut seed = [0u8; 32];
        self.expand(INFO_CA, &mut seed)?;
        let mut pkcs8 = Vec::with_capacity(48);
        pkcs8.extend_from_slice(&crate::identity::ED25519_PKCS8_PREFIX);
        pkcs8.extend_from_slice(&seed);
        let key =
            KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8), &PKCS_ED25519)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, CA_NAME);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        // The CA certificate never goes on the wire (peers build it themselves), so a
        // serial from its key is harmless and keeps the certificate deterministic.
        params.serial_number = Some(SerialNumber::from_slice(&key.public_key_raw()[..16]));
        let cert = params.self_signed(&key)?;
        Ok(ClusterCa {
            cert: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }
}

fn argon2id(secret: &[u8], salt: &[u8], p: KdfParams) -> Result<[u8; 32], TlsError> {
    let params = argon2::Params::new(p.memory_kib, p.iterations, p.lanes, Some(32))
        .map_err(|e| TlsError::Kdf(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(secret, salt, &mut out)
        .map_err(|e| TlsError::Kdf(e.to_string()))?;
    Ok(out)
}

/// The keys of the current secret and, during a rotation, of the previous one.
#[derive(Clone, Debug)]
pub struct ClusterKeys {
    pub current: SecretKeys,
    pub previous: Option<SecretKeys>,
}

impl ClusterKeys {
    /// Derives both secrets' keys (one Argon2id run each, cached per process).
    pub fn derive(
        secrets: &Secrets,
        cluster_name: &str,
        params: KdfParams,
    ) -> Result<ClusterKeys, TlsError> {
        Ok(ClusterKeys {
            current: SecretKeys::derive(&secrets.current, cluster_name, params)?,
            previous: secrets
                .previous
                .as_ref()
                .map(|s| SecretKeys::derive(s, cluster_name, params))
                .transpose()?,
        })
    }
}

/// A CA derived from a secret.
struct ClusterCa {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// The certificate name that carries a node's id.
pub fn node_dns_name(id: NodeId) -> String {
    format!("n{:016x}.{SERVER_NAME}", id.0)
}

fn parse_node_dns_name(name: &str) -> Option<NodeId> {
    let hex = name.strip_prefix('n')?.strip_suffix(SERVER_NAME)?;
    let hex = hex.strip_suffix('.')?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(NodeId)
}

/// Why a verified certificate does not say who its holder is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerIdentityError {
    #[error("no certificate")]
    NoCertificate,
    #[error("certificate does not parse")]
    Unparsable,
    #[error("certificate names no node id (or more than one)")]
    NoNodeId,
    #[error("certificate key is not Ed25519")]
    NotEd25519,
}

/// Reads (node id, key life) from the peer's end-entity certificate. Call it only on a
/// chain the handshake verified: the answer is as trustworthy as the CA.
pub fn peer_identity(chain: &[CertificateDer<'_>]) -> Result<PeerIdentity, PeerIdentityError> {
    let leaf = chain.first().ok_or(PeerIdentityError::NoCertificate)?;
    let cert = webpki::EndEntityCert::try_from(leaf).map_err(|_| PeerIdentityError::Unparsable)?;
    let mut ids = cert.valid_dns_names().filter_map(parse_node_dns_name);
    let node = ids.next().ok_or(PeerIdentityError::NoNodeId)?;
    if ids.next().is_some() {
        return Err(PeerIdentityError::NoNodeId);
    }
    let spki = cert.subject_public_key_info();
    let public = ed25519_from_spki(spki.as_ref()).ok_or(PeerIdentityError::NotEd25519)?;
    Ok(PeerIdentity {
        node,
        life: life_of_public_key(&public),
    })
}

/// The QUIC crypto configurations of one node.
#[derive(Clone)]
pub struct TlsConfig {
    pub server: Arc<QuicServerConfig>,
    pub client: Arc<QuicClientConfig>,
    /// Fingerprint of the current secret (for logs).
    pub fingerprint: String,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Builds this node's mutual-TLS configuration: a certificate for `node_key` naming
/// `node_id`, signed by the current CA, and a root store with the current and previous
/// CAs. `node_name` only labels the certificate's subject.
pub fn node_tls(
    keys: &ClusterKeys,
    node_key: &NodeKey,
    node_id: NodeId,
    node_name: &str,
) -> Result<TlsConfig, TlsError> {
    let current = keys.current.ca()?;
    let previous = keys.previous.as_ref().map(SecretKeys::ca).transpose()?;

    let mut roots = RootCertStore::empty();
    roots.add(current.cert.clone())?;
    if let Some(prev) = &previous {
        roots.add(prev.cert.clone())?;
    }
    let roots = Arc::new(roots);

    let pkcs8 = node_key.pkcs8();
    let leaf_key = KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(pkcs8.clone()),
        &PKCS_ED25519,
    )?;
    let mut params = CertificateParams::new(vec![SERVER_NAME.to_string(), node_dns_name(node_id)])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, node_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    // An authority key identifier would name the CA's key: a cheap oracle for guesses.
    params.use_authority_key_identifier_extension = false;
    let cert = params.signed_by(&leaf_key, &current.issuer)?;
    let chain = vec![cert.der().clone()];
    let key = || PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.clone()));

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        // The CA names are the same for every secret, but a stranger needs none of them.
        .clear_root_hint_subjects()
        .build()?;
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
        fingerprint: keys.current.fingerprint(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new("test", s.as_bytes()).expect("valid secret")
    }

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn keys(s: &str, cluster: &str) -> SecretKeys {
        SecretKeys::derive(&secret(s), cluster, KdfParams::MINIMAL).expect("derive")
    }

    #[test]
    fn the_default_cost_is_the_memory_hard_one() {
        assert_eq!(KdfParams::default(), KdfParams::PRODUCTION);
        assert_eq!(
            KdfParams::PRODUCTION,
            KdfParams {
                memory_kib: 65536,
                iterations: 8,
                lanes: 1
            }
        );
    }

    #[test]
    fn the_ca_is_stable_for_a_secret_and_specific_to_secret_and_cluster() -> Result<(), TlsError> {
        let a = keys(A, "aurora");
        assert_eq!(a.fingerprint(), keys(A, "aurora").fingerprint());
        assert_ne!(a.fingerprint(), keys(B, "aurora").fingerprint());
        assert_ne!(a.fingerprint(), keys(A, "other").fingerprint());
        let ca1 = a.ca()?;
        let ca2 = keys(A, "aurora").ca()?;
        assert_eq!(ca1.cert, ca2.cert, "Ed25519 signing is deterministic");
        // Uncached: a second derivation from scratch gives the same master.
        let mut salt = KDF_SALT.to_vec();
        salt.extend_from_slice(b"aurora");
        assert_eq!(argon2id(A.as_bytes(), &salt, KdfParams::MINIMAL)?, a.master);
        Ok(())
    }

    #[test]
    fn nothing_a_stranger_sees_names_the_secret_cheaply() -> Result<(), TlsError> {
        let a = keys(A, "aurora");
        let b = keys(B, "aurora");
        // The CA subject is constant: it used to carry a fingerprint of the CA key.
        let subject = |k: &SecretKeys| -> Result<Vec<u8>, TlsError> {
            let ca = k.ca()?;
            let cert = webpki::EndEntityCert::try_from(&ca.cert).map_err(|_| TlsError::Derive)?;
            Ok(cert.subject().to_vec())
        };
        assert_eq!(subject(&a)?, subject(&b)?);
        // The fingerprint and the reset key come from the Argon2id output, not from a
        // fast hash of the secret: with another cost they differ.
        let strong = SecretKeys::derive(
            &secret(A),
            "aurora",
            KdfParams {
                memory_kib: 16,
                ..KdfParams::MINIMAL
            },
        )?;
        assert_ne!(strong.fingerprint(), a.fingerprint());
        assert_ne!(strong.reset_key("n1")?, a.reset_key("n1")?);
        Ok(())
    }

    #[test]
    fn node_config_builds_with_rotation_and_names_the_node() -> Result<(), TlsError> {
        let secrets = Secrets {
            current: secret(A),
            previous: Some(secret(B)),
        };
        let keys = ClusterKeys::derive(&secrets, "aurora", KdfParams::MINIMAL)?;
        let node = NodeKey::generate().map_err(|_| TlsError::Derive)?;
        let tls = node_tls(&keys, &node, NodeId(0xabc), "n1")?;
        assert_eq!(tls.fingerprint.len(), 16);
        assert!(!format!("{tls:?}").contains("aaaa"));
        Ok(())
    }

    /// The figure in docs/operations.md: `cargo test -p aurora-io --release --
    /// --ignored production_kdf_cost --nocapture`.
    #[test]
    #[ignore = "takes about a second by design; a measurement, not a check"]
    fn production_kdf_cost() -> Result<(), TlsError> {
        // CPU time of this thread (Linux), which a loaded machine does not inflate the
        // way it inflates wall time: utime + stime in clock ticks (1/100 s).
        let cpu_ticks = || -> Option<u64> {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
            let after = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = after.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        };
        for i in 0..3 {
            let (started, cpu) = (std::time::Instant::now(), cpu_ticks());
            argon2id(
                A.as_bytes(),
                format!("salt-{i}-x").as_bytes(),
                KdfParams::PRODUCTION,
            )?;
            let cpu_ms = cpu_ticks().zip(cpu).map(|(b, a)| (b - a) * 10);
            println!(
                "Argon2id {:?}: wall {:?}, cpu {cpu_ms:?} ms",
                KdfParams::PRODUCTION,
                started.elapsed()
            );
        }
        Ok(())
    }

    #[test]
    fn node_dns_names_round_trip_and_reject_lookalikes() {
        let id = NodeId(0x0123_4567_89ab_cdef);
        assert_eq!(parse_node_dns_name(&node_dns_name(id)), Some(id));
        for bad in [
            SERVER_NAME,
            "n0123.aurora-node",
            "n0123456789abcdefg.aurora-node",
            "n0123456789abcdef.aurora-nodes",
            "x0123456789abcdef.aurora-node",
            "n+123456789abcdef.aurora-node",
        ] {
            assert_eq!(parse_node_dns_name(bad), None, "{bad}");
        }
    }
}

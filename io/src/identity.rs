//! This node's own key pair: the identity of one storage life.
//!
//! Why: the cluster secret is shared, so a certificate minted from it alone proves only
//! "holds the secret", and any holder could mint one for any node id. Each node therefore
//! generates its own Ed25519 key pair the first time it starts with a data directory and
//! keeps it there (`node.key`, PKCS#8, mode 0600). Its TLS certificate (still signed by
//! the cluster CA) carries this public key and its node id, so a peer learns, after a
//! verified handshake, *which key* speaks for that id ([`PeerIdentity`]). A later check
//! against the replicated binding (node id → [`Life`]) turns that into "a node
//! is who it first said it was".
//!
//! What holds:
//! * The key survives restarts: the same data directory gives the same [`Life`].
//! * A wiped (or new) data directory gives a new key, hence a new life: the node is then
//!   a new member under its old id, never silently the old one.
//! * The file is created with mode 0600 before any byte is written, written to a
//!   temporary name, synced and renamed, so a crash never leaves a half-written key
//!   under the real name. A file that exists but does not hold an Ed25519 key is an
//!   error naming the file, never silently replaced (that would change the node's life).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use aurora_core::{Life, NodeId};

/// File name of the node key inside the data directory.
pub const NODE_KEY_FILE: &str = "node.key";

/// PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410): this prefix, then the 32 bytes.
pub(crate) const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// SubjectPublicKeyInfo of an Ed25519 key (RFC 8410): this prefix, then the 32 bytes.
pub(crate) const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A node key that cannot be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("node key {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "node key {path} is not an Ed25519 PKCS#8 key ({reason}); move it away to start a \
         new storage life (the node then joins as a new member)"
    )]
    Corrupt { path: PathBuf, reason: &'static str },
    #[error("cannot generate a node key: no system randomness")]
    Random,
}

/// The storage life of an Ed25519 public key (32 raw bytes): the first 8 bytes of
/// SHA-256 of it, big-endian. Equal lives mean the same key (up to a 2^-64 collision);
/// a wiped data directory always gives a different one. This is the [`Life`] the core
/// puts in every header it sends, so the transport can check a header against the
/// certificate of the connection it came on.
pub fn life_of_public_key(public: &[u8]) -> Life {
    let digest = ring::digest::digest(&ring::digest::SHA256, public);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    Life(u64::from_be_bytes(first))
}

/// Who a connection's peer is, as its verified certificate says: the node id in its
/// certificate and the life (key fingerprint) of the key that completed the handshake.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    pub node: NodeId,
    pub life: Life,
}

/// This node's Ed25519 key pair. `Debug` never shows the private half.
#[derive(Clone)]
pub struct NodeKey {
    seed: [u8; 32],
    public: [u8; 32],
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey")
            .field("life", &self.life())
            .finish_non_exhaustive()
    }
}

impl NodeKey {
    /// Loads `data_dir/node.key`, or generates and stores a new key when the file does
    /// not exist. `data_dir` must exist.
    pub fn load_or_create(data_dir: &Path) -> Result<NodeKey, IdentityError> {
        match NodeKey::load(data_dir)? {
            Some(key) => Ok(key),
            None => NodeKey::create(data_dir),
        }
    }

    /// Loads `data_dir/node.key`; `None` when there is none. A file that exists but is
    /// not a key is an error, never replaced.
    pub fn load(data_dir: &Path) -> Result<Option<NodeKey>, IdentityError> {
        let path = data_dir.join(NODE_KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => NodeKey::from_pkcs8(&bytes)
                .map(Some)
                .map_err(|reason| IdentityError::Corrupt { path, reason }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(IdentityError::Io { path, source }),
        }
    }

    /// Generates a new key and stores it as `data_dir/node.key`, atomically replacing
    /// any key there: the start of a new storage life.
    pub fn create(data_dir: &Path) -> Result<NodeKey, IdentityError> {
        let path = data_dir.join(NODE_KEY_FILE);
        let key = NodeKey::generate()?;
        key.write_new(&path)?;
        tracing::info!(life = %key.life(), path = %path.display(), "generated a new node key");
        Ok(key)
    }

    /// A fresh random key, kept only in memory (tests and tools).
    pub fn generate() -> Result<NodeKey, IdentityError> {
        use ring::rand::SecureRandom;
        let mut seed = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| IdentityError::Random)?;
        NodeKey::from_seed(seed).map_err(|_| IdentityError::Random)
    }

    fn from_seed(seed: [u8; 32]) -> Result<NodeKey, &'static str> {
        use ring::signature::KeyPair;
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| "invalid Ed25519 seed")?;
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        Ok(NodeKey { seed, public })
    }

    fn from_pkcs8(bytes: &[u8]) -> Result<NodeKey, &'static str> {
        let seed = bytes
            .strip_prefix(&ED25519_PKCS8_PREFIX[..])
            .ok_or("unexpected header")?;
        let seed: [u8; 32] = seed.try_into().map_err(|_| "wrong length")?;
        NodeKey::from_seed(seed)
    }

    /// The key as PKCS#8 v1 DER (what the file holds and what TLS signs with).
    pub(crate) fn pkcs8(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48);
        out.extend_from_slice(&ED25519_PKCS8_PREFIX);
        out.extend_from_slice(&self.seed);
        out
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// This key's storage life.
    pub fn life(&self) -> Life {
        life_of_public_key(&self.public)
    }

    fn write_new(&self, path: &Path) -> Result<(), IdentityError> {
        let io = |source| IdentityError::Io {
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_extension("key.tmp");
        // A leftover from a crash during a previous creation holds no committed key.
        let _ = std::fs::remove_file(&tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(io)?;
        file.write_all(&self.pkcs8()).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent() {
            // Make the rename durable; a directory that cannot be opened for syncing
            // (some platforms) still has the file.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

/// The raw Ed25519 key of a SubjectPublicKeyInfo, if it is one.
pub(crate) fn ed25519_from_spki(spki: &[u8]) -> Option<[u8; 32]> {
    spki.strip_prefix(&ED25519_SPKI_PREFIX[..])?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_persists_across_restarts_and_a_wiped_dir_gives_a_new_life() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = NodeKey::load_or_create(dir.path()).expect("create");
        let again = NodeKey::load_or_create(dir.path()).expect("load");
        assert_eq!(first.life(), again.life());
        assert_eq!(first.public_key(), again.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(NODE_KEY_FILE))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o777,
                0o600,
                "the private key is readable by its owner only"
            );
        }
        std::fs::remove_file(dir.path().join(NODE_KEY_FILE)).expect("wipe");
        let wiped = NodeKey::load_or_create(dir.path()).expect("recreate");
        assert_ne!(
            wiped.life(),
            first.life(),
            "a wiped data dir is a new storage life"
        );
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_naming_it_never_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(NODE_KEY_FILE);
        std::fs::write(&path, b"not a key").expect("write");
        let err = NodeKey::load_or_create(dir.path()).expect_err("refused");
        assert!(matches!(err, IdentityError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("node.key"), "{err}");
        assert_eq!(std::fs::read(&path).expect("read"), b"not a key");
    }

    #[test]
    fn life_is_the_first_eight_bytes_of_the_sha256_of_the_public_key() {
        let key = NodeKey::from_seed([7; 32]).expect("key");
        let digest = ring::digest::digest(&ring::digest::SHA256, &key.public_key());
        let expected = u64::from_be_bytes(digest.as_ref()[..8].try_into().expect("8"));
        assert_eq!(key.life().0, expected);
        assert!(!format!("{key:?}").contains("0707"), "no seed in Debug");
    }
}

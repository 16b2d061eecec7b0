//! Start-up: from validated settings to a running driver, in the order that keeps the
//! promises of the other modules.
//!
//! 1. open the SQLite file (a foreign or corrupt file stops start-up here, before any
//!    network traffic);
//! 2. load (or create, on first start) the node key kept beside it: the key and the
//!    database are one storage life;
//! 3. derive the cluster keys from the secret (Argon2id: about a second by design; never
//!    logged, only the fingerprint is) and build the TLS configuration;
//! 4. resolve the seeds (a name that does not resolve yet is retried in the
//!    background, see [`crate::seeds`]), bind the QUIC endpoint with the handshake limits;
//! 5. start the driver, which commits the new incarnation before its first packet.
//!
//! The socket is a parameter so tests can run the very same start-up on turmoil.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use aurora_core::Life;

use quinn::{AsyncUdpSocket, Runtime};
use tokio::sync::mpsc;

use crate::config::{ClusterConfigError, ClusterSettings};
use crate::driver::{self, DriverConfig, DriverError, Handle};
use crate::identity::{IdentityError, NodeKey};
use crate::store::{Store, StoreError};
use crate::transport::tls::{self, TlsError};
use crate::transport::{IsolatableSocket, Isolation, Transport, TransportError};

/// Inbound messages buffered between the transport and the driver.
const INBOUND_QUEUE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("clustering is disabled (cluster.enabled / CLUSTER_ENABLED)")]
    Disabled,
    #[error(transparent)]
    Config(#[from] ClusterConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(
        "node.key in {dir} is of storage life {key} but node.db was written under life {db}: \
         put back the node.key that belongs to this node.db, or move node.db away to start \
         this node as a new member (it then needs `cluster/forget` of its old life)"
    )]
    KeyMismatch { dir: String, key: Life, db: Life },
    #[error(
        "node.db in {dir} was written under storage life {db} but node.key is missing: \
         put it back, or move node.db away to start this node as a new member"
    )]
    KeyMissing { dir: String, db: Life },
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Driver(#[from] DriverError),
}

/// Which UDP socket the node runs on.
pub enum Socket {
    /// Bind a tokio UDP socket at the configured `bind` address.
    Bind,
    /// A socket supplied by the caller (turmoil in tests), with its quinn runtime.
    Custom(Arc<dyn AsyncUdpSocket>, Arc<dyn Runtime>),
    /// [`Socket::Bind`] behind a fault switch: while the [`Isolation`] is armed every
    /// packet in and out is dropped (game days, `--allow-fault-injection`).
    BindIsolatable(Isolation),
}

/// Starts a clustered node. `seed` fixes the core's RNG (tests); `None` draws it from
/// the OS. `version` is the software version announced to peers.
pub async fn launch(
    settings: &ClusterSettings,
    db_path: &Path,
    socket: Socket,
    seed: Option<u64>,
    version: &str,
) -> Result<Handle, LaunchError> {
    let secrets = settings.secrets.as_ref().ok_or(LaunchError::Disabled)?;
    if !settings.enabled {
        return Err(LaunchError::Disabled);
    }
    let (config, mut identity) = settings.to_core(version);
    let mut store = Store::open(db_path, identity.id)?;
    store.set_history_retention(settings.timing.tombstone_ttl);
    let data_dir = match db_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let node_key = storage_identity(&mut store, data_dir)?;
    identity.life = node_key.life();
    let started = std::time::Instant::now();
    let keys = tls::ClusterKeys::derive(secrets, &settings.cluster_name, settings.kdf)?;
    let kdf_ms = started.elapsed().as_millis();
    let tls_config = tls::node_tls(&keys, &node_key, identity.id, &settings.node_name)?;
    let reset_key = keys.current.reset_key(&settings.node_id)?;
    tracing::info!(
        node = %identity.id,
        addr = %identity.addr,
        life = %node_key.life(),
        secret_fingerprint = %tls_config.fingerprint,
        kdf_ms,
        rotation = secrets.previous.is_some(),
        "starting cluster node"
    );
    // Names that do not resolve yet are retried once the driver runs (crate::seeds);
    // only a malformed entry stops the start.
    let resolution = crate::seeds::resolve(&settings.seed_nodes, identity.addr).await?;
    let seeds: Vec<SocketAddr> = resolution.addrs;
    let own = identity.addr;
    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
    let transport = match socket {
        Socket::Bind => Transport::bind_with_limits(
            settings.bind,
            &tls_config,
            reset_key,
            &settings.handshakes,
            inbound_tx,
        )?,
        Socket::BindIsolatable(isolation) => {
            let socket =
                std::net::UdpSocket::bind(settings.bind).map_err(TransportError::Endpoint)?;
            let runtime: Arc<dyn Runtime> = Arc::new(quinn::TokioRuntime);
            let socket = runtime
                .wrap_udp_socket(socket)
                .map_err(TransportError::Endpoint)?;
            tracing::warn!(
                "fault injection is enabled: this node's cluster traffic can be cut off on request"
            );
            Transport::with_limits(
                Arc::new(IsolatableSocket::new(socket, isolation)),
                runtime,
                &tls_config,
                reset_key,
                &settings.handshakes,
                inbound_tx,
            )?
        }
        Socket::Custom(socket, runtime) => Transport::with_limits(
            socket,
            runtime,
            &tls_config,
            reset_key,
            &settings.handshakes,
            inbound_tx,
        )?,
    };
    let seed = match seed {
        Some(s) => s,
        None => os_seed()?,
    };
    let handle = driver::start(
        DriverConfig {
            config,
            identity,
            seed,
            seeds,
            pending_seeds: resolution.unresolved.len(),
        },
        store,
        transport,
        inbound_rx,
    )?;
    if !resolution.unresolved.is_empty() {
        tokio::spawn(crate::seeds::retry_unresolved(
            resolution.unresolved,
            own,
            handle.seed_sink(),
        ));
    }
    Ok(handle)
}

/// The node key for `store`, the two being one storage life:
///
/// * a file of a recorded life needs the key of that life (a mismatch or a missing key
///   is an operator's mix-up, refused with what to do, never silently "fixed");
/// * a new file gets a new key, even if an old `node.key` is there: that key's life
///   may have written entries under its numbers before the database was lost, and a
///   new life starts a fresh numbering that can never collide with them.
///
/// The life is recorded in the file before the node writes anything under it. A crash
/// between creating the key and recording it only means the next start creates another.
fn storage_identity(store: &mut Store, data_dir: &Path) -> Result<NodeKey, LaunchError> {
    let dir = || data_dir.display().to_string();
    let key = match (store.life()?, NodeKey::load(data_dir)?) {
        (Some(db), Some(key)) if key.life() == db => return Ok(key),
        (Some(db), Some(key)) => {
            return Err(LaunchError::KeyMismatch {
                dir: dir(),
                key: key.life(),
                db,
            })
        }
        (Some(db), None) => return Err(LaunchError::KeyMissing { dir: dir(), db }),
        (None, Some(old)) => {
            tracing::warn!(
                old_life = %old.life(),
                "node.db is new but node.key is from an earlier storage life: starting a new life with a new key"
            );
            NodeKey::create(data_dir)?
        }
        (None, None) => NodeKey::create(data_dir)?,
    };
    store.record_life(key.life())?;
    Ok(key)
}

fn os_seed() -> Result<u64, TlsError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| TlsError::Derive)?;
    Ok(u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurora_core::NodeId;

    fn open(dir: &Path) -> Store {
        Store::open(dir.join("node.db"), NodeId(7)).expect("open")
    }

    #[test]
    fn the_key_and_the_database_are_one_storage_life() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = storage_identity(&mut open(dir.path()), dir.path()).expect("first start");
        let again = storage_identity(&mut open(dir.path()), dir.path()).expect("restart");
        assert_eq!(first.life(), again.life(), "a restart keeps its life");

        // node.db lost, node.key kept: the old key's life may have numbered writes
        // that peers still hold, so the new database gets a new life.
        std::fs::remove_file(dir.path().join("node.db")).expect("wipe db");
        let wiped = storage_identity(&mut open(dir.path()), dir.path()).expect("wiped db");
        assert_ne!(wiped.life(), first.life(), "a new database is a new life");
        let reloaded = NodeKey::load(dir.path()).expect("load").expect("stored");
        assert_eq!(
            reloaded.life(),
            wiped.life(),
            "the new key replaced the old"
        );
    }

    #[test]
    fn a_database_with_another_lifes_key_or_none_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let life = storage_identity(&mut open(dir.path()), dir.path())
            .expect("first start")
            .life();
        NodeKey::create(dir.path()).expect("a foreign key");
        let err = storage_identity(&mut open(dir.path()), dir.path()).expect_err("mismatch");
        assert!(
            matches!(err, LaunchError::KeyMismatch { db, .. } if db == life),
            "{err}"
        );
        std::fs::remove_file(dir.path().join("node.key")).expect("lose the key");
        let err = storage_identity(&mut open(dir.path()), dir.path()).expect_err("missing");
        assert!(
            matches!(err, LaunchError::KeyMissing { db, .. } if db == life),
            "{err}"
        );
        assert!(err.to_string().contains("node.key is missing"), "{err}");
    }
}

//! Start-up: from validated settings to a running driver, in the order that keeps the
//! promises of the other modules.
//!
//! 1. open the SQLite file (a foreign or corrupt file stops start-up here, before any
//!    network traffic);
//! 2. load (or create, on first start) the node key kept beside it: the key and the
//!    database are one storage life;
//! 3. derive the cluster keys from the secret (Argon2id: about a second by design; never
//!    logged, only the fingerprint is) and build the TLS configuration;
//! 4. resolve the seeds, bind the QUIC endpoint with the handshake limits;
//! 5. start the driver, which commits the new incarnation before its first packet.
//!
//! The socket is a parameter so tests can run the very same start-up on turmoil.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use quinn::{AsyncUdpSocket, Runtime};
use tokio::sync::mpsc;

use crate::config::{resolve_seeds, ClusterSettings, ConfigError};
use crate::driver::{self, DriverConfig, DriverError, Handle};
use crate::identity::{IdentityError, NodeKey};
use crate::store::{Store, StoreError};
use crate::transport::tls::{self, TlsError};
use crate::transport::{Transport, TransportError};

/// Inbound messages buffered between the transport and the driver.
const INBOUND_QUEUE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("clustering is disabled (cluster.enabled / CLUSTER_ENABLED)")]
    Disabled,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
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
    let data_dir = match db_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let node_key = NodeKey::load_or_create(data_dir)?;
    identity.life = store.storage_life(node_key.life().get())?;
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
    let seeds: Vec<SocketAddr> = resolve_seeds(&settings.seed_nodes, identity.addr).await?;
    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
    let transport = match socket {
        Socket::Bind => Transport::bind_with_limits(
            settings.bind,
            &tls_config,
            reset_key,
            &settings.handshakes,
            inbound_tx,
        )?,
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
        },
        store,
        transport,
        inbound_rx,
    )?;
    Ok(handle)
}

fn os_seed() -> Result<u64, TlsError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| TlsError::Derive)?;
    Ok(u64::from_le_bytes(bytes))
}

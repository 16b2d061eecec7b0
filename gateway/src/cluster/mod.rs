//! The gateway's side of the node: starting the io driver, reading the replicated
//! state ([`view::StateView`]), rebuilding the catalog from it ([`catalog`]), the
//! cluster's status, node list and metrics ([`status`]), and calls to peer nodes
//! ([`ClusterInfo::peer_calls`]).
//!
//! Every `aurora serve` runs a core node through the io driver with its SQLite file in
//! `<data-dir>/node.db`, clustered or not, so that the admin API, budgets and usage go
//! through one code path and a single node keeps its records across restarts.
//!
//! Single-node mode (clustering disabled) binds the QUIC endpoint on `127.0.0.1:0`
//! with a random per-process secret instead of making the transport optional. Why: the
//! driver, its persistence contract and its tests stay exactly those of a clustered
//! node (no second code path to get wrong), while nothing is reachable from outside
//! the machine and no peer could ever authenticate (the secret is never written
//! down). With no seeds and no members the core sends nothing, so the socket is idle.

pub mod catalog;
pub mod handover;
pub mod status;
pub mod view;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aurora_core::Command;
use aurora_io::config::{ClusterSettings, Secret, Secrets};
use aurora_io::{ClusterView, Commander, DriverError, Handle, LaunchError, PeerCalls};
use tokio::sync::watch;

pub use view::{StateView, WriteError};

/// The node id a single node uses when `cluster.node_id` is not set. The SQLite file
/// remembers it; enabling clustering on the same data directory later needs
/// `node_id: local` or a fresh directory (the store refuses a file of another node).
pub const SINGLE_NODE_ID: &str = "local";

/// The SQLite file inside the data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("node.db")
}

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error("cannot draw a random single-node secret from the OS: {0}")]
    Random(String),
}

/// What the admin API and metrics know about the cluster. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ClusterInfo {
    /// `cluster.enabled`.
    pub enabled: bool,
    /// This node's configured `cluster.node_id` (`local` for a lone node without one),
    /// the id the API shows for it (`status::shown_id`); empty without a node.
    pub node_id: String,
    /// `cluster.failover_mode` (`single_node` when clustering is disabled).
    pub mode: &'static str,
    /// This node's settings fingerprint, compared with the members' for drift warnings.
    pub fingerprint: u64,
    /// The software version this node announces.
    pub version: String,
    /// This node's own metadata as announced to peers (for its row in the node list).
    pub region: String,
    pub zone: String,
    pub advertise_url: String,
    pub sync_addr: String,
    /// `cluster.heartbeat_interval_seconds`, in milliseconds (for the UI's Settings →
    /// Routing page; the core's default when clustering is off).
    pub heartbeat_interval_ms: u64,
    /// The switch that cuts this node's cluster traffic (`POST cluster/fault`); `None`
    /// unless the node was started with fault injection allowed.
    pub faults: Option<aurora_io::transport::Isolation>,
    view: watch::Receiver<Arc<ClusterView>>,
    /// Runs failover commands (switchover, forget); `None` without a node.
    commander: Option<Commander>,
    /// This node's SQLite file, read (read-only) for point-in-time exports; `None`
    /// without a node.
    pub db_path: Option<PathBuf>,
    /// Calls to and from peers over the cluster's connections; `None` without a node.
    peer_calls: Option<PeerCalls>,
    /// The node's events (quota grants for this node's holder among them); `None`
    /// without a node.
    events: Option<aurora_io::EventSource>,
}

impl ClusterInfo {
    /// No node at all (tests with a detached state view).
    pub fn detached() -> ClusterInfo {
        let (_tx, view) = watch::channel(Arc::new(ClusterView::default()));
        ClusterInfo {
            enabled: false,
            node_id: String::new(),
            mode: "single_node",
            fingerprint: 0,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            region: String::new(),
            zone: String::new(),
            advertise_url: String::new(),
            sync_addr: String::new(),
            heartbeat_interval_ms: aurora_core::Timing::lan().heartbeat_interval.as_millis() as u64,
            faults: None,
            view,
            commander: None,
            db_path: None,
            peer_calls: None,
            events: None,
        }
    }

    /// Request/reply calls to peer nodes over the cluster's authenticated QUIC
    /// connections, and the registration of this node's handler for theirs
    /// (`aurora_io::transport::call`). `None` without a node (detached tests). A single
    /// node has one too, with no peer to call.
    pub fn peer_calls(&self) -> Option<&PeerCalls> {
        self.peer_calls.as_ref()
    }

    /// The node's events from now on; `None` without a node.
    pub fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<aurora_core::Event>> {
        self.events.as_ref().map(aurora_io::EventSource::subscribe)
    }

    /// Sends a command without waiting for it to be carried out (a quota holder's
    /// ask). `false` when there is no node, or its queue is full (the holder asks
    /// again).
    pub fn command_now(&self, command: Command) -> bool {
        self.commander
            .as_ref()
            .is_some_and(|c| c.try_command(command))
    }

    /// The driver's latest membership view. Never waits for the driver.
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.borrow().clone()
    }

    /// A receiver notified of each new view; its `changed` fails once the driver is
    /// gone (the process watches that to stop serving, see `main.rs`).
    pub fn watch(&self) -> watch::Receiver<Arc<ClusterView>> {
        self.view.clone()
    }

    /// Why the driver no longer runs: the error it stopped on, or, when it ended
    /// without publishing one (a panic), that it ended. `None` while it runs and
    /// without a node (detached tests). A node whose driver stopped serves a frozen
    /// copy of the state (revoked keys would stay valid), so callers refuse to serve.
    pub fn driver_stopped(&self) -> Option<String> {
        self.commander.as_ref()?;
        if let Some(reason) = &self.view.borrow().stopped {
            return Some(reason.clone());
        }
        // The driver owns the sending side: a closed channel means its task ended.
        self.view
            .has_changed()
            .is_err()
            .then(|| "the cluster driver task ended unexpectedly".to_owned())
    }

    /// Whether the nodes elect a leader (clustering on and a mode other than
    /// `single_node`); only then do switchover and forget mean anything.
    pub fn elects(&self) -> bool {
        self.enabled && self.mode != "single_node"
    }

    /// Runs `command` on the node (answered once the driver carried it out).
    pub async fn command(&self, command: Command) -> Result<(), DriverError> {
        match &self.commander {
            Some(commander) => commander.command(command).await,
            None => Err(DriverError::Stopped),
        }
    }

    /// Waits at most `limit` until this node's state caught up with a peer (at once
    /// for a node that joins no peers); logs how it went. Called before the HTTP
    /// listener opens, so a restarted node refuses connections (which clients retry
    /// elsewhere) instead of answering 503 `node_syncing` while it catches up.
    pub async fn wait_synced(&self, limit: Duration) -> bool {
        if self.view().state_synced() {
            return true;
        }
        let started = std::time::Instant::now();
        let synced = self
            .settle(limit, ClusterView::state_synced)
            .await
            .state_synced();
        if synced {
            tracing::info!(
                waited_ms = started.elapsed().as_millis() as u64,
                "caught up with a peer; opening the HTTP listener"
            );
        } else {
            tracing::warn!(
                waited_ms = started.elapsed().as_millis() as u64,
                "not caught up with any peer yet; listening anyway (clients get 503 node_syncing until it has)"
            );
        }
        synced
    }

    /// Waits until a view satisfies `done`, at most `limit`; returns the view that
    /// did, or the latest one when time ran out (the caller checks `done` again).
    pub async fn settle(
        &self,
        limit: Duration,
        mut done: impl FnMut(&ClusterView) -> bool,
    ) -> Arc<ClusterView> {
        let mut view = self.view.clone();
        let waited = tokio::time::timeout(limit, view.wait_for(|v| done(v))).await;
        match waited {
            Ok(Ok(settled)) => settled.clone(),
            _ => self.view(),
        }
    }
}

/// A running node: the driver handle plus what the gateway shares of it.
#[derive(Debug)]
pub struct Node {
    handle: Handle,
    /// Status, members and counters for the admin API and /metrics.
    pub info: ClusterInfo,
    /// Read (and write) access to the replicated store.
    pub state_view: StateView,
}

impl Node {
    /// Starts the node: clustered when `settings.enabled`, otherwise a single node on
    /// loopback (see the module docs). `data_dir` must exist.
    pub async fn start(settings: &ClusterSettings, data_dir: &Path) -> Result<Node, StartError> {
        Node::start_with_faults(settings, data_dir, false).await
    }

    /// [`Node::start`], with the QUIC socket behind a fault switch when
    /// `allow_faults` (game days: `POST /admin/api/cluster/fault` can then cut it off).
    pub async fn start_with_faults(
        settings: &ClusterSettings,
        data_dir: &Path,
        allow_faults: bool,
    ) -> Result<Node, StartError> {
        let version = env!("CARGO_PKG_VERSION");
        let run = if settings.enabled {
            settings.clone()
        } else {
            single_node_settings(settings)?
        };
        let faults = allow_faults.then(aurora_io::transport::Isolation::new);
        let socket = match &faults {
            Some(isolation) => aurora_io::Socket::BindIsolatable(isolation.clone()),
            None => aurora_io::Socket::Bind,
        };
        let handle = aurora_io::launch(&run, &db_path(data_dir), socket, None, version).await?;
        let info = ClusterInfo {
            enabled: settings.enabled,
            node_id: run.node_id.clone(),
            mode: if settings.enabled {
                settings.failover_mode.as_str()
            } else {
                "single_node"
            },
            fingerprint: run.config_fingerprint(),
            version: version.to_owned(),
            region: run.region.clone(),
            zone: run.zone.clone(),
            advertise_url: run.advertise_url.clone(),
            sync_addr: run.sync_bind.to_string(),
            heartbeat_interval_ms: run.timing.heartbeat_interval.as_millis() as u64,
            faults,
            view: handle.watch(),
            commander: Some(handle.commander()),
            db_path: Some(db_path(data_dir)),
            peer_calls: Some(handle.peer_calls()),
            events: Some(handle.event_source()),
        };
        let state_view = StateView::new(handle.watch_state(), handle.commander());
        Ok(Node {
            handle,
            info,
            state_view,
        })
    }

    /// Leaves the cluster gracefully (peers learn at once instead of detecting a
    /// failure) and stops the driver; after `deadline` it stops anyway. A single node
    /// just stops. Usage recorded and not yet handed to the driver is handed over
    /// first; the core publishes its pending usage as it leaves.
    pub async fn shutdown(self, deadline: Duration) -> Result<(), DriverError> {
        self.state_view.hand_off_usage().await;
        if self.info.enabled {
            self.handle.leave(deadline).await
        } else {
            self.handle.stop().await
        }
    }

    /// The driver handle (tests).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

fn single_node_settings(settings: &ClusterSettings) -> Result<ClusterSettings, StartError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StartError::Random(e.to_string()))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let secret = Secret::new("single-node secret", hex.as_bytes())
        .map_err(|e| StartError::Random(e.to_string()))?;
    let loopback = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0);
    let node_id = if settings.node_id.is_empty() {
        SINGLE_NODE_ID.to_owned()
    } else {
        settings.node_id.clone()
    };
    let node_name = if settings.node_name.is_empty() {
        node_id.clone()
    } else {
        settings.node_name.clone()
    };
    Ok(ClusterSettings {
        enabled: true,
        node_id,
        node_name,
        bind: loopback,
        advertise: loopback,
        sync_bind: loopback,
        seed_nodes: Vec::new(),
        secrets: Some(Secrets {
            current: secret,
            previous: None,
        }),
        // The secret is 256 random bits that never leave this process: nothing to guess,
        // so the memory-hard derivation would only slow start-up.
        kdf: aurora_io::config::KdfParams::MINIMAL,
        ..settings.clone()
    })
}

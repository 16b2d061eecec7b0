//! The node: one sans-IO state machine with a quinn-proto-style API.
//!
//! ```text
//! node.handle_datagram(now, from, &bytes)   // a packet from a peer
//! node.handle_stream(now, from, &bytes)     // a whole stream message from a peer
//! node.handle_command(now, command)         // a local request
//! node.handle_timeout(now)                  // a deadline from poll_timeout passed
//! node.poll_timeout() -> Option<Millis>     // when to call handle_timeout next
//! node.poll_output()  -> Option<Output>     // Transmit | Persist | Event, in order
//! ```
//!
//! The driver owns all I/O. It must drain `poll_output` after every `handle_*` call,
//! commit each `Persist` before carrying out any later `Transmit`, and call
//! `handle_timeout` no later than `poll_timeout` asks. Given the same seed and the
//! same sequence of calls, a node produces the same outputs, byte for byte.

use crate::config::{Config, ConfigError, Identity, MemberMeta};
use crate::event::Event;
use crate::id::{Addr, Incarnation, NodeId};
use crate::membership::{Member, Membership, MembershipStats};
use crate::outbox::{Effect, Outbox};
use crate::persist::{PersistBatch, PersistItem, Restored};
use crate::rng::DetRng;
use crate::time::Millis;
use crate::wire::{self, Channel, DecodeError, MAX_APP_PAYLOAD};

/// A request from the node's own process.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Join the cluster through these seed addresses.
    Join { seeds: Vec<Addr> },
    /// Leave gracefully; an `Event::Local(LocalChange::Left)` follows when done.
    Leave,
    /// Announce new metadata.
    UpdateMeta(MemberMeta),
    /// Spread an opaque payload to every member.
    Broadcast(Vec<u8>),
}

/// A command the node refused; the node's state is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("broadcast payload of {0} bytes exceeds the {MAX_APP_PAYLOAD}-byte limit")]
    PayloadTooLarge(usize),
    #[error("invalid metadata: {0}")]
    InvalidMeta(ConfigError),
    #[error("the node has left the cluster")]
    Left,
}

/// Bytes to send to a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub to: Addr,
    pub channel: Channel,
    pub bytes: Vec<u8>,
}

/// What the driver must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Transmit(Transmit),
    /// Commit before any later `Transmit`.
    Persist(PersistBatch),
    Event(Event),
}

/// Traffic counters, for metrics and the simulator's bandwidth figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeMetrics {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Dropped packets, indexed by [`DecodeError::index`].
    pub dropped: [u64; DecodeError::ALL.len()],
    pub membership: MembershipStats,
}

impl NodeMetrics {
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// One Aurora node's cluster state machine.
#[derive(Clone, Debug)]
pub struct Node {
    config: Config,
    membership: Membership,
    outbox: Outbox,
    metrics: NodeMetrics,
}

impl Node {
    /// Builds a node. `seed` drives every random choice; `restored` is what the
    /// driver read back from disk (empty on first start). A restarted node comes
    /// back with an incarnation above any it announced, so its return overrides
    /// the cluster's memory of its death.
    pub fn new(
        config: Config,
        identity: Identity,
        seed: u64,
        restored: Restored,
        now: Millis,
    ) -> Result<Node, ConfigError> {
        config.validate()?;
        identity.meta.validate()?;
        let mut outbox = Outbox::default();
        // Persisted even on first start: a restart must always come back above
        // whatever the cluster remembers of this node.
        let incarnation = restored
            .incarnation
            .map_or(Incarnation(0), Incarnation::next);
        outbox.persist(PersistBatch {
            items: vec![PersistItem::Incarnation(incarnation)],
        });
        let membership = Membership::new(
            identity,
            incarnation,
            config.timing.clone(),
            DetRng::from_seed(seed),
            now,
        );
        Ok(Node {
            config,
            membership,
            outbox,
            metrics: NodeMetrics::default(),
        })
    }

    /// A packet that arrived as a datagram.
    pub fn handle_datagram(&mut self, now: Millis, from: Addr, bytes: &[u8]) {
        self.handle_packet(now, from, Channel::Datagram, bytes);
    }

    /// A complete message that arrived on a stream.
    pub fn handle_stream(&mut self, now: Millis, from: Addr, bytes: &[u8]) {
        self.handle_packet(now, from, Channel::Stream, bytes);
    }

    fn handle_packet(&mut self, now: Millis, from: Addr, channel: Channel, bytes: &[u8]) {
        self.metrics.packets_in += 1;
        self.metrics.bytes_in += bytes.len() as u64;
        match wire::decode(self.config.cluster, channel, bytes) {
            Ok(envelope) => self.membership.handle_message(
                now,
                from,
                envelope.sender,
                envelope.message,
                &mut self.outbox,
            ),
            Err(e) => self.metrics.dropped[e.index()] += 1,
        }
    }

    pub fn handle_command(&mut self, now: Millis, command: Command) -> Result<(), CommandError> {
        if self.membership.has_left() {
            return Err(CommandError::Left);
        }
        match command {
            Command::Join { seeds } => self.membership.join(now, seeds, &mut self.outbox),
            Command::Leave => self.membership.leave(now, &mut self.outbox),
            Command::UpdateMeta(meta) => {
                meta.validate().map_err(CommandError::InvalidMeta)?;
                self.membership.update_meta(meta, &mut self.outbox);
            }
            Command::Broadcast(payload) => {
                if payload.len() > MAX_APP_PAYLOAD {
                    return Err(CommandError::PayloadTooLarge(payload.len()));
                }
                self.membership.broadcast(now, payload);
            }
        }
        Ok(())
    }

    pub fn handle_timeout(&mut self, now: Millis) {
        self.membership.handle_timeout(now, &mut self.outbox);
    }

    pub fn poll_timeout(&self) -> Option<Millis> {
        self.membership.poll_timeout()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        let effect = self.outbox.pop()?;
        Some(match effect {
            Effect::Send {
                to,
                channel,
                message,
            } => {
                let bytes = wire::encode(self.config.cluster, self.membership.id(), &message);
                self.metrics.packets_out += 1;
                self.metrics.bytes_out += bytes.len() as u64;
                Output::Transmit(Transmit { to, channel, bytes })
            }
            Effect::Persist(batch) => Output::Persist(batch),
            Effect::Event(event) => Output::Event(event),
        })
    }

    // ---- read access -----------------------------------------------------------

    pub fn id(&self) -> NodeId {
        self.membership.id()
    }

    /// Joining, active, leaving or left.
    pub fn phase(&self) -> crate::membership::Phase {
        self.membership.phase()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Every other member this node knows, by id.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.membership.members()
    }

    pub fn metrics(&self) -> NodeMetrics {
        NodeMetrics {
            membership: self.membership.stats(),
            ..self.metrics.clone()
        }
    }
}

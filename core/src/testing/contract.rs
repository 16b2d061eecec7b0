//! The driver contract, checked from outside the node, in one place.
//!
//! What a correct node promises its driver, whatever its inputs (every harness used to
//! repeat some of these checks; now they all call this):
//! - every `Transmit` decodes on the channel it is sent on, names this node and its
//!   storage life as its sender (`wire`);
//! - it never announces an incarnation of its own above the highest it asked to persist
//!   before that send (`announced-after-persisted`);
//! - every replicated entry a packet carries (a `Rumor::State`, a sync delta) was in a
//!   `Persist` batch emitted before that packet (`persist-before-transmit`);
//! - its incarnation never goes down within one storage life, restarts included
//!   (`incarnation-monotone`);
//! - `poll_timeout` is `Some` until the node has left and `None` after (`timer`);
//! - opt-in, as it costs a walk of the store per round: every entry its store holds was
//!   persisted (`store-persisted`).
//!
//! The checker judges each send against the batches emitted *before* it (see
//! [`Round`](crate::Round)), which is the order the contract is stated in.

use std::collections::BTreeMap;
use std::fmt;

use crate::id::{ClusterId, Incarnation, Life, NodeId, Origin};
use crate::node::{Node, Transmit};
use crate::persist::{PersistBatch, PersistItem, Restored};
use crate::state::hlc::Hlc;
use crate::state::store::Entry;
use crate::wire::{self, MemberUpdate, Message, Rumor};

/// A broken promise: which check, and what the node did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The check's name (see the module docs).
    pub check: &'static str,
    /// What happened, naming the node.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.check, self.detail)
    }
}

/// How often each contract check ran, so a report can show they were on.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ContractCounts {
    /// Transmits decoded and judged (`wire`, `announced-after-persisted`,
    /// `persist-before-transmit`).
    pub transmits: u64,
    /// Own incarnations found in those transmits and compared with the persisted one.
    pub announcements: u64,
    /// Replicated entries found in those transmits and looked up among the persisted.
    pub carried_entries: u64,
    /// Rounds after which incarnation and timer were checked.
    pub rounds: u64,
    /// Store walks (`store-persisted`).
    pub store_walks: u64,
}

/// The contract state of one node (one host across its restarts).
#[derive(Clone, Debug)]
pub struct Contract {
    cluster: ClusterId,
    id: NodeId,
    life: Life,
    /// The highest incarnation ever persisted in this life.
    persisted_incarnation: Option<Incarnation>,
    /// Every entry ever persisted in this life, by the write it names.
    persisted: BTreeMap<(Origin, u64), Hlc>,
    /// The highest incarnation seen so far in this life.
    incarnation: Incarnation,
    /// Walk the store after each round (`store-persisted`).
    pub check_store: bool,
    /// How often each check ran.
    pub counts: ContractCounts,
    violations: Vec<Violation>,
}

/// At most this many violations are kept per node (the first ones tell the story).
const MAX_VIOLATIONS: usize = 16;

impl Contract {
    /// The contract of node `id` in storage life `life`, starting from what its disk
    /// holds (an empty one for a new node).
    pub fn new(cluster: ClusterId, id: NodeId, life: Life, disk: &Restored) -> Contract {
        let mut c = Contract {
            cluster,
            id,
            life,
            persisted_incarnation: None,
            persisted: BTreeMap::new(),
            incarnation: Incarnation(0),
            check_store: false,
            counts: ContractCounts::default(),
            violations: Vec::new(),
        };
        c.restarted(disk);
        c
    }

    /// The node restarts from `disk`: what the disk holds counts as persisted (it
    /// was, by an earlier life of the process, or by whoever preloaded it).
    pub fn restarted(&mut self, disk: &Restored) {
        self.persisted_incarnation = self.persisted_incarnation.max(disk.incarnation);
        for e in disk.entries.values() {
            self.persisted.insert((e.origin(), e.seq), e.hlc);
        }
    }

    /// The disk is lost: the node comes back as `life`, a new storage life, and
    /// nothing of the old life's promises carries over.
    pub fn new_life(&mut self, life: Life) {
        let counts = self.counts;
        let check_store = self.check_store;
        let violations = std::mem::take(&mut self.violations);
        *self = Contract::new(self.cluster, self.id, life, &Restored::default());
        self.counts = counts;
        self.check_store = check_store;
        self.violations = violations;
    }

    /// The violations seen so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    fn violated(&mut self, check: &'static str, detail: String) {
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(Violation {
                check,
                detail: format!("{}: {detail}", self.id),
            });
        }
    }

    /// A batch the node emitted (in emission order with the transmits).
    pub fn persisted(&mut self, batch: &PersistBatch) {
        for item in &batch.items {
            match item {
                PersistItem::Incarnation(i) => {
                    self.persisted_incarnation = self.persisted_incarnation.max(Some(*i));
                }
                PersistItem::Entry(e) => {
                    self.persisted.insert((e.origin(), e.seq), e.hlc);
                }
                _ => {}
            }
        }
    }

    /// Whether the write `e` names was persisted in this life.
    pub fn was_persisted(&self, e: &Entry) -> bool {
        self.persisted.get(&(e.origin(), e.seq)) == Some(&e.hlc)
    }

    /// A send the node emitted, judged against the batches emitted before it.
    pub fn transmit(&mut self, t: &Transmit) {
        self.counts.transmits += 1;
        let envelope = match wire::decode(self.cluster, t.channel, &t.bytes) {
            Ok(e) => e,
            Err(e) => {
                let detail = format!(
                    "sent {} B on {:?} to {} that do not decode: {e}",
                    t.bytes.len(),
                    t.channel,
                    t.to
                );
                return self.violated("wire", detail);
            }
        };
        if envelope.sender != self.id || envelope.life != self.life {
            let detail = format!(
                "sent a packet as {} (life {:?}), not as itself (life {:?})",
                envelope.sender, envelope.life, self.life
            );
            self.violated("wire", detail);
        }
        let message = &envelope.message;
        for i in announced(self.id, message) {
            self.counts.announcements += 1;
            if Some(i) > self.persisted_incarnation {
                let detail = format!(
                    "announced {i:?} in a {} before persisting it (persisted {:?})",
                    message.kind(),
                    self.persisted_incarnation
                );
                self.violated("announced-after-persisted", detail);
            }
        }
        for e in carried(message) {
            self.counts.carried_entries += 1;
            if !self.was_persisted(e) {
                let detail = format!(
                    "sent write ({}, {}) at {:?} in a {} before persisting it",
                    e.origin().node,
                    e.seq,
                    e.hlc,
                    message.kind()
                );
                self.violated("persist-before-transmit", detail);
            }
        }
    }

    /// After a round: the incarnation did not go down, the timer is there exactly
    /// while the node has not left, and (opt-in) the store holds only persisted writes.
    pub fn after_round(&mut self, node: &Node) {
        self.counts.rounds += 1;
        let now = node.view().incarnation();
        if now < self.incarnation {
            let detail = format!("incarnation went from {:?} to {now:?}", self.incarnation);
            self.violated("incarnation-monotone", detail);
        }
        self.incarnation = self.incarnation.max(now);
        let left = node.view().has_left();
        if node.poll_timeout().is_some() == left {
            let detail = format!(
                "poll_timeout is {:?} while has_left is {left}",
                node.poll_timeout()
            );
            self.violated("timer", detail);
        }
        if self.check_store {
            self.counts.store_walks += 1;
            let missing = node
                .view()
                .store()
                .entries()
                .find(|e| !self.was_persisted(e))
                .map(|e| (e.origin().node, e.seq));
            if let Some((origin, seq)) = missing {
                let detail = format!("the store holds write ({origin}, {seq}), never persisted");
                self.violated("store-persisted", detail);
            }
        }
    }
}

/// Incarnations of node `id` that a message announces.
pub fn announced(id: NodeId, message: &Message) -> Vec<Incarnation> {
    let mut out: Vec<Incarnation> = message
        .rumors()
        .iter()
        .filter_map(|r| match r {
            Rumor::Member(MemberUpdate::Alive {
                node, incarnation, ..
            }) if *node == id => Some(*incarnation),
            _ => None,
        })
        .collect();
    if let Message::PushPull { members, .. } = message {
        out.extend(
            members
                .iter()
                .filter(|r| r.node == id)
                .map(|r| r.incarnation),
        );
    }
    out
}

/// Replicated writes a message carries.
pub fn carried(message: &Message) -> Vec<&Entry> {
    let mut out: Vec<&Entry> = message
        .rumors()
        .iter()
        .filter_map(|r| match r {
            Rumor::State(e) => Some(e),
            _ => None,
        })
        .collect();
    if let Message::SyncResponse { delta, .. } | Message::SyncPush { delta } = message {
        out.extend(&delta.entries);
    }
    out
}

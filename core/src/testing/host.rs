//! One simulated host (a node, its disk, its contract) and the one drain loop every
//! harness runs after each input.

use crate::event::Event;
use crate::id::{ClusterId, Life, NodeId};
use crate::node::{Node, Transmit};
use crate::persist::{PersistBatch, Restored};
use crate::round::{Effect, Round};

use super::contract::Contract;

/// A node as a harness runs it: the process (absent while crashed or stopped), what
/// survives a crash (its disk, which holds exactly the committed batches), and the
/// contract checker that has watched every round of it.
#[derive(Debug)]
pub struct Host {
    /// The running process, if any.
    pub node: Option<Node>,
    /// What survives a crash: every batch committed so far, applied in order.
    pub disk: Restored,
    /// The contract checks of this host, across its restarts.
    pub contract: Contract,
}

impl Host {
    /// A host of node `id` in storage life `life` with an empty disk, not running.
    pub fn new(cluster: ClusterId, id: NodeId, life: Life) -> Host {
        Host {
            node: None,
            disk: Restored::default(),
            contract: Contract::new(cluster, id, life, &Restored::default()),
        }
    }

    /// Starts `node` (built from a copy of [`Host::disk`]).
    pub fn boot(&mut self, node: Node) {
        self.contract.restarted(&self.disk);
        self.node = Some(node);
    }

    /// The process dies: everything not committed is gone.
    pub fn crash(&mut self) {
        self.node = None;
    }

    /// The disk is lost while the process is down: the next boot is storage life `life`.
    pub fn wipe(&mut self, life: Life) {
        self.disk = Restored::default();
        self.contract.new_life(life);
    }

    /// Drains the node's outputs, judges them against the contract, commits every
    /// batch to the disk (all before any effect, as the io driver does) and hands the
    /// round back for its effects to be carried out. `None` while the node is down.
    pub fn round(&mut self) -> Option<Round> {
        let node = self.node.as_mut()?;
        let round = Round::drain(node);
        let mut judged = 0;
        for (before, effect) in &round.effects {
            for batch in &round.persists[judged..*before] {
                self.contract.persisted(batch);
            }
            judged = judged.max(*before);
            if let Effect::Transmit(t) = effect {
                self.contract.transmit(t);
            }
        }
        for batch in &round.persists[judged..] {
            self.contract.persisted(batch);
        }
        for batch in &round.persists {
            self.disk.apply(batch);
        }
        self.contract.after_round(node);
        Some(round)
    }
}

/// What a harness provides around its hosts: where they are, and what carrying out a
/// round's effects means there (its network, its observers).
pub trait Driver {
    /// Host `i`.
    fn host(&mut self, i: usize) -> &mut Host;
    /// Host `i` sends `t` (its batches so far are committed).
    fn transmit(&mut self, i: usize, t: Transmit);
    /// Host `i` reports `e`.
    fn event(&mut self, i: usize, e: Event);
    /// Host `i` committed `batch` (before any effect of its round).
    fn committed(&mut self, i: usize, batch: &PersistBatch) {
        let _ = (i, batch);
    }
}

/// The one drain loop: after every input to host `i`, run its round through the
/// contract and the disk, then carry out its effects in order. If an effect stops the
/// process (an observer drops the node after it left), the rest of the round is not
/// carried out, as a process that exited would not.
pub fn drain<D: Driver + ?Sized>(d: &mut D, i: usize) {
    let Some(round) = d.host(i).round() else {
        return;
    };
    for batch in &round.persists {
        d.committed(i, batch);
    }
    for (_, effect) in round.effects {
        if d.host(i).node.is_none() {
            break;
        }
        match effect {
            Effect::Transmit(t) => d.transmit(i, t),
            Effect::Event(e) => d.event(i, e),
        }
    }
}

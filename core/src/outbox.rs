//! Effects waiting to be collected by the driver through `poll_output`.
//!
//! One ordered queue for sends, persistence and events: the order in which the core
//! produced them is the order in which the driver sees them, which is what the
//! persistence contract ("commit a batch before any later transmit") relies on.
//!
//! Every machine writes here (`out: &mut Outbox`). Membership and the replica
//! address peers by [`Addr`] and write straight into the queue. The failover
//! machine is different in two ways, so its output waits in a *held* section:
//!
//! * it addresses voters by [`NodeId`], which only the node can resolve (through
//!   membership) to an address, or find it has none for;
//! * a lease message may carry an epoch or a roster the node has not persisted
//!   yet, and must not be transmitted before it is.
//!
//! So [`Outbox::lease`] and [`Outbox::failover_event`] hold their items back, and
//! the node releases them (`Node::pump_failover`) only after it has queued the
//! batch that persists the failover's durable epoch and roster: every held lease
//! message follows that batch in the queue, and so does every failover event
//! (a `BecameLeader { epoch }` is reported after its epoch was persisted). The
//! node releases the held section at the end of every `handle_*`, so nothing is
//! held while the driver polls.

use std::collections::VecDeque;

use crate::event::Event;
use crate::failover::{FailoverEvent, LeaseMessage};
use crate::id::{Addr, NodeId};
use crate::persist::PersistBatch;
use crate::wire::{Channel, Message};

#[derive(Clone, Debug)]
pub(crate) enum Effect {
    Send {
        to: Addr,
        channel: Channel,
        message: Message,
    },
    Persist(PersistBatch),
    Event(Event),
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Outbox {
    /// What the driver sees, in order.
    queue: VecDeque<Effect>,
    /// Lease messages by voter id, in the order the failover machine sent them.
    held_leases: VecDeque<(NodeId, LeaseMessage)>,
    /// Failover events, in order; released after the held messages.
    held_events: VecDeque<FailoverEvent>,
}

impl Outbox {
    pub fn send(&mut self, to: Addr, channel: Channel, message: Message) {
        self.queue.push_back(Effect::Send {
            to,
            channel,
            message,
        });
    }

    pub fn persist(&mut self, batch: PersistBatch) {
        self.queue.push_back(Effect::Persist(batch));
    }

    pub fn event(&mut self, event: Event) {
        self.queue.push_back(Effect::Event(event));
    }

    /// The next effect for the driver. Nothing may be held back then: the node
    /// releases the held section before any `handle_*` returns.
    pub fn pop(&mut self) -> Option<Effect> {
        debug_assert!(
            self.holds_nothing(),
            "lease traffic held past the end of a call: {} messages, {} events",
            self.held_leases.len(),
            self.held_events.len()
        );
        self.queue.pop_front()
    }

    /// A lease message for voter `to`, held until the node has queued the persist
    /// batch of the failover's durable state and resolved `to` to an address.
    pub fn lease(&mut self, to: NodeId, message: LeaseMessage) {
        self.held_leases.push_back((to, message));
    }

    /// A failover event, held so that it follows the persist batch and the lease
    /// messages of the same step.
    pub fn failover_event(&mut self, event: FailoverEvent) {
        self.held_events.push_back(event);
    }

    /// The next held lease message, oldest first (the node calls this after it
    /// queued the failover's persist batch).
    pub fn release_lease(&mut self) -> Option<(NodeId, LeaseMessage)> {
        self.held_leases.pop_front()
    }

    /// The next held failover event, oldest first (after the held messages).
    pub fn release_failover_event(&mut self) -> Option<FailoverEvent> {
        self.held_events.pop_front()
    }

    /// Whether the held section is empty.
    pub fn holds_nothing(&self) -> bool {
        self.held_leases.is_empty() && self.held_events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failover::Epoch;

    #[test]
    fn held_lease_traffic_stays_out_of_the_queue_until_released() {
        let mut out = Outbox::default();
        out.lease(NodeId(2), LeaseMessage::Release { epoch: Epoch(3) });
        out.failover_event(FailoverEvent::BecameLeader { epoch: Epoch(3) });
        assert!(!out.holds_nothing());
        let msg = out.release_lease();
        assert_eq!(msg.map(|(to, _)| to), Some(NodeId(2)));
        assert!(out.release_lease().is_none());
        assert_eq!(
            out.release_failover_event(),
            Some(FailoverEvent::BecameLeader { epoch: Epoch(3) })
        );
        assert!(out.holds_nothing());
        assert!(out.pop().is_none(), "nothing reached the driver's queue");
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "held past the end of a call")]
    fn polling_while_something_is_held_is_a_core_bug() {
        let mut out = Outbox::default();
        out.lease(NodeId(2), LeaseMessage::Release { epoch: Epoch(3) });
        let _ = out.pop();
    }
}

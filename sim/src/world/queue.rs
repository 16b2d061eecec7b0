//! The one event queue: everything that will happen, ordered by (time, insertion order).

use super::*;

#[derive(Clone, Debug)]
pub(super) enum Ev {
    Deliver {
        to: usize,
        from: Addr,
        channel: Channel,
        bytes: Vec<u8>,
    },
    Wake(usize),
    Start(usize),
    Act(Action),
    Fault(FaultKind),
    /// One random record write, then the next is scheduled.
    Write,
    /// One random usage increment, then the next is scheduled.
    Use,
    /// One admission through a quota holder at a random up node, then the next.
    Quota,
    /// A quota holder's message for its node (an ask or a release).
    QuotaSend {
        node: usize,
        to: NodeId,
        message: aurora_core::quota::QuotaMessage,
    },
}

impl World {
    pub(super) fn push(&mut self, at: Millis, ev: Ev) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s] = Some(ev);
                s
            }
            None => {
                self.slots.push(Some(ev));
                self.slots.len() - 1
            }
        };
        self.next_seq += 1;
        self.queue.push(Reverse((at, self.next_seq, slot)));
    }
}

//! Effects waiting to be collected by the driver through `poll_output`.
//!
//! One ordered queue for sends, persistence and events: the order in which the core
//! produced them is the order in which the driver sees them, which is what the
//! persistence contract ("commit a batch before any later transmit") relies on.

use std::collections::VecDeque;

use crate::event::Event;
use crate::id::Addr;
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
pub(crate) struct Outbox(VecDeque<Effect>);

impl Outbox {
    pub fn send(&mut self, to: Addr, channel: Channel, message: Message) {
        self.0.push_back(Effect::Send {
            to,
            channel,
            message,
        });
    }

    pub fn persist(&mut self, batch: PersistBatch) {
        self.0.push_back(Effect::Persist(batch));
    }

    pub fn event(&mut self, event: Event) {
        self.0.push_back(Effect::Event(event));
    }

    pub fn pop(&mut self) -> Option<Effect> {
        self.0.pop_front()
    }
}

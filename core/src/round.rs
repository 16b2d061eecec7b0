//! One round of a node's outputs, split the way the persistence contract needs it.
//!
//! Every driver (the io driver, the `testing` harness the simulator and the fuzzer run
//! on) drains `Node::poll_output` completely after each input and must commit every
//! `Persist` batch before it carries out any `Transmit` emitted after it. Committing
//! all of a round's batches first (one transaction in the io driver) and only then
//! sending is the simplest schedule that keeps that promise, so the split lives here,
//! once, instead of in each driver's loop.

use crate::event::Event;
use crate::node::{Node, Output, Transmit};
use crate::persist::PersistBatch;

/// What a round asks of the driver besides persisting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send these bytes (after the round's batches are committed).
    Transmit(Transmit),
    /// Report this (after the round's batches are committed).
    Event(Event),
}

/// Everything one drain of `poll_output` returned.
///
/// What holds: `persists` and `effects` keep the order the node emitted them in, and
/// `effects[k].0` is the number of batches emitted before effect `k`, so a checker can
/// still judge each send against exactly what was persisted before it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// The `Persist` batches, in order: commit them all before any effect.
    pub persists: Vec<PersistBatch>,
    /// Transmits and events, in order, each with the number of batches before it.
    pub effects: Vec<(usize, Effect)>,
}

impl Round {
    /// Drains every pending output of `node`.
    #[must_use]
    pub fn drain(node: &mut Node) -> Round {
        let mut round = Round::default();
        while let Some(output) = node.poll_output() {
            match output {
                Output::Persist(batch) => round.persists.push(batch),
                Output::Transmit(t) => round
                    .effects
                    .push((round.persists.len(), Effect::Transmit(t))),
                Output::Event(e) => round.effects.push((round.persists.len(), Effect::Event(e))),
            }
        }
        round
    }

    /// Whether the node emitted nothing.
    pub fn is_empty(&self) -> bool {
        self.persists.is_empty() && self.effects.is_empty()
    }
}

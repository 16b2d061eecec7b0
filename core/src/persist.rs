//! What the core asks the driver to make durable, and what it gets back at start-up.
//!
//! The contract: the driver commits each [`PersistBatch`] (in one transaction) before
//! it performs any transmit the core emitted after it. So a node never tells the
//! cluster something it could forget in a crash: an incarnation it announced is
//! always on disk, and after a restart it starts above it.

use crate::id::Incarnation;

/// Items to commit together.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PersistBatch {
    pub items: Vec<PersistItem>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PersistItem {
    /// The node's current incarnation.
    Incarnation(Incarnation),
}

/// State the driver read back from disk for [`crate::Node::new`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Restored {
    /// The last incarnation this node persisted, if it ever ran before.
    pub incarnation: Option<Incarnation>,
}

impl Restored {
    /// Applies a batch to the restored image, as the driver's storage would.
    pub fn apply(&mut self, batch: &PersistBatch) {
        for item in &batch.items {
            match item {
                PersistItem::Incarnation(i) => self.incarnation = Some(*i),
            }
        }
    }
}

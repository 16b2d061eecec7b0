//! [`PolicyData`] over the cluster's [`StateView`].
//!
//! Reads go to the view's current snapshot; the change counter is the snapshot's
//! `version` (bumped by every publish that changed something), so the auth-key index
//! is rebuilt only after a change. The snapshot's own published counters tell the
//! pacer when this node's usage flushes happen. The usage write is the view's
//! `record_usage`: it updates the view's running total (so the next budget check on
//! this node sees it) and leaves the increment to be handed to the driver in a batch,
//! off the request path.

use aurora_core::state::store::Usage;
use aurora_schema::{Collection, Record, RecordId};

use super::data::PolicyData;
use crate::cluster::StateView;

impl PolicyData for StateView {
    fn record(&self, collection: Collection, id: &str) -> Option<Record> {
        StateView::record(self, collection, id)
    }

    fn records(&self, collection: Collection) -> Vec<(RecordId, Record)> {
        StateView::records(self, collection)
    }

    fn version(&self) -> Option<u64> {
        Some(self.snapshot().version)
    }

    fn usage(&self, budget: &RecordId, period: u64) -> Usage {
        StateView::usage(self, budget, period)
    }

    fn published_usage(&self, budget: &RecordId, period: u64) -> Usage {
        self.snapshot().usage(budget, period)
    }

    fn own_published(&self, budget: &RecordId, period: u64) -> Option<Usage> {
        Some(self.snapshot().own_usage(budget, period))
    }

    fn wall_ms(&self) -> u64 {
        StateView::wall_ms(self)
    }

    fn record_usage(&self, budget: &RecordId, period: u64, usage: Usage) {
        StateView::record_usage(self, budget, period, usage);
    }
}

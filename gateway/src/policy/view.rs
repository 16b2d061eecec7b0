//! [`PolicyData`] over the cluster's [`StateView`].
//!
//! Reads go to the view's current snapshot; the change counter is the snapshot's
//! `version` (bumped by every publish that changed something), so the auth-key index
//! is rebuilt only after a change. The snapshot's own published counters tell the
//! pacer when this node's usage flushes happen. The usage write is the view's async
//! `record_usage`: polled once in place, it updates the view's running total (so the
//! next budget check on this node sees it), and the rest — handing the increment to
//! the driver — runs in a spawned task, off the request path.

use std::future::Future;
use std::task::{Context, Waker};

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

    fn own_published(&self, budget: &RecordId, period: u64) -> Option<Usage> {
        Some(self.snapshot().own_usage(budget, period))
    }

    fn wall_ms(&self) -> u64 {
        StateView::wall_ms(self)
    }

    fn record_usage(&self, budget: &RecordId, period: u64, usage: Usage) {
        let view = self.clone();
        let budget = budget.clone();
        let mut write = Box::pin(async move {
            if let Err(error) = view.record_usage(budget.clone(), period, usage).await {
                tracing::warn!(%error, %budget, period, "could not record usage");
            }
        });
        // Poll once here: the view adds to its running total before its first await,
        // so the increment is visible to `usage` on this node before this returns
        // (the contract of `PolicyData::record_usage`); only the hand-off to the driver
        // is left to a task.
        let mut cx = Context::from_waker(Waker::noop());
        if write.as_mut().poll(&mut cx).is_pending() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(write);
                }
                Err(_) => {
                    tracing::warn!("usage recorded outside a Tokio runtime was not published")
                }
            }
        }
    }
}

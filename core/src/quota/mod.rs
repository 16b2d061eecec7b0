//! Quota leases: cluster-wide limits admitted locally, exact in a healthy cluster and
//! never exceeded in a partitioned one.
//!
//! A limited quantity (a budget's spend or requests in one period, a key's tokens in
//! one window) is a [`QuotaKey`] with a `limit`. Its capacity is handed out in
//! slices: each node admits requests against the slice it holds, without asking
//! anyone, and asks for more before it runs dry. One node, the **grantor**, hands the
//! slices out; the failover lease holder is the grantor, at its epoch.
//!
//! Three machines, each pure and driven by the node like the others:
//!
//! ```text
//! Holder   (every serving node)  admit / settle on the request path; asks, releases
//! Grantor  (the lease holder)    collects the ledger on election, grants from it
//! Keeper   (every voter)         keeps a copy of the ledger; fences old epochs
//! ```
//!
//! # The ledger, and why a grant is safe
//!
//! The ledger says, for each key and each holder session, the capacity granted so far
//! (`allowance`, cumulative) and given back (`released`, cumulative); both only grow,
//! and two copies merge by taking the larger of each. What a holder may still spend is
//! `allowance − released − used`. The grantor grants only while, over the key's
//! entries, `Σ (allowance − released) + the new slice ≤ limit`.
//!
//! A grant is **recorded before it is given**: the grantor sends the new ledger
//! entry to every voter, each keeper persists it and acknowledges, and only with the
//! acknowledgements of a majority of voters does the grantor tell the holder. A new
//! grantor, at a higher epoch, first **collects**: every keeper it asks raises its
//! fence to the new epoch (persisted), refuses entries of lower epochs from then on,
//! and sends its copy; with the copies of a majority merged, the new grantor knows
//! every grant ever given, and only then grants.
//!
//! Why: a grant `g` was given only after a majority `M1` persisted it. The new
//! grantor's majority `M2` shares a voter `v` with `M1`. `v` persisted `g` before it
//! raised its fence for the new epoch (after, it would have refused `g`), so the copy
//! `v` sent the new grantor holds `g`. Hence every given grant is in the ledger of
//! every later grantor, and `Σ allowance − released ≤ limit` holds across leader
//! changes, crashes and partitions. No clock is involved: drift cannot break it. The
//! premise is the failover layer's: two majorities of the voters share a voter (the
//! roster changes one voter at a time, a keeper answers only under a roster naming it
//! in its current life).
//!
//! # The bound
//!
//! What holders admit against their slices never exceeds the limit: `Σ reserved ≤
//! Σ (allowance − released) ≤ limit`. When the actual amount of a request (a cost
//! known only at the end) is larger than its reservation, the excess is the
//! estimate's error, not the lease's: it is owed by the slice (the holder admits
//! nothing more until grants cover it), and a debt in a window's last slice is not
//! paid back. The other way round, capacity can be **held
//! back**: the unspent part of the slices of holders that are partitioned away or
//! crashed (a restarted holder forgets what it had: a new session, its old slice
//! counted as spent). So, per key and window:
//!
//! ```text
//! limit − Σ unspent slices of unreachable or crashed holders  ≤  admitted  ≤  limit
//! ```
//!
//! and a slice is at most `max(min_slice, limit × slice_fraction)`.
//!
//! # Partitions
//!
//! A holder cut off from the grantor (none known, or an ask unanswered for
//! `partition_after`) spends what it holds and no more ([`OnPartition::SpendLeased`],
//! the default); [`OnPartition::FailClosed`] refuses everything once cut off;
//! [`OnPartition::FailOpen`] spends its slice, then admits everything while cut off
//! (the bound no longer holds; the operator chose availability).

mod grantor;
mod holder;
mod ledger;
mod message;

#[cfg(test)]
mod tests;

pub use grantor::Grantor;
#[cfg(any(test, feature = "testing"))]
pub use grantor::QuotaBug;
pub use holder::{Admission, Holder, OnPartition, QuotaTiming, Refusal};
pub use ledger::{Keeper, Ledger, LedgerEntry, Slot, COPY_CHUNK};
pub use message::QuotaMessage;

use serde::{Deserialize, Serialize};

use crate::id::NodeId;

/// A limited quantity in one window: which quota (the application's number, e.g. a
/// hash of a budget id and what it limits) and which window (e.g. the budget period's
/// index). Capacity is per key: a new window starts with the whole limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaKey {
    /// The quota.
    pub quota: u64,
    /// The window.
    pub window: u64,
}

/// How much of a quota may be admitted: at most `max` over any `span` consecutive
/// windows. A budget's period is a window of its own (`span` 1: each period starts
/// with the whole limit); a rolling limit (a key's requests per minute) divides the
/// minute into short windows and counts a request against the `span` windows from
/// its own on, so that no minute, wherever it starts, admits more than `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QuotaLimit {
    /// The most admitted over `span` consecutive windows.
    pub max: u64,
    /// How many consecutive windows share `max` (1 to [`MAX_SPAN`]).
    pub span: u32,
    /// When windows are read from the wall clock in steps of this many ms (window
    /// `w` is `[w × window_ms, (w + 1) × window_ms)`): a grantor then refuses windows
    /// more than a span ahead of its own clock, so that a holder whose clock runs
    /// far ahead cannot make the current windows look past to everyone. 0: windows
    /// of another kind (calendar periods), not checked.
    pub window_ms: u64,
}

impl QuotaLimit {
    /// `max` in each window, windows independent of each other.
    pub const fn per_window(max: u64) -> QuotaLimit {
        QuotaLimit {
            max,
            span: 1,
            window_ms: 0,
        }
    }

    /// `max` over any `span` consecutive windows of `window_ms` of wall-clock time.
    pub const fn rolling(max: u64, span: u32, window_ms: u64) -> QuotaLimit {
        QuotaLimit {
            max,
            span,
            window_ms,
        }
    }

    /// Whether a grantor can keep it: `span` between 1 and [`MAX_SPAN`].
    pub fn is_valid(self) -> bool {
        (1..=MAX_SPAN).contains(&self.span)
    }
}

/// The longest span of a [`QuotaLimit`]: a grantor refuses asks with a longer one
/// (it keeps the ledger of [`RETAINED_WINDOWS`] windows, and judging a window needs
/// the `span − 1` before and after it).
pub const MAX_SPAN: u32 = 16;

/// Windows of a quota kept in the ledger, counting back from the latest one any
/// grant was recorded in: older entries are forgotten by grantors and keepers (and
/// deleted from the keeper's disk), and asks for windows more than a span behind the
/// latest are refused. At least `3 × MAX_SPAN`: a window judged needs `2 × span − 1`
/// windows around it, and a new grantor's latest window is at least every keeper's
/// of its majority (see `Ledger::forget_old`).
pub const RETAINED_WINDOWS: u64 = 64;

const _: () = assert!(RETAINED_WINDOWS >= 3 * MAX_SPAN as u64);

/// One life of a holder's memory of its slices: a node's session (its incarnation,
/// which grows with every restart). Grants name the session they are for, so a
/// restarted holder never spends a grant meant for its previous session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Session {
    /// The holder.
    pub node: NodeId,
    /// Its session number.
    pub session: u64,
}

/// What a quota machine asks the node to do, in order: persist first, then send.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct QuotaOut {
    /// Ledger state to persist before any of `sends` (a keeper's copy and fence).
    pub persist: Vec<Persisted>,
    /// Messages, by node id.
    pub sends: Vec<(NodeId, QuotaMessage)>,
}

impl QuotaOut {
    fn send(&mut self, to: NodeId, message: QuotaMessage) {
        self.sends.push((to, message));
    }

    /// Appends `other` (its persists still before any send of either).
    pub fn extend(&mut self, other: QuotaOut) {
        self.persist.extend(other.persist);
        self.sends.extend(other.sends);
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty() && self.sends.is_empty()
    }
}

/// What a keeper persists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Persisted {
    /// The keeper's fence: it refuses entries of lower epochs.
    Fence(crate::failover::Epoch),
    /// A ledger entry (replaces the stored one of its key and session; it is never
    /// smaller).
    Entry(LedgerEntry),
    /// A ledger entry of a window older than [`RETAINED_WINDOWS`] is forgotten:
    /// delete the stored one of this key and session.
    Forget(QuotaKey, Session),
}

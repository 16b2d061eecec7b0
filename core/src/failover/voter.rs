//! The voter's side: promises.
//!
//! A grant is a promise: "until `until` on my clock I will grant no other node a
//! lease". The promise runs from when the request was *received*, stretched by
//! `1 + max_drift`, so it outlasts the lease the candidate computes from when it
//! *sent* the request, shrunk by `1 − max_drift` (see the module docs of
//! [`super`] for the argument). Invariants kept here:
//!
//! * at most one unexpired promise at a time, to one node;
//! * a new leadership's epoch is granted to at most one node, and only above every
//!   epoch granted before (`floor` keeps the highest, a promise the last grant);
//! * a renewal of a lease its holder still holds is granted whatever epoch this
//!   voter granted since, as long as no other node holds an unexpired promise.
//!   Why that is safe: the holder won its epoch under the rule above, and a
//!   promise binds the voter to one node at a time whatever its epoch, which is
//!   all the argument against two holders needs (see [`super`]). Why it is
//!   needed: a voter that was cut off from the holder grants itself higher and
//!   higher epochs in campaigns it cannot win; without it, once back it would
//!   refuse every renewal of the leadership that went on without it, and the
//!   holder's majority would shrink by one voter without anyone noticing;
//! * nothing is granted during the quiet period after start: a restarted voter has
//!   forgotten its promises, so it waits until any promise it made before could
//!   have run out.

use core::time::Duration;

use crate::id::NodeId;
use crate::time::Millis;

use super::message::Epoch;
use super::rank::{Lapse, View};

/// A grant and how long it binds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Promise {
    pub to: NodeId,
    pub epoch: Epoch,
    /// Binding while `now < until` (local clock).
    pub until: Millis,
}

/// A voter's answer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Grant,
    Reject { retry_after: Duration },
}

/// What a vote depends on besides the voter's own state.
pub(crate) struct Ballot<'a> {
    pub view: &'a View,
    /// How long a promise binds.
    pub promise_len: Duration,
    pub hold_down: Duration,
    pub renew_every: Duration,
    /// The request was made under this voter's electorate: its own roster version
    /// with both on it, or a bootstrap this node founds too.
    pub electorate_ok: bool,
    /// The requester says it holds the lease for the epoch it asks to renew.
    pub holding: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Voter {
    /// The last grant; kept after it expires as the record of the highest epoch granted.
    pub promise: Option<Promise>,
    /// A lease given up (handed over or resigned): never renewed again.
    pub released: Option<(NodeId, Epoch)>,
    /// After a handover: only this node is granted a new lease until the instant.
    pub prefer: Option<(NodeId, Millis)>,
    /// No grants before this instant (see the module docs).
    pub quiet_until: Millis,
    /// Epochs at or below this are never granted to a new leadership (restored
    /// from disk, and raised to every promise's epoch before it is replaced).
    pub floor: Epoch,
    /// The promise whose lapse was already reported to the view.
    lapse_noted: Option<(NodeId, Epoch)>,
}

impl Voter {
    pub fn new(quiet_until: Millis) -> Voter {
        Voter {
            promise: None,
            released: None,
            prefer: None,
            quiet_until,
            floor: Epoch::ZERO,
            lapse_noted: None,
        }
    }

    /// The unexpired promise, if any.
    pub fn binding(&self, now: Millis) -> Option<Promise> {
        self.promise.filter(|p| now < p.until)
    }

    /// The node preferred after a handover, while the preference lasts.
    pub fn preferred(&self, now: Millis) -> Option<NodeId> {
        self.prefer
            .filter(|&(_, until)| now < until)
            .map(|(n, _)| n)
    }

    /// The highest epoch this voter granted.
    pub fn granted_epoch(&self) -> Epoch {
        self.promise.map_or(self.floor, |p| p.epoch.max(self.floor))
    }

    /// Notes a promise that ran out without renewal: its holder is lapsed.
    pub fn expire(&mut self, now: Millis, me: NodeId, view: &mut View) {
        if let Some(p) = self.promise {
            let key = (p.to, p.epoch);
            if now >= p.until && p.to != me && self.lapse_noted != Some(key) {
                self.lapse_noted = Some(key);
                view.mark_lapsed(p.to, Lapse::Expired);
            }
        }
    }

    /// Decides on `from`'s request for `epoch`; records the promise on a grant.
    pub fn decide(&mut self, now: Millis, from: NodeId, epoch: Epoch, b: &Ballot<'_>) -> Decision {
        let reject = |d: Duration| Decision::Reject { retry_after: d };
        if now < self.quiet_until {
            return reject(self.quiet_until.since(now));
        }
        // A renewal: of this voter's own last promise, or of a lease its holder
        // still holds while nobody has an unexpired promise from this voter (see
        // the module docs).
        let renewal = self.renews(from, epoch) || (b.holding && self.binding(now).is_none());
        // Unknown, drifted, witness or dead: not (yet) a candidate in this view.
        // A renewal only needs a voter with our fingerprint: a false suspicion of
        // the holder must not cost it the lease.
        let known = if renewal {
            b.view.is_voter(from)
        } else {
            b.view.eligible(from).is_some()
        };
        if !known {
            return reject(b.renew_every);
        }
        // Another roster version (one side will learn the other's), or a
        // bootstrap this node takes no part in.
        if !b.electorate_ok {
            return reject(b.renew_every);
        }
        if !renewal && epoch <= self.floor {
            return reject(Duration::ZERO);
        }
        if let Some((node, e)) = self.released {
            if node == from && epoch <= e {
                return reject(Duration::ZERO);
            }
        }
        if !renewal {
            if let Some(p) = self.promise {
                if epoch <= p.epoch {
                    // Stale: the Reject teaches the sender the epoch to beat.
                    return reject(Duration::ZERO);
                }
                if now < p.until && p.to != from {
                    return reject(p.until.since(now));
                }
            }
            // A new leadership: only to the node this voter would pick itself.
            match self.preferred(now) {
                Some(to) if to != from => {
                    let until = self.prefer.map_or(now, |(_, u)| u);
                    return reject(until.since(now));
                }
                Some(_) => {}
                None => {
                    let best = b.view.best(now, b.hold_down).map(|c| c.id);
                    if best != Some(from) && !b.view.yields_to(now, b.hold_down, from) {
                        return reject(b.renew_every);
                    }
                }
            }
        }
        // The promise is replaced: keep the record of the highest epoch granted.
        let granted = self.granted_epoch();
        self.floor = granted;
        self.promise = Some(Promise {
            to: from,
            epoch,
            until: now + b.promise_len,
        });
        // Holds because `floor` keeps the highest epoch of every promise replaced:
        // what a restarted voter restores never lets it grant an epoch twice.
        debug_assert!(
            self.granted_epoch() >= granted,
            "granted epoch went from {granted:?} to {:?}",
            self.granted_epoch()
        );
        Decision::Grant
    }

    /// Ends this node's promise to itself (`me`) at once: its campaign stopped
    /// without holding, so nothing the promise protects can come of it. Kept,
    /// expired, as the record of the epoch granted.
    pub fn withdraw(&mut self, now: Millis, me: NodeId) {
        if let Some(p) = self.promise.as_mut() {
            if p.to == me && now < p.until {
                p.until = now;
            }
        }
    }

    /// Whether a request is a renewal of the current (possibly expired) promise.
    fn renews(&self, from: NodeId, epoch: Epoch) -> bool {
        self.promise
            .is_some_and(|p| p.to == from && p.epoch == epoch)
    }

    /// `from` gave up `epoch`: release the promise to it at once (it stopped
    /// holding before it said so) and never renew that epoch again.
    pub fn release(&mut self, now: Millis, from: NodeId, epoch: Epoch, view: &mut View) {
        // A late message about an epoch older than the last grant changes nothing.
        if self.promise.is_some_and(|p| p.epoch > epoch) {
            return;
        }
        if let Some(p) = self.promise.as_mut() {
            if p.to == from && p.epoch == epoch && now < p.until {
                p.until = now;
            }
        }
        self.released = Some((from, epoch));
        self.lapse_noted = self.promise.map(|p| (p.to, p.epoch));
        view.mark_lapsed(from, Lapse::Released);
    }
}

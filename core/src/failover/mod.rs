//! Failover: who leads, proven by a majority lease with a fencing epoch.
//!
//! A pure state machine in the quinn-proto style, driven by the node. Like
//! membership and the replica it writes what it has to say into the node's
//! [`Outbox`], passed as `out` to every call that may say something:
//!
//! ```text
//! Failover::new(id, config, now, out)        // start; then with_session, with_life,
//!                                            // restore_epoch, restore_roster
//! fo.handle_members(now, &live, out)         // membership changed, and on every tick
//! fo.handle_lease(now, from, life, msg, out) // a LeaseMessage from a peer
//! fo.handle_timeout(now, out)                // poll_timeout passed
//! fo.switchover(now, to, out), fo.resign(now, out), fo.forget(now, node, out)
//! fo.poll_timeout()  -> Option<Millis>
//! fo.durable_epoch(), fo.durable_roster()    // what to persist before anything is sent
//! fo.status(), fo.roster(), fo.holds_lease_at(now)
//! ```
//!
//! Lease messages go to [`Outbox::lease`] addressed by [`NodeId`] and events to
//! [`Outbox::failover_event`]; both wait in the outbox's held section until the
//! node has queued the persist batch of [`Failover::durable_epoch`] and
//! [`Failover::durable_roster`] and resolved each voter to an address (one it has
//! none for is `Event::FailoverUndeliverable` and a counter). So a message that
//! carries a grown epoch or a new roster is never transmitted before that epoch or
//! roster is persisted.
//!
//! # Protocol
//!
//! * **Ranking** ([`rank`]). Among live voting members with this node's config
//!   fingerprint, the leader should be the lowest promotion tier, then the highest
//!   capacity, then the lowest node id. Witnesses vote but never lead. A node whose
//!   lease ran out unrenewed (or that handed it over) is *lapsed* and is not ranked
//!   until it asks again; a member that became live less than `hold_down` ago is
//!   ranked only if every candidate is that new.
//! * **Campaign.** A node that sees no binding promise to another node and ranks
//!   itself best sends `Request { epoch: highest seen + 1 }` to every voter (and
//!   votes for itself). A voter (`voter.rs`) grants unless it is in its quiet
//!   period, has an unexpired promise to another node, has granted that epoch or a
//!   higher one, follows another roster version than the request names (see
//!   [`roster`]), or would itself pick another candidate. Rejections say when to
//!   retry (the rest of the promise) and carry the voter's roster.
//! * **Lease** (`lease.rs`). With grants for one round from a majority of the
//!   voters, the candidate holds the lease until `sent_at + lease × (1 − max_drift)
//!   − margin`, on its own clock, from when it *sent* the round. It renews every
//!   `renew_every` with the same epoch; a holder that cannot gather a majority
//!   simply reaches the end of its lease and steps down.
//! * **Epochs** only grow: a new leadership asks for one above every epoch it has
//!   seen, a voter never grants an epoch at or below one it granted, and every
//!   message carries its epoch.
//! * **Handover.** [`Failover::switchover`] (or the leader itself, once a
//!   better-ranked node has been live for `hold_down`) drops the lease first, then
//!   sends `Handover { epoch, to }`: voters release their promise to it and grant
//!   only `to` for one promise length; `to` campaigns at once. The node that
//!   handed over stays out of the ranking until it asks for a lease again, so the
//!   switchover sticks; a switchover to a node that another live, better-ranked
//!   node outranks lasts `hold_down`, after which the leader hands over to it
//!   (change promotion tiers to make such a choice permanent). No leadership is
//!   cut short by an automatic handover before it has lasted `hold_down`.
//!
//! # Safety: never two holders at one instant
//!
//! Let real time be `t`, and let every clock run at a rate within
//! `[1 − d, 1 + d]` of real time (`d = max_drift`). Node A holds a lease from a
//! round it sent at real `s`; its lease ends when its clock has advanced by
//! `lease·(1 − d) − m`, which takes at most `(lease·(1 − d) − m)/(1 − d) < lease`
//! of real time. Each voter V that granted the round received it at `r ≥ s` and
//! promised for `lease·(1 + d)` on its clock, which takes at least `lease` of real
//! time. So A's lease ends strictly before any of its voters' promises. Another
//! node B can only hold a lease granted by a majority; two majorities of the same
//! voter set share a voter V, and V grants B only after its promise to A expired
//! (or after A released it, which A does only after dropping its lease). Hence B's
//! lease starts after A's ended. The margin `m` absorbs millisecond rounding.
//! The premises the node must uphold:
//!
//! 1. any two majorities that may grant leases at overlapping times share a voter:
//!    the voter roster changes one member at a time through the lease holder and a
//!    voter grants only under its own roster version ([`roster`] gives the
//!    argument), and at bootstrap every one of the `expected_voters` founders must
//!    grant;
//! 2. a voter that restarts has forgotten its promises, so it grants nothing for
//!    one promise length after [`Failover::new`] (the quiet period);
//! 3. a grant is counted only for the round it answers, within one session (pass
//!    the node's incarnation to [`Failover::with_session`] so a restarted node never
//!    reuses a round id).
//!
//! Two voters and no witness: a majority is both, so the survivor of a crash cannot
//! lead. [`FailoverStatus::can_fail_over`] says so instead of splitting the brain.

pub mod config;
mod lease;
pub mod message;
pub mod rank;
pub mod roster;
pub mod status;
mod voter;

#[cfg(test)]
mod harness;
#[cfg(test)]
mod tests;

pub use config::{FailoverConfig, FailoverMode};
pub use message::{Epoch, LeaseMessage};
pub use rank::Candidate;
pub use roster::{Electorate, Roster, RosterState, RosterVersion};
pub use status::{FailoverEvent, FailoverStatus, SwitchoverError};

use core::time::Duration;
use std::collections::BTreeSet;

use crate::config::{ConfigError, Role};
use crate::id::{Life, NodeId};
use crate::outbox::Outbox;
use crate::time::Millis;

use lease::{Lease, Won};
use rank::View;
use roster::Change;
use voter::{Ballot, Decision, Voter};

/// Subtracted from the holder's lease so millisecond rounding of the two clocks
/// can never make it reach a voter's promise.
pub const SAFETY_MARGIN: Duration = Duration::from_millis(10);
/// The shortest wait before a rejected campaign asks again.
const MIN_RETRY: Duration = Duration::from_millis(20);

/// `d × factor`, rounded up to whole milliseconds (for promises: never too short).
fn scale_up(d: Duration, factor: f64) -> Duration {
    Duration::from_millis((d.as_millis() as f64 * factor).ceil().max(0.0) as u64)
}

/// `d × factor`, rounded down (for the holder's lease: never too long).
fn scale_down(d: Duration, factor: f64) -> Duration {
    Duration::from_millis((d.as_millis() as f64 * factor).floor().max(0.0) as u64)
}

/// Who this node believes leads, learnt from a holder's renewals.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Hint {
    node: NodeId,
    epoch: Epoch,
    until: Millis,
}

/// One node's failover state machine.
#[derive(Clone, Debug)]
pub struct Failover {
    id: NodeId,
    /// This node's storage life: it votes and asks only as the roster's (id, life).
    life: Life,
    config: FailoverConfig,
    /// The latest `now` handed in.
    now: Millis,
    view: View,
    voter: Voter,
    lease: Lease,
    /// The highest epoch in any message from another node (this node's own
    /// campaigns are not counted, so a retried campaign keeps its epoch).
    seen: Epoch,
    /// The highest epoch of a leadership this node knows of (status).
    leader_epoch: Epoch,
    hint: Option<Hint>,
    /// After resigning, this node does not campaign before this instant.
    stand_aside_until: Millis,
    /// When this node's current leadership began.
    led_since: Millis,
    reported: (Option<NodeId>, Epoch),
    /// The voter roster this node follows (persisted; see [`roster`]).
    roster: RosterState,
    /// While leading: the roster version under which a round last won a majority.
    /// The next change waits until it is the current version.
    committed: Option<RosterVersion>,
    /// Members that left on purpose or were forgotten, in the life they had: the
    /// leader takes them off the roster. The same id in a new life is not
    /// forgotten: it is a new member, admitted once the old life is off.
    forgotten: BTreeSet<(NodeId, Life)>,
    /// A deliberately broken variant (a lease from one grant), to show that the
    /// harness's safety checker catches it.
    #[cfg(test)]
    pub(crate) break_majority: bool,
}

impl Failover {
    /// A node that just started. It knows no members yet (feed them with
    /// [`Failover::handle_members`], this node included) and grants nothing for one
    /// promise length, since it may have forgotten promises made before a restart.
    pub fn new(
        id: NodeId,
        config: FailoverConfig,
        now: Millis,
        out: &mut Outbox,
    ) -> Result<Failover, ConfigError> {
        config.validate()?;
        let promise_len = scale_up(config.lease, 1.0 + config.max_drift);
        let mut fo = Failover {
            id,
            life: Life::default(),
            now,
            view: View::new(id),
            voter: Voter::new(now + promise_len),
            lease: Lease::new(0),
            seen: Epoch::ZERO,
            leader_epoch: Epoch::ZERO,
            hint: None,
            stand_aside_until: now,
            led_since: now,
            reported: (None, Epoch::ZERO),
            roster: RosterState::default(),
            committed: None,
            forgotten: BTreeSet::new(),
            #[cfg(test)]
            break_majority: false,
            config,
        };
        fo.report(out);
        Ok(fo)
    }

    /// Sets the session stamped into round ids. Pass a number that grows with every
    /// process start (the node's incarnation), so a grant addressed to a previous
    /// life of this node can never be counted.
    pub fn with_session(mut self, session: u64) -> Failover {
        self.lease = Lease::new(session & 0xffff_ffff);
        self
    }

    /// Sets this node's storage life (see [`Roster`]): it grants and asks only
    /// under a roster that names it in this life.
    pub fn with_life(mut self, life: Life) -> Failover {
        self.life = life;
        self
    }

    /// Raises the epoch floor to one read back from disk: this node will neither
    /// grant nor ask for an epoch at or below it.
    pub fn restore_epoch(&mut self, epoch: Epoch) {
        self.voter.floor = self.voter.floor.max(epoch);
        self.seen = self.seen.max(epoch);
    }

    /// Restores the roster state read back from disk (see
    /// [`Failover::durable_roster`]).
    pub fn restore_roster(&mut self, state: RosterState) {
        self.roster = state;
        self.roster_changed();
    }

    // ---- inputs ----------------------------------------------------------------

    /// The live members, this node included, as membership sees them now. Call it
    /// when membership changes and on every tick. Members missing from `live` stay
    /// voters (they count towards the majority) until [`Failover::forget`].
    pub fn handle_members(&mut self, now: Millis, live: &[Candidate], out: &mut Outbox) {
        self.advance(now);
        // A member that left (or was forgotten) and is back is a candidate voter
        // again: a rolling restart must not shrink the roster for good.
        for c in live {
            if let Some(life) = c.life {
                self.forgotten.remove(&(c.id, life));
            }
        }
        for node in self.view.update(now, live) {
            out.failover_event(FailoverEvent::ConfigDrift { node });
        }
        self.drive(now, out);
    }

    /// A lease message from `from` in the default life (harnesses whose nodes
    /// never lose their disks).
    #[cfg(test)]
    pub fn handle_message(
        &mut self,
        now: Millis,
        from: NodeId,
        msg: LeaseMessage,
        out: &mut Outbox,
    ) {
        self.handle_lease(now, from, Life::default(), msg, out);
    }

    /// A lease message from `from` speaking in `life` (the wire header's, which
    /// the node checked against its binding for `from`).
    pub fn handle_lease(
        &mut self,
        now: Millis,
        from: NodeId,
        life: Life,
        msg: LeaseMessage,
        out: &mut Outbox,
    ) {
        self.advance(now);
        if !self.config.mode.elects() || from == self.id {
            return;
        }
        self.tick(now);
        self.seen = self.seen.max(msg.epoch());
        let asks = matches!(msg, LeaseMessage::Request { .. });
        let started = matches!(msg, LeaseMessage::Reject { starting: true, .. });
        if let Some(r) = msg.roster() {
            if self.roster.offer(r) {
                self.roster_changed();
            }
        }
        self.view.heard_from(now, from, asks, started);
        match msg {
            LeaseMessage::Request {
                epoch,
                round,
                holding,
                electorate,
            } => self.on_request(now, (from, life), (epoch, round, holding), &electorate, out),
            LeaseMessage::Grant { epoch, round } => {
                self.on_grant(now, (from, life), (epoch, round), out)
            }
            LeaseMessage::Reject { retry_after_ms, .. } => {
                // A campaign asks again when the voter says it may succeed; a holder
                // keeps its own rhythm.
                if self.lease.epoch.is_some() && !self.lease.holding(now) {
                    let wait = Duration::from_millis(u64::from(retry_after_ms)).max(MIN_RETRY);
                    self.lease.next_send = self.lease.next_send.min(now + wait);
                }
            }
            LeaseMessage::Handover { epoch, to } => {
                self.release_from(now, from, epoch);
                let until = now + self.promise_len();
                self.voter.prefer = Some((to, until));
            }
            LeaseMessage::Release { epoch } => self.release_from(now, from, epoch),
        }
        self.drive(now, out);
    }

    /// Call when [`Failover::poll_timeout`]'s deadline passed (early is harmless):
    /// steps down, hands over, campaigns or renews as the time now requires.
    pub fn handle_timeout(&mut self, now: Millis, out: &mut Outbox) {
        self.advance(now);
        self.drive(now, out);
    }

    /// Hands the lease to `to`: this node stops holding at once, then tells every
    /// voter, which releases its promise and grants only `to` for one promise
    /// length. `to` campaigns as soon as it hears, so the cluster is without a
    /// leader for about one round trip.
    pub fn switchover(
        &mut self,
        now: Millis,
        to: NodeId,
        out: &mut Outbox,
    ) -> Result<(), SwitchoverError> {
        self.advance(now);
        if !self.config.mode.elects() {
            return Err(SwitchoverError::SingleNode);
        }
        if !self.lease.holding(now) {
            return Err(SwitchoverError::NotLeader);
        }
        if to == self.id {
            return Err(SwitchoverError::AlreadyLeader(to));
        }
        if self.view.eligible(to).is_none() {
            return Err(SwitchoverError::NotEligible(to));
        }
        self.hand_over(now, to, out);
        self.drive(now, out);
        Ok(())
    }

    /// Gives the lease up (before a graceful leave): voters release their promise at
    /// once and this node does not campaign again for `hold_down`.
    pub fn resign(&mut self, now: Millis, out: &mut Outbox) {
        self.advance(now);
        let Some(epoch) = self.lease.epoch else {
            return;
        };
        let was_holding = self.lease.holding(now);
        self.lease.clear();
        self.stand_aside_until = now + self.config.hold_down;
        if was_holding {
            self.step_down("resigned".into(), out);
        }
        self.voter.release(now, self.id, epoch, &mut self.view);
        self.broadcast(LeaseMessage::Release { epoch }, out);
        self.drive(now, out);
    }

    /// A member left on purpose, or an operator says a failed one is gone for
    /// good: on the leader, it is taken off the roster (one change, once the
    /// current version is committed); elsewhere it is only dropped from the view.
    /// If it comes back alive it is a candidate voter again and may be re-admitted.
    pub fn forget(&mut self, now: Millis, node: NodeId, out: &mut Outbox) {
        self.advance(now);
        let life = self
            .roster()
            .and_then(|r| r.life_of(node))
            .or_else(|| self.view.get(node).and_then(|k| k.cand.life));
        self.view.forget(node);
        if let (true, Some(life)) = (node != self.id, life) {
            self.forgotten.insert((node, life));
        }
        self.drive(now, out);
    }

    // ---- outputs ---------------------------------------------------------------

    /// When the machine next needs [`Failover::handle_timeout`]: a round to send,
    /// a lease, promise, hint, quiet period or hold-down that ends. `None` in
    /// `single_node` (nothing to time).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Millis> {
        if !self.config.mode.elects() {
            return None;
        }
        let now = self.now;
        let mut deadlines = vec![self.voter.quiet_until, self.stand_aside_until];
        if self.lease.holding(now) {
            deadlines.push(self.led_since + self.config.hold_down);
        }
        if self.lease.epoch.is_some() {
            deadlines.push(self.lease.next_send);
        }
        deadlines.extend(self.lease.until);
        deadlines.extend(self.voter.promise.map(|p| p.until));
        deadlines.extend(self.voter.prefer.map(|(_, u)| u));
        deadlines.extend(self.hint.map(|h| h.until));
        deadlines.extend(self.view.hold_down_ends(now, self.config.hold_down));
        deadlines.into_iter().filter(|&t| t > now).min()
    }

    // ---- read access -----------------------------------------------------------

    /// How many voters majorities are taken over: the roster's (a member that
    /// failed keeps counting until it is forgotten), or before any roster the
    /// founders expected.
    #[cfg(test)]
    pub fn voters(&self) -> usize {
        match &self.roster.roster {
            Some(r) => r.len(),
            None => self.config.expected_voters as usize,
        }
    }

    /// The roster this node follows, if it follows one yet.
    pub fn roster(&self) -> Option<&Roster> {
        self.roster.roster.as_ref()
    }

    /// The roster state to persist whenever it changes (before any message sent
    /// after the change) and hand back to [`Failover::restore_roster`].
    pub fn durable_roster(&self) -> &RosterState {
        &self.roster
    }

    /// Whether this node holds the lease at `now` on its own clock (always, in
    /// `single_node`). Checkers compare this across nodes at one real instant.
    pub fn holds_lease_at(&self, now: Millis) -> bool {
        !self.config.mode.elects() || self.lease.holding(now)
    }

    /// The epoch of this node's leadership, while it holds the lease at `now` (in
    /// `single_node`, always: every node leads itself).
    pub fn leadership(&self, now: Millis) -> Option<Epoch> {
        if !self.config.mode.elects() {
            return Some(self.leader_epoch);
        }
        if self.lease.holding(now) {
            return self.lease.epoch;
        }
        None
    }

    /// The epoch to persist (whenever it grows) and hand back to
    /// [`Failover::restore_epoch`] after a restart, so a restarted voter never
    /// grants an epoch again that it granted in a previous life.
    pub fn durable_epoch(&self) -> Epoch {
        self.seen
            .max(self.leader_epoch)
            .max(self.voter.granted_epoch())
    }

    /// Where this node stands at the latest `now` handed in: leader, epoch, whether
    /// it serves, whether it could fail over and why not.
    pub fn status(&self) -> FailoverStatus {
        let now = self.now;
        let mode = self.config.mode;
        let own_serves = self.view.own().is_none_or(|c| c.role == Role::Serving);
        if !mode.elects() {
            return FailoverStatus {
                mode,
                leader: Some(self.id),
                epoch: self.leader_epoch,
                this_node_holds_lease: true,
                lease_until: None,
                serving: own_serves,
                can_fail_over: false,
                reason: Some("single_node mode: every node serves on its own".into()),
                drift: self.view.drift(),
                voters: Vec::new(),
            };
        }
        let holds = self.lease.holding(now);
        let (can_fail_over, reason) = match self.fail_over_blocker() {
            None => (true, None),
            Some(r) => (false, Some(r)),
        };
        FailoverStatus {
            mode,
            leader: self.leader(),
            epoch: self.leader_epoch,
            this_node_holds_lease: holds,
            lease_until: self.lease.until.filter(|_| holds),
            serving: match mode {
                FailoverMode::ActivePassive => holds,
                _ => own_serves,
            },
            can_fail_over,
            reason,
            drift: self.view.drift(),
            voters: self.roster().map(|r| r.voters.clone()).unwrap_or_default(),
        }
    }

    /// The leader this node knows of right now.
    pub fn leader(&self) -> Option<NodeId> {
        if !self.config.mode.elects() || self.lease.holding(self.now) {
            return Some(self.id);
        }
        self.hint
            .filter(|h| self.now < h.until && h.node != self.id)
            .map(|h| h.node)
    }

    // ---- internals -------------------------------------------------------------

    fn advance(&mut self, now: Millis) {
        self.now = self.now.max(now);
    }

    fn promise_len(&self) -> Duration {
        scale_up(self.config.lease, 1.0 + self.config.max_drift)
    }

    fn usable_lease(&self) -> Duration {
        scale_down(self.config.lease, 1.0 - self.config.max_drift).saturating_sub(SAFETY_MARGIN)
    }

    /// Grants a lease needs: a majority of the roster, or at bootstrap every
    /// founder expected.
    fn quorum(&self) -> usize {
        #[cfg(test)]
        if self.break_majority {
            return 1;
        }
        match &self.roster.roster {
            Some(r) => r.quorum(),
            None => self.config.expected_voters.max(1) as usize,
        }
    }

    /// This node still takes part in a bootstrap: it is configured as a founder
    /// and has not heard of a roster.
    fn founding(&self) -> bool {
        self.config.expected_voters > 0 && !self.roster.bootstrapped
    }

    /// Whom this node's own requests count, if it may ask at all: its roster if
    /// it is on it, or the founders while it bootstraps.
    fn electorate(&self) -> Option<Electorate> {
        match &self.roster.roster {
            Some(r) => r
                .admits(self.id, self.life)
                .then(|| Electorate::Roster(r.clone())),
            None if self.founding() => Some(Electorate::Bootstrap {
                expected: self.config.expected_voters,
            }),
            None => None,
        }
    }

    /// What this node counts, as told to a candidate it refuses.
    fn stated_electorate(&self) -> Electorate {
        match &self.roster.roster {
            Some(r) => Electorate::Roster(r.clone()),
            None => Electorate::Bootstrap {
                expected: if self.founding() {
                    self.config.expected_voters
                } else {
                    0
                },
            },
        }
    }

    /// Whether `from`'s request under `e` may be granted by this node at all: both
    /// must be on it in the lives they speak with now.
    fn electorate_ok(&self, (from, life): (NodeId, Life), e: &Electorate) -> bool {
        match e {
            Electorate::Bootstrap { expected } => {
                self.founding() && *expected == self.config.expected_voters
            }
            Electorate::Roster(r) => {
                self.roster.version() == Some(r.version)
                    && r.admits(self.id, self.life)
                    && r.admits(from, life)
            }
        }
    }

    fn roster_changed(&mut self) {
        let voters = self.roster.roster.as_ref().map(|r| r.voters.as_slice());
        self.view.restrict(voters);
    }

    /// Why losing the leader now would leave the cluster without one.
    fn fail_over_blocker(&self) -> Option<String> {
        let Some(roster) = &self.roster.roster else {
            return Some(if self.founding() {
                format!(
                    "no voter roster yet: the first leader needs all {} founding members",
                    self.config.expected_voters
                )
            } else {
                "no voter roster yet: waiting for a leader to admit this node \
                 (set failover.expected_voters on the founding nodes)"
                    .into()
            });
        };
        let base = roster.len();
        if base == 2 {
            return Some("two voting members: add a witness to fail over safely".into());
        }
        if base <= 1 {
            return Some("one voting member: there is nothing to fail over to".into());
        }
        let serving = self
            .view
            .live_voters()
            .filter(|k| k.cand.can_lead())
            .count();
        if serving < 2 {
            return Some("fewer than two live serving members: none to fail over to".into());
        }
        let live = self.view.live_voters().count();
        let q = self.quorum();
        let base = base as u32;
        if live <= q {
            return Some(format!(
                "{live} of {base} voting members are live: losing one more leaves no majority of {q}"
            ));
        }
        None
    }

    /// Bookkeeping that depends only on time: lapses and hint expiry.
    ///
    /// A member that handed its lease over stays unranked while the leadership it
    /// handed to lasts (so a switchover sticks); once this node knows of no
    /// leader, no promise binds it and no handover is pending, that leadership is
    /// over and the plain order decides again (sim seed 7467: a leader handed over
    /// to a better-ranked node that had just crashed, and stayed out for good).
    fn tick(&mut self, now: Millis) {
        self.voter.expire(now, self.id, &mut self.view);
        if let Some(h) = self.hint {
            if now >= h.until {
                self.hint = None;
                self.view.mark_lapsed(h.node, rank::Lapse::Expired);
            }
        }
        let leaderless = self.hint.is_none()
            && !self.lease.holding(now)
            && self.voter.binding(now).is_none()
            && self.voter.preferred(now).is_none();
        if leaderless {
            self.view.clear_released();
        }
    }

    /// Everything that follows from the state at `now`: step down, hand over,
    /// campaign, send the round that is due, report.
    fn drive(&mut self, now: Millis, out: &mut Outbox) {
        if self.config.mode.elects() {
            self.tick(now);
            if let Some(until) = self.lease.until {
                if now >= until {
                    self.lease.clear();
                    self.step_down("lease ran out: no majority renewed it".into(), out);
                }
            }
            if self.lease.holding(now) {
                if let Some(to) = self.better_settled(now) {
                    self.hand_over(now, to, out);
                }
            }
            if self.lease.holding(now) {
                self.change_roster();
            }
            if self.lease.epoch.is_some() && !self.lease.holding(now) && !self.should_campaign(now)
            {
                self.lease.clear();
                // The campaign's rounds are void now, so no lease can come of the
                // promise this node made itself: drop it, or it would refuse the
                // holder's renewals until it ran out.
                self.voter.withdraw(now, self.id);
            }
            if self.lease.epoch.is_none() && self.should_campaign(now) {
                let epoch = self
                    .seen
                    .max(self.leader_epoch)
                    .max(self.voter.floor)
                    .next();
                self.lease.campaign(now, epoch);
            }
            // Twice at most: a round whose own vote wins the lease (a single
            // expected voter) is followed at once by the announcing round.
            for _ in 0..2 {
                if self.lease.epoch.is_some() && self.lease.next_send <= now {
                    self.send_round(now, out);
                }
            }
        }
        self.report(out);
    }

    /// Whether this node should ask for the lease now.
    fn should_campaign(&self, now: Millis) -> bool {
        let Some(own) = self.view.own() else {
            return false;
        };
        if !own.can_lead() || now < self.voter.quiet_until || now < self.stand_aside_until {
            return false;
        }
        if self.electorate().is_none() {
            return false;
        }
        if self.voter.binding(now).is_some_and(|p| p.to != self.id) {
            return false;
        }
        if self.leader().is_some_and(|l| l != self.id) {
            return false;
        }
        match self.voter.preferred(now) {
            Some(to) => to == self.id,
            None => self.view.best(now, self.config.hold_down).map(|c| c.id) == Some(self.id),
        }
    }

    /// A live, not lapsed member that outranks this leader and has been live for
    /// `hold_down`, counted from when it came back or from when this leadership
    /// began, whichever is later: so no leadership is cut short before
    /// `hold_down`, which rules out flapping, and a node lapsed in this view (the
    /// one that handed over to us) is not handed the lease back.
    fn better_settled(&self, now: Millis) -> Option<NodeId> {
        let own = self.view.own()?;
        self.view
            .live_voters()
            .filter(|k| {
                k.cand.can_lead()
                    && k.lapsed.is_none()
                    && now.since(k.live_since.max(self.led_since)) >= self.config.hold_down
                    && k.cand.outranks(own)
            })
            .min_by_key(|k| k.cand.rank_key())
            .map(|k| k.cand.id)
    }

    fn send_round(&mut self, now: Millis, out: &mut Outbox) {
        let holding = self.lease.holding(now);
        let Some(mut epoch) = self.lease.epoch else {
            return;
        };
        if !holding && self.seen >= epoch {
            epoch = self.seen.next();
            self.lease.bump(epoch);
        }
        let Some(electorate) = self.electorate() else {
            // Taken off the roster by a later leadership: nothing to ask under.
            self.lease.clear();
            if holding {
                self.step_down("no longer on the voter roster".into(), out);
            }
            return;
        };
        let quorum = self.quorum();
        let roster = electorate.roster().cloned();
        let round = self
            .lease
            .open_round(now, quorum, roster, self.config.lease);
        debug_assert!(quorum >= 1);
        self.lease.next_send = now + self.config.renew_every;
        let msg = LeaseMessage::Request {
            epoch,
            round,
            holding,
            electorate: electorate.clone(),
        };
        self.broadcast(msg, out);
        // This node's own vote, under the same rules as anyone's.
        if self.vote(now, (self.id, self.life), (epoch, holding), &electorate) == Decision::Grant {
            self.on_grant(now, (self.id, self.life), (epoch, round), out);
        }
    }

    fn vote(
        &mut self,
        now: Millis,
        from: (NodeId, Life),
        (epoch, holding): (Epoch, bool),
        e: &Electorate,
    ) -> Decision {
        let ballot = Ballot {
            view: &self.view,
            promise_len: self.promise_len(),
            hold_down: self.config.hold_down,
            renew_every: self.config.renew_every,
            electorate_ok: self.electorate_ok(from, e),
            holding,
        };
        self.voter.decide(now, from.0, epoch, &ballot)
    }

    /// Sends `msg` to every other member with this node's fingerprint (voters
    /// and those waiting to be admitted, who learn the leader and the roster from
    /// it) and to roster voters it has not seen live.
    fn broadcast(&mut self, msg: LeaseMessage, out: &mut Outbox) {
        let mut to: BTreeSet<NodeId> = self.view.members().map(|k| k.cand.id).collect();
        if let Some(r) = &self.roster.roster {
            to.extend(r.voters.iter().copied());
        }
        to.remove(&self.id);
        for n in to {
            out.lease(n, msg.clone());
        }
    }

    /// While leading under a committed roster: re-stamp it at this leadership's
    /// epoch first, then take one step towards the roster the cluster should
    /// have (forgotten members off, at most `max_voters`, live members admitted
    /// best-ranked first). One step at a time, each committed before the next.
    fn change_roster(&mut self) {
        let Some(epoch) = self.lease.epoch else {
            return;
        };
        let Some(current) = self.roster.roster.clone() else {
            return;
        };
        if current.version.epoch > epoch {
            // Made by a later leadership: this one must not number versions below it
            // (it cannot happen while leases are safe; refuse rather than go back).
            return;
        }
        if current.version.epoch < epoch {
            // A new leadership: its own stamp first, so its followers (who granted
            // this epoch) can adopt every version it makes.
            self.set_roster(current.restamped(RosterVersion { epoch, seq: 0 }));
            return;
        }
        if self.committed != Some(current.version) {
            return;
        }
        let Some(change) = self.next_change(&current) else {
            return;
        };
        let version = RosterVersion {
            epoch,
            seq: current.version.seq.saturating_add(1),
        };
        self.set_roster(current.changed(version, change));
    }

    fn set_roster(&mut self, roster: Roster) {
        self.roster.roster = Some(roster);
        self.roster.bootstrapped = true;
        self.roster_changed();
    }

    /// The one change the roster needs next, if any.
    fn next_change(&self, r: &Roster) -> Option<Change> {
        let others = || r.voters.iter().copied().filter(|&v| v != self.id);
        if let Some((gone, _)) = r
            .members()
            .find(|&(v, l)| v != self.id && self.forgotten.contains(&(v, l)))
        {
            return Some(Change::Remove(gone));
        }
        let max = self.config.max_voters as usize;
        if r.len() > max {
            // Not live first, then the worst-ranked.
            let worst = others().max_by_key(|&v| match self.view.get(v) {
                Some(k) => (!k.live, Some(k.cand.rank_key())),
                None => (true, None),
            })?;
            return Some(Change::Remove(worst));
        }
        if r.len() < max {
            let (best, life) = self
                .view
                .outside_roster()
                .filter_map(|k| k.cand.life.map(|l| (k, l)))
                .filter(|&(k, l)| !self.forgotten.contains(&(k.cand.id, l)))
                .min_by_key(|(k, _)| k.cand.rank_key())?;
            return Some(Change::Add(best.cand.id, life));
        }
        None
    }

    fn on_request(
        &mut self,
        now: Millis,
        (from, life): (NodeId, Life),
        (epoch, round, holding): (Epoch, u64, bool),
        electorate: &Electorate,
        out: &mut Outbox,
    ) {
        if holding && self.hint.is_none_or(|h| epoch >= h.epoch) {
            self.hint = Some(Hint {
                node: from,
                epoch,
                until: now + self.promise_len(),
            });
            self.leader_epoch = self.leader_epoch.max(epoch);
        }
        // A member off the asker's roster that follows the same version has
        // nothing to grant or teach: it stays quiet.
        if let Electorate::Roster(r) = electorate {
            if !r.admits(self.id, self.life) && self.roster.version() == Some(r.version) {
                return;
            }
        }
        // A campaign of a better-ranked node that this node refuses only because
        // it is in hold-down here: stop campaigning and let it win (see
        // `View::yields_to`). No lease can come of the rounds dropped here.
        if !holding
            && self.lease.epoch.is_some()
            && !self.lease.holding(now)
            && self.voter.preferred(now).is_none()
            && self.view.yields_to(now, self.config.hold_down, from)
        {
            self.lease.clear();
            self.voter.withdraw(now, self.id);
        }
        let decision = self.vote(now, (from, life), (epoch, holding), electorate);
        let reply = match decision {
            Decision::Grant => LeaseMessage::Grant { epoch, round },
            Decision::Reject { retry_after } => LeaseMessage::Reject {
                epoch: self.seen.max(self.voter.granted_epoch()),
                round,
                electorate: self.stated_electorate(),
                retry_after_ms: u32::try_from(retry_after.as_millis()).unwrap_or(u32::MAX),
                starting: now < self.voter.quiet_until,
            },
        };
        out.lease(from, reply);
    }

    fn on_grant(
        &mut self,
        now: Millis,
        (from, life): (NodeId, Life),
        (epoch, round): (Epoch, u64),
        out: &mut Outbox,
    ) {
        // Roster rounds count only their members (the lease checks); a
        // bootstrap round anyone with this node's settings who granted it.
        if from != self.id && !self.view.is_member(from) {
            return;
        }
        let was_holding = self.lease.holding(now);
        let quorum = self.quorum();
        let usable = self.usable_lease();
        let Some(won) = self.lease.grant(from, life, epoch, round, quorum, usable) else {
            return;
        };
        self.note_won(won, epoch);
        if !was_holding && self.lease.holding(now) {
            self.leader_epoch = self.leader_epoch.max(epoch);
            self.hint = None;
            self.led_since = now;
            out.failover_event(FailoverEvent::BecameLeader { epoch });
            // Announce at once: the next round carries `holding`, so standbys learn
            // the leader now rather than one renewal later.
            self.lease.next_send = now;
        }
    }

    /// A round reached its quorum: a bootstrap round makes its granters the first
    /// roster; a round under the current roster commits that version.
    fn note_won(&mut self, won: Won, epoch: Epoch) {
        match won.roster {
            None if self.roster.roster.is_none() => {
                self.set_roster(Roster::with_lives(
                    RosterVersion { epoch, seq: 0 },
                    won.grants,
                ));
                self.committed = None;
            }
            Some(r) if self.roster.version() == Some(r.version) => {
                self.committed = Some(r.version);
            }
            _ => {}
        }
    }

    fn release_from(&mut self, now: Millis, from: NodeId, epoch: Epoch) {
        self.voter.release(now, from, epoch, &mut self.view);
        if self
            .hint
            .is_some_and(|h| h.node == from && h.epoch <= epoch)
        {
            self.hint = None;
        }
    }

    fn hand_over(&mut self, now: Millis, to: NodeId, out: &mut Outbox) {
        let Some(epoch) = self.lease.epoch else {
            return;
        };
        // Stop holding before anyone is told: voters release on receipt.
        self.lease.clear();
        self.step_down(format!("handed over to {to}"), out);
        self.voter.release(now, self.id, epoch, &mut self.view);
        self.voter.prefer = Some((to, now + self.promise_len()));
        self.broadcast(LeaseMessage::Handover { epoch, to }, out);
    }

    fn step_down(&mut self, reason: String, out: &mut Outbox) {
        out.failover_event(FailoverEvent::SteppedDown { reason });
    }

    /// Emits `LeaderChanged` when the leader or epoch this node reports changed.
    fn report(&mut self, out: &mut Outbox) {
        let current = (self.leader(), self.leader_epoch);
        if current != self.reported {
            self.reported = current;
            out.failover_event(FailoverEvent::LeaderChanged {
                leader: current.0,
                epoch: current.1,
            });
        }
    }
}

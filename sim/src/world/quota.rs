//! The quota workload: a holder per up node, as the gateway runs one, admitting one
//! unit at a time against a cluster-wide limit per window, and the `quota-bound`
//! check after every admission.

use std::collections::BTreeMap;

use aurora_core::quota::{
    Holder, OnPartition, QuotaKey, QuotaLimit, QuotaMessage, QuotaTiming, Session,
};

use super::*;
use crate::observe::CheckFailure;

/// The quota the workload admits against per window.
const QUOTA: u64 = 1;
/// The quota it admits against over rolling spans of windows.
const ROLLING: u64 = 2;

/// The most admitted over `span` consecutive windows that include `key`'s.
fn fullest_span(counts: &BTreeMap<QuotaKey, u64>, key: QuotaKey, span: u32) -> u64 {
    let span = u64::from(span.max(1));
    let first = key.window.saturating_sub(span - 1);
    (first..=key.window)
        .map(|start| {
            (start..start + span)
                .filter_map(|window| counts.get(&QuotaKey { window, ..key }))
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0)
}

/// The holders and what they admitted.
#[derive(Default)]
pub(super) struct QuotaSim {
    /// Per node: the generation its holder was made for, and the holder (a
    /// restarted node's holder starts empty, as a restarted gateway's does).
    holders: Vec<Option<(u8, Holder)>>,
    /// Per node: holder sessions started so far (every one is a new session).
    sessions: Vec<u64>,
    /// Leased admissions per window, over every session of every node.
    admitted: BTreeMap<QuotaKey, u64>,
    /// The same for the rolling quota.
    rolling: BTreeMap<QuotaKey, u64>,
}

impl World {
    /// What the quota workload admitted, per window.
    pub fn quota_admitted(&self) -> &BTreeMap<QuotaKey, u64> {
        &self.quota.admitted
    }

    /// What the rolling quota admitted, per window (its limit holds over any
    /// `rolling_span` consecutive windows).
    pub fn quota_rolling_admitted(&self) -> &BTreeMap<QuotaKey, u64> {
        &self.quota.rolling
    }

    /// One admission of each quota at a random up node; then every up holder's
    /// asks and releases.
    pub(super) fn quota_tick(&mut self) {
        let Some(load) = self.params.workload.quota.clone() else {
            return;
        };
        if let Some(i) = self.random_up_node() {
            let now = self.nodes[i].now(self.now);
            let quotas = [
                (QUOTA, load.window, QuotaLimit::per_window(load.limit)),
                (
                    ROLLING,
                    load.rolling_window,
                    QuotaLimit::rolling(
                        load.limit,
                        load.rolling_span,
                        load.rolling_window.as_millis() as u64,
                    ),
                ),
            ];
            for (quota, window, limit) in quotas {
                let key = QuotaKey {
                    quota,
                    window: now.wall / window.as_millis().max(1) as u64,
                };
                let holder = self.holder(i);
                // Past windows give back what they did not spend, as the gateway's do.
                let out = holder.retire(quota, key.window);
                let admitted = holder.admit(now.mono, key, limit, OnPartition::SpendLeased, 1);
                self.quota_sends(i, out.sends);
                if admitted.is_ok() {
                    let counts = if quota == ROLLING {
                        &mut self.quota.rolling
                    } else {
                        &mut self.quota.admitted
                    };
                    *counts.entry(key).or_default() += 1;
                    let n = fullest_span(counts, key, limit.span);
                    let ok = n <= limit.max;
                    self.obs.checks.ran("quota-bound", ok);
                    if !ok {
                        self.obs.failures.push(CheckFailure {
                            check: "quota-bound",
                            detail: format!(
                                "quota {quota}: {n} admitted over {} window(s) around window {}, a limit of {} (at {})",
                                limit.span, key.window, limit.max, self.now
                            ),
                        });
                    }
                }
            }
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_up() {
                let local = self.nodes[i].local(self.now);
                let out = self.holder(i).poll(local);
                self.quota_sends(i, out.sends);
            }
        }
    }

    /// Node `i`'s holder, told who grants now (made afresh after a restart).
    fn holder(&mut self, i: usize) -> &mut Holder {
        let generation = self.nodes[i].generation;
        let q = &mut self.quota;
        if q.holders.len() <= i {
            q.holders.resize_with(i + 1, || None);
            q.sessions.resize(i + 1, 0);
        }
        if q.holders[i].as_ref().is_none_or(|(g, _)| *g != generation) {
            q.sessions[i] += 1;
            let session = Session {
                node: self.nodes[i].id,
                session: q.sessions[i],
            };
            q.holders[i] = Some((generation, Holder::new(session, QuotaTiming::default())));
        }
        let grantor = self.nodes[i].node().map(|n| {
            let status = n.view().failover_status();
            status.leader.map(|l| (l, status.epoch))
        });
        let local = self.nodes[i].local(self.now);
        let (_, holder) = self.quota.holders[i].as_mut().expect("made above");
        let out = holder.set_grantor(local, grantor.flatten());
        let sends = out.sends;
        self.quota_sends(i, sends);
        &mut self.quota.holders[i].as_mut().expect("made above").1
    }

    /// Queues a holder's messages for its node (handed over as commands, now).
    fn quota_sends(&mut self, i: usize, sends: Vec<(NodeId, QuotaMessage)>) {
        for (to, message) in sends {
            self.push(
                self.now,
                Ev::QuotaSend {
                    node: i,
                    to,
                    message,
                },
            );
        }
    }

    /// A quota message the node `i` has for its holder.
    pub(super) fn quota_event(&mut self, i: usize, from: NodeId, message: QuotaMessage) {
        if self.params.workload.quota.is_none() || !self.nodes[i].is_up() {
            return;
        }
        let local = self.nodes[i].local(self.now);
        let out = self.holder(i).handle(local, from, &message);
        self.quota_sends(i, out.sends);
    }

    /// Hands a holder's message to its node.
    pub(super) fn quota_send(&mut self, i: usize, to: NodeId, message: QuotaMessage) {
        if self.nodes[i].is_up() {
            self.with_node(i, |node, now| {
                let _ = node.handle_command(now, Command::Quota { to, message });
            });
        }
    }
}

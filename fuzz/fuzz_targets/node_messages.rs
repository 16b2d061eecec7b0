//! A sequence of packets, waits, commands, writes, wall-clock jumps, syncs with
//! two simulated peers and restarts (format in `src/lib.rs`) fed to a `Node` that
//! knows two members. It must never panic, and:
//! - its incarnation never decreases, across restarts too;
//! - `poll_timeout` is `Some` until the node has left, `None` after;
//! - every packet it sends decodes on the channel it is sent on;
//! - it never announces an incarnation of its own above the highest it asked the
//!   driver to persist before that send;
//! - every entry a packet carries (a `Rumor::State`, or a sync delta) was in a
//!   `Persist` batch emitted before that packet, and so is every entry the store
//!   holds;
//! - its own writes have strictly increasing sequence numbers and timestamps,
//!   whatever the wall clock does and across restarts; a write answers with the
//!   timestamp now held under its key; an invalid record is refused unwritten;
//! - `replica().store().digest()` equals the digest of a fresh store that merged
//!   `store().entries()`;
//! - a node rebuilt from what it persisted holds the same live state (digest) as
//!   before the restart — also after a reset (a node away longer than the
//!   tombstone TTL forgets other origins' writes, in storage too: this target
//!   found that it once forgot them in memory only; see `regressions/`).
//!
//! The two peers (members A and B) keep their own stores: they write with their
//! own clocks (sometimes far ahead of ours), answer and send sync messages built
//! from their stores, gossip their entries (old ones too), and learn whatever the
//! node sends them.

#![no_main]

use std::collections::BTreeMap;

use aurora_core::state::hlc::{Hlc, HlcClock};
use aurora_core::state::records::{Collection, Model, Record};
use aurora_core::state::replica::StateTiming;
use aurora_core::state::store::{Entry, Key, Store, Usage, Value, VersionVector};
use aurora_core::wire::{self, MemberUpdate, Message, Rumor};
use aurora_core::{
    Channel, Command, CommandError, Config, Event, Identity, Incarnation, LocalChange, MemberMeta,
    Millis, Node, NodeId, Origin, Output, PersistItem, Restored, Role, Timing,
};
use aurora_fuzz::{
    addr_of, budget_id, life_of, model, model_id, origin_of, packet, parse, sender, Op,
    CHUNK_BUDGETS, CLUSTER, MEMBER_A, MEMBER_B, SELF,
};
use libfuzzer_sys::fuzz_target;

/// The wall clock at the start, ms since the Unix epoch (November 2023).
const START_WALL: i64 = 1_700_000_000_000;
const SEED: u64 = 7;

fn meta(name: &str) -> MemberMeta {
    MemberMeta {
        name: name.to_string(),
        region: "r".into(),
        zone: "z".into(),
        advertise_url: String::new(),
        sync_addr: addr_of(SELF),
        promotion_tier: 0,
        capacity: 1,
        role: Role::Serving,
        version: "0".into(),
        config_fingerprint: 0,
        bootstrap_expect: 0,
    }
}

fn config() -> Config {
    Config {
        cluster: CLUSTER,
        timing: Timing::lan(),
        // Small chunks, so a handful of entries already spans several messages.
        state: StateTiming {
            sync_chunk_bytes: 400,
            ..StateTiming::default()
        },
        // A founder of a one-voter cluster: it leads at once, so forged lease
        // messages (rosters, grants, handovers) meet a holder, not a no-op.
        failover: aurora_core::failover::FailoverConfig {
            expected_voters: 1,
            ..aurora_core::failover::FailoverConfig::with_mode(
                aurora_core::failover::FailoverMode::ActivePassive,
            )
        },
        admission: aurora_core::identity::Admission::Auto,
    }
}

/// Builds the node from `restored` and introduces the two members by gossip, the
/// way a peer would.
fn start(restored: Restored, now: Millis) -> Node {
    let identity = Identity {
        id: SELF,
        life: life_of(SELF),
        addr: addr_of(SELF),
        meta: meta("self"),
    };
    let mut node = Node::new(config(), identity, SEED, restored, now).expect("valid");
    for member in [MEMBER_A, MEMBER_B] {
        let hello = Message::Gossip {
            rumors: vec![Rumor::Member(MemberUpdate::Alive {
                node: member,
                incarnation: Incarnation(0),
                addr: addr_of(member),
                meta: meta("peer"),
            })],
        };
        node.handle_datagram(
            now,
            addr_of(member),
            &wire::encode(CLUSTER, member, life_of(member), &hello),
        );
    }
    node
}

/// A simulated member: its own store, clock and sequence numbers.
struct Peer {
    id: NodeId,
    clock: HlcClock,
    seq: u64,
    store: Store,
    /// Every entry it wrote or learnt, superseded ones too, to gossip stale news.
    history: Vec<Entry>,
    /// The version vector of the node's last `SyncRequest` to this peer.
    last_request: Option<VersionVector>,
}

impl Peer {
    fn new(id: NodeId) -> Peer {
        Peer {
            id,
            clock: HlcClock::new(origin_of(id), StateTiming::default().max_clock_skew),
            seq: 0,
            store: Store::default(),
            history: Vec::new(),
            last_request: None,
        }
    }

    /// Learns an entry from the node, as a real member would.
    fn learn(&mut self, e: &Entry, wall: u64) {
        let _ = self.clock.observe(e.hlc, wall);
        self.store.merge(e.clone());
        if self.history.len() < 256 {
            self.history.push(e.clone());
        }
    }
}

/// Everything the harness tracks about the node's outputs.
struct Checker {
    incarnation: Incarnation,
    persisted: Option<Incarnation>,
    left: bool,
    /// Every entry ever persisted, by (origin, seq).
    persisted_entries: BTreeMap<(Origin, u64), Entry>,
    /// What the driver's storage holds: rebuilt into a node on `Restart`.
    image: Restored,
    /// The node's newest own write: (seq, timestamp).
    last_own: Option<(u64, Hlc)>,
}

impl Checker {
    fn drain(&mut self, node: &mut Node, peers: &mut [Peer; 2], wall: u64) {
        while let Some(out) = node.poll_output() {
            match out {
                Output::Persist(batch) => {
                    self.image.apply(&batch);
                    let own_seq = batch.items.iter().find_map(|i| match i {
                        PersistItem::OwnSeq(s) => Some(*s),
                        _ => None,
                    });
                    for item in batch.items {
                        match item {
                            PersistItem::Incarnation(i) => {
                                self.persisted = self.persisted.max(Some(i));
                            }
                            PersistItem::Entry(e) => {
                                if let Some(s) = own_seq.filter(|_| e.origin() == origin_of(SELF)) {
                                    assert_eq!(e.seq, s, "own write persisted with another seq");
                                    self.own_write(&e);
                                }
                                let id = (e.origin(), e.seq);
                                if let Some(old) = self.persisted_entries.get(&id) {
                                    assert_eq!(*old, *e, "two different writes named {id:?}");
                                }
                                self.persisted_entries.insert(id, *e);
                            }
                            PersistItem::Binding { node, .. } => {
                                // Its own binding is fixed; nothing rebinds it.
                                assert_ne!(node, SELF, "the node rebound its own id");
                            }
                            PersistItem::OwnSeq(_)
                            | PersistItem::Remove(_)
                            | PersistItem::Epoch(_)
                            | PersistItem::Roster(_) => {}
                        }
                    }
                }
                Output::Transmit(t) => {
                    let envelope = wire::decode(CLUSTER, t.channel, &t.bytes)
                        .unwrap_or_else(|e| panic!("undecodable {} B send: {e}", t.bytes.len()));
                    assert_eq!(envelope.sender, SELF);
                    assert_eq!(envelope.life, life_of(SELF));
                    let message = envelope.message;
                    for i in announced(&message) {
                        assert!(
                            Some(i) <= self.persisted,
                            "announced {i:?} before persisting it ({:?})",
                            self.persisted
                        );
                    }
                    for e in carried(&message) {
                        assert_eq!(
                            self.persisted_entries.get(&(e.origin(), e.seq)),
                            Some(e),
                            "sent an entry before persisting it ({})",
                            message.kind()
                        );
                    }
                    if let Some(peer) = peers.iter_mut().find(|p| addr_of(p.id) == t.to) {
                        deliver(peer, message, wall);
                    }
                }
                Output::Event(Event::Local(LocalChange::Left)) => self.left = true,
                Output::Event(_) => {}
            }
        }
        let now = node.membership().incarnation();
        assert!(now >= self.incarnation, "{now:?} < {:?}", self.incarnation);
        self.incarnation = now;
        assert_eq!(node.membership().has_left(), self.left);
        assert_eq!(node.poll_timeout().is_some(), !self.left);
        self.check_store(node);
    }

    /// A write of the node's own: numbered and timed after every earlier one.
    fn own_write(&mut self, e: &Entry) {
        if let Some((seq, hlc)) = self.last_own {
            assert!(e.seq > seq, "own seq {} after {seq}", e.seq);
            assert!(e.hlc > hlc, "own write at {:?} after {hlc:?}", e.hlc);
        }
        self.last_own = Some((e.seq, e.hlc));
    }

    fn check_store(&self, node: &Node) {
        let store = node.replica().store();
        let mut fresh = Store::default();
        for e in store.entries() {
            assert_eq!(
                self.persisted_entries.get(&(e.origin(), e.seq)),
                Some(e),
                "the store holds an entry that was never persisted"
            );
            fresh.merge(e.clone());
        }
        assert_eq!(
            fresh.digest(),
            store.digest(),
            "digest differs from one recomputed from the entries"
        );
        assert_eq!(fresh.live_count(), store.live_count());
    }
}

/// A peer receives something the node sent it.
fn deliver(peer: &mut Peer, message: Message, wall: u64) {
    for r in message.rumors() {
        if let Rumor::State(e) = r {
            peer.learn(e, wall);
        }
    }
    match message {
        Message::SyncRequest { vv, .. } => peer.last_request = Some(vv),
        Message::SyncResponse { delta, .. } | Message::SyncPush { delta } => {
            for (origin, range) in &delta.cleared {
                peer.store.clear(*origin, *range);
            }
            for e in &delta.entries {
                peer.learn(e, wall);
            }
        }
        _ => {}
    }
}

/// Incarnations of this node that a message announces.
fn announced(message: &Message) -> Vec<Incarnation> {
    let mut out: Vec<Incarnation> = message
        .rumors()
        .iter()
        .filter_map(|r| match r {
            Rumor::Member(MemberUpdate::Alive {
                node, incarnation, ..
            }) if *node == SELF => Some(*incarnation),
            _ => None,
        })
        .collect();
    if let Message::PushPull { members, .. } = message {
        out.extend(
            members
                .iter()
                .filter(|r| r.node == SELF)
                .map(|r| r.incarnation),
        );
    }
    out
}

/// Replicated writes a message carries.
fn carried(message: &Message) -> Vec<&Entry> {
    let mut out: Vec<&Entry> = message
        .rumors()
        .iter()
        .filter_map(|r| match r {
            Rumor::State(e) => Some(e),
            _ => None,
        })
        .collect();
    if let Message::SyncResponse { delta, .. } | Message::SyncPush { delta } = message {
        out.extend(&delta.entries);
    }
    out
}

struct Harness {
    node: Node,
    now: Millis,
    /// wall = now + wall_offset (ms), as the driver's clocks would say.
    wall_offset: i64,
    checker: Checker,
    peers: [Peer; 2],
}

impl Harness {
    fn wall(&self) -> u64 {
        (self.now.0 as i64).saturating_add(self.wall_offset).max(0) as u64
    }

    fn drain(&mut self) {
        let wall = self.wall();
        self.checker.drain(&mut self.node, &mut self.peers, wall);
    }

    fn command(&mut self, command: Command) -> Result<Option<Hlc>, CommandError> {
        let result = self.node.handle_command(self.now, command);
        if self.checker.left {
            assert!(result.is_err(), "a node that left takes no command");
        }
        result
    }

    /// A write was acknowledged: its timestamp is the one now held under its key
    /// (nothing can have superseded it within the same call).
    fn check_written(&self, key: &Key, result: Result<Option<Hlc>, CommandError>) {
        if let Ok(hlc) = result {
            let hlc = hlc.expect("a write answers with its timestamp");
            let held = self.node.replica().store().get(key).expect("written key");
            assert_eq!(held.hlc, hlc);
            assert_eq!(held.origin(), origin_of(SELF));
        }
    }

    fn put(&mut self, id: u8, variant: u8) {
        let id = model_id(id);
        let invalid = variant & 0x80 != 0;
        let record = if invalid {
            let Record::Model(m) = model(variant & 0x7f) else {
                unreachable!()
            };
            Record::Model(Model {
                aliases: vec![id.as_str().to_string()],
                ..m
            })
        } else {
            model(variant)
        };
        let key = Key::Record(Collection::Models, id.clone());
        let before = self.node.replica().store().digest();
        let own_seq = self.node.replica().own_seq();
        let result = self.command(Command::Put { id, record });
        if invalid {
            assert!(
                matches!(
                    result,
                    Err(CommandError::InvalidRecord(_) | CommandError::Left)
                ),
                "an invalid record was accepted: {result:?}"
            );
            assert_eq!(self.node.replica().store().digest(), before);
            assert_eq!(self.node.replica().own_seq(), own_seq);
        } else {
            self.check_written(&key, result);
        }
    }

    fn delete(&mut self, id: u8) {
        let id = model_id(id);
        let key = Key::Record(Collection::Models, id.clone());
        let result = self.command(Command::Delete {
            collection: Collection::Models,
            id,
        });
        self.check_written(&key, result);
    }

    fn usage(&mut self, budget: u8, period: u8, amount: u16) {
        let amount = u64::from(amount);
        let result = self.command(Command::RecordUsage {
            budget: budget_id(budget),
            period: u64::from(period % 3),
            usage: Usage {
                spend_nanos: amount * 1_000,
                requests: 1,
                tokens: amount,
            },
        });
        if !self.checker.left {
            assert_eq!(result, Ok(None), "usage is recorded, not written at once");
        }
    }

    fn jump_wall(&mut self, scale: u8, delta: i16) {
        let unit: i64 = [1, 1_000, 3_600_000, 86_400_000][usize::from(scale % 4)];
        self.wall_offset = self
            .wall_offset
            .saturating_add(i64::from(delta) * unit)
            .clamp(-START_WALL, 100 * START_WALL);
        self.node.set_wall_clock(self.now, self.wall());
    }

    /// Member `peer` writes into its own store; the node hears of it later.
    fn remote_write(&mut self, peer: u8, key: u8, variant: u8, skew: i8) {
        let unit = if variant & 0x80 != 0 { 1_000 } else { 1 };
        let wall = (self.wall() as i64 + i64::from(skew) * unit).max(0) as u64;
        let p = &mut self.peers[usize::from(peer % 2)];
        let (key, value) = match key % 6 {
            n @ 0..=3 => (
                Key::Record(Collection::Models, model_id(n)),
                Value::Record(model(variant & 0x7f)),
            ),
            n => (
                Key::Usage {
                    budget: budget_id(n),
                    period: 0,
                    node: origin_of(p.id),
                },
                Value::Usage(Usage {
                    spend_nanos: u64::from(variant) * 1_000,
                    requests: 1,
                    tokens: u64::from(variant),
                }),
            ),
        };
        p.seq += 1;
        let entry = Entry {
            key,
            // Bit 6 of the variant: a tombstone.
            value: (variant & 0x40 == 0).then_some(value),
            hlc: p.clock.tick(wall),
            seq: p.seq,
        };
        p.learn(&entry, wall);
    }

    /// Member `peer` sends the node a sync message or a state rumour.
    fn sync(&mut self, peer: u8, kind: u8, arg: u8) {
        let p = &self.peers[usize::from(peer % 2)];
        // What the peer believes the node has: its last request, or (bit 7) the
        // truth, or nothing yet (a full snapshot).
        let theirs = if arg & 0x80 != 0 {
            self.node.replica().store().version_vector()
        } else {
            p.last_request.clone().unwrap_or_default()
        };
        let budget = CHUNK_BUDGETS[usize::from(arg & 0x7f) % CHUNK_BUDGETS.len()];
        let message = match kind % 4 {
            0 => Message::SyncRequest {
                newest: p.store.newest(),
                digest: p.store.digest(),
                vv: p.store.version_vector(),
            },
            1 => {
                let (delta, more) = p.store.delta_for(&theirs, budget);
                Message::SyncResponse {
                    newest: p.store.newest(),
                    digest: p.store.digest(),
                    vv: p.store.version_vector(),
                    delta,
                    more,
                }
            }
            2 => Message::SyncPush {
                delta: p.store.delta_for(&theirs, budget).0,
            },
            _ => {
                if p.history.is_empty() {
                    return;
                }
                let e = p.history[usize::from(arg) % p.history.len()].clone();
                let bytes = wire::encode(
                    CLUSTER,
                    p.id,
                    life_of(p.id),
                    &Message::Gossip {
                        rumors: vec![Rumor::State(e)],
                    },
                );
                self.node.handle_datagram(self.now, addr_of(p.id), &bytes);
                return;
            }
        };
        let bytes = wire::encode(CLUSTER, p.id, life_of(p.id), &message);
        self.node.handle_stream(self.now, addr_of(p.id), &bytes);
    }

    /// The process restarts: everything not persisted is gone.
    fn restart(&mut self) {
        let before = self.node.replica().store().digest();
        self.node = start(self.checker.image.clone(), self.now);
        self.checker.left = false;
        assert_eq!(
            self.node.replica().store().digest(),
            before,
            "the persisted state does not rebuild the live state"
        );
        // A driver tells a new node the wall clock before anything else.
        self.node.set_wall_clock(self.now, self.wall());
    }
}

fuzz_target!(|data: &[u8]| {
    let ops = parse(data);
    let now = Millis(1_000_000);
    let mut h = Harness {
        node: start(Restored::default(), now),
        now,
        wall_offset: START_WALL - now.0 as i64,
        checker: Checker {
            incarnation: Incarnation(0),
            persisted: None,
            left: false,
            persisted_entries: BTreeMap::new(),
            image: Restored::default(),
            last_own: None,
        },
        peers: [Peer::new(MEMBER_A), Peer::new(MEMBER_B)],
    };
    h.node.set_wall_clock(h.now, h.wall());
    h.drain();
    assert_eq!(h.node.membership().active_count(), 2);

    for op in ops {
        match op {
            Op::Packet {
                from,
                stream,
                raw,
                body,
            } => {
                let who = sender(from);
                let bytes = if raw { body } else { packet(who, &body) };
                let channel = if stream {
                    Channel::Stream
                } else {
                    Channel::Datagram
                };
                match channel {
                    Channel::Stream => h.node.handle_stream(h.now, addr_of(who), &bytes),
                    Channel::Datagram => h.node.handle_datagram(h.now, addr_of(who), &bytes),
                }
            }
            Op::Wait(ms) => {
                h.now = Millis(h.now.0 + u64::from(ms));
                if h.node.poll_timeout().is_some_and(|t| t <= h.now) {
                    h.node.handle_timeout(h.now);
                }
            }
            Op::Command { kind, payload } => {
                let command = match kind % 4 {
                    0 => Command::Leave,
                    1 => Command::Broadcast(payload),
                    2 => Command::Join {
                        seeds: vec![addr_of(MEMBER_A)],
                    },
                    _ => Command::UpdateMeta(meta(&String::from_utf8_lossy(&payload))),
                };
                let _ = h.command(command);
            }
            Op::Tick => {
                if let Some(t) = h.node.poll_timeout() {
                    h.now = h.now.max(t);
                    h.node.handle_timeout(h.now);
                }
            }
            Op::Put { id, variant } => h.put(id, variant),
            Op::Delete { id } => h.delete(id),
            Op::Usage {
                budget,
                period,
                amount,
            } => h.usage(budget, period, amount),
            Op::Wall { scale, delta } => h.jump_wall(scale, delta),
            Op::Remote {
                peer,
                key,
                variant,
                skew,
            } => h.remote_write(peer, key, variant, skew),
            Op::Sync { peer, kind, arg } => h.sync(peer, kind, arg),
            Op::Restart => h.restart(),
        }
        h.drain();
    }
});

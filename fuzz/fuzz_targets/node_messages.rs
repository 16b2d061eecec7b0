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
use aurora_schema::{Collection, Model, Record};
use aurora_core::state::replica::StateTiming;
use aurora_core::state::store::{Entry, Key, Store, Usage, Value, VersionVector};
use aurora_core::testing::{self, Driver, Host};
use aurora_core::wire::{self, MemberUpdate, Message, Rumor};
use aurora_core::{
    Channel, Command, CommandError, Config, Event, Identity, Incarnation, LocalChange, MemberMeta,
    Millis, Node, NodeId, Now, Origin, PersistBatch, PersistItem, Restored, Role, Timing, Transmit,
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
        failover: aurora_core::FailoverConfig {
            expected_voters: 1,
            ..aurora_core::FailoverConfig::with_mode(
                aurora_core::FailoverMode::ActivePassive,
            )
        },
        admission: aurora_core::Admission::Auto,
    }
}

/// Builds the node from `restored` and introduces the two members by gossip, the
/// way a peer would.
fn start(restored: Restored, now: Now) -> Node {
    let identity = Identity {
        id: SELF,
        life: life_of(SELF),
        addr: addr_of(SELF),
        meta: meta("self"),
    };
    let mut node = Node::new(config(), identity, aurora_schema::GatewaySchema::arc(), SEED, restored, now).expect("valid");
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

/// What this target checks beyond the driver contract (which the harness's
/// [`Contract`] checks on every round: sends decode and name the node, no incarnation
/// or entry is sent before it is persisted, the incarnation never goes down, the
/// timer is there until the node left, the store holds only persisted writes).
struct Checker {
    left: bool,
    /// Every entry ever persisted, by (origin, seq): one id names one write.
    persisted_entries: BTreeMap<(Origin, u64), Entry>,
    /// The node's newest own write: (seq, timestamp).
    last_own: Option<(u64, Hlc)>,
}

impl Checker {
    /// A batch the harness committed.
    fn committed(&mut self, batch: &PersistBatch) {
        let own_seq = batch.items.iter().find_map(|i| match i {
            PersistItem::OwnSeq(s) => Some(*s),
            _ => None,
        });
        for item in &batch.items {
            match item {
                PersistItem::Entry(e) => {
                    if let Some(s) = own_seq.filter(|_| e.origin() == origin_of(SELF)) {
                        assert_eq!(e.seq, s, "own write persisted with another seq");
                        self.own_write(e);
                    }
                    let id = (e.origin(), e.seq);
                    if let Some(old) = self.persisted_entries.get(&id) {
                        assert_eq!(old, &**e, "two different writes named {id:?}");
                    }
                    self.persisted_entries.insert(id, (**e).clone());
                }
                PersistItem::Binding { node, .. } => {
                    // Its own binding is fixed; nothing rebinds it.
                    assert_ne!(*node, SELF, "the node rebound its own id");
                }
                _ => {}
            }
        }
    }

    /// A write of the node's own: numbered and timed after every earlier one.
    fn own_write(&mut self, e: &Entry) {
        if let Some((seq, hlc)) = self.last_own {
            assert!(e.seq > seq, "own seq {} after {seq}", e.seq);
            assert!(e.hlc > hlc, "own write at {:?} after {hlc:?}", e.hlc);
        }
        self.last_own = Some((e.seq, e.hlc));
    }
}

/// The store's digest equals that of a fresh store that merged its entries.
fn check_digest(node: &Node) {
    let store = node.view().store();
    let mut fresh = Store::default();
    for e in store.entries() {
        fresh.merge(e.clone());
    }
    assert_eq!(
        fresh.digest(),
        store.digest(),
        "digest differs from one recomputed from the entries"
    );
    assert_eq!(fresh.live_count(), store.live_count());
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

struct Harness {
    /// The node, its disk (what it asked to persist) and its contract checks.
    host: Host,
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

    /// Both clocks now: what each call into the node carries (a wall jump
    /// reaches the node with the next call, as a driver's reading would).
    fn clock(&self) -> Now {
        Now::new(self.now, self.wall())
    }

    /// The fuzzed node: it always runs (a restart replaces it at once).
    fn node(&mut self) -> &mut Node {
        self.host
            .node
            .as_mut()
            .expect("the fuzzed node always runs")
    }

    fn fuzzed(&self) -> &Node {
        self.host
            .node
            .as_ref()
            .expect("the fuzzed node always runs")
    }

    fn drain(&mut self) {
        testing::drain(self, 0);
        if let Some(v) = self.host.contract.violations().first() {
            panic!("driver contract broken: {v}");
        }
        let node = self.fuzzed();
        assert_eq!(node.view().has_left(), self.checker.left);
        check_digest(node);
    }

    fn command(&mut self, command: Command) -> Result<Option<Hlc>, CommandError> {
        let now = self.clock();
        let result = self.node().handle_command(now, command);
        if self.checker.left {
            assert!(result.is_err(), "a node that left takes no command");
        }
        result
    }

    /// A write was acknowledged: its timestamp is the one now held under its key
    /// (nothing can have superseded it within the same call).
    fn check_written(&mut self, key: &Key, result: Result<Option<Hlc>, CommandError>) {
        if let Ok(hlc) = result {
            let hlc = hlc.expect("a write answers with its timestamp");
            let held = self.fuzzed().view().store().get(key).expect("written key");
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
        let key = Key::Record(Collection::Models.id(), id.clone());
        let before = self.fuzzed().view().store().digest();
        let own_seq = self.fuzzed().view().own_seq();
        let result = self.command(aurora_schema::put(id, &record));
        if invalid {
            assert!(
                matches!(
                    result,
                    Err(CommandError::InvalidRecord(_) | CommandError::Left)
                ),
                "an invalid record was accepted: {result:?}"
            );
            assert_eq!(self.fuzzed().view().store().digest(), before);
            assert_eq!(self.fuzzed().view().own_seq(), own_seq);
        } else {
            self.check_written(&key, result);
        }
    }

    fn delete(&mut self, id: u8) {
        let id = model_id(id);
        let key = Key::Record(Collection::Models.id(), id.clone());
        let result = self.command(Command::Delete {
                collection: Collection::Models.id(),
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
    }

    /// Member `peer` writes into its own store; the node hears of it later.
    fn remote_write(&mut self, peer: u8, key: u8, variant: u8, skew: i8) {
        let unit = if variant & 0x80 != 0 { 1_000 } else { 1 };
        let wall = (self.wall() as i64 + i64::from(skew) * unit).max(0) as u64;
        let p = &mut self.peers[usize::from(peer % 2)];
        let (key, value) = match key % 6 {
            n @ 0..=3 => (
                Key::Record(Collection::Models.id(), model_id(n)),
                Value::Record(aurora_schema::encode(&model(variant & 0x7f))),
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
            self.fuzzed().view().store().version_vector()
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
                let (now, from) = (self.clock(), addr_of(p.id));
                self.node().handle_datagram(now, from, &bytes);
                return;
            }
        };
        let bytes = wire::encode(CLUSTER, p.id, life_of(p.id), &message);
        let (now, from) = (self.clock(), addr_of(p.id));
        self.node().handle_stream(now, from, &bytes);
    }

    /// The process restarts: everything not persisted is gone.
    fn restart(&mut self) {
        let before = self.fuzzed().view().store().digest();
        self.host.crash();
        let node = start(self.host.disk.clone(), self.clock());
        self.host.boot(node);
        self.checker.left = false;
        let rebuilt = self.fuzzed().view();
        if rebuilt.replica_stats().resets == 0 {
            assert_eq!(
                rebuilt.store().digest(),
                before,
                "the persisted state does not rebuild the live state"
            );
        } else {
            // The wall clock the node starts with (it comes with `Node::new` since
            // `Now`) says it was away longer than the tombstone TTL: it kept only
            // its own writes, and the next drain persists what it forgot.
            assert!(
                rebuilt
                    .store()
                    .entries()
                    .all(|e| e.origin() == rebuilt.origin()),
                "a reset at start keeps only this node's own writes"
            );
        }
    }
}

/// The harness's driver: the two peers are the network, commits feed the checker.
impl Driver for Harness {
    fn host(&mut self, _: usize) -> &mut Host {
        &mut self.host
    }

    fn transmit(&mut self, _: usize, t: Transmit) {
        // An undecodable send is the contract's `wire` violation, reported after the round.
        let Ok(envelope) = wire::decode(CLUSTER, t.channel, &t.bytes) else {
            return;
        };
        let wall = self.wall();
        if let Some(peer) = self.peers.iter_mut().find(|p| addr_of(p.id) == t.to) {
            deliver(peer, envelope.message, wall);
        }
    }

    fn event(&mut self, _: usize, e: Event) {
        if e == Event::Local(LocalChange::Left) {
            self.checker.left = true;
        }
    }

    fn committed(&mut self, _: usize, batch: &PersistBatch) {
        self.checker.committed(batch);
    }
}

fuzz_target!(|data: &[u8]| {
    let ops = parse(data);
    let now = Millis(1_000_000);
    let mut host = Host::new(CLUSTER, SELF, life_of(SELF));
    host.contract.check_store = true;
    host.boot(start(Restored::default(), Now::new(now, START_WALL as u64)));
    let mut h = Harness {
        host,
        now,
        wall_offset: START_WALL - now.0 as i64,
        checker: Checker {
            left: false,
            persisted_entries: BTreeMap::new(),
            last_own: None,
        },
        peers: [Peer::new(MEMBER_A), Peer::new(MEMBER_B)],
    };
    h.drain();
    assert_eq!(h.fuzzed().view().active_count(), 2);

    for op in ops {
        match op {
            Op::Packet {
                from,
                stream,
                raw,
                body,
            } => {
                let who = sender(from);
                let now = h.clock();
                let bytes = if raw { body } else { packet(who, &body) };
                let channel = if stream {
                    Channel::Stream
                } else {
                    Channel::Datagram
                };
                match channel {
                    Channel::Stream => h.node().handle_stream(now, addr_of(who), &bytes),
                    Channel::Datagram => h.node().handle_datagram(now, addr_of(who), &bytes),
                }
            }
            Op::Wait(ms) => {
                h.now = Millis(h.now.0 + u64::from(ms));
                let now = h.clock();
                if h.fuzzed().poll_timeout().is_some_and(|t| t <= now.mono) {
                    h.node().handle_timeout(now);
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
                if let Some(t) = h.fuzzed().poll_timeout() {
                    h.now = h.now.max(t);
                    let now = h.clock();
                    h.node().handle_timeout(now);
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

//! Wire format tests: round trips, one test per drop reason, a frozen byte layout,
//! and property tests that no input makes the decoder panic.

use super::*;
use crate::config::Role;
use crate::id::{Addr, Incarnation};
use proptest::prelude::*;

const CLUSTER: ClusterId = ClusterId(0xA0A0_0001);
const SENDER: NodeId = NodeId(7);
const LIFE: Life = Life(0x5eed_0000_0000_0042);

fn addr(port: u16) -> Addr {
    Addr::from(([10, 0, 0, 1], port))
}

fn addr6(port: u16) -> Addr {
    Addr::from(([0xfd00, 0, 0, 0, 0, 0, 0, 1], port))
}

fn meta(name: &str) -> MemberMeta {
    MemberMeta {
        name: name.to_string(),
        region: "eu-west-1".to_string(),
        zone: "eu-west-1a".to_string(),
        advertise_url: "https://aurora.example:8443".to_string(),
        sync_addr: addr(7947),
        promotion_tier: 3,
        capacity: 100,
        role: Role::Witness,
        version: "0.1.0".to_string(),
        config_fingerprint: 0xDEAD_BEEF,
        bootstrap_expect: 0,
    }
}

fn alive(node: u64, inc: u64) -> Rumor {
    Rumor::Member(MemberUpdate::Alive {
        node: NodeId(node),
        incarnation: Incarnation(inc),
        addr: addr6(7946),
        meta: meta("alive"),
    })
}

fn left(node: u64) -> Rumor {
    Rumor::Member(MemberUpdate::Left {
        node: NodeId(node),
        incarnation: Incarnation(1),
    })
}

fn app(seq: u64, len: usize) -> Rumor {
    Rumor::App(AppRumor {
        origin: NodeId(3),
        seq,
        payload: vec![0xAB; len],
    })
}

fn record(node: u64, liveness: Liveness) -> MemberRecord {
    MemberRecord {
        node: NodeId(node),
        incarnation: Incarnation(node),
        liveness,
        addr: addr(7946),
        heartbeat: 42,
        meta: meta("rec"),
    }
}

fn every_rumor() -> Vec<Rumor> {
    vec![
        alive(1, 2),
        Rumor::Member(MemberUpdate::Suspect {
            node: NodeId(2),
            incarnation: Incarnation(u64::MAX),
            from: NodeId(9),
        }),
        Rumor::Member(MemberUpdate::Dead {
            node: NodeId(3),
            incarnation: Incarnation(0),
            from: NodeId(u64::MAX),
        }),
        left(4),
        app(1, 0),
        app(u64::MAX, MAX_APP_PAYLOAD),
    ]
}

/// One message of every variant (and every push-pull kind and liveness).
fn every_message() -> Vec<Message> {
    let members = vec![
        record(1, Liveness::Alive),
        record(2, Liveness::Suspect),
        record(3, Liveness::Dead),
        record(4, Liveness::Left),
    ];
    let mut out = vec![
        Message::Ping {
            seq: 1,
            target: NodeId(2),
            heartbeat: 3,
            rumors: every_rumor(),
        },
        Message::Ping {
            seq: u32::MAX,
            target: NodeId(u64::MAX),
            heartbeat: u64::MAX,
            rumors: Vec::new(),
        },
        Message::Ack {
            seq: 9,
            heartbeat: 10,
            rumors: every_rumor(),
        },
        Message::PingReq {
            seq: 11,
            target: NodeId(12),
            target_addr: addr6(1),
            rumors: every_rumor(),
        },
        Message::Nack { seq: 13 },
        Message::Gossip {
            rumors: every_rumor(),
        },
    ];
    for kind in [
        PushPullKind::Join,
        PushPullKind::Periodic,
        PushPullKind::Reply,
    ] {
        out.push(Message::PushPull {
            kind,
            heartbeat: 5,
            members: members.clone(),
        });
    }
    out
}

fn packet(message: &Message) -> Vec<u8> {
    encode(CLUSTER, SENDER, LIFE, message)
}

fn decode_datagram(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    decode(CLUSTER, Channel::Datagram, bytes)
}

fn decode_stream(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    decode(CLUSTER, Channel::Stream, bytes)
}

fn ping() -> Message {
    Message::Ping {
        seq: 1,
        target: NodeId(2),
        heartbeat: 0,
        rumors: Vec::new(),
    }
}

fn gossip(rumors: Vec<Rumor>) -> Message {
    Message::Gossip { rumors }
}

/// Where the CRC-32 sits in the header (see the layout in `wire/mod.rs`).
const CRC_FIELD: core::ops::Range<usize> = 27..31;

/// Rewrites the checksum of a hand-made or mutated packet, as a sender that built
/// those bytes on purpose would, so the checks after the checksum get to see them.
fn sealed(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() >= HEADER_LEN {
        let crc = crate::hash::crc32_update(!0, &bytes[..CRC_FIELD.start]);
        let crc = !crate::hash::crc32_update(crc, &bytes[CRC_FIELD.end..]);
        bytes[CRC_FIELD].copy_from_slice(&crc.to_le_bytes());
    }
    bytes
}

/// A valid header (for `CLUSTER` and `SENDER`) followed by `body`, sealed.
fn with_body(body: &[u8]) -> Vec<u8> {
    let mut bytes = packet(&ping())[..HEADER_LEN].to_vec();
    bytes.extend_from_slice(body);
    sealed(bytes)
}

// ---- round trips ---------------------------------------------------------------

#[test]
fn every_message_variant_round_trips() {
    for message in every_message() {
        let bytes = packet(&message);
        for channel in [Channel::Datagram, Channel::Stream] {
            let envelope = decode(CLUSTER, channel, &bytes).expect("a valid packet decodes");
            assert_eq!(envelope.cluster, CLUSTER);
            assert_eq!(envelope.sender, SENDER);
            assert_eq!(envelope.life, LIFE);
            assert_eq!(envelope.message, message, "{}", message.kind());
        }
    }
}

#[test]
fn header_layout_is_magic_version_cluster_sender_life() {
    let bytes = encode(
        ClusterId(0x0102_0304_0506_0708),
        NodeId(0x1112_1314_1516_1718),
        Life(0x2122_2324_2526_2728),
        &ping(),
    );
    assert_eq!(&bytes[0..2], b"AU");
    assert_eq!(bytes[2], PROTOCOL_VERSION);
    assert_eq!(&bytes[3..11], &0x0102_0304_0506_0708u64.to_le_bytes());
    assert_eq!(&bytes[11..19], &0x1112_1314_1516_1718u64.to_le_bytes());
    assert_eq!(&bytes[19..27], &0x2122_2324_2526_2728u64.to_le_bytes());
    assert_eq!(HEADER_LEN, CRC_FIELD.end);
    assert_eq!(HEADER_LEN, 31);
    assert_eq!(
        sealed(bytes.clone()),
        bytes,
        "the CRC covers all but itself"
    );
    assert_eq!(bytes.len(), HEADER_LEN + encoded_len(&ping()));
}

#[test]
fn encoded_len_matches_the_encoded_body() {
    for message in every_message() {
        assert_eq!(packet(&message).len(), HEADER_LEN + encoded_len(&message));
    }
}

fn hex_dump(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, row)| {
            let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:04x}  {}", i * 16, hex.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Freezes the byte layout: any change to the header, the message enum's variant
/// order or a field's encoding shows up as a snapshot diff in review.
#[test]
fn ping_bytes_are_frozen() {
    let message = Message::Ping {
        seq: 300,
        target: NodeId(0x0102_0304),
        heartbeat: 5,
        rumors: vec![
            Rumor::Member(MemberUpdate::Suspect {
                node: NodeId(2),
                incarnation: Incarnation(3),
                from: NodeId(7),
            }),
            Rumor::App(AppRumor {
                origin: NodeId(7),
                seq: 1,
                payload: b"hi".to_vec(),
            }),
        ],
    };
    let bytes = encode(ClusterId(0xC0FFEE), NodeId(7), Life(9), &message);
    insta::assert_snapshot!(hex_dump(&bytes));
}

// ---- one test per drop reason ------------------------------------------------------

#[test]
fn too_large_depends_on_the_channel() {
    // A valid message between the datagram and the stream limits.
    let rumors: Vec<Rumor> = (0..64).map(|i| app(i, MAX_APP_PAYLOAD)).collect();
    let bytes = packet(&gossip(rumors));
    assert!(bytes.len() > MAX_DATAGRAM && bytes.len() <= MAX_STREAM_MESSAGE);
    assert_eq!(
        decode_datagram(&bytes),
        Err(DecodeError::TooLarge("datagram"))
    );
    assert!(decode_stream(&bytes).is_ok());

    // Past the stream limit, even garbage is rejected on size before anything else.
    let huge = vec![0u8; MAX_STREAM_MESSAGE + 1];
    assert_eq!(
        decode_stream(&huge),
        Err(DecodeError::TooLarge("stream message"))
    );
}

#[test]
fn size_limits_are_inclusive() {
    // Exactly at the limit the size check passes (and the next check speaks).
    let at_limit = vec![0u8; MAX_DATAGRAM];
    assert_eq!(decode_datagram(&at_limit), Err(DecodeError::BadMagic));
    let over = vec![0u8; MAX_DATAGRAM + 1];
    assert_eq!(
        decode_datagram(&over),
        Err(DecodeError::TooLarge("datagram"))
    );
}

#[test]
fn shorter_than_the_header_is_truncated() {
    let bytes = packet(&ping());
    for len in 0..HEADER_LEN {
        assert_eq!(
            decode_datagram(&bytes[..len]),
            Err(DecodeError::Truncated),
            "len {len}"
        );
    }
}

#[test]
fn header_without_body_is_malformed() {
    assert_eq!(
        decode_datagram(&with_body(&[])),
        Err(DecodeError::Malformed)
    );
}

#[test]
fn any_single_bit_flip_is_rejected() {
    for message in [ping(), gossip(every_rumor())] {
        let bytes = packet(&message);
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_stream(&bad).is_err(), "bit {bit} of {message:?}");
        }
    }
}

#[test]
fn corrupted_body_or_checksum_is_a_checksum_error() {
    let bytes = packet(&gossip(every_rumor()));
    let mut body = bytes.clone();
    *body.last_mut().unwrap() ^= 0x01;
    assert_eq!(decode_datagram(&body), Err(DecodeError::Checksum));
    let mut crc = bytes.clone();
    crc[CRC_FIELD.start] ^= 0x80;
    assert_eq!(decode_datagram(&crc), Err(DecodeError::Checksum));
    // The sender id is covered too: nobody's claim can be re-attributed.
    let mut sender = bytes.clone();
    sender[11] ^= 0x02;
    assert_eq!(decode_datagram(&sender), Err(DecodeError::Checksum));
    // And so is the life: a flipped bit cannot make a claim look like another life's.
    let mut life = bytes.clone();
    life[20] ^= 0x04;
    assert_eq!(decode_datagram(&life), Err(DecodeError::Checksum));
    // A cut packet fails its checksum before its body is parsed.
    assert_eq!(
        decode_datagram(&bytes[..bytes.len() - 1]),
        Err(DecodeError::Checksum)
    );
}

#[test]
fn bad_magic_is_rejected() {
    let mut bytes = packet(&ping());
    bytes[0] = b'X';
    assert_eq!(decode_datagram(&bytes), Err(DecodeError::BadMagic));
    let mut bytes = packet(&ping());
    bytes[1] = b'u';
    assert_eq!(decode_datagram(&bytes), Err(DecodeError::BadMagic));
}

#[test]
fn unknown_version_is_rejected_and_named() {
    for version in [0, PROTOCOL_VERSION + 1, u8::MAX] {
        let mut bytes = packet(&ping());
        bytes[2] = version;
        assert_eq!(
            decode_datagram(&bytes),
            Err(DecodeError::UnknownVersion(version))
        );
    }
}

#[test]
fn packet_of_another_cluster_is_rejected() {
    let bytes = encode(ClusterId(CLUSTER.0 + 1), SENDER, LIFE, &ping());
    assert_eq!(decode_datagram(&bytes), Err(DecodeError::WrongCluster));
    // The header is checked before the body: garbage from another cluster is
    // reported as such, not as malformed.
    let mut bytes = encode(ClusterId(CLUSTER.0 + 1), SENDER, LIFE, &ping());
    bytes.truncate(HEADER_LEN);
    bytes.push(0xFF);
    assert_eq!(decode_datagram(&bytes), Err(DecodeError::WrongCluster));
    assert_eq!(
        decode_datagram(&sealed(bytes)),
        Err(DecodeError::WrongCluster)
    );
}

#[test]
fn malformed_bodies_are_rejected() {
    // Unknown Message variant index.
    assert_eq!(
        decode_datagram(&with_body(&[6])),
        Err(DecodeError::Malformed)
    );
    // A body cut short.
    let bytes = packet(&gossip(every_rumor()));
    assert_eq!(
        decode_datagram(&sealed(bytes[..bytes.len() - 1].to_vec())),
        Err(DecodeError::Malformed)
    );
    // A vector length far beyond the bytes that follow.
    assert_eq!(
        decode_datagram(&with_body(&[4, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F])),
        Err(DecodeError::Malformed)
    );
    // A varint that overflows u32 (Nack's seq).
    assert_eq!(
        decode_datagram(&with_body(&[3, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])),
        Err(DecodeError::Malformed)
    );
    // Invalid UTF-8 in a string field.
    let mut m = meta("");
    m.name = "\u{e9}".to_string();
    let bytes = packet(&gossip(vec![Rumor::Member(MemberUpdate::Alive {
        node: NodeId(1),
        incarnation: Incarnation(1),
        addr: addr(1),
        meta: m,
    })]));
    let pos = bytes
        .windows(2)
        .position(|w| w == "\u{e9}".as_bytes())
        .expect("the name is in the packet");
    let mut bad = bytes.clone();
    bad[pos] = 0xFF;
    assert_eq!(decode_datagram(&sealed(bad)), Err(DecodeError::Malformed));
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = packet(&ping());
    bytes.push(0);
    assert_eq!(
        decode_datagram(&sealed(bytes)),
        Err(DecodeError::TrailingBytes)
    );
    // Two messages in one packet are not one message.
    let mut two = packet(&Message::Nack { seq: 1 });
    two.extend_from_slice(&packet(&Message::Nack { seq: 2 })[HEADER_LEN..]);
    assert_eq!(
        decode_datagram(&sealed(two)),
        Err(DecodeError::TrailingBytes)
    );
}

#[test]
fn too_many_rumors_exceed_the_limit() {
    let at_limit: Vec<Rumor> = (0..MAX_RUMORS as u64).map(left).collect();
    assert!(decode_datagram(&packet(&gossip(at_limit.clone()))).is_ok());
    let mut over = at_limit;
    over.push(left(u64::MAX));
    let bytes = packet(&gossip(over.clone()));
    assert_eq!(decode_datagram(&bytes), Err(DecodeError::LimitExceeded));
    // Every message that carries rumours is capped, not just gossip.
    let ping = Message::Ping {
        seq: 1,
        target: NodeId(1),
        heartbeat: 1,
        rumors: over.clone(),
    };
    assert_eq!(
        decode_datagram(&packet(&ping)),
        Err(DecodeError::LimitExceeded)
    );
    let ack = Message::Ack {
        seq: 1,
        heartbeat: 1,
        rumors: over.clone(),
    };
    assert_eq!(
        decode_datagram(&packet(&ack)),
        Err(DecodeError::LimitExceeded)
    );
    let req = Message::PingReq {
        seq: 1,
        target: NodeId(1),
        target_addr: addr(1),
        rumors: over,
    };
    assert_eq!(
        decode_datagram(&packet(&req)),
        Err(DecodeError::LimitExceeded)
    );
}

#[test]
fn oversized_meta_string_exceeds_the_limit() {
    let long = "x".repeat(MemberMeta::MAX_STR + 1);
    let exact = "x".repeat(MemberMeta::MAX_STR);
    let setters: [fn(&mut MemberMeta, String); 5] = [
        |m, s| m.name = s,
        |m, s| m.region = s,
        |m, s| m.zone = s,
        |m, s| m.advertise_url = s,
        |m, s| m.version = s,
    ];
    for set in setters {
        let rumor = |s: &str| {
            let mut m = meta("m");
            set(&mut m, s.to_string());
            gossip(vec![Rumor::Member(MemberUpdate::Alive {
                node: NodeId(1),
                incarnation: Incarnation(1),
                addr: addr(1),
                meta: m,
            })])
        };
        assert!(decode_datagram(&packet(&rumor(&exact))).is_ok());
        assert_eq!(
            decode_datagram(&packet(&rumor(&long))),
            Err(DecodeError::LimitExceeded)
        );
    }
    // The same cap applies to push-pull records.
    let mut rec = record(1, Liveness::Alive);
    rec.meta.zone = long;
    let pp = Message::PushPull {
        kind: PushPullKind::Periodic,
        heartbeat: 0,
        members: vec![record(2, Liveness::Alive), rec],
    };
    assert_eq!(decode_stream(&packet(&pp)), Err(DecodeError::LimitExceeded));
}

#[test]
fn promotion_tier_above_fifteen_exceeds_the_limit() {
    let mut m = meta("m");
    m.promotion_tier = MemberMeta::MAX_TIER + 1;
    let bytes = packet(&gossip(vec![Rumor::Member(MemberUpdate::Alive {
        node: NodeId(1),
        incarnation: Incarnation(1),
        addr: addr(1),
        meta: m,
    })]));
    assert_eq!(decode_datagram(&bytes), Err(DecodeError::LimitExceeded));
}

#[test]
fn oversized_app_payload_exceeds_the_limit() {
    assert!(decode_datagram(&packet(&gossip(vec![app(1, MAX_APP_PAYLOAD)]))).is_ok());
    let bytes = packet(&gossip(vec![app(1, 0), app(2, MAX_APP_PAYLOAD + 1)]));
    assert_eq!(decode_datagram(&bytes), Err(DecodeError::LimitExceeded));
}

#[test]
fn too_many_members_exceed_the_limit() {
    let small = |node: u64| MemberRecord {
        node: NodeId(node),
        incarnation: Incarnation(0),
        liveness: Liveness::Alive,
        addr: addr(1),
        heartbeat: 0,
        meta: MemberMeta {
            name: String::new(),
            region: String::new(),
            zone: String::new(),
            advertise_url: String::new(),
            sync_addr: addr(1),
            promotion_tier: 0,
            capacity: 0,
            role: Role::Serving,
            version: String::new(),
            config_fingerprint: 0,
            bootstrap_expect: 0,
        },
    };
    let pp = |n: usize| Message::PushPull {
        kind: PushPullKind::Join,
        heartbeat: 0,
        members: (0..n as u64).map(small).collect(),
    };
    assert!(decode_stream(&packet(&pp(MAX_MEMBERS))).is_ok());
    let bytes = packet(&pp(MAX_MEMBERS + 1));
    assert!(bytes.len() <= MAX_STREAM_MESSAGE);
    assert_eq!(decode_stream(&bytes), Err(DecodeError::LimitExceeded));
}

#[test]
fn error_labels_and_indices_are_distinct() {
    let mut labels: Vec<&str> = DecodeError::ALL.iter().map(DecodeError::label).collect();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), DecodeError::ALL.len());
    for (i, e) in DecodeError::ALL.iter().enumerate() {
        assert_eq!(e.index(), i, "{e:?}");
    }
}

// ---- nothing panics ----------------------------------------------------------------

fn valid_packet() -> impl Strategy<Value = Vec<u8>> {
    let messages = every_message();
    (0..messages.len()).prop_map(move |i| packet(&messages[i]))
}

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(usize),
    SetByte(usize, u8),
    Truncate(usize),
    Append(Vec<u8>),
    Insert(usize, u8),
    Remove(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::FlipBit),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 1..16).prop_map(Mutation::Append),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    match m {
        Mutation::FlipBit(i) if len > 0 => bytes[(i / 8) % len] ^= 1 << (i % 8),
        Mutation::SetByte(i, b) if len > 0 => bytes[i % len] = *b,
        Mutation::Truncate(i) => bytes.truncate(i % (len + 1)),
        Mutation::Append(tail) => bytes.extend_from_slice(tail),
        Mutation::Insert(i, b) => bytes.insert(i % (len + 1), *b),
        Mutation::Remove(i) if len > 0 => {
            bytes.remove(i % len);
        }
        _ => {}
    }
}

/// Whatever `decode` accepts, it accepts again after a re-encode, unchanged, and
/// within the limits.
fn check_decode(bytes: &[u8]) {
    for channel in [Channel::Datagram, Channel::Stream] {
        if let Ok(envelope) = decode(CLUSTER, channel, bytes) {
            assert_eq!(check_limits(&envelope.message), Ok(()));
            let again = encode(
                envelope.cluster,
                envelope.sender,
                envelope.life,
                &envelope.message,
            );
            assert_eq!(decode(CLUSTER, channel, &again), Ok(envelope));
        }
    }
}

#[test]
fn peek_sender_reads_the_claimed_sender_of_a_header_and_nothing_else() {
    for message in every_message() {
        let bytes = packet(&message);
        let claimed = Some((SENDER, LIFE));
        assert_eq!(peek_sender(&bytes), claimed);
        assert_eq!(peek_sender(&bytes[..HEADER_LEN]), claimed);
        assert_eq!(peek_sender(&bytes[..HEADER_LEN - 1]), None, "truncated");
        let mut other = bytes.clone();
        other[0] = b'X';
        assert_eq!(peek_sender(&other), None, "another protocol");
    }
    assert_eq!(peek_sender(&[]), None);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_decode(&bytes);
        // The peek agrees with the full decode whenever the decode succeeds.
        if let Ok(envelope) = decode_datagram(&bytes) {
            prop_assert_eq!(peek_sender(&bytes), Some((envelope.sender, envelope.life)));
        }
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..512)
    ) {
        check_decode(&with_body(&body));
    }

    #[test]
    fn mutated_valid_packets_never_panic(
        mut bytes in valid_packet(),
        mutations in proptest::collection::vec(mutation(), 1..8),
    ) {
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        check_decode(&bytes);
        // With its checksum fixed up, the mutated body reaches the parser.
        check_decode(&sealed(bytes));
    }

    #[test]
    fn mutations_of_the_header_are_always_rejected(
        bytes in valid_packet(),
        bit in 0..HEADER_LEN * 8,
    ) {
        // Any bit flip in magic, version, cluster, sender or checksum drops it.
        let mut bytes = bytes;
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(decode_stream(&bytes).is_err());
    }
}

//! Which node owns a key: rendezvous (highest-random-weight) hashing over the live
//! members.
//!
//! Every node ranks the members for a key by `SHA-256(key ‖ node id)` and picks the
//! highest, so nodes that see the same members agree without talking, and a member
//! that joins or leaves moves only the keys it wins or held (about 1/n of them). Two
//! nodes that briefly disagree on who is alive may pick different owners for a key:
//! then an answer is fetched twice, never wrongly.

use std::net::SocketAddr;

use aurora_core::NodeId;
use sha2::{Digest, Sha256};

use super::key::CacheKey;

/// A node that can own keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its node id.
    pub id: NodeId,
    /// Its gossip address (where its calls go).
    pub addr: SocketAddr,
}

/// The weight of `node` for `key`.
fn weight(key: &CacheKey, node: NodeId) -> u64 {
    let mut hash = Sha256::new();
    hash.update(key.0);
    hash.update(node.0.to_le_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The owner of `key` among `members` (ties, which need equal 64-bit weights, go to
/// the lower id); `None` for no members.
pub fn owner(key: &CacheKey, members: impl IntoIterator<Item = Member>) -> Option<Member> {
    members
        .into_iter()
        .max_by_key(|m| (weight(key, m.id), std::cmp::Reverse(m.id.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(n: u64) -> Member {
        Member {
            id: NodeId(n),
            addr: SocketAddr::from(([127, 0, 0, 1], 7000 + n as u16)),
        }
    }

    fn key(n: u32) -> CacheKey {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&n.to_le_bytes());
        CacheKey(Sha256::digest(k).into())
    }

    #[test]
    fn the_owner_does_not_depend_on_the_order_members_are_listed() {
        let members = [member(1), member(2), member(3)];
        let reversed = [member(3), member(2), member(1)];
        for n in 0..100 {
            assert_eq!(owner(&key(n), members), owner(&key(n), reversed));
        }
        assert_eq!(owner(&key(0), []), None);
    }

    #[test]
    fn keys_spread_over_members_and_a_leaving_member_moves_only_its_own() {
        let three = [member(1), member(2), member(3)];
        let mut counts = [0u32; 4];
        let mut moved = 0;
        for n in 0..3000 {
            let k = key(n);
            let before = owner(&k, three).unwrap();
            counts[before.id.0 as usize] += 1;
            let after = owner(&k, [member(1), member(3)]).unwrap();
            if before.id != NodeId(2) {
                assert_eq!(before, after, "a key of a staying member moved");
            } else {
                moved += 1;
            }
        }
        for c in &counts[1..] {
            assert!((800..1200).contains(c), "uneven spread {counts:?}");
        }
        assert_eq!(moved, counts[2]);
    }
}

//! What nodes say to each other about the cache: requests to a key's owner and its
//! replies, carried as the bytes of a peer call (`aurora_io` calls on QUIC bidi streams,
//! mutually authenticated and encrypted like gossip).
//!
//! The encoding is postcard behind a version byte. Decoding is bounded: the call's size
//! limit bounds the input, and a malformed message is an error (counted by the caller),
//! never a panic.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::key::CacheKey;
use super::store::{Answer, FillToken};

/// The first byte of every message: names the cache protocol and its version (the
/// node's one peer-call handler can tell other services by other first bytes). A
/// message of another version is answered [`Reply::Refused`], and the request goes on
/// without the cache.
pub const VERSION: u8 = 1;

/// Largest content type carried (longer: the message is malformed).
const MAX_CONTENT_TYPE: usize = 256;

/// A node's request to the owner of a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Is the answer of `key` there? If a fill is in flight, hold the reply for at most
    /// `wait_ms` until it is stored (0: reply [`Reply::Pending`] at once).
    Lookup {
        /// The key.
        key: [u8; 32],
        /// How long the owner may hold the reply for a fill in flight.
        wait_ms: u32,
        /// The token of the fill this lookup starts if nobody holds the key: chosen
        /// by the caller, so that a caller whose reply was lost (its call timed out)
        /// can abandon the fill it may have been given.
        token: u64,
    },
    /// The answer of the fill `token`, to keep for `ttl_ms` and give its waiters.
    Store {
        /// The key.
        key: [u8; 32],
        /// The token the lookup brought.
        token: u64,
        /// How long the owner keeps it.
        ttl_ms: u64,
        /// The answer.
        answer: WireAnswer,
    },
    /// The fill `token` ends without an answer.
    Abandon {
        /// The key.
        key: [u8; 32],
        /// The token the lookup brought.
        token: u64,
    },
}

/// The owner's reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The answer.
    Hit(WireAnswer),
    /// Nobody has it: fill it, under the token the lookup brought.
    Fill,
    /// Go on without the cache (a fill was abandoned, a bound was reached, the wait
    /// ran out).
    Alone,
    /// A fill is in flight (the answer to a lookup with `wait_ms: 0`): ask again with a
    /// wait to be held until it is stored.
    Pending,
    /// Done (a store or an abandon).
    Done,
    /// The owner could not read the request (another version, malformed, cache off).
    Refused,
}

/// [`Answer`] on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireAnswer {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
    /// [`Answer::untranslated`].
    pub untranslated: bool,
}

impl From<&Answer> for WireAnswer {
    fn from(a: &Answer) -> Self {
        WireAnswer {
            status: a.status,
            content_type: a.content_type.clone(),
            body: a.body.to_vec(),
            untranslated: a.untranslated,
        }
    }
}

impl From<WireAnswer> for Answer {
    fn from(a: WireAnswer) -> Self {
        Answer {
            status: a.status,
            content_type: a.content_type,
            body: Bytes::from(a.body),
            untranslated: a.untranslated,
        }
    }
}

/// Why a message could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Empty input.
    #[error("empty message")]
    Empty,
    /// Another protocol version.
    #[error("cache message of version {0}, this node speaks {VERSION}")]
    Version(u8),
    /// Not a message of this version.
    #[error("malformed cache message: {0}")]
    Malformed(String),
}

impl Request {
    /// The key this request is about.
    pub fn key(&self) -> CacheKey {
        match self {
            Request::Lookup { key, .. }
            | Request::Store { key, .. }
            | Request::Abandon { key, .. } => CacheKey(*key),
        }
    }

    /// A store of `answer` under `token`.
    pub fn store(key: CacheKey, token: FillToken, ttl_ms: u64, answer: &Answer) -> Self {
        Request::Store {
            key: key.0,
            token: token.0,
            ttl_ms,
            answer: answer.into(),
        }
    }
}

/// Encodes `message` behind the version byte.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = vec![VERSION];
    // postcard into a Vec fails only for types serde cannot write; ours are plain.
    if let Ok(body) = postcard::to_allocvec(message) {
        out.extend_from_slice(&body);
    }
    out
}

/// Decodes a message written by [`encode`].
pub fn decode<'a, T: Deserialize<'a> + Checked>(bytes: &'a [u8]) -> Result<T, WireError> {
    let (&version, body) = bytes.split_first().ok_or(WireError::Empty)?;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let (message, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(format!(
            "{} bytes after the message",
            rest.len()
        )));
    }
    message.check()?;
    Ok(message)
}

/// What a decoded message must hold beyond its shape.
pub trait Checked {
    /// Whether the values are in range.
    fn check(&self) -> Result<(), WireError>;
}

fn check_answer(a: &WireAnswer) -> Result<(), WireError> {
    if !(100..=599).contains(&a.status) {
        return Err(WireError::Malformed(format!("status {}", a.status)));
    }
    if a.content_type.len() > MAX_CONTENT_TYPE
        || http::HeaderValue::from_str(&a.content_type).is_err()
    {
        return Err(WireError::Malformed("content type".into()));
    }
    Ok(())
}

impl Checked for Request {
    fn check(&self) -> Result<(), WireError> {
        match self {
            Request::Store { answer, .. } => check_answer(answer),
            _ => Ok(()),
        }
    }
}

impl Checked for Reply {
    fn check(&self) -> Result<(), WireError> {
        match self {
            Reply::Hit(answer) => check_answer(answer),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> WireAnswer {
        WireAnswer {
            status: 200,
            content_type: "text/event-stream".into(),
            body: b"data: [DONE]\n\n".to_vec(),
            untranslated: true,
        }
    }

    #[test]
    fn every_message_round_trips() {
        let requests = [
            Request::Lookup {
                key: [7; 32],
                wait_ms: 1_000,
                token: 12,
            },
            Request::Store {
                key: [1; 32],
                token: 9,
                ttl_ms: 60_000,
                answer: answer(),
            },
            Request::Abandon {
                key: [2; 32],
                token: u64::MAX,
            },
        ];
        for r in requests {
            assert_eq!(decode::<Request>(&encode(&r)).unwrap(), r);
        }
        for r in [
            Reply::Pending,
            Reply::Hit(answer()),
            Reply::Fill,
            Reply::Alone,
            Reply::Done,
            Reply::Refused,
        ] {
            assert_eq!(decode::<Reply>(&encode(&r)).unwrap(), r);
        }
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        assert_eq!(decode::<Request>(&[]), Err(WireError::Empty));
        assert_eq!(decode::<Request>(&[9, 0]), Err(WireError::Version(9)));
        let mut long = encode(&Request::Abandon {
            key: [2; 32],
            token: 1,
        });
        long.push(0);
        assert!(matches!(
            decode::<Request>(&long),
            Err(WireError::Malformed(_))
        ));
        let bad_status = Reply::Hit(WireAnswer {
            status: 7,
            ..answer()
        });
        assert!(matches!(
            decode::<Reply>(&encode(&bad_status)),
            Err(WireError::Malformed(_))
        ));
        let bad_type = Reply::Hit(WireAnswer {
            content_type: "a\nb".into(),
            ..answer()
        });
        assert!(matches!(
            decode::<Reply>(&encode(&bad_type)),
            Err(WireError::Malformed(_))
        ));
        // Every truncation of a valid message, and a length prefix far past the end.
        let full = encode(&Request::Store {
            key: [1; 32],
            token: 9,
            ttl_ms: 5,
            answer: answer(),
        });
        for n in 0..full.len() {
            assert!(decode::<Request>(&full[..n]).is_err(), "{n}");
        }
        let mut huge = vec![VERSION, 1];
        huge.extend_from_slice(&[0xff; 10]);
        assert!(decode::<Request>(&huge).is_err());
    }

    proptest::proptest! {
        /// Any bytes, and any valid message with bytes flipped, cut or appended, decode
        /// to a message or an error, never a panic; a message that decodes passes its
        /// checks.
        #[test]
        fn any_bytes_decode_without_panicking(
            noise in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            flips in proptest::collection::vec((0usize..200, proptest::num::u8::ANY), 0..6),
            cut in 0usize..200,
        ) {
            let _ = decode::<Request>(&noise);
            let _ = decode::<Reply>(&noise);
            let valid = encode(&Request::Store { key: [3; 32], token: 77, ttl_ms: 1000, answer: answer() });
            let mut mutated = valid.clone();
            for (at, byte) in &flips {
                let at = at % mutated.len();
                mutated[at] ^= byte;
            }
            mutated.truncate(cut.max(1).min(mutated.len()));
            mutated.extend_from_slice(&noise[..noise.len().min(8)]);
            if let Ok(message) = decode::<Request>(&mutated) {
                proptest::prop_assert!(message.check().is_ok());
            }
        }
    }
}

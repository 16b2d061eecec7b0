//! A small incremental parser for server-sent events from an upstream.
//!
//! Upstream bodies arrive in arbitrary pieces (an event may be split across TCP reads,
//! or several may share one), so bytes are buffered until a blank line ends an event.
//! Both `\n` and `\r\n` line endings are accepted, comment lines (`:`) skipped, and
//! multiple `data:` lines joined with `\n`, as the SSE spec says. The buffer is
//! bounded: an upstream that never ends an event cannot grow memory without limit.
//!
//! The work is linear in the bytes pushed, however they are cut: the parser remembers
//! how far it has searched for a blank line and resumes there (two bytes earlier, so a
//! `\n\r\n` split across pushes is still seen), and the completed events of one push
//! are cut off the buffer with a single drain. Before, every push searched the whole
//! buffered event again, so an event delivered in many small pieces cost quadratic
//! time (a 4 MiB event in 16-byte reads: about 5·10¹¹ byte comparisons).

/// One event: its `event:` name (empty when absent) and its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `event:` field.
    pub event: String,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

/// The default largest event accepted, in bytes (`gateway.limits.max_sse_event_bytes`).
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// An event (or a line of one) grew past the parser's limit.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("an upstream event exceeded {limit} bytes")]
pub struct TooLarge {
    /// The limit, bytes.
    pub limit: usize,
}

/// Incremental parser state.
#[derive(Debug)]
pub struct Parser {
    buf: Vec<u8>,
    /// How many bytes at the front of `buf` have been searched for a blank line.
    searched: usize,
    limit: usize,
    /// Bytes examined by the search so far (for the linearity test and benchmarks).
    examined: u64,
}

impl Default for Parser {
    fn default() -> Self {
        Self::with_limit(MAX_EVENT_BYTES)
    }
}

impl Parser {
    /// Empty parser with the default event limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Empty parser refusing events larger than `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            searched: 0,
            limit,
            examined: 0,
        }
    }

    /// Feeds `bytes` and returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Event>, TooLarge> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        // Start of the unconsumed part, and where the search resumes: a blank line
        // (at most 3 bytes) not found before may end in the new bytes.
        let mut start = 0;
        let mut from = self.searched.saturating_sub(2);
        while let Some((end, sep)) = find_blank_line(&self.buf, from, &mut self.examined) {
            if end - start > self.limit {
                // An event that arrived whole in one read is held to the same limit.
                self.buf.clear();
                self.searched = 0;
                return Err(TooLarge { limit: self.limit });
            }
            if let Some(event) = parse_event(&self.buf[start..end]) {
                events.push(event);
            }
            start = end + sep;
            from = start;
        }
        self.buf.drain(..start);
        self.searched = self.buf.len();
        if self.buf.len() > self.limit {
            return Err(TooLarge { limit: self.limit });
        }
        Ok(events)
    }

    /// Whether bytes of an unfinished event are buffered.
    pub fn has_partial(&self) -> bool {
        self.buf.iter().any(|b| !b.is_ascii_whitespace())
    }

    /// Bytes of an unfinished event held now.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes the blank-line search has examined so far.
    pub fn examined(&self) -> u64 {
        self.examined
    }
}

/// Position of the first blank line (`\n\n`, `\n\r\n`) at or after `from`, and its
/// length; `examined` counts the bytes looked at.
fn find_blank_line(buf: &[u8], from: usize, examined: &mut u64) -> Option<(usize, usize)> {
    let mut i = from;
    while i < buf.len() {
        *examined += 1;
        if buf[i] == b'\n' {
            let rest = &buf[i + 1..];
            if rest.first() == Some(&b'\n') {
                return Some((i, 2));
            }
            if rest.starts_with(b"\r\n") {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

fn parse_event(raw: &[u8]) -> Option<Event> {
    let text = String::from_utf8_lossy(raw);
    let mut event = String::new();
    let mut data: Option<String> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => value.clone_into(&mut event),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    data.map(|data| Event { event, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_reads_crlf_comments_and_multiline_data() {
        let mut p = Parser::new();
        assert_eq!(
            p.push(b"event: a\ndata: {\"x\"").unwrap_or_default(),
            vec![]
        );
        assert!(p.has_partial());
        let events = p
            .push(b":1}\n\n: keep-alive\n\ndata: one\r\ndata: two\r\n\r\ndata: [DONE]\n\n")
            .unwrap_or_default();
        assert_eq!(
            events,
            vec![
                Event {
                    event: "a".into(),
                    data: "{\"x\":1}".into()
                },
                Event {
                    event: String::new(),
                    data: "one\ntwo".into()
                },
                Event {
                    event: String::new(),
                    data: "[DONE]".into()
                },
            ]
        );
        assert!(!p.has_partial());
    }

    #[test]
    fn bounded() {
        let mut p = Parser::new();
        let big = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert_eq!(
            p.push(&big),
            Err(TooLarge {
                limit: MAX_EVENT_BYTES
            })
        );
        let mut small = Parser::with_limit(10);
        assert_eq!(small.push(b"data: 0123\n\n").map(|e| e.len()), Ok(1));
        assert_eq!(small.push(b"data: 0123456789"), Err(TooLarge { limit: 10 }));
    }

    /// One 256 KiB event delivered in 16-byte pieces: the search looks at each byte
    /// about once. Before the fix every push searched the whole buffer again, about
    /// 256 Ki · 16 Ki / 2 = 2·10⁹ bytes here.
    #[test]
    fn the_search_is_linear_in_the_bytes_pushed() {
        let mut event = b"data: ".to_vec();
        event.extend(std::iter::repeat_n(b'x', 256 * 1024));
        event.extend_from_slice(b"\r\n\r\n");
        let mut p = Parser::new();
        let mut events = Vec::new();
        for piece in event.chunks(16) {
            events.extend(p.push(piece).expect("within the limit"));
        }
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data.len(), 256 * 1024);
        let pushes = event.len().div_ceil(16) as u64;
        assert!(
            p.examined() <= event.len() as u64 + 2 * pushes,
            "examined {} bytes for {} pushed",
            p.examined(),
            event.len()
        );
    }

    /// Many events in one push are cut off with one drain, not one each.
    #[test]
    fn many_events_in_one_push() {
        let one = b"data: {}\n\n";
        let stream: Vec<u8> = one
            .iter()
            .copied()
            .cycle()
            .take(one.len() * 10_000)
            .collect();
        let mut p = Parser::new();
        let events = p.push(&stream).expect("small events");
        assert_eq!(events.len(), 10_000);
        assert!(p.examined() <= stream.len() as u64);
        assert!(!p.has_partial());
    }

    fn events_of(chunks: &[&[u8]]) -> Result<Vec<Event>, TooLarge> {
        let mut p = Parser::with_limit(1 << 16);
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(p.push(chunk)?);
        }
        Ok(out)
    }

    proptest::proptest! {
        /// Any split of a byte stream yields the same events as the whole, and the
        /// search stays linear.
        #[test]
        fn any_split_yields_the_same_events(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    &b"data: a"[..], b"data:b", b"\n", b"\r\n", b"\r", b":c", b"event: e",
                    b"x", b"data: {\"k\":1}", b" ", b"\n\n",
                ]),
                0..60,
            ),
            cuts in proptest::collection::vec(0usize..400, 0..12),
        ) {
            let stream: Vec<u8> = pieces.concat();
            let whole = events_of(&[&stream]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut at = 0;
            for cut in cuts {
                chunks.push(&stream[at..cut]);
                at = cut;
            }
            chunks.push(&stream[at..]);
            proptest::prop_assert_eq!(&events_of(&chunks), &whole);
            let mut p = Parser::with_limit(1 << 16);
            for chunk in &chunks {
                let _ = p.push(chunk);
            }
            proptest::prop_assert!(p.examined() <= (stream.len() + 2 * chunks.len()) as u64);
        }
    }
}

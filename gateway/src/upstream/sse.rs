//! A small incremental parser for server-sent events from an upstream.
//!
//! Upstream bodies arrive in arbitrary pieces (an event may be split across TCP reads,
//! or several may share one), so bytes are buffered until a blank line ends an event.
//! Both `\n` and `\r\n` line endings are accepted, comment lines (`:`) skipped, and
//! multiple `data:` lines joined with `\n`, as the SSE spec says. The buffer is
//! bounded: an upstream that never ends an event cannot grow memory without limit.

/// One event: its `event:` name (empty when absent) and its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `event:` field.
    pub event: String,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

/// The largest event accepted, in bytes.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// An event grew past [`MAX_EVENT_BYTES`].
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("an upstream event exceeded {MAX_EVENT_BYTES} bytes")]
pub struct TooLarge;

/// Incremental parser state.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
}

impl Parser {
    /// Empty parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `bytes` and returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Event>, TooLarge> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some((end, sep)) = find_blank_line(&self.buf) {
            let raw: Vec<u8> = self.buf.drain(..end + sep).collect();
            if let Some(event) = parse_event(&raw[..end]) {
                events.push(event);
            }
        }
        if self.buf.len() > MAX_EVENT_BYTES {
            return Err(TooLarge);
        }
        Ok(events)
    }

    /// Whether bytes of an unfinished event are buffered.
    pub fn has_partial(&self) -> bool {
        self.buf.iter().any(|b| !b.is_ascii_whitespace())
    }
}

/// Position of the first blank line (`\n\n`, `\r\n\r\n` or mixed) and its length.
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
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
        assert_eq!(p.push(&big), Err(TooLarge));
    }
}

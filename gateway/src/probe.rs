//! A minimal blocking HTTP/1.1 client for the operator tools (`aurora dev`,
//! `aurora gameday`, and `aurora health`, the container image's HEALTHCHECK): one request per connection, every step bounded by a timeout.
//!
//! Why not the gateway's upstream client: the game day must tell *how* a request
//! failed (refused before any byte was sent, which a client may safely retry
//! elsewhere, versus reset or timed out after it was sent, which it may not), and it
//! measures from its own clock around one plain socket. A fresh connection per request
//! is the game day's stated client model (no keep-alive reuse).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The connection was refused: nothing was sent, so retrying elsewhere is safe.
    #[error("connection refused by {0}")]
    Refused(SocketAddr),
    /// The connection could not be made for another reason (timeout, unreachable).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// Sent (or partly sent), then the connection failed or timed out.
    #[error("request to {addr} failed after connecting: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The bytes that came back are not an HTTP response.
    #[error("bad HTTP response from {addr}: {reason}")]
    BadResponse { addr: SocketAddr, reason: String },
}

impl ProbeError {
    /// A short label for tables: `refused`, `connect`, `io`, `bad_response`.
    pub fn label(&self) -> &'static str {
        match self {
            ProbeError::Refused(_) => "refused",
            ProbeError::Connect { .. } => "connect",
            ProbeError::Io { .. } => "io",
            ProbeError::BadResponse { .. } => "bad_response",
        }
    }
}

/// A complete answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    /// The body as JSON, `Null` if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// The socket address of an `http://host:port` URL (a path after it is ignored).
pub fn addr_of_url(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .trim()
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{url}` is not an http:// URL"))?;
    let host_port = rest.split('/').next().unwrap_or_default();
    if !host_port.contains(':') {
        return Err(format!("`{url}` has no port"));
    }
    host_port
        .to_socket_addrs()
        .map_err(|e| format!("`{url}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{url}` resolves to no address"))
}

/// The path of an `http://host:port/path` URL (`/` when there is none), for
/// `aurora health --url`.
pub fn path_of_url(url: &str) -> &str {
    let rest = url.trim();
    let rest = rest.strip_prefix("http://").unwrap_or(rest);
    match rest.find('/') {
        Some(i) => &rest[i..],
        None => "/",
    }
}

/// One request; `bearer` goes in `Authorization`, `body` (JSON) with its length.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
    timeout: Duration,
) -> Result<Reply, ProbeError> {
    let mut stream = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(stream) => stream,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(ProbeError::Refused(addr))
        }
        Err(source) => return Err(ProbeError::Connect { addr, source }),
    };
    let io = |source| ProbeError::Io { addr, source };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let body = body.unwrap_or("");
    let auth = bearer
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).map_err(io)?;
    stream.write_all(body.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io)?;
    parse(&raw).map_err(|reason| ProbeError::BadResponse { addr, reason })
}

/// Status and body of a whole response (`Content-Length` or chunked, or up to EOF).
fn parse(raw: &[u8]) -> Result<Reply, String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {} bytes", raw.len()))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line: {:?}", head.lines().next()))?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Ok(Reply { status, body })
}

fn dechunk(mut rest: &str) -> Result<String, String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest
            .split_once("\r\n")
            .ok_or_else(|| "truncated chunk size".to_owned())?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size:?}"))?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = after
            .get(..size)
            .ok_or_else(|| "truncated chunk".to_owned())?;
        out.push_str(chunk);
        rest = after.get(size + 2..).unwrap_or("");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_responses_parse() {
        assert_eq!(
            addr_of_url("http://127.0.0.2:8080/x"),
            Ok("127.0.0.2:8080".parse().expect("addr"))
        );
        assert!(addr_of_url("https://127.0.0.1:1").is_err());
        assert!(addr_of_url("http://127.0.0.1").is_err());
        let r = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").expect("plain");
        assert_eq!((r.status, r.body.as_str()), (200, "{}"));
        let r = parse(
            b"HTTP/1.1 503 X\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n",
        )
        .expect("chunked");
        assert_eq!((r.status, r.body.as_str()), (503, "abcd"));
        assert!(parse(b"garbage").is_err());
        assert_eq!(
            path_of_url("http://127.0.0.1:8080/health/ready"),
            "/health/ready"
        );
        assert_eq!(path_of_url("http://127.0.0.1:8080"), "/");
    }

    #[test]
    fn a_closed_port_is_refused_not_failed() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port");
        let err = request(port, "GET", "/", None, None, Duration::from_secs(1))
            .expect_err("nothing listens");
        assert_eq!(err.label(), "refused", "{err}");
    }
}

//! HTTP plumbing shared by every handler: response body types, the request-body
//! limit, the connection caps and deadlines ([`conn`], [`limits`]), and the router that maps method and path to a handler.
//!
//! Handlers stay free of hyper details beyond `Request`/`Response`; metrics and
//! error shapes are applied in one place ([`router`]) instead of in each handler.

pub mod body;
pub mod conn;
pub mod host;
pub mod limits;
pub mod router;

/// The peer address of the connection a request came on (a request extension set by
/// the accept loop; absent for requests built in tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::SocketAddr);

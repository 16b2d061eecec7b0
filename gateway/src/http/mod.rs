//! HTTP plumbing shared by every handler: response body types, the request-body
//! limit, and the router that maps method and path to a handler.
//!
//! Handlers stay free of hyper details beyond `Request`/`Response`; metrics and
//! error shapes are applied in one place ([`router`]) instead of in each handler.

pub mod body;
pub mod router;

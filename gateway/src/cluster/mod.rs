//! The gateway's side of the cluster: the read view of the replicated state
//! ([`view::StateView`]) handed to request handlers.

pub mod view;

pub use view::{StateView, WriteError};

//! The built-in model backend.
//!
//! [`mock`] is what the default single-node run, the tests and the benchmarks
//! (`gateway/bench`) use, so nothing needs a real API key. Real providers
//! (OpenAI-compatible, Anthropic) are called by [`crate::upstream`]; there is no
//! provider trait between the two, because the mock answers in-process while
//! upstreams go through pooling, retries and cooldown.

pub mod mock;
pub mod tokens;

//! Model backends.
//!
//! Only the built-in [`mock`] provider exists yet: it is what the default single-node
//! run, the tests and (later) the benchmarks use, so nothing needs a real API key.
//! There is deliberately no provider trait yet; it will be shaped by the second
//! backend (OpenAI-compatible upstreams, then Anthropic), not guessed now.

pub mod mock;
pub mod tokens;

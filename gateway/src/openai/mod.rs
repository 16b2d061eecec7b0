//! The OpenAI-compatible client API (`/v1`).
//!
//! Clients written for OpenAI (its SDKs, LangChain, curl scripts) must work unchanged,
//! so the wire shapes here follow OpenAI's exactly, errors included:
//! - [`types`]: request and response bodies, with unknown request fields kept;
//! - [`errors`]: [`ApiError`], the `{"error":{…}}` body every failure uses;
//! - [`chat`]: `POST /v1/chat/completions`, plain and streamed (SSE);
//! - [`embeddings`]: `POST /v1/embeddings`; [`completions`]: legacy `POST /v1/completions`;
//! - [`billing`]: the guard that settles an admitted request exactly once;
//! - [`run_to_end`]: the answer that finishes even when its client went away;
//! - [`messages`] and [`messages_stream`]: `POST /v1/messages`, Anthropic's Messages
//!   API inbound, translated to chat and back;
//! - [`responses`], [`responses_stream`]: `POST /v1/responses`, translated to chat;
//! - [`models`]: `GET /v1/models` and `GET /v1/models/{id}`.

pub mod billing;
pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod errors;
pub mod messages;
pub mod messages_stream;
pub mod models;
pub mod responses;
pub mod responses_stream;
pub mod run_to_end;
pub mod types;

pub use errors::ApiError;

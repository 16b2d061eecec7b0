//! Settling an admitted chat request exactly once, however it ends.
//!
//! A [`Bill`] owns the request's [`Ticket`] from admission on. The answer path tells
//! it when an upstream (or the mock) answered 200 ([`Bill::answered`]) and how much
//! of a stream went by ([`Bill::streamed`]), and settles it with the reported usage
//! when the answer ends ([`Bill::finish`]). If the bill is dropped unsettled — the
//! client went away and hyper dropped the handler, the streaming task was cancelled,
//! a panic unwound — `Drop` settles it: a request whose answer had begun is charged
//! an estimate (prompt tokens by the heuristic of [`crate::provider::tokens`] plus
//! the completion tokens streamed so far) and debited from the key's tpm bucket, a
//! request without an answer releases its reservation and costs nothing. Settling
//! takes the ticket, so a second settle is impossible by construction. (A streaming
//! task cancelled mid-stream — only at runtime shutdown — reports its streamed
//! tokens when the pump returns, so such a bill is charged the prompt alone.)

use std::sync::Arc;

use crate::cache::CacheUse;
use crate::catalog::Target;
use crate::openai::types::ChatCompletionRequest;
use crate::policy::{Served, Settled, Ticket, TokenUsage};
use crate::provider::tokens;
use crate::state::AppState;

/// Status recorded for a request whose client went away before the answer ended.
pub const CLIENT_GONE: u16 = 499;

/// Where the answer stands.
#[derive(Debug)]
enum Answer {
    /// No upstream answered yet.
    Pending,
    /// The response cache answered: no upstream was called, nothing is owed.
    Cached,
    /// `target` answered 200; `completion_tokens` of it went by so far (heuristic).
    Began {
        target: Arc<Target>,
        completion_tokens: u64,
    },
}

/// An admitted request's obligation to settle (see the module docs).
#[derive(Debug)]
pub struct Bill {
    state: Arc<AppState>,
    ticket: Option<Ticket>,
    /// The prompt by the token heuristic, for the estimate.
    prompt_tokens: u64,
    answer: Answer,
    /// The request's trace span (disabled when traces are off): settling records on it.
    span: tracing::Span,
    /// How the request went through the response cache, for its usage row.
    cache: Option<CacheUse>,
}

/// Completion tokens of a plain `chat.completion` body by the token heuristic (the
/// text of every choice's message and tool-call arguments; for a legacy
/// `text_completion`, every choice's `text`), for an answer that reported no usage.
/// 0 for a body that is neither.
pub fn completion_tokens_in(body: &[u8]) -> u64 {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return 0;
    };
    let Some(choices) = value.get("choices").and_then(|c| c.as_array()) else {
        return 0;
    };
    choices
        .iter()
        .map(|c| match c.get("message") {
            Some(message) => tokens::of_message_value(message),
            None => c
                .get("text")
                .and_then(|t| t.as_str())
                .map_or(0, |t| u64::from(tokens::count(t))),
        })
        .sum()
}

impl Bill {
    /// The bill of `ticket`, admitted for `request` (as sent upstream).
    pub fn new(state: &Arc<AppState>, ticket: Ticket, request: &ChatCompletionRequest) -> Self {
        Self {
            state: Arc::clone(state),
            ticket: Some(ticket),
            prompt_tokens: tokens::prompt(&request.messages),
            answer: Answer::Pending,
            span: tracing::Span::current(),
            cache: None,
        }
    }

    /// The request looked its answer up in the response cache and did not find it.
    pub fn cache_missed(&mut self) {
        self.cache = Some(CacheUse::Miss);
    }

    /// Settles a request the response cache answered: one request, no tokens, no
    /// cost, logged as a hit.
    pub fn finish_cached(mut self, status: u16) {
        self.answer = Answer::Cached;
        self.cache = Some(CacheUse::Hit);
        self.settle(status, None);
    }

    /// Whether the policy rewrote the request's text (redaction) when it admitted it:
    /// then only the admitted request, never the client's original body, may be sent.
    pub fn rewrote_input(&self) -> bool {
        self.ticket.as_ref().is_some_and(Ticket::rewrote_input)
    }

    /// `target` answered 200: from now on the request costs.
    pub fn answered(&mut self, target: &Arc<Target>) {
        if matches!(self.answer, Answer::Pending) {
            self.answer = Answer::Began {
                target: Arc::clone(target),
                completion_tokens: 0,
            };
        }
    }

    /// `completion_tokens` (a running total, by the heuristic) of the answer went by.
    pub fn streamed(&mut self, completion_tokens: u64) {
        if let Answer::Began {
            completion_tokens: n,
            ..
        } = &mut self.answer
        {
            *n = completion_tokens;
        }
    }

    /// The estimate charged when no usage was reported: the prompt plus what was
    /// streamed.
    fn estimate(&self) -> TokenUsage {
        let completion = match &self.answer {
            Answer::Pending | Answer::Cached => 0,
            Answer::Began {
                completion_tokens, ..
            } => *completion_tokens,
        };
        TokenUsage {
            prompt: self.prompt_tokens,
            completion,
            cached: 0,
        }
    }

    /// Settles with `status` and the usage the answer `reported` (an estimate when
    /// `None` and an answer began).
    pub fn finish(mut self, status: u16, reported: Option<TokenUsage>) {
        self.settle(status, reported);
    }

    fn settle(&mut self, status: u16, reported: Option<TokenUsage>) {
        let Some(ticket) = self.ticket.take() else {
            return;
        };
        let estimate = self.estimate();
        if reported.is_none() && matches!(self.answer, Answer::Began { .. }) {
            self.state.metrics.billed_estimate(status);
        }
        let (served, usage, target) = match &self.answer {
            Answer::Pending => (Served::NotAnswered, None, None),
            Answer::Cached => (Served::Answered, Some(TokenUsage::default()), None),
            Answer::Began { target, .. } => (
                Served::Answered,
                Some(reported.unwrap_or(estimate)),
                Some(target),
            ),
        };
        let recorded = usage.unwrap_or_default();
        let response_model = target.map(|t| t.upstream_model.clone());
        let cost = ticket.settle(
            &self.state.state_view,
            &self.state.policy,
            &self.state.metrics,
            Settled {
                status,
                served,
                usage,
                target: target.map(|t| Arc::clone(&t.id)),
                provider: target.map(|t| Arc::clone(&t.provider.name)),
                cache: self.cache,
            },
        );
        crate::telemetry::record_settled(
            &self.span,
            response_model.as_deref(),
            recorded.prompt,
            recorded.completion,
            cost.nanos() as f64 / 1e9,
        );
    }
}

impl Drop for Bill {
    fn drop(&mut self) {
        if self.ticket.is_some() {
            self.settle(CLIENT_GONE, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreported_completion_tokens_are_estimated_for_chat_and_legacy_answers() {
        let chat = br#"{"choices":[{"message":{"role":"assistant","content":"hello world"}}]}"#;
        assert_eq!(completion_tokens_in(chat), 4);
        let legacy = br#"{"object":"text_completion","choices":[{"text":"hello world"}]}"#;
        assert_eq!(completion_tokens_in(legacy), 4);
        assert_eq!(completion_tokens_in(b"not json"), 0);
    }
}

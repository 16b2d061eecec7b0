//! A future that finishes even when its awaiter is dropped.
//!
//! Hyper drops a request's handler when the client goes away. An admitted chat
//! request must still run to its end — the upstream call is billed by the provider
//! anyway, and the request's [`Bill`](super::billing::Bill) must settle with the
//! reported usage — so the answer is wrapped in a [`RunToEnd`]. While the client
//! waits, it is polled inline, in the handler's own task: no task per request and no
//! wake-up hop between two tasks (that hop put the overhead's p90 at ≤ 250 µs instead
//! of ≤ 50 µs, docs/benchmarks-gateway.md). Dropped before it completed, it hands
//! the boxed future, still pinned where it was, to a task of its own that finishes it
//! and discards the answer. A panic while polling is caught and answered 500, as a
//! panicking task's `JoinHandle` was, and the future is dropped there (its bill
//! settles in its drop guard).

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use super::errors::ApiError;
use crate::http::body::Response;

type Answer = Pin<Box<dyn Future<Output = Response> + Send + 'static>>;

/// See the module docs.
#[must_use = "a RunToEnd does nothing unless polled (or dropped)"]
pub struct RunToEnd {
    /// `None` once it completed (or panicked).
    answer: Option<Answer>,
}

impl RunToEnd {
    /// Wraps `answer`.
    pub fn new(answer: impl Future<Output = Response> + Send + 'static) -> Self {
        Self {
            answer: Some(Box::pin(answer)),
        }
    }
}

impl Future for RunToEnd {
    type Output = Response;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let Some(answer) = self.answer.as_mut() else {
            // Polled after completion: the caller's bug, never hyper's; answer 500
            // rather than panic in a request path.
            return Poll::Ready(ApiError::internal().into_response());
        };
        match catch_unwind(AssertUnwindSafe(|| answer.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(response)) => {
                self.answer = None;
                Poll::Ready(response)
            }
            Err(_) => {
                // Already reported by the panic hook.
                tracing::error!("chat completion answer panicked");
                self.answer = None;
                Poll::Ready(ApiError::internal().into_response())
            }
        }
    }
}

impl Drop for RunToEnd {
    fn drop(&mut self) {
        let Some(answer) = self.answer.take() else {
            return;
        };
        // Outside a runtime (it is shutting down) the future is dropped here instead,
        // and its bill settles with an estimate.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                drop(answer.await);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_dropped_run_finishes_in_a_task_of_its_own() {
        let finished = Arc::new(AtomicBool::new(false));
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let flag = Arc::clone(&finished);
        let run = RunToEnd::new(async move {
            let _ = wait.await;
            flag.store(true, Ordering::SeqCst);
            ApiError::internal().into_response()
        });
        // The awaiter gives up before the answer is ready.
        assert!(tokio::time::timeout(Duration::from_millis(10), run)
            .await
            .is_err());
        assert!(!finished.load(Ordering::SeqCst));
        go.send(()).expect("the answer still waits");
        for _ in 0..200 {
            if finished.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the dropped answer never finished");
    }

    #[tokio::test]
    async fn a_panic_is_answered_500() {
        let run = RunToEnd::new(async {
            if std::hint::black_box(true) {
                panic!("boom");
            }
            ApiError::internal().into_response()
        });
        assert_eq!(run.await.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    }
}

//! The signals that stop a process (`aurora serve`, `aurora dev`): SIGINT (Ctrl-C) and
//! SIGTERM.
//!
//! **Installed before anything is reachable, awaited later.** A process has the default
//! action for a signal (SIGTERM: terminate at once, no drain, no exit code) until tokio
//! registers its handler, which happens when a listener is *created*, not when it is
//! awaited. So the listeners are made by [`StopSignals::install`], called before the node
//! serves, and the task that waits on them may start whenever the scheduler gets to it.
//! (Creating them inside the waiting task let a SIGTERM that arrived before the task's
//! first poll kill a serving node outright on a loaded machine; `gateway/tests/signals.rs`
//! holds the case.)

#[cfg(unix)]
use tokio::signal::unix::{signal, Signal, SignalKind};

/// The stop signals of this process, listened for from [`StopSignals::install`] on.
#[derive(Debug)]
pub struct StopSignals {
    #[cfg(unix)]
    interrupt: Option<Signal>,
    #[cfg(unix)]
    terminate: Option<Signal>,
}

impl StopSignals {
    /// Registers the handlers for SIGINT and SIGTERM now. Must be called inside a tokio
    /// runtime. A signal that cannot be listened for is logged and never reported.
    pub fn install() -> StopSignals {
        #[cfg(unix)]
        {
            StopSignals {
                interrupt: listen(SignalKind::interrupt(), "SIGINT"),
                terminate: listen(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        {
            StopSignals {}
        }
    }

    /// Resolves on the next SIGINT or SIGTERM received since [`StopSignals::install`]
    /// (one that arrived before this call is reported at once). Call again to wait for
    /// another.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                Some(()) = next(&mut self.interrupt) => {},
                Some(()) = next(&mut self.terminate) => {},
                else => std::future::pending::<()>().await,
            }
        }
        #[cfg(not(unix))]
        {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::warn!(%error, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(unix)]
fn listen(kind: SignalKind, name: &'static str) -> Option<Signal> {
    match signal(kind) {
        Ok(stream) => Some(stream),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for {name}");
            None
        }
    }
}

/// The next delivery of `stream`; `None` when there is no stream (or it ended).
#[cfg(unix)]
async fn next(stream: &mut Option<Signal>) -> Option<()> {
    stream.as_mut()?.recv().await
}

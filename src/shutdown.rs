//! Shutdown: one value the agent waits on, set by SIGTERM or SIGINT.
//!
//! The first signal asks the agent to deregister and exit. A second signal
//! means the person or the platform will not wait: the process exits at once
//! with [`SECOND_SIGNAL_EXIT`], leaving records behind.
//!
//! [`channel`] gives the same pair without signals, so tests and embedders
//! can ask for shutdown themselves.
//!
//! The moment shutdown was asked for is kept with the reason: the shutdown
//! deadline counts from the signal, not from when the agent got round to
//! it (a signal during start-up, while the AWS settings load, say).

use std::fmt;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::time::Instant;

/// Exit code after a second signal: 128 + SIGINT, as shells report it.
pub const SECOND_SIGNAL_EXIT: i32 = 130;

/// Why shutdown was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Signal(&'static str),
    /// Asked for through a [`Trigger`].
    Requested,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Signal(name) => write!(f, "{name} received"),
            Reason::Requested => f.write_str("shutdown requested"),
        }
    }
}

/// The waiting side: cheap to clone, resolves once shutdown is asked for.
#[derive(Clone, Debug)]
pub struct Shutdown {
    receiver: watch::Receiver<Option<Asked>>,
}

/// The asking side.
#[derive(Debug)]
pub struct Trigger {
    sender: watch::Sender<Option<Asked>>,
}

/// Why and when shutdown was asked for.
#[derive(Clone, Copy, Debug)]
struct Asked {
    reason: Reason,
    at: Instant,
}

/// A shutdown pair with no signals attached.
pub fn channel() -> (Trigger, Shutdown) {
    let (sender, receiver) = watch::channel(None);
    (Trigger { sender }, Shutdown { receiver })
}

impl Trigger {
    /// Asks for shutdown; later calls keep the first reason.
    pub fn request(&self, reason: Reason) {
        self.sender.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(Asked {
                reason,
                at: Instant::now(),
            });
            true
        });
    }
}

impl Shutdown {
    /// The reason, if shutdown has been asked for already.
    pub fn reason(&self) -> Option<Reason> {
        self.receiver.borrow().map(|asked| asked.reason)
    }

    /// `limit` after shutdown was asked for, or after now if it has not
    /// been yet.
    pub fn deadline(&self, limit: Duration) -> Instant {
        let asked = self.receiver.borrow().map(|asked| asked.at);
        asked.unwrap_or_else(Instant::now) + limit
    }

    /// Waits until shutdown is asked for. If every [`Trigger`] is gone without
    /// asking, this waits forever: nobody can ask any more.
    pub async fn requested(&mut self) -> Reason {
        match self.receiver.wait_for(Option::is_some).await {
            Ok(asked) => asked.map_or(Reason::Requested, |asked| asked.reason),
            Err(_) => std::future::pending().await,
        }
    }
}

/// Installs SIGTERM and SIGINT handlers and returns the shutdown they set.
/// Must be called inside the tokio runtime.
pub fn on_signals() -> std::io::Result<Shutdown> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let (trigger, shutdown) = channel();
    tokio::spawn(async move {
        let mut received = 0;
        loop {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            received += 1;
            if received > 1 {
                tracing::error!(
                    signal = name,
                    "second signal: exiting now, records may be left behind"
                );
                std::process::exit(SECOND_SIGNAL_EXIT);
            }
            tracing::info!(
                signal = name,
                "shutting down: deregistering (send again to exit at once)"
            );
            trigger.request(Reason::Signal(name));
        }
    });
    Ok(shutdown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_reason_is_kept() {
        let (trigger, mut shutdown) = channel();
        assert_eq!(shutdown.reason(), None);
        trigger.request(Reason::Signal("SIGTERM"));
        trigger.request(Reason::Requested);
        assert_eq!(shutdown.requested().await, Reason::Signal("SIGTERM"));
        assert_eq!(shutdown.clone().reason(), Some(Reason::Signal("SIGTERM")));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_counts_from_when_shutdown_was_asked_for() {
        let limit = std::time::Duration::from_secs(20);
        let (trigger, shutdown) = channel();
        let began = Instant::now();
        assert_eq!(shutdown.deadline(limit), began + limit);

        tokio::time::advance(std::time::Duration::from_secs(5)).await;
        trigger.request(Reason::Signal("SIGTERM"));
        let asked = Instant::now();
        // The agent gets round to it later, during a slow start-up, say.
        tokio::time::advance(std::time::Duration::from_secs(8)).await;
        assert_eq!(shutdown.deadline(limit), asked + limit);
        trigger.request(Reason::Requested);
        assert_eq!(shutdown.deadline(limit), asked + limit);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_without_a_trigger_never_ends() {
        let (trigger, mut shutdown) = channel();
        drop(trigger);
        let waited =
            tokio::time::timeout(std::time::Duration::from_secs(3600), shutdown.requested()).await;
        assert!(waited.is_err());
    }
}

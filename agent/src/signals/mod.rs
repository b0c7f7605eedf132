//! Stopping cleanly on SIGINT and SIGTERM.
//!
//! systemd's `TimeoutStopSec`, a cron wrapper's `timeout` or Ctrl-C must not leave an
//! incomplete multipart upload (billed until a lifecycle rule aborts it) or a restore's
//! staging tree behind. [`crate::cli::run`] runs the command under [`supervise`]: on the
//! first signal it triggers the command's [`Cancel`], and the command stops at its next
//! await point and cleans up (the uploader aborts its multipart uploads, checking with
//! `ListParts` and aborting once more if parts are still there; the restore stops the
//! download and removes its staging tree), within [`GRACE`]. A second signal stops at once.
//! The process then exits 130 (SIGINT) or 143 (SIGTERM), as a shell reports a process
//! killed by that signal ([`crate::errors::AgentError::Interrupted`]).
//!
//! Floor 2: may import modules of floors 0 to 1 only; it imports `errors`, `signals::signal`.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

pub use signal::Signal;

use crate::errors::AgentError;

mod signal;

/// How long a command gets to clean up after the first signal.
pub const GRACE: Duration = Duration::from_secs(30);

/// A cancellation flag shared by a command and its supervisor. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Cancel {
    tx: std::sync::Arc<watch::Sender<Option<Signal>>>,
    rx: watch::Receiver<Option<Signal>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel::new()
    }
}

impl Cancel {
    /// A flag nobody has triggered (yet); one nobody ever triggers never cancels anything.
    pub fn new() -> Cancel {
        let (tx, rx) = watch::channel(None);
        Cancel {
            tx: std::sync::Arc::new(tx),
            rx,
        }
    }

    /// Asks everything holding this flag to stop.
    pub fn trigger(&self, signal: Signal) {
        self.tx.send_replace(Some(signal));
    }

    /// The signal, once triggered.
    pub fn signal(&self) -> Option<Signal> {
        *self.rx.borrow()
    }

    /// Waits until the flag is triggered; never returns if it never is.
    pub async fn cancelled(&self) -> Signal {
        let mut rx = self.rx.clone();
        loop {
            if let Some(s) = *rx.borrow_and_update() {
                return s;
            }
            if rx.changed().await.is_err() {
                // Cannot happen while `self` holds the sender; never cancel then.
                std::future::pending::<()>().await;
            }
        }
    }

    /// The error a command returns when it stopped because of this flag.
    pub fn error(signal: Signal) -> AgentError {
        AgentError::Interrupted { signal }
    }
}

/// Runs `f` until it ends or `cancel` is triggered (then [`AgentError::Interrupted`]):
/// for the steps of a command that leave nothing to clean up (pre-flight, lookups).
pub async fn or_cancelled<T>(
    f: impl Future<Output = Result<T, AgentError>>,
    cancel: &Cancel,
) -> Result<T, AgentError> {
    tokio::select! {
        r = f => r,
        s = cancel.cancelled() => Err(Cancel::error(s)),
    }
}

/// Installs SIGINT and SIGTERM handlers and forwards each signal into the returned
/// channel. Call before the command starts, so that no signal kills it unhandled.
pub fn forward() -> Result<mpsc::Receiver<Signal>, AgentError> {
    use tokio::signal::unix::{signal, SignalKind};
    let install = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| AgentError::Internal(format!("cannot handle {name}: {e}")))
    };
    let mut int = install(SignalKind::interrupt(), "SIGINT")?;
    let mut term = install(SignalKind::terminate(), "SIGTERM")?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let s = tokio::select! {
                Some(()) = int.recv() => Signal::Interrupt,
                Some(()) = term.recv() => Signal::Terminate,
                else => break,
            };
            if tx.send(s).await.is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// Runs `command` until it ends or a signal arrives on `signals`. On the first signal,
/// `cancel` is triggered and the command gets `grace` to clean up and return; a second
/// signal, or the end of the grace period, drops it. A signalled run always ends in
/// [`AgentError::Interrupted`] (or a cleanup failure wrapping it), whatever the command
/// returned, so the exit code says what happened.
pub async fn supervise<F>(
    command: F,
    cancel: &Cancel,
    signals: &mut mpsc::Receiver<Signal>,
    grace: Duration,
) -> Result<(), AgentError>
where
    F: Future<Output = Result<(), AgentError>>,
{
    tokio::pin!(command);
    let first = tokio::select! {
        r = &mut command => return r,
        s = signals.recv() => s,
    };
    let Some(signal) = first else {
        // No signal source (handlers could not be installed): just run the command.
        return command.await;
    };
    tracing::warn!(
        signal = signal.name(),
        "signal received: stopping; multipart uploads are aborted and restore staging removed (a second signal stops at once)"
    );
    cancel.trigger(signal);
    let outcome = tokio::select! {
        r = tokio::time::timeout(grace, &mut command) => match r {
            Ok(r) => Some(r),
            Err(_) => {
                tracing::error!(secs = grace.as_secs(), "the command did not stop within the grace period; leaving its cleanup to the bucket's lifecycle rules");
                None
            }
        },
        Some(again) = signals.recv() => {
            tracing::error!(signal = again.name(), "second signal: stopping without cleaning up");
            None
        }
    };
    match outcome {
        Some(Err(e)) if e.exit_code() == signal.exit_code() => Err(e),
        Some(Err(e)) => {
            tracing::error!("while stopping: {e}");
            Err(Cancel::error(signal))
        }
        Some(Ok(())) => {
            tracing::warn!("the command completed before the signal took effect");
            Err(Cancel::error(signal))
        }
        None => Err(Cancel::error(signal)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(Signal::Interrupt.exit_code(), 130);
        assert_eq!(Signal::Terminate.exit_code(), 143);
        let e = Cancel::error(Signal::Terminate);
        assert_eq!(e.exit_code(), 143);
        assert_eq!(e.stage(), "interrupted");
        assert!(e.to_string().contains("SIGTERM"), "{e}");
        assert_eq!(Cancel::error(Signal::Interrupt).exit_code(), 130);
    }

    #[tokio::test]
    async fn a_signal_cancels_the_command_and_waits_for_its_cleanup() {
        let cancel = Cancel::new();
        let (tx, mut rx) = mpsc::channel(4);
        let cleaned = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let c = cancel.clone();
        let flag = cleaned.clone();
        let command = async move {
            let s = c.cancelled().await;
            // Cleanup that takes a while.
            tokio::time::sleep(Duration::from_millis(50)).await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Err(Cancel::error(s))
        };
        tx.send(Signal::Interrupt).await.unwrap();
        let e = supervise(command, &cancel, &mut rx, GRACE)
            .await
            .unwrap_err();
        assert_eq!(e.exit_code(), 130);
        assert!(cleaned.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(cancel.signal(), Some(Signal::Interrupt));
    }

    #[tokio::test]
    async fn a_command_that_ignores_the_signal_is_dropped_after_the_grace_period() {
        let cancel = Cancel::new();
        let (tx, mut rx) = mpsc::channel(4);
        tx.send(Signal::Terminate).await.unwrap();
        let e = supervise(
            std::future::pending::<Result<(), AgentError>>(),
            &cancel,
            &mut rx,
            Duration::from_millis(20),
        )
        .await
        .unwrap_err();
        assert_eq!(e.exit_code(), 143);
    }

    #[tokio::test]
    async fn or_cancelled_stops_a_step_that_hangs() {
        let cancel = Cancel::new();
        cancel.trigger(Signal::Terminate);
        let r = or_cancelled(std::future::pending::<Result<(), AgentError>>(), &cancel).await;
        assert_eq!(r.unwrap_err().exit_code(), 143);
        let fine = or_cancelled(async { Ok(1) }, &Cancel::new()).await;
        assert_eq!(fine.unwrap(), 1);
    }

    #[tokio::test]
    async fn without_a_signal_the_command_result_stands() {
        let cancel = Cancel::new();
        let (_tx, mut rx) = mpsc::channel(4);
        let r = supervise(
            async { Err(AgentError::Config("x".into())) },
            &cancel,
            &mut rx,
            GRACE,
        )
        .await;
        assert_eq!(r.unwrap_err().exit_code(), 2);
        assert_eq!(cancel.signal(), None);
    }
}

//! Waiting for the platform to ask the process to stop.

use std::future::Future;
use std::io;

/// Which signal asked the process to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopSignal {
    /// SIGTERM: what ECS, Kubernetes, systemd and Docker send before they kill a process.
    Terminate,
    /// SIGINT: Ctrl-C in a terminal.
    Interrupt,
}

/// Listens for SIGTERM and SIGINT from now on, and returns a future that resolves with the
/// first to arrive. Call it before starting the balancer, await it, then stop the balancer,
/// so that a deploy hands every queue over instead of leaving it to wait out a failover.
///
/// Listening starts when this is called, not when the future is first polled, so a signal
/// that arrives in between is not lost. Once listening, the signals no longer end the process
/// by themselves. On platforms without SIGTERM only Ctrl-C is heard.
///
/// ```no_run
/// # async fn run(running: sqsbalancer_runtime::Running) -> Result<(), Box<dyn std::error::Error>> {
/// let stop = sqsbalancer_runtime::shutdown_signal()?;
/// stop.await;
/// running.stop().await?; // hand the queues over, then deregister
/// # Ok(())
/// # }
/// ```
pub fn shutdown_signal() -> io::Result<impl Future<Output = StopSignal> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => StopSignal::Terminate,
                _ = int.recv() => StopSignal::Interrupt,
            }
        })
    }
    #[cfg(not(unix))]
    {
        let ctrl_c = tokio::signal::ctrl_c();
        Ok(async move {
            // Without a listener the default action would have ended the process already.
            let _ = ctrl_c.await;
            StopSignal::Interrupt
        })
    }
}

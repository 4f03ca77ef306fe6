//! `shutdown_signal` hears the signals a platform sends before it kills a process. Its own
//! test binary, since a signal goes to the whole process.

#![cfg(unix)]

use sqsbalancer_runtime::{StopSignal, shutdown_signal};
use std::time::Duration;

/// Sends `signal` to this process with the `kill` utility.
fn send(signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} failed");
}

#[tokio::test]
async fn sigterm_and_sigint_each_end_the_wait_and_say_which_came() {
    let deadline = Duration::from_secs(30);
    let stop = shutdown_signal().expect("listening");
    send("-TERM");
    let got = tokio::time::timeout(deadline, stop).await;
    assert_eq!(got, Ok(StopSignal::Terminate), "SIGTERM was heard");
    let stop = shutdown_signal().expect("listening");
    send("-INT");
    let got = tokio::time::timeout(deadline, stop).await;
    assert_eq!(got, Ok(StopSignal::Interrupt), "SIGINT was heard");
}

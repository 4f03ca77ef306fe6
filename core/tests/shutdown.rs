//! A single node's graceful shutdown, driven input by input: it deregisters only from a fresh
//! view, says so when peers reaped it first, and settles a deregistration whose answer was lost.

mod common;

use common::solo::{Solo, config, is_deregister, is_heartbeat, is_table_read, write_of};
use sqsbalancer_core::{Input, Outcome, Phase, StopOutcome};
use std::time::Duration;

fn solo() -> Solo {
    Solo::running(config("solo"), Vec::new())
}

#[test]
fn a_failed_final_read_is_retried_before_deregistering() {
    let mut solo = solo();
    solo.input(Input::Shutdown);
    solo.input(Input::DrainFinished);
    assert_eq!(solo.node.phase(), Phase::Releasing);
    let read = solo.take(is_table_read).expect("shutdown reads the table");
    solo.answer(&read, Outcome::Unknown);
    solo.answer_all();
    assert!(
        !solo.sent(is_deregister) && solo.node.phase() == Phase::Releasing,
        "deregistered without a fresh view"
    );
    // Retried at the next heartbeat tick (an earlier timer, such as reconciliation, may
    // come first).
    let mut retry = None;
    for _ in 0..3 {
        solo.tick();
        retry = solo.take(is_table_read);
        if retry.is_some() {
            break;
        }
        assert!(
            !solo.sent(is_deregister),
            "deregistered without a fresh view"
        );
    }
    let retry = retry.expect("the failed read is retried");
    assert!(!solo.sent(is_deregister));
    let answer = solo.serve(&retry);
    solo.answer(&retry, answer);
    assert!(
        solo.sent(is_deregister),
        "a fresh empty view lets it deregister"
    );
    solo.answer_all();
    assert_eq!(
        solo.phases.last(),
        Some(&Phase::Stopped {
            outcome: StopOutcome::Clean
        })
    );
}

#[test]
fn a_stop_whose_life_was_reaped_says_so() {
    let mut solo = solo();
    solo.input(Input::Shutdown);
    solo.input(Input::DrainFinished);
    let heartbeat = solo
        .take(is_heartbeat)
        .expect("shutdown publishes Draining");
    solo.answer(&heartbeat, Outcome::Rejected);
    assert_eq!(
        solo.phases.last(),
        Some(&Phase::Stopped {
            outcome: StopOutcome::LifeLost
        })
    );
    assert!(
        !solo.sent(is_deregister),
        "a reaped life has nothing to end"
    );
}

#[test]
fn a_stop_past_its_timeout_says_so() {
    let mut solo = solo();
    solo.input(Input::Shutdown);
    // The runtime never reports its handlers finished.
    solo.now = solo.now + Duration::from_secs(3_600);
    solo.input(Input::Tick);
    assert_eq!(
        solo.phases.last(),
        Some(&Phase::Stopped {
            outcome: StopOutcome::TimedOut
        })
    );
}

#[test]
fn a_rejected_deregistration_is_a_lost_life_not_a_clean_stop() {
    let mut solo = solo();
    solo.input(Input::Shutdown);
    solo.input(Input::DrainFinished);
    solo.answer_all_but(is_deregister);
    let dereg = solo
        .take(is_deregister)
        .expect("a fresh empty view deregisters");
    // A peer reaped this life while the deregistration was on its way.
    solo.answer(&dereg, Outcome::Rejected);
    assert_eq!(
        solo.phases.last(),
        Some(&Phase::Stopped {
            outcome: StopOutcome::LifeLost
        })
    );
}

#[test]
fn a_deregistration_of_unknown_outcome_is_sent_again_until_answered() {
    let mut solo = solo();
    solo.input(Input::Shutdown);
    solo.input(Input::DrainFinished);
    solo.answer_all_but(is_deregister);
    let dereg = solo
        .take(is_deregister)
        .expect("a fresh empty view deregisters");
    solo.answer(&dereg, Outcome::Unknown);
    assert!(
        !solo.phases.last().is_some_and(|p| p.is_stopped()),
        "stopped on an unknown outcome: {:?}",
        solo.phases.last()
    );
    assert!(!solo.sent(is_deregister), "sent again at once");
    solo.tick();
    let again = solo.take(is_deregister).expect("sent again after a pause");
    assert_eq!(write_of(&again), write_of(&dereg), "the same write");
    let answer = solo.serve(&again);
    solo.answer(&again, answer);
    assert_eq!(
        solo.phases.last(),
        Some(&Phase::Stopped {
            outcome: StopOutcome::Clean
        })
    );
}

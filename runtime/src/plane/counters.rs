//! The data plane's running totals, read by [`crate::Running::stats`]; each count also goes
//! to the metrics facade.

use crate::telemetry::QueueLabel;
use std::sync::atomic::{AtomicU64, Ordering};

/// Totals since the data plane started.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    received: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    released: AtomicU64,
    handling: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) received: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) released: u64,
    pub(crate) handling: u64,
}

impl Counters {
    pub(crate) fn received(&self, queue: &QueueLabel, n: usize) {
        self.received.fetch_add(n as u64, Ordering::Relaxed);
        crate::telemetry::received(queue, n);
    }

    pub(crate) fn succeeded(&self, queue: &QueueLabel) {
        self.succeeded.fetch_add(1, Ordering::Relaxed);
        crate::telemetry::processed(queue, true);
    }

    pub(crate) fn failed(&self, queue: &QueueLabel) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        crate::telemetry::processed(queue, false);
    }

    pub(crate) fn released(&self, queue: &QueueLabel) {
        self.released.fetch_add(1, Ordering::Relaxed);
        crate::telemetry::released(queue);
    }

    pub(crate) fn handler_started(&self, n: usize) {
        let now = self.handling.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        crate::telemetry::in_flight(now);
    }

    pub(crate) fn handler_finished(&self, n: usize) {
        let now = self.handling.fetch_sub(n as u64, Ordering::Relaxed) - n as u64;
        crate::telemetry::in_flight(now);
    }

    pub(crate) fn totals(&self) -> Totals {
        Totals {
            received: self.received.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            released: self.released.load(Ordering::Relaxed),
            handling: self.handling.load(Ordering::Relaxed),
        }
    }
}

//! The data plane's running totals, read by [`crate::Running::stats`]; each count also goes
//! to the metrics facade.

use crate::telemetry::QueueMetrics;
use std::sync::atomic::{AtomicU64, Ordering};

/// Totals since the data plane started.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    received: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    released: AtomicU64,
    fenced_out: AtomicU64,
    handling: AtomicU64,
    /// Messages received and waiting for a worker.
    waiting: AtomicU64,
    /// Handler calls running: the workers busy.
    busy: AtomicU64,
    /// Each queue's recent handler time per second.
    pub(crate) loads: super::load::Loads,
}

/// A snapshot of [`Counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) received: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) released: u64,
    pub(crate) fenced_out: u64,
    pub(crate) handling: u64,
    pub(crate) waiting: u64,
    pub(crate) busy: u64,
}

impl Counters {
    pub(crate) fn received(&self, queue: &QueueMetrics, n: usize) {
        self.received.fetch_add(n as u64, Ordering::Relaxed);
        queue.received(n);
    }

    pub(crate) fn succeeded(&self, queue: &QueueMetrics) {
        self.succeeded.fetch_add(1, Ordering::Relaxed);
        queue.processed(true);
    }

    pub(crate) fn failed(&self, queue: &QueueMetrics) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        queue.processed(false);
    }

    pub(crate) fn released(&self, queue: &QueueMetrics) {
        self.released.fetch_add(1, Ordering::Relaxed);
        queue.released();
    }

    pub(crate) fn fenced_out(&self, queue: &QueueMetrics, n: usize) {
        self.fenced_out.fetch_add(n as u64, Ordering::Relaxed);
        queue.fenced_out(n);
    }

    pub(crate) fn handler_started(&self, n: usize) {
        self.busy.fetch_add(1, Ordering::Relaxed);
        let now = self.handling.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        crate::telemetry::in_flight(now);
    }

    pub(crate) fn handler_finished(&self, n: usize) {
        self.busy.fetch_sub(1, Ordering::Relaxed);
        let now = self.handling.fetch_sub(n as u64, Ordering::Relaxed) - n as u64;
        crate::telemetry::in_flight(now);
    }

    /// `n` messages were queued for the workers (counted before the send, so a worker that
    /// takes them at once never counts below zero).
    pub(crate) fn queued(&self, n: usize) {
        self.waiting.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// `n` queued messages were taken by a worker, or never got into the queue.
    pub(crate) fn dequeued(&self, n: usize) {
        self.waiting.fetch_sub(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn totals(&self) -> Totals {
        Totals {
            received: self.received.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            released: self.released.load(Ordering::Relaxed),
            fenced_out: self.fenced_out.load(Ordering::Relaxed),
            handling: self.handling.load(Ordering::Relaxed),
            waiting: self.waiting.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
        }
    }
}

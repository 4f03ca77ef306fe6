//! The keeper: every tick, asks SQS to extend the visibility of the held messages that need
//! it (`inflight.rs` says which), until the data plane closes.

use super::change::Change;
use super::shared::{Phase, Shared};
use crate::telemetry::QueueMetrics;
use std::sync::Arc;
use tokio::time::Instant;

/// Extends what is due every tick until the data plane closes.
pub(super) async fn keep<Q, C>(shared: Arc<Shared<Q, C>>) {
    let tick = shared.settings.extension_tick();
    let mut phase = shared.phase.clone();
    loop {
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = Phase::reached(&mut phase, Phase::Closed) => return,
        }
        let due = shared.lock_inflight().due(Instant::now());
        for x in due {
            tracing::debug!(queue = %x.queue, visibility_secs = x.secs, "extending visibility");
            QueueMetrics::of(&x.queue).extended();
            shared.change(Change::extension(x));
        }
    }
}

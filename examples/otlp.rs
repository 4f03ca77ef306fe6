//! OpenTelemetry over OTLP: the metrics and each handler's `message` span go to a collector,
//! and a message sent with a W3C `traceparent` attribute (or through X-Ray, AWSTraceHeader)
//! is handled in a span of its sender's trace. Logs still go to stderr.
//!
//! With a collector on the standard port (or `OTEL_EXPORTER_OTLP_ENDPOINT` set), against AWS
//! or moto as in the quick start:
//! `OTEL_SERVICE_NAME=orders cargo run --example otlp --features otel`

use sqsbalancer::aws::AwsBackend;
use sqsbalancer::otel::Otlp;
use sqsbalancer::{Balancer, Config, HandlerError, Message, shutdown_signal};
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The endpoint from the standard OTEL_* variables; metrics every 10 s.
    let export = Otlp::new()
        .with_metrics_interval(Duration::from_secs(10))
        .install()?;
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer())
        .with(export.layer());
    tracing::subscriber::set_global_default(subscriber)?;

    let mut cfg = Config::new("orders", "sqsbalancer");
    cfg.queue_filter_pattern = Some("^orders-".into());
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let aws = AwsBackend::from_sdk_config(&sdk, &cfg);
    let handler = |m: Message| async move {
        // Inside the `message` span, whose parent is the sender's span.
        tracing::info!(
            queue = m.queue.name(),
            bytes = m.body.len(),
            "order handled"
        );
        Ok::<(), HandlerError>(())
    };
    let stop = shutdown_signal()?;
    let running = Balancer::new(cfg, Arc::new(aws))?.start(handler)?;
    stop.await;
    running.stop().await?;
    // The last figures and spans, sent before the process exits.
    export.shutdown().await?;
    Ok(())
}

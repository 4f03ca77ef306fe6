//! OpenTelemetry end to end, against the SDK's in-memory exporters: the Go library's four
//! message counters reach the meter by queue, and the handler's span joins the trace the
//! message's sender started (its `traceparent` attribute).

mod common;

use common::{backend, cfg, fakes_with_queues, wait_until};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use sqsbalancer_runtime::otel::MeterRecorder;
use sqsbalancer_runtime::{Balancer, HandlerError, Message};
use sqsbalancer_sim::fake::Outgoing;
use std::collections::BTreeSet;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";

#[tokio::test(start_paused = true)]
async fn the_go_counters_reach_the_meter_and_the_handler_span_joins_the_sender_s_trace() {
    let metrics = InMemoryMetricExporter::default();
    let meters = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metrics.clone()).build())
        .build();
    metrics::set_global_recorder(MeterRecorder::new(meters.meter("sqsbalancer")))
        .expect("the only recorder of this test binary");
    let spans = InMemorySpanExporter::default();
    let tracers = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(tracers.tracer("test"));
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    let (fakes, urls) = fakes_with_queues(1);
    {
        let mut f = fakes.lock().expect("not poisoned");
        let now = f.now();
        let mut m = Outgoing {
            body: "traced".into(),
            ..Outgoing::default()
        };
        let parent = format!("00-{TRACE}-{PARENT}-01");
        m.attributes.insert("traceparent".into(), parent);
        f.sqs.send(now, "producer", &urls[0], m).expect("sent");
        let flaky = Outgoing {
            body: "flaky".into(),
            ..Outgoing::default()
        };
        f.sqs.send(now, "producer", &urls[0], flaky).expect("sent");
    }
    // "flaky" fails its first delivery, so every one of the four counters moves.
    let handler = |m: Message| async move {
        if m.body == "flaky" && m.receive_count == 1 {
            return Err(HandlerError::new("first delivery"));
        }
        Ok(())
    };
    let running = Balancer::new(cfg("a"), backend(&fakes, "a"))
        .expect("valid")
        .start(handler)
        .expect("started");
    wait_until(Duration::from_secs(120), "both messages handled", || {
        running.stats().succeeded == 2
    })
    .await;
    running.stop().await.expect("a clean stop");

    meters.force_flush().expect("flushed");
    let names: BTreeSet<String> = metrics
        .get_finished_metrics()
        .expect("exported")
        .iter()
        .flat_map(|rm| rm.scope_metrics())
        .flat_map(|sm| sm.metrics())
        .map(|m| m.name().to_owned())
        .collect();
    for go in ["received", "processed", "succeeded", "failed"] {
        let name = format!("sqsbalancer.messages.{go}");
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let finished = spans.get_finished_spans().expect("exported");
    let handler = finished
        .iter()
        .find(|s| s.name == "message")
        .expect("the handler's span");
    assert_eq!(handler.span_context.trace_id().to_string(), TRACE);
    assert_eq!(handler.parent_span_id.to_string(), PARENT);
}

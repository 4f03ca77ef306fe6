//! OpenTelemetry end to end, against the SDK's in-memory exporters (an application with its
//! own providers): the Go library's four message counters reach the meter, the handler's
//! span joins the trace the message's sender started (its `traceparent`), and a batch
//! handler's span links to it.

mod common;

use common::traced::{
    GO_COUNTERS, PARENT, TRACE, handle_traced_and_flaky, handle_traced_in_a_batch,
};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use sqsbalancer_runtime::otel::MeterRecorder;
use std::collections::BTreeSet;
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::SubscriberExt;

/// Spans of this thread exported to memory, until the guard is dropped.
fn export_spans() -> (InMemorySpanExporter, DefaultGuard) {
    let spans = InMemorySpanExporter::default();
    let tracers = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(tracers.tracer("test"));
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    (spans, guard)
}

#[tokio::test(start_paused = true)]
async fn the_go_counters_reach_the_meter_and_the_handler_span_joins_the_sender_s_trace() {
    let metrics = InMemoryMetricExporter::default();
    let meters = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metrics.clone()).build())
        .build();
    metrics::set_global_recorder(MeterRecorder::new(meters.meter("sqsbalancer")))
        .expect("the only recorder of this test binary");
    let (spans, _subscriber) = export_spans();

    handle_traced_and_flaky().await;

    meters.force_flush().expect("flushed");
    let names: BTreeSet<String> = metrics
        .get_finished_metrics()
        .expect("exported")
        .iter()
        .flat_map(|rm| rm.scope_metrics())
        .flat_map(|sm| sm.metrics())
        .map(|m| m.name().to_owned())
        .collect();
    for name in GO_COUNTERS {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }
    let finished = spans.get_finished_spans().expect("exported");
    let handler = finished
        .iter()
        .find(|s| s.name == "message")
        .expect("the handler's span");
    assert_eq!(handler.span_context.trace_id().to_string(), TRACE);
    assert_eq!(handler.parent_span_id.to_string(), PARENT);
}

#[tokio::test(start_paused = true)]
async fn a_batch_span_links_to_each_sender_s_span() {
    let (spans, _subscriber) = export_spans();

    handle_traced_in_a_batch().await;

    let finished = spans.get_finished_spans().expect("exported");
    let batch = finished
        .iter()
        .find(|s| s.name == "batch")
        .expect("the batch handler's span");
    let linked: Vec<(String, String)> = batch
        .links
        .iter()
        .map(|l| {
            let cx = &l.span_context;
            (cx.trace_id().to_string(), cx.span_id().to_string())
        })
        .collect();
    assert_eq!(linked, vec![(TRACE.to_owned(), PARENT.to_owned())]);
}

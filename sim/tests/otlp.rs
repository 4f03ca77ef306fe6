//! OTLP export end to end: the library's own exporter ([`Otlp`]) sends to a collector in
//! this process, which receives the Go library's four message counters and the handler's
//! span in the trace the message's sender started.

mod common;

use common::traced::{GO_COUNTERS, PARENT, TRACE, handle_traced_and_flaky};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use sqsbalancer_runtime::otel::Otlp;
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tracing_subscriber::layer::SubscriberExt;

/// A span as the collector received it, ids in hex.
#[derive(Debug)]
struct ReceivedSpan {
    /// The span's name.
    name: String,
    /// Its trace id.
    trace_id: String,
    /// Its parent's span id.
    parent_span_id: String,
}

/// What the collector has received.
#[derive(Debug, Default)]
struct Received {
    /// The names of every metric in every export.
    metrics: BTreeSet<String>,
    /// Every span.
    spans: Vec<ReceivedSpan>,
}

/// An OTLP/HTTP collector on a free port of 127.0.0.1, on its own thread and runtime (the
/// test's clock is paused); it stops when `stop` is dropped.
struct Collector {
    /// Its base URL.
    url: String,
    /// What it received.
    received: Arc<Mutex<Received>>,
    /// Dropping it ends the accept loop.
    _stop: oneshot::Sender<()>,
}

impl Collector {
    fn start() -> Collector {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.set_nonblocking(true).expect("non-blocking");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let received = Arc::new(Mutex::new(Received::default()));
        let (stop, stopped) = oneshot::channel();
        let shared = Arc::clone(&received);
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(serve(listener, shared, stopped));
        });
        Collector {
            url,
            received,
            _stop: stop,
        }
    }
}

/// Accepts connections until `stopped` fires.
async fn serve(
    listener: std::net::TcpListener,
    received: Arc<Mutex<Received>>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => accepted.expect("accepted").0,
            _ = &mut stopped => return,
        };
        let received = Arc::clone(&received);
        let service = hyper::service::service_fn(move |request| {
            let received = Arc::clone(&received);
            async move { Ok::<_, Infallible>(export(request, &received).await) }
        });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service),
        );
    }
}

/// Decodes one export request by its path and records what it carries.
async fn export(request: Request<Incoming>, received: &Mutex<Received>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    let mut received = received.lock().expect("not poisoned");
    match path.as_str() {
        "/v1/metrics" => {
            let export = ExportMetricsServiceRequest::decode(body).expect("OTLP metrics");
            let names = export
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(|m| m.name.clone());
            received.metrics.extend(names);
        }
        "/v1/traces" => {
            let export = ExportTraceServiceRequest::decode(body).expect("OTLP spans");
            let spans = export
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .map(|s| ReceivedSpan {
                    name: s.name.clone(),
                    trace_id: hex(&s.trace_id),
                    parent_span_id: hex(&s.parent_span_id),
                });
            received.spans.extend(spans);
        }
        other => panic!("an export to {other}"),
    }
    Response::new(Full::new(Bytes::new()))
}

/// `bytes` in lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(start_paused = true)]
async fn the_collector_receives_the_go_counters_and_the_handler_span_in_the_sender_s_trace() {
    let collector = Collector::start();
    let export = Otlp::new()
        .with_endpoint(&collector.url)
        .with_timeout(Duration::from_secs(10))
        .install()
        .expect("exporting");
    let subscriber = tracing_subscriber::registry().with(export.layer());
    let _subscriber = tracing::subscriber::set_default(subscriber);

    handle_traced_and_flaky().await;
    export.shutdown().await.expect("the last exports sent");

    let received = collector.received.lock().expect("not poisoned");
    for name in GO_COUNTERS {
        assert!(
            received.metrics.contains(name),
            "{name} missing from {:?}",
            received.metrics
        );
    }
    let handler = received
        .spans
        .iter()
        .find(|s| s.name == "message")
        .expect("the handler's span");
    assert_eq!(handler.trace_id, TRACE);
    assert_eq!(handler.parent_span_id, PARENT);
}

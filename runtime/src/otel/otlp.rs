//! [`Otlp`]: the metrics and the handler spans exported to an OTLP collector over HTTP
//! (protobuf), for an application that has no OpenTelemetry providers of its own.

use super::MeterRecorder;
use crate::error::RuntimeError;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{MetricExporter, Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::time::Duration;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The name the instruments' meter and the spans' tracer carry.
const SCOPE: &str = "sqsbalancer";

/// OTLP/HTTP export of the metrics and the handler spans. Without an endpoint the standard
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or per-signal) variables apply, and then
/// `http://localhost:4318`; `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` name the
/// service. Plain HTTP only: a collector beside the application (a sidecar, the node's agent).
#[derive(Clone, Debug)]
#[must_use]
pub struct Otlp {
    /// The collector's base URL (`/v1/metrics` and `/v1/traces` are appended).
    endpoint: Option<String>,
    /// How often the metrics are exported.
    metrics_interval: Duration,
    /// The deadline of each export request; `None` takes `OTEL_EXPORTER_OTLP_TIMEOUT`, then
    /// 10 s.
    timeout: Option<Duration>,
}

impl Default for Otlp {
    fn default() -> Otlp {
        Otlp {
            endpoint: None,
            metrics_interval: Duration::from_secs(60),
            timeout: None,
        }
    }
}

impl Otlp {
    /// Export with OpenTelemetry's defaults: the endpoint and the request deadline from the
    /// environment (else `http://localhost:4318` and 10 s), metrics every 60 s.
    pub fn new() -> Otlp {
        Otlp::default()
    }

    /// The collector's base URL, such as `http://127.0.0.1:4318`.
    pub fn with_endpoint(mut self, url: impl Into<String>) -> Otlp {
        self.endpoint = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// How often the metrics are exported (default 60 s).
    pub fn with_metrics_interval(mut self, every: Duration) -> Otlp {
        self.metrics_interval = every;
        self
    }

    /// The deadline of each export request (default 10 s); an export past it is dropped.
    pub fn with_timeout(mut self, timeout: Duration) -> Otlp {
        self.timeout = Some(timeout);
        self
    }

    /// Starts exporting: installs a [`MeterRecorder`] as the process's `metrics` recorder and
    /// returns the export, whose [`OtlpExport::layer`] the application adds to its `tracing`
    /// subscriber. Fails when another `metrics` recorder is installed or an exporter cannot
    /// be built (an endpoint that is not a URL).
    pub fn install(self) -> Result<OtlpExport, RuntimeError> {
        let resource = Resource::builder().build();
        let metrics = self
            .configure(MetricExporter::builder().with_http(), "/v1/metrics")
            .build()
            .map_err(|e| telemetry("the OTLP metric exporter", e))?;
        let spans = self
            .configure(SpanExporter::builder().with_http(), "/v1/traces")
            .build()
            .map_err(|e| telemetry("the OTLP span exporter", e))?;
        let reader = PeriodicReader::builder(metrics)
            .with_interval(self.metrics_interval)
            .build();
        let meters = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource.clone())
            .build();
        let tracers = SdkTracerProvider::builder()
            .with_batch_exporter(spans)
            .with_resource(resource)
            .build();
        metrics::set_global_recorder(MeterRecorder::new(meters.meter(SCOPE)))
            .map_err(|e| telemetry("the metrics recorder", e))?;
        Ok(OtlpExport { meters, tracers })
    }

    /// `builder` with this export's protocol and, when given, its deadline and endpoint +
    /// `path` (otherwise the exporter reads the standard variables).
    fn configure<B: WithExportConfig>(&self, builder: B, path: &str) -> B {
        let mut builder = builder.with_protocol(Protocol::HttpBinary);
        if let Some(timeout) = self.timeout {
            builder = builder.with_timeout(timeout);
        }
        match &self.endpoint {
            Some(base) => builder.with_endpoint(format!("{base}{path}")),
            None => builder,
        }
    }
}

/// A running OTLP export: the metrics go out every interval and the spans in batches. Stop
/// it with [`OtlpExport::shutdown`] after the balancer has stopped, so the last figures and
/// spans are sent.
#[must_use = "dropping the export stops it without waiting for the last export"]
#[derive(Debug)]
pub struct OtlpExport {
    /// The provider of the meter the recorder writes to.
    meters: SdkMeterProvider,
    /// The provider whose tracer turns `tracing` spans into OTel spans.
    tracers: SdkTracerProvider,
}

impl OtlpExport {
    /// The `tracing` layer that exports spans (the handlers' `message` spans among them) to
    /// the collector; add it to the application's subscriber.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
    {
        tracing_opentelemetry::layer().with_tracer(self.tracers.tracer(SCOPE))
    }

    /// Exports what is pending and stops. The exporters block, so they run on tokio's
    /// blocking pool; each request is bounded by the export's timeout.
    pub async fn shutdown(self) -> Result<(), RuntimeError> {
        let OtlpExport { meters, tracers } = self;
        tokio::task::spawn_blocking(move || {
            let spans = tracers.shutdown();
            let metrics = meters.shutdown();
            spans
                .map_err(|e| telemetry("exporting the last spans", e))
                .and(metrics.map_err(|e| telemetry("exporting the last metrics", e)))
        })
        .await
        .map_err(|e| telemetry("the export's shutdown", e))?
    }
}

/// A telemetry failure of `what`.
fn telemetry(what: &'static str, error: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Telemetry {
        what,
        reason: error.to_string(),
    }
}

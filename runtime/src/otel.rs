//! OpenTelemetry (feature `otel`): the runtime's metrics fed to an OTel meter, and each
//! handler's span joined to the trace the message's sender started.
//!
//! The metrics go through the `metrics` facade as always; [`MeterRecorder`] is a recorder
//! that turns them into OTel instruments on the meter given, so whatever exporter the
//! application's meter provider has (OTLP among them) receives them. The handler's
//! `message` span is a `tracing` span: with `tracing-opentelemetry`'s layer installed it
//! becomes an OTel span, and its parent is the span context the message carries in a W3C
//! `traceparent` message attribute or in SQS's `AWSTraceHeader` system attribute.

use crate::backend::Message;
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, KeyValue, metrics::Meter};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A `metrics` recorder that records into an OpenTelemetry meter: counters as `u64`
/// counters, gauges and histograms as `f64` ones, labels as attributes. Install it with
/// `metrics::set_global_recorder` before starting the balancer.
#[derive(Clone, Debug)]
pub struct MeterRecorder {
    /// The meter instruments are made on.
    meter: Meter,
}

impl MeterRecorder {
    /// A recorder making its instruments on `meter`.
    pub fn new(meter: Meter) -> MeterRecorder {
        MeterRecorder { meter }
    }
}

/// The labels of `key` as OTel attributes.
fn attributes(key: &Key) -> Vec<KeyValue> {
    key.labels()
        .map(|l| KeyValue::new(l.key().to_owned(), l.value().to_owned()))
        .collect()
}

/// An OTel counter with its attributes; `absolute` adds the difference from the last value.
struct OtelCounter {
    /// The instrument.
    counter: opentelemetry::metrics::Counter<u64>,
    /// The key's labels.
    attributes: Vec<KeyValue>,
    /// The total recorded so far, for `absolute`.
    total: AtomicU64,
}

impl CounterFn for OtelCounter {
    fn increment(&self, value: u64) {
        self.total.fetch_add(value, Ordering::Relaxed);
        self.counter.add(value, &self.attributes);
    }

    fn absolute(&self, value: u64) {
        let before = self.total.fetch_max(value, Ordering::Relaxed);
        if value > before {
            self.counter.add(value - before, &self.attributes);
        }
    }
}

/// An OTel gauge with its attributes and its current value (for increments).
struct OtelGauge {
    /// The instrument.
    gauge: opentelemetry::metrics::Gauge<f64>,
    /// The key's labels.
    attributes: Vec<KeyValue>,
    /// The current value's bits.
    value: AtomicU64,
}

impl OtelGauge {
    /// Moves the value by `f` and records it.
    fn update(&self, f: impl Fn(f64) -> f64) {
        let mut next = 0.0;
        let _ = self
            .value
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                next = f(f64::from_bits(bits));
                Some(next.to_bits())
            });
        self.gauge.record(next, &self.attributes);
    }
}

impl GaugeFn for OtelGauge {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }

    fn set(&self, value: f64) {
        self.update(|_| value);
    }
}

/// An OTel histogram with its attributes.
struct OtelHistogram {
    /// The instrument.
    histogram: opentelemetry::metrics::Histogram<f64>,
    /// The key's labels.
    attributes: Vec<KeyValue>,
}

impl HistogramFn for OtelHistogram {
    fn record(&self, value: f64) {
        self.histogram.record(value, &self.attributes);
    }
}

impl Recorder for MeterRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(OtelCounter {
            counter: self.meter.u64_counter(key.name().to_owned()).build(),
            attributes: attributes(key),
            total: AtomicU64::new(0),
        }))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(Arc::new(OtelGauge {
            gauge: self.meter.f64_gauge(key.name().to_owned()).build(),
            attributes: attributes(key),
            value: AtomicU64::new(0f64.to_bits()),
        }))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(OtelHistogram {
            histogram: self.meter.f64_histogram(key.name().to_owned()).build(),
            attributes: attributes(key),
        }))
    }
}

/// The span context `m` carries: its `traceparent` message attribute (W3C), else its
/// `AWSTraceHeader` system attribute (X-Ray).
pub(crate) fn sender_context(m: &Message) -> Option<Context> {
    let span = m
        .attribute("traceparent")
        .and_then(traceparent)
        .or_else(|| m.trace_header().and_then(xray))?;
    Some(Context::new().with_remote_span_context(span))
}

/// A W3C `traceparent`: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
fn traceparent(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || trace.len() != 32 || parent.len() != 16 || flags.len() != 2 {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    remote(trace, parent, flags & 1 == 1)
}

/// An X-Ray trace header: `Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>`.
fn xray(value: &str) -> Option<SpanContext> {
    let field = |name: &str| {
        value
            .split(';')
            .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix('='))
    };
    let root = field("Root")?.strip_prefix("1-")?;
    let (epoch, unique) = root.split_once('-')?;
    if epoch.len() != 8 || unique.len() != 24 {
        return None;
    }
    remote(
        &format!("{epoch}{unique}"),
        field("Parent")?,
        field("Sampled") == Some("1"),
    )
}

/// A remote span context from hex ids; `None` for invalid (or all-zero) ids.
fn remote(trace: &str, span: &str, sampled: bool) -> Option<SpanContext> {
    let trace = TraceId::from_hex(trace)
        .ok()
        .filter(|t| *t != TraceId::INVALID)?;
    let span = SpanId::from_hex(span)
        .ok()
        .filter(|s| *s != SpanId::INVALID)?;
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    Some(SpanContext::new(
        trace,
        span,
        flags,
        true,
        TraceState::default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_header_forms_give_the_sender_s_trace_and_span() {
        let w3c = traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        assert_eq!(
            w3c.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(w3c.span_id().to_string(), "b7ad6b7169203331");
        assert!(w3c.is_sampled() && w3c.is_remote());
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let aws = xray(header).unwrap();
        assert_eq!(
            aws.trace_id().to_string(),
            "5759e988bd862e3fe1be46a994272793"
        );
        assert_eq!(aws.span_id().to_string(), "53995c3f42cd8ad8");
        assert!(aws.is_sampled());
    }

    #[test]
    fn malformed_headers_give_no_parent() {
        for bad in [
            "",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71-01",
        ] {
            assert!(traceparent(bad).is_none(), "{bad}");
        }
        assert!(xray("Root=1-5759e988;Parent=53995c3f42cd8ad8").is_none());
        assert!(xray("Parent=53995c3f42cd8ad8;Sampled=1").is_none());
    }
}

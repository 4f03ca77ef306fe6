//! [`MeterRecorder`]: the runtime's metrics, reported through the `metrics` facade, turned
//! into OpenTelemetry instruments on the meter given, so whatever exporter the application's
//! meter provider has receives them.

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use opentelemetry::{KeyValue, metrics::Meter};
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

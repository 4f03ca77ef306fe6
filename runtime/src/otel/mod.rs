//! OpenTelemetry (feature `otel`): the runtime's metrics as OTel instruments, each handler's
//! span joined to the trace the message's sender started, and both exported over OTLP when
//! the application asks.
//!
//! The metrics go through the `metrics` facade as always; [`MeterRecorder`] turns them into
//! instruments on a meter. The handler's `message` span is a `tracing` span: with
//! `tracing-opentelemetry`'s layer installed it becomes an OTel span, and its parent is the
//! span context the message carries in a W3C `traceparent` message attribute or in SQS's
//! `AWSTraceHeader` system attribute. A `batch` span, whose messages may come from many
//! traces, links to each sender's span instead (OTel's convention for batch receives). [`Otlp`] sets up both for an OTLP collector in one
//! call; an application with its own providers uses [`MeterRecorder`] and its own layer.

mod context;
mod meter;
mod otlp;

pub(crate) use context::{sender_context, sender_span};
pub use meter::MeterRecorder;
pub use otlp::{Otlp, OtlpExport};

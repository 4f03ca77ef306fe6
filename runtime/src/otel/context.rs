//! The trace a message's sender started, read from the message: a W3C `traceparent` message
//! attribute, or SQS's `AWSTraceHeader` system attribute (X-Ray's format).

use crate::backend::Message;
use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

/// The span context `m` carries: its `traceparent` message attribute (W3C), else its
/// `AWSTraceHeader` system attribute (X-Ray).
pub(crate) fn sender_span(m: &Message) -> Option<SpanContext> {
    m.attribute("traceparent")
        .and_then(traceparent)
        .or_else(|| m.trace_header().and_then(xray))
}

/// The sender's span as a parent context, for the span that handles `m` alone.
pub(crate) fn sender_context(m: &Message) -> Option<Context> {
    Some(Context::new().with_remote_span_context(sender_span(m)?))
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

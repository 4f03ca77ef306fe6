//! `--listen`: `/healthz` and `/metrics` for the orchestrator and the scraper, served until
//! the worker has stopped (so a load balancer sees the instance turn unhealthy as it drains).

use crate::error::CliError;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use sqsbalancer_runtime::Monitor;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long one request may take, reading included: a stalled client holds nothing longer.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// The pause after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What the endpoints read.
#[derive(Clone)]
pub struct Endpoints {
    /// The instance's health and stats.
    pub monitor: Monitor,
    /// The process's metrics.
    pub metrics: PrometheusHandle,
}

/// Binds `addr`, before the balancer starts: a taken port fails the start, not a running
/// instance.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, CliError> {
    let failed = |e: std::io::Error| CliError::Setup {
        what: "--listen",
        reason: format!("{addr}: {e}"),
    };
    let listener = TcpListener::bind(addr).await.map_err(failed)?;
    let bound = listener.local_addr().map_err(failed)?;
    tracing::info!(listen = %bound, "serving /healthz and /metrics");
    Ok(listener)
}

/// Serves on `listener` until `stop` turns true.
pub fn spawn(
    listener: TcpListener,
    endpoints: Endpoints,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(serve(listener, endpoints, stop))
}

/// Accepts connections until `stop` turns true.
async fn serve(listener: TcpListener, endpoints: Endpoints, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, or the like: wait rather than spin on the error.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let endpoints = endpoints.clone();
        let service = hyper::service::service_fn(move |request| {
            let response = answer(&request, &endpoints);
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service);
        tokio::spawn(tokio::time::timeout(REQUEST_DEADLINE, connection));
    }
}

/// The response to one request.
fn answer(request: &Request<Incoming>, endpoints: &Endpoints) -> Response<Full<Bytes>> {
    match request.uri().path() {
        "/healthz" => {
            let health = endpoints.monitor.health();
            let (status, text) = if health.healthy {
                (StatusCode::OK, "healthy\n".to_owned())
            } else {
                let why = health
                    .last_error
                    .map_or_else(|| format!("{:?}", health.phase), |e| e.to_string());
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("unhealthy: {why}\n"),
                )
            };
            text_response(status, "text/plain; charset=utf-8", text)
        }
        "/metrics" => {
            endpoints.metrics.run_upkeep();
            let text = endpoints.metrics.render();
            text_response(StatusCode::OK, "text/plain; version=0.0.4", text)
        }
        _ => text_response(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    }
}

/// A response of `status` with `body` of `content_type`.
fn text_response(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

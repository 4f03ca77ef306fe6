//! An HTTP/1.1 server of the DynamoDB and SQS JSON protocols over the backend traits.
//!
//! Each request is taken apart in this order: the target (`X-Amz-Target`; unknown: 400
//! `UnknownOperationException`), the caller (the access key id of the SigV4 `Authorization`
//! header; missing: 403 `MissingAuthenticationTokenException`), the caller's backend (the
//! resolver's answer; none: 403 `UnrecognizedClientException`), then the [`FaultDecider`]'s
//! [`Fault`], which says whether and when the call is applied and what the caller gets. The
//! signature itself is not checked.
//!
//! Every sleep is on tokio's clock, which turmoil runs on simulated time; the `Date` header is
//! [`sim_now`](super::clock::sim_now) (hyper's own date header, from the wall clock, is off); request
//! ids count requests. Nothing reads the wall clock, OS randomness or a hash map's order.

use super::protocol::{self, Answer, Call, Failure, Outcome, Service};
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sqsbalancer_runtime::{QueueList, Sqs, Store};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};

/// What the server does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Apply the call and answer it.
    Serve,
    /// Answer `failure` instead: before the call is applied (`applied: false`, nothing
    /// changed), or after (`applied: true`: the call took effect, its answer is replaced).
    Fail {
        /// The error answered.
        failure: Failure,
        /// Whether the call is applied first.
        applied: bool,
    },
    /// Apply the call, send the head of its answer and half the body, then drop the
    /// connection.
    Reset,
    /// Never answer: apply the call or not, then hold the connection without a word.
    Hang {
        /// Whether the call is applied first.
        applied: bool,
    },
    /// Wait `before`, apply the call, wait `after`, answer.
    Delay {
        /// Before the call is applied.
        before: Duration,
        /// After it is applied, before the answer is sent.
        after: Duration,
    },
}

/// What the fault decider is told about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestInfo<'a> {
    /// The caller: the access key id its request was signed with (the instance name).
    pub caller: &'a str,
    /// The service.
    pub service: Service,
    /// The operation, as in the target header (`UpdateItem`, `ReceiveMessage`, ...).
    pub operation: &'a str,
}

/// Decides the fate of each request. It is asked once per request that names a known caller,
/// in arrival order (so it also sees, and may count, every such request); closures
/// `Fn(&RequestInfo) -> Fault` are deciders.
pub trait FaultDecider: Send + Sync + 'static {
    /// The fault for `request`.
    fn decide(&self, request: &RequestInfo<'_>) -> Fault;
}

impl<F> FaultDecider for F
where
    F: Fn(&RequestInfo<'_>) -> Fault + Send + Sync + 'static,
{
    fn decide(&self, request: &RequestInfo<'_>) -> Fault {
        self(request)
    }
}

/// Something that yields connections: turmoil's `TcpListener` in a simulation, tokio's in a
/// plain test.
pub trait Listener {
    /// A connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The next connection.
    fn accept(&self) -> impl Future<Output = io::Result<Self::Io>>;
}

impl Listener for turmoil::net::TcpListener {
    type Io = turmoil::net::TcpStream;

    async fn accept(&self) -> io::Result<Self::Io> {
        turmoil::net::TcpListener::accept(self)
            .await
            .map(|(s, _)| s)
    }
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;

    async fn accept(&self) -> io::Result<Self::Io> {
        tokio::net::TcpListener::accept(self).await.map(|(s, _)| s)
    }
}

type Resolve<B> = dyn Fn(&str) -> Option<Arc<B>> + Send + Sync;

/// The server: a resolver from caller to backend, a fault decider, and a request counter.
pub struct Server<B> {
    resolve: Box<Resolve<B>>,
    faults: Box<dyn FaultDecider>,
    table: Option<String>,
    clock: fn() -> SystemTime,
    requests: AtomicU64,
    answered: AtomicU64,
}

impl<B> std::fmt::Debug for Server<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("table", &self.table)
            .field("requests", &self.requests)
            .field("answered", &self.answered)
            .finish_non_exhaustive()
    }
}

impl<B: Store + QueueList + Sqs> Server<B> {
    /// A server that serves every request (no faults) of the callers `resolve` knows.
    pub fn new(resolve: impl Fn(&str) -> Option<Arc<B>> + Send + Sync + 'static) -> Server<B> {
        Server {
            resolve: Box::new(resolve),
            faults: Box::new(|_: &RequestInfo<'_>| Fault::Serve),
            table: None,
            clock: super::clock::sim_now,
            requests: AtomicU64::new(0),
            answered: AtomicU64::new(0),
        }
    }

    /// Decides each request's fate with `faults`.
    pub fn with_faults(mut self, faults: impl FaultDecider) -> Server<B> {
        self.faults = Box::new(faults);
        self
    }

    /// Answers DynamoDB calls on any other table than `table` with 400
    /// `ResourceNotFoundException`, as DynamoDB does (by default every name is taken).
    pub fn with_table(mut self, table: &str) -> Server<B> {
        self.table = Some(table.to_owned());
        self
    }

    /// How many requests arrived (whole heads read), whatever became of them.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// How many answers were handed to the connection (a reset one included; a hung request
    /// has none).
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::SeqCst)
    }

    /// Accepts connections from `listener` and serves each in a task of its own, until
    /// accepting fails.
    pub async fn serve<L: Listener>(self: Arc<Self>, listener: L) -> io::Result<()> {
        loop {
            let io = listener.accept().await?;
            tokio::spawn(Arc::clone(&self).serve_connection(io));
        }
    }

    /// Serves the requests of one connection until it closes (or is dropped by a fault).
    pub async fn serve_connection<I>(self: Arc<Self>, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = service_fn(move |req| Arc::clone(&self).handle(req));
        let mut builder = http1::Builder::new();
        builder.auto_date_header(false);
        // An error is a fault's reset or the client gone: either way the connection is over.
        let _ = builder.serve_connection(TokioIo::new(io), service).await;
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Reply>, Infallible> {
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let (parts, body) = req.into_parts();
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let target_text = header("x-amz-target").unwrap_or_default().to_owned();
        let Some((service, operation)) = protocol::target(&target_text) else {
            let a = protocol::unknown_operation(None, &target_text);
            return Ok(self.response(n, a, false));
        };
        let Some(caller) = header("authorization").and_then(protocol::access_key) else {
            let a = protocol::error_answer(
                service,
                403,
                "MissingAuthenticationTokenException",
                "Request is missing Authentication Token",
                None,
            );
            return Ok(self.response(n, a, false));
        };
        let Some(backend) = (self.resolve)(caller) else {
            let a = protocol::error_answer(
                service,
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
                None,
            );
            return Ok(self.response(n, a, false));
        };
        let info = RequestInfo {
            caller,
            service,
            operation,
        };
        let fault = self.faults.decide(&info);
        let operation = operation.to_owned();
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                // The client went away mid-request: nothing is applied, nobody hears this.
                let message = format!("the request body was cut off: {e}");
                let a =
                    protocol::error_answer(service, 400, "SerializationException", &message, None);
                return Ok(self.response(n, a, false));
            }
        };
        let apply = || self.apply(&backend, service, &operation, &body);
        let answer = match fault {
            Fault::Serve => apply().await,
            Fault::Fail {
                failure,
                applied: false,
            } => protocol::failure(service, failure),
            Fault::Fail {
                failure,
                applied: true,
            } => {
                apply().await;
                protocol::failure(service, failure)
            }
            Fault::Reset => return Ok(self.response(n, apply().await, true)),
            Fault::Hang { applied } => {
                if applied {
                    apply().await;
                }
                // Never answered: the future stays pending until the connection is dropped.
                match std::future::pending::<Infallible>().await {}
            }
            Fault::Delay { before, after } => {
                tokio::time::sleep(before).await;
                let a = apply().await;
                tokio::time::sleep(after).await;
                a
            }
        };
        Ok(self.response(n, answer, false))
    }

    /// Decodes the request, calls the backend and encodes its answer.
    async fn apply(&self, backend: &B, service: Service, operation: &str, body: &[u8]) -> Answer {
        let call = match protocol::decode(service, operation, body, tokio::time::Instant::now()) {
            Ok(c) => c,
            Err(a) => return a,
        };
        if let (
            Some(want),
            Call::UpdateItem { table, .. }
            | Call::Query { table, .. }
            | Call::BatchGetItem { table, .. },
        ) = (&self.table, &call)
            && want != table
        {
            return protocol::error_answer(
                service,
                400,
                "ResourceNotFoundException",
                &format!("Requested resource not found: Table: {table} not found"),
                None,
            );
        }
        let result = match &call {
            Call::UpdateItem { write, .. } => {
                backend.update(write.clone()).await.map(Outcome::Item)
            }
            Call::Query { query, start, .. } => backend
                .query(query.clone(), start.clone())
                .await
                .map(Outcome::Page),
            Call::BatchGetItem { keys, .. } => {
                backend.batch_get(keys.clone()).await.map(Outcome::Batch)
            }
            Call::ReceiveMessage { receive, .. } => backend
                .receive(receive.clone())
                .await
                .map(Outcome::Messages),
            Call::DeleteMessageBatch { queue, entries } => backend
                .delete_batch(queue.clone(), entries.iter().map(|e| e.1.clone()).collect())
                .await
                .map(Outcome::Entries),
            Call::ChangeMessageVisibilityBatch { queue, entries } => backend
                .change_visibility_batch(
                    queue.clone(),
                    entries.iter().map(|e| (e.1.clone(), e.2)).collect(),
                )
                .await
                .map(Outcome::Entries),
            Call::ListQueues {
                prefix, next_token, ..
            } => backend
                .list(prefix.clone(), next_token.clone())
                .await
                .map(Outcome::Queues),
        };
        protocol::encode(&call, result)
    }

    /// The HTTP response of answer `a` to request `n`; `cut`: only the head and half the body
    /// go out before the connection drops.
    fn response(&self, n: u64, a: Answer, cut: bool) -> Response<Reply> {
        self.answered.fetch_add(1, Ordering::SeqCst);
        let date = DateTime::from((self.clock)())
            .fmt(Format::HttpDate)
            .unwrap_or_default();
        let body = Bytes::from(a.body);
        let len = body.len();
        let mut r = Response::builder()
            .status(a.status)
            .header("content-type", protocol::CONTENT_TYPE)
            .header("content-length", len)
            .header("date", date)
            .header("x-amzn-requestid", format!("sim-{n:08}"));
        for (name, value) in a.headers {
            r = r.header(name, value);
        }
        let reply = if cut {
            Reply {
                chunk: Some(body.slice(..len / 2)),
                cut: Some(Box::pin(tokio::time::sleep(Duration::from_millis(1)))),
                len: len as u64,
            }
        } else {
            Reply {
                chunk: (!body.is_empty()).then_some(body),
                cut: None,
                len: len as u64,
            }
        };
        r.body(reply).unwrap_or_else(|e| {
            let text = Bytes::from(format!("unencodable answer: {e}"));
            let mut fallback = Response::new(Reply {
                len: text.len() as u64,
                chunk: Some(text),
                cut: None,
            });
            *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
    }
}

/// A response body: one chunk; or, cut, part of one, then (after a tick, so that hyper has
/// flushed it) an error that makes hyper drop the connection.
struct Reply {
    chunk: Option<Bytes>,
    cut: Option<Pin<Box<tokio::time::Sleep>>>,
    len: u64,
}

/// The error a cut response ends with.
#[derive(Debug)]
struct Cut;

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the connection was reset mid-response (injected fault)")
    }
}

impl std::error::Error for Cut {}

impl Body for Reply {
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        if let Some(c) = self.chunk.take() {
            return Poll::Ready(Some(Ok(Frame::data(c))));
        }
        match self.cut.as_mut() {
            None => Poll::Ready(None),
            Some(tick) => match tick.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => {
                    self.cut = None;
                    Poll::Ready(Some(Err(Cut)))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunk.is_none() && self.cut.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

//! A fault-injecting HTTP proxy between one worker and moto: it forwards each call, records
//! when it arrived and when moto answered, and on request cuts DynamoDB off, answers each
//! receive 500 once moto has answered it, or holds one chosen call without ever answering.
//!
//! A call's interval at the proxy contains its interval at moto (it arrives here first and its
//! answer comes back here last), so receives that do not overlap here did not overlap at moto.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// A call to hold unanswered: the next one of `action` whose body contains `containing`.
#[derive(Clone, Debug)]
pub struct Hang {
    /// The operation, as in `X-Amz-Target` (`Query`, `UpdateItem`, `ReceiveMessage`).
    pub action: &'static str,
    /// A string the request body must contain, if any.
    pub containing: Option<String>,
}

/// One call through the proxy.
#[derive(Clone, Debug)]
pub struct Call {
    /// The operation, as in `X-Amz-Target`.
    pub action: String,
    /// Whether it went to DynamoDB (else SQS).
    pub dynamo: bool,
    /// The request body (JSON).
    pub body: String,
    /// When it reached the proxy.
    pub arrived: Instant,
    /// Whether it was sent on to moto (a held call never is).
    pub forwarded: bool,
    /// When moto's answer came back and the status moto gave; `None` while open.
    pub answered: Option<(Instant, u16)>,
}

impl Call {
    /// The queue a receive names.
    pub fn queue_url(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        v["QueueUrl"].as_str().map(str::to_owned)
    }

    /// Whether this is a write of the record of instance `id` that moto applied.
    pub fn applied_write_of(&self, id: &str) -> bool {
        self.dynamo
            && self.action == "UpdateItem"
            && self.body.contains(&format!("\"instance#{id}\""))
            && matches!(self.answered, Some((_, 200)))
    }
}

/// The faults switched on.
#[derive(Default)]
struct Faults {
    /// DynamoDB calls are held unanswered and never forwarded.
    dynamo_cut: bool,
    /// Each receive is forwarded and, once moto has answered, answered 500 instead.
    receives_fail: bool,
    /// The next call matching is held unanswered and never forwarded.
    hang: Option<Hang>,
}

/// What the proxy's connections share.
#[derive(Default)]
struct State {
    faults: Faults,
    calls: Vec<Call>,
    /// When the call chosen by [`Hang`] arrived.
    hung_at: Option<Instant>,
}

/// What one request meets.
enum Fate {
    Forward { receive_fails: bool },
    Hold,
}

/// The proxy, listening on a free loopback port until dropped.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// A proxy to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("bound"));
        let state: Arc<Mutex<State>> = Arc::default();
        let upstream: Arc<str> = upstream.into();
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            // Dropped with the task, which ends every connection (held calls included).
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (state, upstream, client) =
                    (Arc::clone(&shared), Arc::clone(&upstream), client.clone());
                let service = service_fn(move |req| {
                    relay(
                        Arc::clone(&state),
                        Arc::clone(&upstream),
                        client.clone(),
                        req,
                    )
                });
                connections
                    .spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
                while connections.try_join_next().is_some() {}
            }
        });
        Proxy {
            endpoint,
            state,
            task,
        }
    }

    /// From now on DynamoDB is unreachable and every receive is answered 500 at its end.
    pub fn cut_dynamo_and_fail_receives(&self) {
        let mut s = self.lock();
        s.faults.dynamo_cut = true;
        s.faults.receives_fail = true;
    }

    /// Holds every DynamoDB call unanswered while `cut`; from then on, forwards them again.
    pub fn cut_dynamo(&self, cut: bool) {
        self.lock().faults.dynamo_cut = cut;
    }

    /// Holds the next call matching `hang` without ever answering it.
    pub fn hang_next(&self, hang: Hang) {
        self.lock().faults.hang = Some(hang);
    }

    /// When the call chosen by [`Proxy::hang_next`] arrived, once it has.
    pub fn hung_at(&self) -> Option<Instant> {
        self.lock().hung_at
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("not poisoned")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Records `req`, applies the faults and forwards it to `upstream` unless it is held.
async fn relay(
    state: Arc<Mutex<State>>,
    upstream: Arc<str>,
    client: Client<HttpConnector, Full<Bytes>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (mut parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (service, action) = target.split_once('.').unwrap_or(("", target));
    let call = Call {
        action: action.to_owned(),
        dynamo: service.starts_with("DynamoDB"),
        body: String::from_utf8_lossy(&body).into_owned(),
        arrived: Instant::now(),
        forwarded: false,
        answered: None,
    };
    let (index, fate) = admit(&state, call);
    let Fate::Forward { receive_fails } = fate else {
        return std::future::pending().await;
    };
    // Moto makes queue URLs from the Host header: keep them those of moto itself, the same
    // behind every proxy.
    parts.headers.remove(hyper::header::HOST);
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("{upstream}{path}").parse().expect("a URI");
    let answer = match client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
    {
        Ok(r) => {
            let (parts, body) = r.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Response::from_parts(parts, Full::new(body))
        }
        Err(_) => status(StatusCode::BAD_GATEWAY),
    };
    state.lock().expect("not poisoned").calls[index].answered =
        Some((Instant::now(), answer.status().as_u16()));
    if receive_fails {
        let mut failed = Response::new(Full::new(Bytes::from_static(
            br#"{"__type":"InternalError","message":"injected by the test proxy"}"#,
        )));
        *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        return Ok(failed);
    }
    Ok(answer)
}

/// Records `call` and decides its fate.
fn admit(state: &Mutex<State>, mut call: Call) -> (usize, Fate) {
    let mut s = state.lock().expect("not poisoned");
    let chosen = s.faults.hang.as_ref().is_some_and(|h| {
        h.action == call.action
            && h.containing
                .as_ref()
                .is_none_or(|c| call.body.contains(c.as_str()))
    });
    let fate = if chosen {
        s.faults.hang = None;
        s.hung_at = Some(call.arrived);
        Fate::Hold
    } else if call.dynamo && s.faults.dynamo_cut {
        Fate::Hold
    } else {
        Fate::Forward {
            receive_fails: s.faults.receives_fail && call.action == "ReceiveMessage",
        }
    };
    call.forwarded = matches!(fate, Fate::Forward { .. });
    s.calls.push(call);
    (s.calls.len() - 1, fate)
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}

/// One receive at moto, as the proxy of `worker` saw it.
#[derive(Clone, Debug)]
pub struct Poll {
    /// The worker it came from.
    pub worker: String,
    /// The queue.
    pub queue: String,
    /// When it reached the proxy.
    pub from: Instant,
    /// When moto answered it (`now` while it is open).
    pub to: Instant,
}

/// The receives each worker's proxy sent on to moto.
pub fn polls(proxies: &[(&str, &Proxy)]) -> Vec<Poll> {
    let now = Instant::now();
    let mut out = Vec::new();
    for (worker, proxy) in proxies {
        for c in proxy.calls() {
            let Some(queue) = c.queue_url() else { continue };
            if c.action == "ReceiveMessage" && c.forwarded {
                out.push(Poll {
                    worker: (*worker).to_owned(),
                    queue,
                    from: c.arrived,
                    to: c.answered.map_or(now, |(at, _)| at),
                });
            }
        }
    }
    out
}

/// Fails when receives of two workers on one queue were open at moto at once.
pub fn assert_exclusive(polls: &[Poll]) {
    let mut by_queue: BTreeMap<&str, Vec<&Poll>> = BTreeMap::new();
    for p in polls {
        by_queue.entry(&p.queue).or_default().push(p);
    }
    for (queue, mut ps) in by_queue {
        ps.sort_by_key(|p| p.from);
        for (i, a) in ps.iter().enumerate() {
            for b in ps[i + 1..].iter().take_while(|b| b.from < a.to) {
                assert!(
                    a.worker == b.worker,
                    "{queue}: {} and {} received at once for {:?}",
                    a.worker,
                    b.worker,
                    a.to.min(b.to) - b.from
                );
            }
        }
    }
}

/// The longest stretch of `[from, to]` in which no receive was open on one of `queues`, and
/// that queue.
pub fn longest_gap(
    polls: &[Poll],
    queues: &[String],
    from: Instant,
    to: Instant,
) -> (Duration, String) {
    let mut worst = (Duration::ZERO, String::new());
    for q in queues {
        let mut spans: Vec<(Instant, Instant)> = polls
            .iter()
            .filter(|p| &p.queue == q && p.to > from && p.from < to)
            .map(|p| (p.from.max(from), p.to.min(to)))
            .collect();
        spans.sort();
        let mut covered = from;
        let mut gap = Duration::ZERO;
        for (start, end) in spans {
            gap = gap.max(start.saturating_duration_since(covered));
            covered = covered.max(end);
        }
        gap = gap.max(to.saturating_duration_since(covered));
        if gap > worst.0 {
            worst = (gap, q.clone());
        }
    }
    worst
}

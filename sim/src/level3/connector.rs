//! The SDK's HTTP client over turmoil's network, and the SDK clients of one simulated host.
//!
//! [`SimHttpClient`] mirrors aws-smithy-http-client's hyper client (`client.rs`: `Adapter`,
//! `ConnectTimeout`, `HttpReadTimeout`, `downcast_error`), whose builder cannot take a custom
//! TCP connector (`wrap_connector` is crate-private): hyper-util's pooling legacy client over a
//! connector that dials `turmoil::net::TcpStream`s to one host and port, one connector per
//! distinct [`HttpConnectorSettings`] as the SDK's caches them, the connect timeout and read
//! timeout of those settings, connection capture so that the SDK can poison a connection after
//! a transient error, and errors mapped to the same [`ConnectorError`] kinds (timeouts, I/O,
//! user, other with hyper's incomplete message transient) so that the SDK's retry
//! classification is production's.
//!
//! # Determinism: what was found, and what the harness must do
//!
//! * Retry jitter: the standard retry strategy (aws-smithy-runtime 1.11,
//!   `retries/strategy/standard.rs`) multiplies each backoff by `fastrand::f64()`, fastrand's
//!   *thread-local* generator, which is seeded from OS entropy. turmoil runs every host on the
//!   thread that calls `Sim::run`/`step`, so the harness must call [`seed_thread_rng`] with the
//!   simulation's seed on that thread before the simulation starts (and again before every
//!   run on a reused thread). The same generator also draws the lazy credentials cache's
//!   buffer-time jitter (`identity/cache/lazy.rs`) and the fork that seeds every default
//!   invocation-id generator.
//! * Invocation ids (`amz-sdk-invocation-id`): `aws_runtime`'s `InvocationIdInterceptor`
//!   draws UUIDs from a `DefaultInvocationIdGenerator` forked from that thread-local generator
//!   when the client is built; [`SimClients`] sets an explicit
//!   `DefaultInvocationIdGenerator::with_seed` per client instead (seed from
//!   [`SimClients::seed`]). The server ignores the header; only a trace would see it.
//! * Retry token buckets: a default retry partition (`dynamodb`, `sqs`) shares one token bucket
//!   per process in a `static` map, so every simulated host (and every test running in
//!   parallel in the same process) would drain one bucket. [`SimClients`] gives each client a
//!   custom partition (its own bucket, with the same defaults), as each real host has its own
//!   process.
//! * Time: signing, clock skew, the retry token bucket and the identity cache read the client's
//!   `TimeSource`: [`SimTimeSource`] is [`sim_now`]. Sleeps (backoff, attempt
//!   and operation timeouts, stalled-stream grace) go through `TokioSleep`, tokio's sleep,
//!   which turmoil runs on simulated time; so do this connector's connect and read timeouts and
//!   hyper-util's pool timer.
//! * Clients hold a hyper-util pool whose connection tasks live on the tokio runtime of the
//!   host that built them: build a host's clients inside its turmoil closure, anew after every
//!   restart (turmoil replaces the runtime).

use super::clock::sim_now;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_runtime::invocation_id::DefaultInvocationIdGenerator;
use aws_sdk_sqs::config::retry::RetryPartition;
use aws_smithy_async::rt::sleep::{SharedAsyncSleep, TokioSleep};
use aws_smithy_async::time::{SharedTimeSource, TimeSource};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use http::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{
    CaptureConnection, Connected, Connection, capture_connection,
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sqsbalancer_runtime::Timeouts;
use sqsbalancer_runtime::aws::{AwsBackend, dynamodb_config, sqs_config};
use std::collections::BTreeMap;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

/// Seeds fastrand's thread-local generator, from which the SDK draws its retry jitter (and
/// more: see the module documentation). Call it on the thread that runs the simulation,
/// before the simulation starts.
pub fn seed_thread_rng(seed: u64) {
    fastrand::seed(seed);
}

/// The SDK's clock in a simulation: [`sim_now`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SimTimeSource;

impl TimeSource for SimTimeSource {
    fn now(&self) -> SystemTime {
        sim_now()
    }
}

/// The connect and read timeouts of one connector.
type SettingsKey = (Option<Duration>, Option<Duration>);

/// An SDK HTTP client whose every connection is a `turmoil::net::TcpStream` to one host and
/// port, whatever the request's URI says.
#[derive(Clone)]
pub struct SimHttpClient {
    host: Arc<str>,
    port: u16,
    connectors: Arc<Mutex<BTreeMap<SettingsKey, SharedHttpConnector>>>,
}

impl fmt::Debug for SimHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimHttpClient")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl SimHttpClient {
    /// A client that connects to `host:port` on turmoil's network.
    pub fn new(host: &str, port: u16) -> SimHttpClient {
        SimHttpClient {
            host: Arc::from(host),
            port,
            connectors: Arc::default(),
        }
    }

    /// As a shared client, for a configuration builder.
    pub fn shared(self) -> SharedHttpClient {
        SharedHttpClient::new(self)
    }
}

impl HttpClient for SimHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut cache = self
            .connectors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .entry(key)
            .or_insert_with(|| {
                let dial = Dial {
                    host: Arc::clone(&self.host),
                    port: self.port,
                    connect_timeout: key.0,
                };
                let mut builder = Client::builder(TokioExecutor::new());
                // As the SDK's: the pool's idle timer needs a timer (tokio's, simulated here).
                builder.pool_timer(TokioTimer::new());
                SharedHttpConnector::new(SimConnector {
                    client: builder.build(dial),
                    read_timeout: key.1,
                })
            })
            .clone()
    }
}

/// One connector: a pooling hyper client over [`Dial`].
struct SimConnector {
    client: Client<Dial, SdkBody>,
    read_timeout: Option<Duration>,
}

impl fmt::Debug for SimConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConnector")
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

/// The connection's metadata for the SDK, with its poisoning (as the SDK's adapter does).
fn smithy_connection(capture: &CaptureConnection) -> Option<ConnectionMetadata> {
    capture.connection_metadata().as_ref()?;
    let poison = capture.clone();
    Some(
        ConnectionMetadata::builder()
            .proxied(false)
            .poison_fn(move || {
                if let Some(c) = poison.connection_metadata().as_ref() {
                    c.poison();
                }
            })
            .build(),
    )
}

impl HttpConnector for SimConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let mut request = match request.try_into_http1x() {
            Ok(r) => r,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let capture = capture_connection(&mut request);
        if let Some(smithy) = request.extensions().get::<CaptureSmithyConnection>() {
            smithy.set_connection_retriever(move || smithy_connection(&capture));
        }
        let send = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                None => send.await.map_err(|e| connector_error(e.into()))?,
                Some(t) => match tokio::time::timeout(t, send).await {
                    Ok(r) => r.map_err(|e| connector_error(e.into()))?,
                    Err(_) => {
                        return Err(ConnectorError::timeout(Box::new(TimedOut {
                            what: "HTTP read",
                            after: t,
                        })));
                    }
                },
            };
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

fn find_source<'a, E: Error + 'static>(err: &'a (dyn Error + 'static)) -> Option<&'a E> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// The SDK's `downcast_error`: a timeout anywhere in the chain is a timeout; then hyper's
/// kinds; then hyper-util's connect errors are I/O; anything else is "other".
fn connector_error(err: BoxError) -> ConnectorError {
    if find_source::<TimedOut>(err.as_ref()).is_some() {
        return ConnectorError::timeout(err);
    }
    if let Some(h) = find_source::<hyper::Error>(err.as_ref()) {
        if h.is_timeout() {
            return ConnectorError::timeout(err);
        }
        if h.is_user() {
            return ConnectorError::user(err);
        }
        if h.is_closed() || h.is_canceled() || find_source::<io::Error>(h).is_some() {
            return ConnectorError::io(err);
        }
        if h.is_incomplete_message() {
            return ConnectorError::other(err, Some(ErrorKind::TransientError));
        }
        return ConnectorError::other(err, None);
    }
    if let Some(h) = find_source::<hyper_util::client::legacy::Error>(err.as_ref())
        && (h.is_connect() || find_source::<io::Error>(h).is_some())
    {
        return ConnectorError::io(err);
    }
    ConnectorError::other(err, None)
}

/// A connect or read timeout.
#[derive(Debug)]
struct TimedOut {
    what: &'static str,
    after: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} timeout occurred after {:?}", self.what, self.after)
    }
}

impl Error for TimedOut {}

/// Dials the host on turmoil's network, within the connect timeout.
#[derive(Clone)]
struct Dial {
    host: Arc<str>,
    port: u16,
    connect_timeout: Option<Duration>,
}

impl tower_service::Service<Uri> for Dial {
    type Response = SimStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<SimStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let target = (self.host.to_string(), self.port);
        let timeout = self.connect_timeout;
        Box::pin(async move {
            let connect = turmoil::net::TcpStream::connect(target);
            let stream = match timeout {
                None => connect.await?,
                Some(t) => match tokio::time::timeout(t, connect).await {
                    Ok(s) => s?,
                    Err(_) => {
                        return Err(Box::new(TimedOut {
                            what: "HTTP connect",
                            after: t,
                        }) as BoxError);
                    }
                },
            };
            Ok(SimStream(TokioIo::new(stream)))
        })
    }
}

/// A turmoil TCP stream as hyper's I/O and hyper-util's connection.
struct SimStream(TokioIo<turmoil::net::TcpStream>);

impl Connection for SimStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for SimStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for SimStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// The SDK clients of one simulated host: as whom they sign, where they connect, and this
/// project's timeouts.
#[derive(Clone, Debug)]
pub struct SimClients {
    instance: String,
    host: String,
    port: u16,
    timeouts: Timeouts,
    credentials: SharedCredentialsProvider,
    seed: u64,
}

impl SimClients {
    /// The clients of instance `instance` (also its access key id, by which the server knows
    /// it), connecting to the server at `host:port` on turmoil's network, with `timeouts`.
    /// Credentials are [`SimClients::static_credentials`] unless given.
    pub fn new(instance: &str, host: &str, port: u16, timeouts: Timeouts) -> SimClients {
        SimClients {
            instance: instance.to_owned(),
            host: host.to_owned(),
            port,
            timeouts,
            credentials: SharedCredentialsProvider::new(Self::static_credentials(instance)),
            seed: 0,
        }
    }

    /// Fixed credentials whose access key id is `instance`.
    pub fn static_credentials(instance: &str) -> Credentials {
        Credentials::new(instance, "sim-secret", None, None, "sqsbalancer-sim")
    }

    /// Credentials from `provider` (a stalling one, say); its access key id must be the
    /// instance name for the server to know the caller.
    pub fn credentials(mut self, provider: impl ProvideCredentials + 'static) -> SimClients {
        self.credentials = SharedCredentialsProvider::new(provider);
        self
    }

    /// The seed of the clients' invocation-id generators (DynamoDB's draws from `seed`,
    /// SQS's from `seed + 1`).
    pub fn seed(mut self, seed: u64) -> SimClients {
        self.seed = seed;
        self
    }

    /// The shared configuration: region us-east-1, endpoint `http://<host>:<port>`, the
    /// credentials, a [`SimHttpClient`], tokio's sleep, [`SimTimeSource`] and the latest
    /// behavior version.
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(format!("http://{}:{}", self.host, self.port))
            .credentials_provider(self.credentials.clone())
            .http_client(SimHttpClient::new(&self.host, self.port).shared())
            .sleep_impl(SharedAsyncSleep::new(TokioSleep::new()))
            .time_source(SharedTimeSource::new(SimTimeSource))
            .build()
    }

    /// The DynamoDB client: [`dynamodb_config`] of [`SimClients::sdk_config`], with a retry
    /// partition and an invocation-id generator of its own.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        self.dynamodb_on(&self.sdk_config())
    }

    fn dynamodb_on(&self, sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
        let config = dynamodb_config(sdk, &self.timeouts)
            .to_builder()
            .retry_partition(self.partition("dynamodb"))
            .invocation_id_generator(DefaultInvocationIdGenerator::with_seed(self.seed))
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// The SQS client: [`sqs_config`] of [`SimClients::sdk_config`], with a retry partition
    /// and an invocation-id generator of its own.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        self.sqs_on(&self.sdk_config())
    }

    fn sqs_on(&self, sdk: &SdkConfig) -> aws_sdk_sqs::Client {
        let config = sqs_config(sdk, &self.timeouts)
            .to_builder()
            .retry_partition(self.partition("sqs"))
            .invocation_id_generator(DefaultInvocationIdGenerator::with_seed(
                self.seed.wrapping_add(1),
            ))
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    /// A retry partition (token bucket) of this host's `service` client alone: the SDK keeps
    /// its buckets in a process-wide map by name, so the name holds the seed, or one run of a
    /// swarm would drain another's.
    fn partition(&self, service: &str) -> RetryPartition {
        RetryPartition::custom(format!("{}-{}-{service}", self.instance, self.seed)).build()
    }

    /// The runtime's AWS backend on both clients (one shared configuration, so one HTTP client
    /// and connection pool, as in production), for coordination table `table`.
    pub fn backend(&self, table: &str) -> AwsBackend {
        let sdk = self.sdk_config();
        AwsBackend::from_clients(self.dynamodb_on(&sdk), self.sqs_on(&sdk), table)
    }
}

//! `sqsbalancer worker`: one real instance against AWS (or an emulator), with a handler that
//! prints each message or runs a command for it. SIGTERM or SIGINT stop it gracefully.

use crate::error::CliError;
use clap::Args;
use sqsbalancer_core::Config;
use sqsbalancer_runtime::aws::{AwsBackend, AwsSettings, Billing, ensure_table};
use sqsbalancer_runtime::{Balancer, FailureBackoff, HandlerError, Message, Timeouts};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The worker's flags: every configuration option, and one handler.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// An endpoint for SQS and DynamoDB instead of AWS's (moto, LocalStack).
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
    /// The AWS region (default: from the environment and profile).
    #[arg(long)]
    region: Option<String>,
    /// The DynamoDB coordination table (created if missing).
    #[arg(long)]
    table: String,
    /// The application name shared by every instance of the fleet.
    #[arg(long)]
    app: String,
    /// Only queues whose name matches this regex.
    #[arg(long, value_name = "REGEX")]
    queue_pattern: Option<String>,
    /// This instance's id (default: the pod, ECS container or host name, the process id and a
    /// random suffix).
    #[arg(long)]
    instance_id: Option<String>,
    /// e.g. 10s or 200ms.
    #[arg(long, value_parser = crate::sim::duration)]
    heartbeat_interval: Option<Duration>,
    /// e.g. 30s.
    #[arg(long, value_parser = crate::sim::duration)]
    heartbeat_timeout: Option<Duration>,
    /// e.g. 30s.
    #[arg(long, value_parser = crate::sim::duration)]
    rebalance_delay: Option<Duration>,
    /// e.g. 5m.
    #[arg(long, value_parser = crate::sim::duration)]
    discovery_interval: Option<Duration>,
    /// How long a received message stays invisible, whole seconds (e.g. 30s).
    #[arg(long, value_parser = crate::sim::duration)]
    visibility_timeout: Option<Duration>,
    /// Long-poll wait, whole seconds up to 20 (e.g. 20s).
    #[arg(long, value_parser = crate::sim::duration)]
    wait_time: Option<Duration>,
    /// Messages per receive (1..=10).
    #[arg(long)]
    max_messages: Option<u32>,
    /// Concurrent handlers.
    #[arg(long)]
    workers: Option<usize>,
    /// Received messages waiting for a worker, at most.
    #[arg(long)]
    work_queue: Option<usize>,
    /// e.g. 30s.
    #[arg(long, value_parser = crate::sim::duration)]
    shutdown_timeout: Option<Duration>,
    /// This instance's capacity weight.
    #[arg(long, value_name = "W")]
    capacity: Option<u32>,
    /// Fail a handler still running after this long, e.g. 5m (default: no limit).
    #[arg(long, value_parser = crate::sim::duration)]
    handler_timeout: Option<Duration>,
    /// Retry a failure after this delay, doubling per receive (default: after the
    /// visibility timeout), e.g. 5s.
    #[arg(long, value_parser = crate::sim::duration)]
    failure_backoff: Option<Duration>,
    /// The longest failure backoff, e.g. 15m.
    #[arg(long, value_parser = crate::sim::duration, requires = "failure_backoff", default_value = "15m")]
    failure_backoff_max: Duration,
    /// Print one JSON line per handled message on stdout (logs go to stderr).
    #[arg(long, conflicts_with = "exec", required_unless_present = "exec")]
    print: bool,
    /// Run this shell command per message: the body on stdin; SQS_MESSAGE_ID, SQS_QUEUE_URL,
    /// SQS_RECEIVE_COUNT and SQS_ATTR_ plus each string or number attribute's name in the
    /// environment; exit 0 means success.
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
}

impl WorkerArgs {
    fn config(&self) -> Config {
        let mut c = Config::new(&self.app, &self.table);
        c.instance_id = Some(
            self.instance_id
                .clone()
                .unwrap_or_else(sqsbalancer_runtime::instance_id_from_environment),
        );
        c.queue_filter_pattern = self.queue_pattern.clone();
        let set = |field: &mut Duration, v: Option<Duration>| {
            if let Some(v) = v {
                *field = v;
            }
        };
        set(&mut c.heartbeat_interval, self.heartbeat_interval);
        set(&mut c.heartbeat_timeout, self.heartbeat_timeout);
        set(&mut c.rebalance_delay, self.rebalance_delay);
        set(&mut c.queue_discovery_interval, self.discovery_interval);
        set(&mut c.shutdown_timeout, self.shutdown_timeout);
        if let Some(v) = self.visibility_timeout {
            c.sqs.visibility_timeout = v;
        }
        if let Some(v) = self.wait_time {
            c.sqs.wait_time = v;
        }
        if let Some(v) = self.max_messages {
            c.sqs.max_messages = v;
        }
        if let Some(v) = self.workers {
            c.worker_pool_size = v;
        }
        if let Some(v) = self.work_queue {
            c.work_queue_size = v;
        }
        if let Some(v) = self.capacity {
            c.capacity = v;
        }
        c
    }
}

/// Runs the worker until SIGTERM or SIGINT, then stops it gracefully.
pub fn run(args: WorkerArgs) -> Result<(), CliError> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: WorkerArgs) -> Result<(), CliError> {
    let cfg = args.config();
    let instance = cfg.instance_id.clone().unwrap_or_default();
    let mut settings = AwsSettings::default();
    settings.endpoint_url.clone_from(&args.endpoint_url);
    settings.region.clone_from(&args.region);
    settings.timeouts = Timeouts::of(&cfg);
    let aws = Arc::new(AwsBackend::connect(&settings, &args.table).await);
    // Every option is checked before the first AWS call.
    let mut balancer = Balancer::new(cfg, Arc::clone(&aws))?;
    if let Some(t) = args.handler_timeout {
        balancer = balancer.with_handler_timeout(t);
    }
    if let Some(base) = args.failure_backoff {
        let backoff = FailureBackoff::new(base, args.failure_backoff_max);
        balancer = balancer.with_failure_backoff(backoff);
    }
    balancer.check()?;
    ensure_table(&aws, Billing::OnDemand).await?;
    let stop = sqsbalancer_runtime::shutdown_signal()?;
    let running = match args.exec.clone() {
        Some(cmd) => balancer.start(move |m: Message| exec(cmd.clone(), m))?,
        None => balancer.start(move |m: Message| print(instance.clone(), m))?,
    };
    let signal = stop.await;
    tracing::info!(?signal, "signal received; stopping");
    running.stop().await?;
    Ok(())
}

async fn print(instance: String, m: Message) -> Result<(), HandlerError> {
    let line = serde_json::json!({
        "queue": m.queue.as_str(),
        "message_id": m.message_id,
        "body": m.body,
        "receive_count": m.receive_count,
        "instance": instance,
    });
    // One locked write per line, so concurrent handlers never interleave their lines.
    let mut out = std::io::stdout().lock();
    std::io::Write::write_all(&mut out, format!("{line}\n").as_bytes())
        .and_then(|()| std::io::Write::flush(&mut out))
        .map_err(|e| HandlerError::new(format!("stdout: {e}")))
}

async fn exec(cmd: String, m: Message) -> Result<(), HandlerError> {
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(&cmd)
        .env("SQS_MESSAGE_ID", &m.message_id)
        .env("SQS_QUEUE_URL", m.queue.as_str())
        .env("SQS_RECEIVE_COUNT", m.receive_count.to_string())
        .stdin(std::process::Stdio::piped());
    // String and number attributes; a binary one has no text to put in the environment.
    for (k, v) in m
        .attributes
        .iter()
        .filter_map(|(k, v)| Some((k, v.as_str()?)))
    {
        let name: String = k
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        command.env(format!("SQS_ATTR_{name}"), v);
    }
    let mut child = command
        .spawn()
        .map_err(|e| HandlerError::new(format!("cannot run {cmd:?}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its stdin closes the pipe; that is its business.
        let _ = stdin.write_all(m.body.as_bytes()).await;
    }
    let status = child
        .wait()
        .await
        .map_err(|e| HandlerError::new(format!("waiting for {cmd:?}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(HandlerError::new(format!("{cmd:?} exited with {status}")))
    }
}

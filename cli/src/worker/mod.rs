//! `sqsbalancer worker`: one real instance against AWS (or an emulator), with a handler that
//! prints each message or runs a command for it. SIGTERM or SIGINT stop it gracefully.

mod args;
mod handler;
mod http;

pub use args::WorkerArgs;

use crate::error::CliError;
use args::LogFormat;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sqsbalancer_runtime::aws::{AwsBackend, AwsSettings, Billing, ensure_table};
use sqsbalancer_runtime::{
    BackendError, Balancer, FailureBackoff, Message, RuntimeError, Timeouts,
};
use std::sync::Arc;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// Runs the worker until SIGTERM or SIGINT, then stops it gracefully.
pub fn run(args: WorkerArgs) -> Result<(), CliError> {
    init_logs(&args)?;
    // The recorder before the first metric: only a scrape reads it.
    let metrics = match args.listen {
        Some(_) => {
            Some(
                PrometheusBuilder::new()
                    .install_recorder()
                    .map_err(|e| CliError::Setup {
                        what: "the metrics recorder",
                        reason: e.to_string(),
                    })?,
            )
        }
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Setup {
            what: "the tokio runtime",
            reason: e.to_string(),
        })?;
    runtime.block_on(serve(args, metrics))
}

/// Logs on stderr, as text or JSON lines, filtered by `--log-level`.
fn init_logs(args: &WorkerArgs) -> Result<(), CliError> {
    let filter = EnvFilter::try_new(&args.log_level).map_err(|e| CliError::BadOption {
        option: "--log-level",
        reason: e.to_string(),
    })?;
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    Ok(())
}

/// The AWS backend the options describe.
async fn backend(args: &WorkerArgs, timeouts: Timeouts) -> AwsBackend {
    let mut settings = AwsSettings::default();
    settings.endpoint_url.clone_from(&args.endpoint_url);
    settings.region.clone_from(&args.region);
    settings.timeouts = timeouts;
    let aws = AwsBackend::connect(&settings, &args.table).await;
    if args.no_create_table {
        aws.without_table_creation()
    } else {
        aws.with_table_billing(args.table_capacity.unwrap_or(Billing::OnDemand))
    }
}

/// The balancer with the worker's data-plane options, every one checked.
fn balancer(args: &WorkerArgs, aws: &Arc<AwsBackend>) -> Result<Balancer<AwsBackend>, CliError> {
    let mut balancer = Balancer::new(args.config(), Arc::clone(aws))?;
    if let Some(t) = args.handler_timeout {
        balancer = balancer.with_handler_timeout(t);
    }
    if let Some(base) = args.failure_backoff {
        let backoff = FailureBackoff::new(base, args.failure_backoff_max);
        balancer = balancer.with_failure_backoff(backoff);
    }
    let base = args.config().sqs;
    for q in &args.queue_settings {
        balancer = balancer.with_queue_settings(&q.queue, q.apply(&base));
    }
    if let Some(pause) = args.idle_pause {
        balancer = balancer.with_idle_pause(pause);
    }
    if args.no_fair_scheduling {
        balancer = balancer.without_fair_scheduling();
    }
    if args.no_visibility_extension {
        balancer = balancer.without_visibility_extension();
    }
    balancer.check()?;
    Ok(balancer)
}

/// The start-up table check's verdict: a table that can never serve (another key schema, no
/// permission, bad credentials) ends the worker at once, but a slow, throttled or unanswered
/// call does not, since the balancer readies the table itself and asks again every heartbeat
/// interval. A worker that died of one slow call at start would crash-loop with its fleet.
fn ready_or_later(checked: Result<(), RuntimeError>) -> Result<(), RuntimeError> {
    match checked {
        Err(RuntimeError::TableUnavailable { table, source })
            if source.is_retryable() && !matches!(source, BackendError::Credentials { .. }) =>
        {
            tracing::warn!(%table, error = %source, "the table is not ready yet; asking again");
            Ok(())
        }
        other => other,
    }
}

async fn serve(args: WorkerArgs, metrics: Option<PrometheusHandle>) -> Result<(), CliError> {
    let cfg = args.config();
    let aws = Arc::new(backend(&args, Timeouts::of(&cfg)).await);
    // Every option is checked before the first AWS call.
    let balancer = balancer(&args, &aws)?;
    let listener = match args.listen {
        Some(addr) => Some(http::bind(addr).await?),
        None => None,
    };
    if !args.no_create_table {
        ready_or_later(ensure_table(&aws, args.table_capacity.unwrap_or(Billing::OnDemand)).await)?;
    }
    let instance = balancer.instance_id().to_owned();
    let stop = sqsbalancer_runtime::shutdown_signal().map_err(|e| CliError::Setup {
        what: "the signal handlers",
        reason: e.to_string(),
    })?;
    let running = match args.exec.clone() {
        Some(cmd) => balancer.start(move |m: Message| handler::exec(cmd.clone(), m))?,
        None => balancer.start(move |m: Message| handler::print(instance.clone(), m))?,
    };
    let (stop_serving, stopped) = watch::channel(false);
    let server = match (listener, metrics) {
        (Some(listener), Some(metrics)) => {
            let endpoints = http::Endpoints {
                monitor: running.monitor(),
                metrics,
            };
            Some(http::spawn(listener, endpoints, stopped))
        }
        _ => None,
    };
    let signal = stop.await;
    tracing::info!(?signal, "signal received; stopping");
    let stopped = running.stop().await;
    let _ = stop_serving.send(true);
    if let Some(server) = server {
        let _ = server.await;
    }
    Ok(stopped?)
}

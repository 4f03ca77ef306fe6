//! `sqsbalancer status`: what a live coordination table says about a fleet. It reads the
//! application's records (once, or repeatedly for `--watch`), and shows each instance's life,
//! heartbeat and whether it moved, who owns which queues, the balance against the exact fair
//! split by capacity, and the queues without a live owner.
//!
//! It only reads: it never creates the table or writes a record, so it is safe against a
//! production fleet. Queues still unowned after the failover bound make it fail (exit 2), so it
//! can gate a deploy or page someone.

mod render;
mod watch;

use crate::error::CliError;
use clap::Args;
use sqsbalancer_core::discovery::Filter;
use sqsbalancer_core::{Config, InstanceRecord, Outcome, QueueId, QueueRecord, Read, Reply};
use sqsbalancer_runtime::RuntimeError;
use sqsbalancer_runtime::aws::{AwsBackend, AwsSettings};
use sqsbalancer_runtime::{execute, layout};
use std::collections::BTreeSet;
use std::io::Write as _;
use std::time::Duration;
use watch::{Observer, Report, Timing};

/// The flags of `sqsbalancer status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// An endpoint for SQS and DynamoDB instead of AWS's (moto, LocalStack).
    #[arg(long, value_name = "URL", env = "SQSBALANCER_ENDPOINT_URL")]
    endpoint_url: Option<String>,
    /// The AWS region (default: from the environment and profile).
    #[arg(long, env = "SQSBALANCER_REGION")]
    region: Option<String>,
    /// The DynamoDB coordination table (never created).
    #[arg(long, env = "SQSBALANCER_TABLE")]
    table: String,
    /// The application name the fleet shares.
    #[arg(long, env = "SQSBALANCER_APP")]
    app: String,
    /// Read repeatedly for this long (e.g. 30s), to see which heartbeats move and which queues
    /// stay unowned; without it, one read.
    #[arg(long, value_parser = crate::sim::duration, value_name = "D")]
    watch: Option<Duration>,
    /// The fleet's HeartbeatInterval (the table does not record it; default: the library's).
    #[arg(long, value_parser = crate::sim::duration, env = "SQSBALANCER_HEARTBEAT_INTERVAL")]
    heartbeat_interval: Option<Duration>,
    /// The fleet's HeartbeatTimeout (default: the library's).
    #[arg(long, value_parser = crate::sim::duration, env = "SQSBALANCER_HEARTBEAT_TIMEOUT")]
    heartbeat_timeout: Option<Duration>,
    /// The fleet's queue pattern: also list SQS queues matching it and show those with no
    /// record yet (the fleet records them at its next discovery).
    #[arg(long, value_name = "REGEX", env = "SQSBALANCER_QUEUE_PATTERN")]
    queue_pattern: Option<String>,
    /// Print one JSON object (the last line of stdout) instead of tables.
    #[arg(long)]
    json: bool,
}

/// Runs the command: 0 when no queue stayed unowned past the failover bound, an error otherwise.
pub fn run(args: StatusArgs) -> Result<(), CliError> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqsbalancer=info")),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(status(args))
}

async fn status(args: StatusArgs) -> Result<(), CliError> {
    let defaults = Config::default();
    let timing = Timing {
        interval: args
            .heartbeat_interval
            .unwrap_or(defaults.heartbeat_interval),
        timeout: args.heartbeat_timeout.unwrap_or(defaults.heartbeat_timeout),
    };
    let filter = match &args.queue_pattern {
        Some(p) => Some(Filter::new(Some(p)).map_err(RuntimeError::from)?),
        None => None,
    };
    let mut settings = AwsSettings::default();
    settings.endpoint_url.clone_from(&args.endpoint_url);
    settings.region.clone_from(&args.region);
    let aws = AwsBackend::connect(&settings, &args.table).await;
    check_table(&aws, &args).await?;
    let report = watch_table(&aws, &args, timing, filter.as_ref()).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", render::to_json(&report))?;
    } else {
        write!(out, "{}", render::to_table(&report))?;
    }
    out.flush()?;
    let stuck = report.stuck();
    if stuck.is_empty() {
        return Ok(());
    }
    Err(CliError::Unowned {
        bound: timing.failover_bound(),
        queues: stuck.iter().map(|u| u.queue.name().to_owned()).collect(),
    })
}

/// Fails with the table's name and what is wrong when it cannot be described: the endpoint
/// is unreachable, the credentials are refused, or the table does not exist. A read alone
/// would only say that it failed.
async fn check_table(aws: &AwsBackend, args: &StatusArgs) -> Result<(), CliError> {
    use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
    let at = args.endpoint_url.as_deref().unwrap_or("AWS");
    let fail = |reason: String| {
        CliError::Runtime(RuntimeError::Table {
            table: args.table.clone(),
            reason,
        })
    };
    match aws
        .dynamo()
        .describe_table()
        .table_name(&args.table)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Err(fail(format!("does not exist at {at}")))
        }
        Err(e @ (SdkError::DispatchFailure(_) | SdkError::TimeoutError(_))) => Err(fail(format!(
            "cannot reach DynamoDB at {at}: {}",
            DisplayErrorContext(&e)
        ))),
        Err(e) => Err(fail(format!(
            "cannot be described at {at}: {}",
            DisplayErrorContext(&e)
        ))),
    }
}

/// Reads the application's records every heartbeat interval (at most every second) for the
/// watch window, then lists the pattern's queues once if asked.
async fn watch_table(
    aws: &AwsBackend,
    args: &StatusArgs,
    timing: Timing,
    filter: Option<&Filter>,
) -> Result<Report, CliError> {
    let window = args.watch.unwrap_or_default();
    let every = timing.interval.min(Duration::from_secs(1));
    tracing::info!(
        app = %args.app,
        table = %args.table,
        window = ?window,
        every = ?every,
        "reading the coordination table"
    );
    let mut observer = Observer::new(timing);
    let start = tokio::time::Instant::now();
    loop {
        match read_table(aws, &args.app).await {
            Some((keys, instances, queues)) => {
                observer.observe(start.elapsed(), keys, instances, queues);
            }
            None => tracing::warn!("a read of the coordination table failed"),
        }
        let elapsed = start.elapsed();
        if elapsed >= window {
            break;
        }
        tokio::time::sleep(every.min(window - elapsed)).await;
    }
    if observer.reads() == 0 {
        return Err(CliError::Runtime(RuntimeError::Table {
            table: args.table.clone(),
            reason: "every read failed (RUST_LOG=debug shows why)".to_owned(),
        }));
    }
    let unrecorded = match filter {
        Some(f) => unrecorded(aws, f, &observer.report(None)).await,
        None => None,
    };
    let report = observer.report(unrecorded);
    tracing::info!(reads = report.reads, window = ?report.window, "done");
    Ok(report)
}

/// The application's records, in its recorded layout, with that layout's number of queue
/// partition keys; `None` when a read failed.
async fn read_table(
    aws: &AwsBackend,
    app: &str,
) -> Option<((u32, u32), Vec<InstanceRecord>, Vec<QueueRecord>)> {
    let layout = layout::recorded(aws, app)
        .await
        .inspect_err(|e| tracing::debug!(error = %e, "the table layout could not be read"))
        .ok()?;
    match execute::read(aws, &layout, Read::Table).await {
        Outcome::Applied(Reply::Table {
            instances, pages, ..
        }) => {
            let keys = (
                layout.queue_partition_keys(),
                layout.instance_partition_keys(),
            );
            let queues = pages.iter().flat_map(|p| p.records());
            Some((
                keys,
                instances,
                queues.map(|r| QueueRecord::clone(r)).collect(),
            ))
        }
        _ => None,
    }
}

/// The listed queues matching `filter` that have no queue record; `None` if listing failed.
async fn unrecorded(aws: &AwsBackend, filter: &Filter, seen: &Report) -> Option<Vec<QueueId>> {
    let Outcome::Applied(Reply::Queues(listed)) = execute::list(aws, filter.prefix()).await else {
        tracing::warn!("ListQueues failed; queues without a record are not shown");
        return None;
    };
    let recorded: BTreeSet<&QueueId> = seen
        .instances
        .iter()
        .flat_map(|i| &i.queues)
        .chain(seen.unowned.iter().map(|u| &u.queue))
        .collect();
    Some(
        listed
            .iter()
            .filter(|q| filter.matches(q) && !recorded.contains(q))
            .cloned()
            .collect(),
    )
}

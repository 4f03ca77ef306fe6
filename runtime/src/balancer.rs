//! The public face: [`Balancer::start`] runs a node and its data plane with the user's handler,
//! [`Running::stop`] walks the shutdown phases.

use crate::backend::{QueueList, Sqs, Store};
use crate::driver::{Driver, DriverHandle};
use crate::error::RuntimeError;
use crate::handler::Handler;
use crate::plane::{DataPlane, PlaneSettings};
use sqsbalancer_core::{Config, Phase, QueueId, StopOutcome};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// A configured balancer, not yet running.
pub struct Balancer<B> {
    cfg: Config,
    backend: Arc<B>,
}

impl<B: Store + QueueList + Sqs> Balancer<B> {
    /// A balancer of `cfg` over `backend` (DynamoDB for coordination, SQS for discovery and
    /// messages). The configuration is checked here: a bad one is a [`RuntimeError::Config`]
    /// naming the field and the rule.
    pub fn new(cfg: Config, backend: Arc<B>) -> Result<Balancer<B>, RuntimeError> {
        cfg.validate()?;
        if cfg.instance_id.is_none() {
            return Err(RuntimeError::Config(
                sqsbalancer_core::Error::InvalidConfig {
                    field: "InstanceID",
                    rule: "must be set (the worker derives one from the host when absent)".into(),
                },
            ));
        }
        Ok(Balancer { cfg, backend })
    }

    /// Starts coordinating and, for the queues this instance comes to own, receiving and
    /// handling messages with `handler`. Needs a tokio runtime.
    pub fn start<H: Handler>(self, handler: H) -> Result<Running, RuntimeError> {
        let settings = PlaneSettings::of(&self.cfg);
        let shutdown_timeout = self.cfg.shutdown_timeout;
        let (driver, handle, commands) = Driver::new(
            self.cfg,
            Arc::clone(&self.backend),
            Arc::clone(&self.backend),
        )?;
        let plane = DataPlane::start(settings, self.backend, Arc::new(handler), handle.clone());
        tokio::spawn(plane.run(commands));
        let task = tokio::spawn(driver.run());
        Ok(Running {
            handle,
            task,
            shutdown_timeout,
        })
    }
}

/// A running balancer.
pub struct Running {
    handle: DriverHandle,
    task: JoinHandle<Phase>,
    shutdown_timeout: std::time::Duration,
}

impl Running {
    /// The queues this instance receives from now.
    pub fn active_queues(&self) -> Vec<QueueId> {
        self.handle.receiving().into_keys().collect()
    }

    /// Where the instance is in its lifecycle.
    pub fn phase(&self) -> Phase {
        self.handle.phase()
    }

    /// The driver's handle, to watch the instance.
    pub fn handle(&self) -> &DriverHandle {
        &self.handle
    }

    /// Stops gracefully: stop receiving, finish in-flight handlers and deletes, hand every
    /// queue to its next owner, deregister. Past the shutdown timeout it gives up with
    /// [`RuntimeError::ShutdownTimeout`] (nothing unfinished is deleted; peers take the
    /// queues over as after a crash).
    pub async fn stop(self) -> Result<(), RuntimeError> {
        // A driver that already stopped has nothing left to shut down.
        let _ = self.handle.shutdown();
        let phase = self.task.await.map_err(|_| RuntimeError::Stopped)?;
        match phase {
            Phase::Stopped {
                outcome: StopOutcome::Clean,
            } => Ok(()),
            Phase::Stopped {
                outcome: StopOutcome::TimedOut,
            } => Err(RuntimeError::ShutdownTimeout {
                timeout: self.shutdown_timeout,
            }),
            Phase::Stopped {
                outcome: StopOutcome::LifeLost,
            } => Err(RuntimeError::LifeLost),
            other => Err(RuntimeError::Unexpected {
                phase: format!("{other:?}"),
            }),
        }
    }
}

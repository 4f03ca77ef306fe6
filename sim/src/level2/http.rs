//! Level 3 in the level-2 harness: each instance reaches the fake AWS through the real AWS SDK
//! clients (built by the runtime's own configuration functions) over turmoil's network, to a
//! server host speaking the DynamoDB and SQS JSON protocols ([`crate::level3`]) that calls the
//! caller's current [`Link`](super::link::Link), whose own faults are off.
//!
//! The run's faults happen at the HTTP level instead, drawn from the same hooks and rates: an
//! error (throttling, 500 or 503) before or after the call is applied, a connection reset
//! mid-answer, an answer that never comes (a partition, a hang), a write applied after its
//! caller's deadline, an answer slower than the request margin; and a credentials provider
//! that stalls before a request can be signed (the slow calls' hold).

use super::link::Link;
use super::shared::{Lab, lock};
use crate::fake::{SLOW_MS, Service, Verdict};
use crate::level3::clock::sim_now;
use crate::level3::connector::SimClients;
use crate::level3::protocol::{self, Failure};
use crate::level3::server::{Fault, RequestInfo, Server};
use sqsbalancer_core::{Config, Millis};
use sqsbalancer_runtime::Timeouts;
use sqsbalancer_runtime::aws::AwsBackend;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The server host's name on turmoil's network.
pub(super) const SERVER: &str = "aws";
/// The server's port.
const PORT: u16 = 80;
/// How long credentials last once issued: a refresh (and a chance to stall) every few seconds.
const CREDENTIALS_LAST: Duration = Duration::from_secs(15);

/// The current life's link of each instance, by name: the server's callers. Shared by the
/// server host and the instances' hosts, which register each new life's link.
#[derive(Clone, Default)]
pub(super) struct Links(Arc<Mutex<BTreeMap<String, Arc<Link>>>>);

impl Links {
    /// From now on the server serves `name`'s requests with `link`.
    pub(super) fn register(&self, name: &str, link: Arc<Link>) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(name.to_owned(), link);
    }

    /// The link of caller `name`, if it registered one.
    fn get(&self, name: &str) -> Option<Arc<Link>> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(name).cloned()
    }
}

/// Adds the server host to `sim`: it serves every instance's requests from its current link
/// in `links`.
pub(super) fn serve(sim: &mut turmoil::Sim<'static>, lab: &Lab, links: &Links) {
    let lab = Arc::clone(lab);
    let links = links.clone();
    sim.host(SERVER, move || {
        let lab = Arc::clone(&lab);
        let links = links.clone();
        async move {
            let resolve = move |caller: &str| links.get(caller);
            let faults = Arc::clone(&lab);
            let server = Server::new(resolve)
                .with_faults(move |r: &RequestInfo<'_>| decide(&faults, r))
                .with_table(crate::TABLE);
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
            Arc::new(server).serve(listener).await?;
            Ok(())
        }
    });
}

/// The AWS backend of the instance in `slot`, configured by `cfg`: the real SDK clients over
/// turmoil's network, signing with credentials that may stall.
pub(super) fn backend(lab: &Lab, cfg: &Config, slot: usize) -> AwsBackend {
    let name = cfg.instance_id.clone().unwrap_or_default();
    let credentials = Stalling {
        lab: Arc::clone(lab),
        slot,
        name: name.clone(),
    };
    let run = lock(lab).run;
    SimClients::new(&name, SERVER, PORT, Timeouts::of(cfg))
        .seed(cfg.seed ^ run.rotate_left(32))
        .credentials(credentials)
        .backend(crate::TABLE)
}

/// What the server does with `request`: the run's call faults, at the HTTP level.
fn decide(lab: &Lab, request: &RequestInfo<'_>) -> Fault {
    let mut s = lock(lab);
    let now = s.now();
    let service = match request.service {
        protocol::Service::DynamoDb => Service::Dynamo,
        protocol::Service::Sqs => Service::Sqs,
    };
    let verdict = s.hooks.decide(Millis(now), request.caller, service);
    let (_, slow) = s.hooks.slowness();
    let slot = s.slots.iter().position(|sl| sl.name == request.caller);
    if let Some(i) = slot.filter(|_| verdict != Verdict::Serve || slow > 0) {
        s.faulted(i);
    }
    let receive = request.operation == "ReceiveMessage";
    let mut pick = |a, b| if s.hooks.draw(2) == 0 { a } else { b };
    match verdict {
        Verdict::Serve if slow == 0 => Fault::Serve,
        Verdict::Serve => Fault::Delay {
            before: Duration::ZERO,
            after: Duration::from_millis(slow),
        },
        Verdict::Throttled => Fault::Fail {
            failure: pick(Failure::Throttling, Failure::OverCapacity),
            applied: false,
        },
        Verdict::ServerError => {
            let failure = pick(Failure::Internal, Failure::Unavailable);
            Fault::Fail {
                failure,
                applied: s.hooks.draw(2) == 0,
            }
        }
        // Served, its answer cut off mid-way.
        Verdict::TimeoutApplied => Fault::Reset,
        // Out of reach, or lost on its way: no answer ever.
        Verdict::TimeoutNotApplied | Verdict::Unreachable => Fault::Hang { applied: false },
        Verdict::Hang(applied) => Fault::Hang { applied },
        // A receive's request reaches SQS within the request margin (one held longer is held
        // before it is sent, where the send-by check stands); a write may land seconds after
        // its caller gave up.
        Verdict::Late if receive => Fault::Serve,
        Verdict::Late => {
            let deadline = Timeouts::of(&crate::config()).effect;
            Fault::Delay {
                before: deadline + Duration::from_millis(1 + s.hooks.draw(SLOW_MS)),
                after: Duration::ZERO,
            }
        }
    }
}

/// An instance's credentials provider: short-lived credentials whose every refresh may stall
/// (as IMDS or STS may), holding the requests that wait for them before they are signed.
struct Stalling {
    lab: Lab,
    slot: usize,
    name: String,
}

impl std::fmt::Debug for Stalling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stalling")
            .field("name", &self.name)
            .finish()
    }
}

impl aws_credential_types::provider::ProvideCredentials for Stalling {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            let held = {
                let mut s = lock(&self.lab);
                let (held, _) = s.hooks.slowness();
                if held > 0 {
                    s.faulted(self.slot);
                }
                held
            };
            tokio::time::sleep(Duration::from_millis(held)).await;
            Ok(aws_credential_types::Credentials::new(
                &self.name,
                "sim-secret",
                None,
                Some(sim_now() + CREDENTIALS_LAST),
                "sqsbalancer-sim-stalling",
            ))
        })
    }
}

//! The fake AWS's queue of level-2 calls on their way: requests that land when their trip is
//! over, and long polls open at the fake. What landing does to the shared state `S` is the
//! request's own work (`landing.rs` runs them).

use crate::check::Who;
use crate::fake::{ReceiveRequest, Received, SqsError};
use sqsbalancer_core::QueueId;
use std::collections::BTreeMap;
use tokio::sync::oneshot;

/// What a request does to the shared state `S` when it lands at the fake.
pub(crate) type Work<S> = Box<dyn FnOnce(&mut S) + Send>;

/// A long poll's answer, as the fake gives it.
pub(crate) type Polled = Result<Vec<Received>, SqsError>;

/// Requests on their way and long polls open at the fake.
pub(crate) struct Server<S> {
    /// Requests on their way, by the time (ms) they land and the order they were sent in.
    arriving: BTreeMap<(u64, u64), Work<S>>,
    /// Requests sent so far, to order those landing at one instant.
    sent: u64,
    /// Long polls open at the fake, in the order they opened.
    polls: Vec<LongPoll>,
}

/// One receive in flight at the fake.
pub(crate) struct LongPoll {
    /// Whose it is.
    pub who: Who,
    /// The checker's name for the call.
    pub call: u64,
    /// The request.
    pub req: ReceiveRequest,
    /// The queue, as the runtime names it.
    pub queue: QueueId,
    /// When its wait is over, ms.
    pub until: u64,
    /// Where its answer goes (nowhere once its caller gave up).
    pub answer: oneshot::Sender<Polled>,
}

impl<S> Default for Server<S> {
    fn default() -> Self {
        Server {
            arriving: BTreeMap::new(),
            sent: 0,
            polls: Vec::new(),
        }
    }
}

impl<S> Server<S> {
    /// Sends a request that lands at `at` ms and then does `work`.
    pub fn send(&mut self, at: u64, work: Work<S>) {
        self.sent += 1;
        self.arriving.insert((at, self.sent), work);
    }

    /// The work of the next request due by `now` ms, in landing order, taken off the queue.
    pub fn due(&mut self, now: u64) -> Option<Work<S>> {
        let entry = self.arriving.first_entry()?;
        (entry.key().0 <= now).then(|| entry.remove())
    }

    /// Keeps a long poll open until it has messages or its wait is over.
    pub fn open(&mut self, poll: LongPoll) {
        self.polls.push(poll);
    }

    /// Every long poll open, taken off the server (those still waiting go back by
    /// [`open`](Self::open)).
    pub fn take_polls(&mut self) -> Vec<LongPoll> {
        std::mem::take(&mut self.polls)
    }
}

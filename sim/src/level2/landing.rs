//! The fake AWS's side of every level-2 call, run by the harness between turmoil steps rather
//! than in the caller's tasks. A request lands when its trip is over whether or not its caller
//! still waits: a write applies after its caller gave up, and a crashed host's last requests
//! still land. A long poll runs at the fake to its end and takes whatever arrives meanwhile,
//! even when nobody will read its answer. So it is with AWS.

use super::server::{LongPoll, Polled};
use super::shared::{Shared, others_up_since};
use sqsbalancer_core::Millis;

/// Lands every request due by `now` ms, then answers every long poll that has messages or
/// whose wait is over.
pub(crate) fn serve(s: &mut Shared, now: u64) {
    while let Some(work) = s.server.due(now) {
        work(s);
    }
    let polls = s.server.take_polls();
    for poll in polls {
        let got = s.sqs.receive_more(Millis(now), &poll.req);
        if !matches!(&got, Ok(m) if m.is_empty()) || now >= poll.until {
            finish(s, poll, got);
        } else {
            s.server.open(poll);
        }
    }
}

/// A long poll opened at `now` ms on `queue` for `who`: the checker and the stats see a receive
/// in flight at the fake from here, under the fence its life had when it sent it.
pub(crate) fn open(s: &mut Shared, mut poll: LongPoll, fence: u64, now: u64) {
    s.calls += 1;
    poll.call = s.calls;
    let (queue, who) = (poll.queue.clone(), poll.who);
    s.checker
        .receive_start(&queue, who, poll.call, false, fence);
    let Shared { stats, slots, .. } = &mut *s;
    stats.receive_started(now, &queue, who, |i, t| others_up_since(slots, i, t));
    s.emit(Some(who.0), "receive", || queue.to_string());
    let caller = s.slots[who.0].name.clone();
    let got = s.sqs.receive(Millis(now), &caller, &poll.req);
    match got {
        Ok(m) if m.is_empty() && now < poll.until => s.server.open(poll),
        got => finish(s, poll, got),
    }
}

/// The long poll is over at the fake: the checker sees it end, and its answer leaves.
fn finish(s: &mut Shared, poll: LongPoll, got: Polled) {
    let now = s.last_now();
    s.checker.receive_end(&poll.queue, poll.call);
    s.stats.receive_ended(now, &poll.queue, poll.who);
    if let Ok(got) = &got {
        for m in got {
            s.receipts.insert(m.receipt.clone(), m.message_id.clone());
        }
        if !got.is_empty() {
            s.emit(Some(poll.who.0), "received", || {
                let ids: Vec<&str> = got.iter().map(|m| m.message_id.as_str()).collect();
                format!("{} {}", poll.queue, ids.join(","))
            });
        }
    }
    // Nobody may wait for it any more (the caller gave up, or its host crashed).
    let _ = poll.answer.send(got);
}

//! One message's change for SQS (a delete, a release, a backoff or an extension), as the
//! workers, pollers and keeper hand it to the batcher.

use super::inflight::Extension;
use sqsbalancer_core::QueueId;

/// What one change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    /// DeleteMessageBatch.
    Delete,
    /// ChangeMessageVisibilityBatch.
    Visibility,
}

/// One message's change.
#[derive(Debug)]
pub(super) struct Change {
    /// The message's queue.
    pub(super) queue: QueueId,
    /// Delete or change visibility.
    pub(super) kind: Kind,
    /// The message's receipt handle.
    pub(super) receipt: String,
    /// The new visibility timeout (visibility changes only).
    pub(super) secs: u32,
    /// Whether the message is finished once this change is made (all but extensions).
    pub(super) finishes: bool,
    /// The extension this change asks for, told whether SQS accepted it.
    pub(super) extension: Option<Extension>,
}

impl Change {
    /// Delete a message whose handler succeeded.
    pub(super) fn delete(queue: QueueId, receipt: String) -> Change {
        Change {
            queue,
            kind: Kind::Delete,
            receipt,
            secs: 0,
            finishes: true,
            extension: None,
        }
    }

    /// Make a finished message visible `secs` from now (a release, or a failure's backoff).
    pub(super) fn visibility(queue: QueueId, receipt: String, secs: u32) -> Change {
        Change {
            queue,
            kind: Kind::Visibility,
            receipt,
            secs,
            finishes: true,
            extension: None,
        }
    }

    /// Keep a message still held invisible longer.
    pub(super) fn extension(x: Extension) -> Change {
        Change {
            queue: x.queue.clone(),
            kind: Kind::Visibility,
            receipt: x.receipt.clone(),
            secs: x.secs,
            finishes: false,
            extension: Some(x),
        }
    }
}

impl Change {
    /// Whether the message is finished once this change is made.
    pub(super) fn finishes(&self) -> bool {
        self.finishes
    }
}

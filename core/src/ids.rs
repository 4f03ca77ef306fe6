//! Identifiers of instances, queues and ownership lives, validated once at the edge.

use crate::error::{Error, Result};
use std::fmt;
use std::sync::Arc;

/// The longest instance id or application name accepted (keys stay far below DynamoDB's limits).
pub const MAX_NAME_LEN: usize = 128;
/// The longest queue URL or name accepted.
pub const MAX_QUEUE_LEN: usize = 1024;

fn check_name(kind: &'static str, value: &str) -> Result<()> {
    let fail = |rule| {
        Err(Error::InvalidId {
            kind,
            value: value.chars().take(80).collect(),
            rule,
        })
    };
    if value.is_empty() {
        return fail("must not be empty");
    }
    if value.len() > MAX_NAME_LEN {
        return fail("must be at most 128 bytes");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return fail("may contain only ASCII letters, digits, '-', '_', '.' and ':'");
    }
    Ok(())
}

/// The unique name of one instance in the fleet.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId(Arc<str>);

impl InstanceId {
    /// Validates `id`: 1..=128 bytes of ASCII letters, digits, `-`, `_`, `.` or `:`.
    pub fn new(id: &str) -> Result<InstanceId> {
        check_name("instance id", id)?;
        Ok(InstanceId(Arc::from(id)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Validates an application name with the same rules as an instance id.
pub fn check_application_name(name: &str) -> Result<()> {
    check_name("application name", name)
}

/// One SQS queue, by URL (or by name where no URL is known, as in `sqsbalancer plan`).
#[derive(Clone, Eq)]
pub struct QueueId(Arc<str>);

// Queue URLs share a long prefix, and the node compares the same ids (clones of one `Arc`)
// over and over: equal pointers answer without reading the text.
impl PartialEq for QueueId {
    fn eq(&self, other: &QueueId) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Ord for QueueId {
    fn cmp(&self, other: &QueueId) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            std::cmp::Ordering::Equal
        } else {
            self.0.cmp(&other.0)
        }
    }
}

impl std::hash::Hash for QueueId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialOrd for QueueId {
    fn partial_cmp(&self, other: &QueueId) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl QueueId {
    /// Validates `q`: 1..=1024 bytes, no whitespace or control characters.
    pub fn new(q: &str) -> Result<QueueId> {
        let fail = |rule| {
            Err(Error::InvalidId {
                kind: "queue",
                value: q.chars().take(80).collect(),
                rule,
            })
        };
        if q.is_empty() {
            return fail("must not be empty");
        }
        if q.len() > MAX_QUEUE_LEN {
            return fail("must be at most 1024 bytes");
        }
        let bad = if q.is_ascii() {
            q.bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        } else {
            q.chars().any(|c| c.is_whitespace() || c.is_control())
        };
        if bad {
            return fail("must not contain whitespace or control characters");
        }
        Ok(QueueId(Arc::from(q)))
    }

    /// The queue URL (or name) as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL as a shared string: metric labels and logs take it without copying.
    pub fn shared(&self) -> Arc<str> {
        Arc::clone(&self.0)
    }

    /// The queue's name: the last path segment of its URL.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

/// One life of an instance: its id and the incarnation number it registered with.
///
/// Queue records name an `Owner`, not just an id, so that a restarted instance that reuses its id
/// never mistakes a queue granted to its previous life for its own: it must claim it again with a
/// conditional write, which fences any peer racing to claim the same orphan.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Owner {
    /// The instance.
    pub id: InstanceId,
    /// Which registration of that instance (starts at 1, grows by one per re-registration).
    pub incarnation: u64,
}

macro_rules! text_fmt {
    ($t:ty) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }
    };
}
text_fmt!(InstanceId);
text_fmt!(QueueId);

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.incarnation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_reject_key_unsafe_text() {
        assert!(InstanceId::new("i-0abc.task:1").is_ok());
        for bad in ["", "has space", "a#b", "é", &"x".repeat(129)] {
            let err = InstanceId::new(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidId {
                        kind: "instance id",
                        ..
                    }
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn display_honours_width_so_tables_line_up() {
        let id = InstanceId::new("i-a").unwrap();
        assert_eq!(format!("[{id:<5}]"), "[i-a  ]");
        assert_eq!(format!("[{:>4}]", QueueId::new("q").unwrap()), "[   q]");
    }

    #[test]
    fn queue_ids_take_urls_and_name_the_last_segment() {
        let q = QueueId::new("https://sqs.us-east-1.amazonaws.com/123/orders-1").unwrap();
        assert_eq!(q.name(), "orders-1");
        assert_eq!(QueueId::new("plain").unwrap().name(), "plain");
        assert!(QueueId::new("a b").is_err());
        assert!(QueueId::new("").is_err());
        assert!(QueueId::new(&"q".repeat(1025)).is_err());
    }
}

//! Identifiers of instances, queues and ownership lives, validated once at the edge.

use crate::error::{Error, Result};
use std::fmt;
use std::sync::Arc;

/// The longest instance id or application name accepted (keys stay far below DynamoDB's limits).
pub const MAX_NAME_LEN: usize = 128;
/// The longest queue URL or name accepted.
pub const MAX_QUEUE_LEN: usize = 1024;

fn check_name(kind: &'static str, value: &str, extra: &[u8], rule: &'static str) -> Result<()> {
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
    let allowed = |b: u8| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':') || extra.contains(&b)
    };
    if !value.bytes().all(allowed) {
        return fail(rule);
    }
    Ok(())
}

/// The text of an id, compared by pointer first: a node compares the same ids (clones of one
/// `Arc`, which the simulator shares between every record that names them) over and over, and
/// equal pointers answer without reading the text (queue URLs share a long prefix).
#[derive(Clone, Eq)]
struct Text(Arc<str>);

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Text) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            std::cmp::Ordering::Equal
        } else {
            self.0.cmp(&other.0)
        }
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Text) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for Text {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// The unique name of one instance in the fleet.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId(Text);

impl InstanceId {
    /// Validates `id`: 1..=128 bytes of ASCII letters, digits, `-`, `_`, `.`, `:` or `/` (so an
    /// ECS task ARN or a Kubernetes `namespace/pod` is an id as it is).
    pub fn new(id: &str) -> Result<InstanceId> {
        let rule = "may contain only ASCII letters, digits, '-', '_', '.', ':' and '/'";
        check_name("instance id", id, b"/", rule)?;
        Ok(InstanceId(Text(Arc::from(id))))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Validates an application name: 1..=128 bytes of ASCII letters, digits, `-`, `_`, `.` or `:`.
pub fn check_application_name(name: &str) -> Result<()> {
    let rule = "may contain only ASCII letters, digits, '-', '_', '.' and ':'";
    check_name("application name", name, b"", rule)
}

/// One SQS queue, by URL (or by name where no URL is known, as in `sqsbalancer plan`).
///
/// SQS spells one queue's URL several ways, by the endpoint a request used: the current
/// `https://sqs.<region>.amazonaws.com/<account>/<name>`, the legacy
/// `https://<region>.queue.amazonaws.com/...` (and `queue.amazonaws.com` for us-east-1), FIPS,
/// dual-stack and VPC-endpoint hosts. Each is turned into the current spelling, so instances
/// configured with different endpoints share one coordination record per queue. URLs of other
/// hosts (emulators) are kept as given.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(Text);

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
        Ok(QueueId(Text(match canonical_aws_url(q) {
            Some(c) => Arc::from(c),
            None => Arc::from(q),
        })))
    }

    /// The queue URL (or name) as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL as a shared string: metric labels and logs take it without copying.
    pub fn shared(&self) -> Arc<str> {
        Arc::clone(&self.0.0)
    }

    /// The queue's name: the last path segment of its URL.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

/// The current spelling of an AWS SQS queue URL given in another (see [`QueueId`]), or `None`
/// when `url` is already current or not an AWS SQS URL.
fn canonical_aws_url(url: &str) -> Option<String> {
    let (https, rest) = match url.strip_prefix("https://") {
        Some(rest) => (true, rest),
        None => (false, url.strip_prefix("http://")?),
    };
    let (given_host, path) = rest.split_once('/')?;
    let host = given_host.to_ascii_lowercase();
    let (account, name) = path.split_once('/')?;
    if account.is_empty()
        || !account.bytes().all(|b| b.is_ascii_digit())
        || name.is_empty()
        || name.contains('/')
    {
        return None;
    }
    let (region, domain) = aws_queue_host(&host)?;
    if https && given_host == format!("sqs.{region}.{domain}") {
        return None;
    }
    Some(format!("https://sqs.{region}.{domain}/{account}/{name}"))
}

/// The region and the domain (`amazonaws.com`, `amazonaws.com.cn`) of an SQS endpoint host.
fn aws_queue_host(host: &str) -> Option<(&str, &str)> {
    let (rest, domain) = ["amazonaws.com.cn", "amazonaws.com", "api.aws"]
        .into_iter()
        .find_map(|d| Some((host.strip_suffix(d)?.strip_suffix('.')?, d)))?;
    let domain = if domain == "api.aws" {
        "amazonaws.com"
    } else {
        domain
    };
    let labels: Vec<&str> = rest.split('.').collect();
    let region = match labels[..] {
        // The legacy us-east-1 host.
        ["queue"] if domain == "amazonaws.com" => "us-east-1",
        ["sqs" | "sqs-fips", region] | [region, "queue"] => region,
        // A VPC endpoint: vpce-<id>[-<zone>].sqs.<region>.vpce.amazonaws.com
        [vpce, "sqs", region, "vpce"] if vpce.starts_with("vpce-") => region,
        _ => return None,
    };
    let valid = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then_some((region, domain))
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
                fmt::Debug::fmt(&*self.0.0, f)
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
        let task_arn =
            "arn:aws:ecs:eu-west-1:123456789012:task/prod/0f1e2d3c4b5a69788796a5b4c3d2e1f0";
        assert!(
            InstanceId::new(task_arn).is_ok(),
            "an ECS task ARN is an id"
        );
        assert!(
            check_application_name("a/b").is_err(),
            "'/' is for instance ids only"
        );
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
    fn every_spelling_of_an_aws_queue_url_is_one_queue() {
        let current = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders";
        for spelling in [
            current,
            "https://eu-west-1.queue.amazonaws.com/123456789012/orders",
            "http://sqs.eu-west-1.amazonaws.com/123456789012/orders",
            "https://SQS.EU-WEST-1.amazonaws.com/123456789012/orders",
            "https://sqs-fips.eu-west-1.amazonaws.com/123456789012/orders",
            "https://sqs.eu-west-1.api.aws/123456789012/orders",
            "https://vpce-0a1b2c3d-4e5f.sqs.eu-west-1.vpce.amazonaws.com/123456789012/orders",
        ] {
            assert_eq!(
                QueueId::new(spelling).unwrap().as_str(),
                current,
                "{spelling}"
            );
        }
        assert_eq!(
            QueueId::new("https://queue.amazonaws.com/1/q")
                .unwrap()
                .as_str(),
            "https://sqs.us-east-1.amazonaws.com/1/q"
        );
        assert_eq!(
            QueueId::new("https://cn-north-1.queue.amazonaws.com.cn/1/q")
                .unwrap()
                .as_str(),
            "https://sqs.cn-north-1.amazonaws.com.cn/1/q"
        );
        // Emulators, names and anything else are kept as given; the name is never changed.
        for kept in [
            "http://127.0.0.1:5000/123456789012/Orders",
            "http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/q",
            "https://sqs.us-east-1.amazonaws.com/not-an-account/q",
            "orders",
        ] {
            assert_eq!(QueueId::new(kept).unwrap().as_str(), kept);
        }
        assert_eq!(
            QueueId::new("https://eu-west-1.queue.amazonaws.com/1/Case.fifo")
                .unwrap()
                .name(),
            "Case.fifo"
        );
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

//! Queue discovery: which listed queues the fleet should share.
//!
//! The filter is a regex on the queue *name* (the last segment of the URL), as in the Go library.
//! To keep ListQueues cheap, the runtime lists with the longest literal prefix of an anchored
//! pattern (`^orders-[0-9]+` lists with `orders-`), then the regex decides.

use crate::error::{Error, Result};
use crate::ids::QueueId;
use regex::Regex;

/// A compiled queue filter.
#[derive(Clone, Debug)]
pub struct Filter {
    regex: Option<Regex>,
    prefix: String,
}

impl Filter {
    /// Compiles `pattern` (`None` takes every queue).
    pub fn new(pattern: Option<&str>) -> Result<Filter> {
        let Some(p) = pattern else {
            return Ok(Filter {
                regex: None,
                prefix: String::new(),
            });
        };
        let regex = Regex::new(p).map_err(|e| Error::InvalidConfig {
            field: "queue_filter_pattern",
            rule: format!("is not a valid regex: {e}"),
        })?;
        Ok(Filter {
            regex: Some(regex),
            prefix: literal_prefix(p),
        })
    }

    /// The prefix to pass to ListQueues.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether `queue` is one the fleet should share.
    pub fn matches(&self, queue: &QueueId) -> bool {
        self.regex.as_ref().is_none_or(|r| r.is_match(queue.name()))
    }
}

/// The longest literal text every match of `pattern` starts with, or `""` when unanchored.
///
/// Conservative: it stops at the first metacharacter, drops a character followed by a
/// quantifier, and gives up on alternation anywhere in the pattern.
pub fn literal_prefix(pattern: &str) -> String {
    let Some(rest) = pattern.strip_prefix('^') else {
        return String::new();
    };
    if pattern.contains('|') {
        return String::new();
    }
    let mut out: Vec<char> = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        let lit = match c {
            '\\' => match chars.next() {
                Some(e) if e.is_ascii_punctuation() => e,
                _ => break,
            },
            c if c.is_alphanumeric() || c == '-' || c == '_' => c,
            '?' | '*' | '{' => {
                out.pop();
                break;
            }
            _ => break,
        };
        if matches!(chars.peek(), Some('?' | '*' | '{')) {
            break;
        }
        out.push(lit);
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_literal_and_conservative() {
        assert_eq!(literal_prefix("^myapp-.*"), "myapp-");
        assert_eq!(literal_prefix("^orders-[0-9]+$"), "orders-");
        assert_eq!(literal_prefix("^a\\.b\\-c"), "a.b-c");
        assert_eq!(literal_prefix("^abc?"), "ab");
        assert_eq!(literal_prefix("^abc*d"), "ab");
        assert_eq!(literal_prefix("^ab{2}"), "a");
        assert_eq!(literal_prefix("^ab+"), "ab");
        assert_eq!(literal_prefix("^a|^b"), "");
        assert_eq!(literal_prefix("myapp-"), "");
        assert_eq!(literal_prefix("^(x)"), "");
        assert_eq!(literal_prefix("^\\d+"), "");
    }

    #[test]
    fn the_filter_reads_the_queue_name_not_the_url() {
        let f = Filter::new(Some("^orders-")).unwrap();
        assert_eq!(f.prefix(), "orders-");
        assert!(f.matches(&QueueId::new("https://sqs.x/1/orders-7").unwrap()));
        assert!(!f.matches(&QueueId::new("https://orders-host/1/billing").unwrap()));
        assert!(
            Filter::new(None)
                .unwrap()
                .matches(&QueueId::new("any").unwrap())
        );
        let err = Filter::new(Some("(")).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidConfig {
                field: "queue_filter_pattern",
                ..
            }
        ));
    }
}

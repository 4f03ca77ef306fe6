//! Maps for lookups only, which the simulator makes for every simulated long poll.
//!
//! A tree keyed by queue URL compares URLs that share a long prefix byte by byte at every step,
//! some thirty times a lookup among 100,000 queues. A [`Lookup`] hashes the key once instead.
//! Its hasher has fixed keys (no OS entropy), and a map of this type must never be iterated, so
//! its order cannot reach the output: keep an ordered collection beside it where order matters.

use std::hash::{BuildHasherDefault, DefaultHasher};

/// A hash map for lookups only (see the module docs).
#[allow(
    clippy::disallowed_types,
    reason = "never iterated, and hashed with fixed keys"
)]
pub(crate) type Lookup<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<DefaultHasher>>;

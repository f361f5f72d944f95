//! Byte formats: pure views over bytes, no I/O, unit-tested in isolation.
//!
//! A socket hands us a stream of bytes (TCP) or whole datagrams (UDP); everything that
//! gives those bytes meaning lives here so it can be tested without a network.

pub mod jsonl;
pub mod lines;
pub mod probe;
pub mod sockperf;
pub mod stamped;

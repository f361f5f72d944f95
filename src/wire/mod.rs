//! Byte formats: pure views over bytes, no I/O, unit-tested in isolation.
//!
//! A socket hands us a stream of bytes (TCP) or whole datagrams (UDP); everything that
//! gives those bytes meaning lives here so it can be tested without a network. Each
//! format follows smoltcp's `wire` module: field offsets written once, a checked
//! constructor for untrusted bytes, setters only on writable buffers, a `Repr` with
//! `parse` and `emit`, and tests over byte arrays written out by hand.
//!
//! The formats:
//! - [`lines`]: newline-terminated lines over TCP, bounded (labs 01 and 02);
//! - [`probe`]: the 32-byte UDP probe header of lab 03-udp-loss;
//! - [`hello`]: the 8 bytes a `lab latency` ping-pong client opens with;
//! - [`stamped`]: timestamped sample frames of `lab latency --mode stream` and of lab
//!   07's `--framing stamped`, with the server side of their handshake;
//! - [`sockperf`]: sockperf's message header, to measure a `sockperf server`;
//! - [`clock`]: the wall clock (ns since the Unix epoch) that probes and frames carry;
//! - [`checksum`]: the Internet checksum (RFC 1071); [`ipv4`]: the IPv4 header
//!   (RFC 791); [`icmp`]: ICMP echo, destination unreachable and time exceeded
//!   (RFC 792), for lab 04-raw-icmp;
//! - [`pcapng`]: the capture files `--pcap` writes (Wireshark, tshark);
//! - [`jsonl`]: JSON Lines records and their acks (lab 06-json-to-file, on [`lines`]),
//!   checked in one pass by [`json_scan`], a JSON validator that agrees with serde_json.

pub mod chat;
pub mod checksum;
pub mod clock;
pub mod hello;
pub mod icmp;
pub mod ipv4;
pub mod json_scan;
pub mod jsonl;
pub mod lines;
pub mod pcapng;
pub mod probe;
pub mod sockperf;
pub mod stamped;

pub use clock::{epoch_ns, WallClock};

/// The largest UDP payload over IPv4: 65,535 (the IP total length field) minus 20 (the
/// IPv4 header without options) minus 8 (the UDP header) = 65,507 bytes. A receive
/// buffer one byte larger can tell a datagram of exactly this size from a truncated one.
pub const MAX_DATAGRAM: usize = 65_507;

/// Declares a protocol field's values once, as an enum: each variant names its value on
/// the wire, and the conversions both ways are generated from that one list (the idea of
/// smoltcp's `enum_with_unknown!`). Reading is `Kind::try_from(byte)`, which gives the
/// unknown value back as the error, so a view can report it; writing is `u8::from(kind)`.
///
/// Unlike smoltcp's macro there is no `Unknown(u8)` variant: every format here rejects
/// a value it does not know, so a parsed `Repr` only ever holds known ones and a `match`
/// on it needs no arm for the impossible.
macro_rules! field_enum {
    (
        $(#[$attr:meta])*
        pub enum $name:ident($ty:ty) {
            $( $(#[$vattr:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vattr])* $variant ),+
        }

        impl ::std::convert::TryFrom<$ty> for $name {
            /// The value no variant has.
            type Error = $ty;

            fn try_from(value: $ty) -> Result<$name, $ty> {
                match value {
                    $( v if v == $value => Ok($name::$variant), )+
                    other => Err(other),
                }
            }
        }

        impl ::std::convert::From<$name> for $ty {
            fn from(value: $name) -> $ty {
                match value {
                    $( $name::$variant => $value ),+
                }
            }
        }
    };
}
pub(crate) use field_enum;

#[cfg(test)]
mod tests {
    use super::*;

    field_enum! {
        /// A field for the test.
        pub enum Colour(u8) {
            /// One.
            Red = 1,
            /// Two hundred.
            Blue = 200,
        }
    }

    #[test]
    fn field_enum_converts_both_ways_and_returns_the_unknown() {
        assert_eq!(Colour::try_from(1), Ok(Colour::Red));
        assert_eq!(Colour::try_from(200), Ok(Colour::Blue));
        assert_eq!(Colour::try_from(2), Err(2));
        assert_eq!(u8::from(Colour::Blue), 200);
        for c in [Colour::Red, Colour::Blue] {
            assert_eq!(Colour::try_from(u8::from(c)), Ok(c));
        }
    }

    #[test]
    fn max_datagram_is_the_ipv4_udp_payload_limit() {
        assert_eq!(MAX_DATAGRAM, 65_535 - 20 - 8);
    }
}

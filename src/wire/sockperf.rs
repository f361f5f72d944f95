//! sockperf's message header, so `lab latency --peer sockperf` can measure against a
//! running `sockperf server` (Debian package sockperf) with exactly the bytes sockperf's
//! own client sends.
//!
//! Every message starts with 14 bytes, integers big-endian, then the payload up to the
//! message size (`sockperf ping-pong -m SIZE` counts the header in SIZE):
//!
//! ```text
//!  0                               8       10              14
//! +-------------------------------+-------+---------------+---------
//! |        sequence number        | flags | message size  | payload...
//! +-------------------------------+-------+---------------+---------
//! ```
//!
//! Flags: bit 0 "from the client", bit 1 "answer this one" (a pong request), bit 2
//! warm-up. A ping-pong request carries flags 3; `sockperf server` sends the same bytes
//! back with bit 0 cleared (flags 2). Over TCP the size field frames the stream.
//! Checked against sockperf 3.7's traffic with strace (a 16-byte ping: seq 1, flags
//! `00 03`, size `00 00 00 10`; its pong: flags `00 02`).

/// Bytes of the header: the smallest message sockperf sends.
pub const HEADER_LEN: usize = 14;
/// Largest message sockperf handles, over TCP too: its receive buffer is sized for the
/// largest UDP payload, [`super::MAX_DATAGRAM`].
pub const MAX_LEN: usize = super::MAX_DATAGRAM;

super::field_enum! {
    /// The flags field of the two messages a ping-pong exchanges.
    pub enum Flags(u16) {
        /// A request: from the client (bit 0), answer it (bit 1).
        Ping = 0b11,
        /// The server's answer: the client bit cleared.
        Pong = 0b10,
    }
}

/// The flags field's bytes on the wire.
fn flags(f: Flags) -> [u8; 2] {
    u16::from(f).to_be_bytes()
}

/// Writes a ping's header into the first [`HEADER_LEN`] bytes of `msg` (the whole
/// message, header included; `msg.len()` becomes the size field).
///
/// # Panics
/// If `msg` is shorter than the header; sizes are validated before any probe exists.
pub fn emit_ping(msg: &mut [u8], seq: u64) {
    let len = msg.len() as u32;
    msg[..8].copy_from_slice(&seq.to_be_bytes());
    msg[8..10].copy_from_slice(&flags(Flags::Ping));
    msg[10..14].copy_from_slice(&len.to_be_bytes());
}

/// Whether `reply` is the pong to `ping`: same sequence, size and payload, flags 2.
pub fn is_pong_to(reply: &[u8], ping: &[u8]) -> bool {
    reply.len() == ping.len()
        && reply.len() >= HEADER_LEN
        && reply[..8] == ping[..8]
        && reply[8..10] == flags(Flags::Pong)
        && reply[10..] == ping[10..]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a sockperf server does to a ping before sending it back.
    fn pong_of(ping: &mut [u8]) {
        ping[8..10].copy_from_slice(&flags(Flags::Pong));
    }

    #[test]
    fn ping_matches_sockperfs_bytes() {
        // The first 16-byte ping sockperf 3.7 sent in our strace, and its pong.
        let mut m = [0u8; 16];
        m[14] = 0x9a;
        m[15] = 0x66;
        emit_ping(&mut m, 1);
        assert_eq!(&m, b"\0\0\0\0\0\0\0\x01\0\x03\0\0\0\x10\x9a\x66");
        let mut p = m;
        pong_of(&mut p);
        assert_eq!(&p, b"\0\0\0\0\0\0\0\x01\0\x02\0\0\0\x10\x9a\x66");
        assert!(is_pong_to(&p, &m));
        assert!(!is_pong_to(&m, &m), "an unchanged echo is not a pong");
    }

    #[test]
    fn a_pong_to_another_ping_is_refused() {
        let mut a = [7u8; 20];
        emit_ping(&mut a, 41);
        let mut b = a;
        emit_ping(&mut b, 42);
        pong_of(&mut b);
        assert!(!is_pong_to(&b, &a));
        assert!(!is_pong_to(&b[..19], &a));
        assert!(!is_pong_to(&[0u8; 4], &[0u8; 4]), "shorter than a header");
    }
}

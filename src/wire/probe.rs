//! The UDP probe header of lab 03-udp-loss.
//!
//! Every probe datagram starts with 32 bytes, all integers in network byte order
//! (big-endian), then zero padding up to the size the sender was asked for:
//!
//! ```text
//!  0      4  5  6     8              16              24              32
//! +------+--+--+-----+---------------+---------------+---------------+---------
//! | LAB3 |v |k | 0 0 |  session id   |   sequence    | send time ns  | zeros...
//! +------+--+--+-----+---------------+---------------+---------------+---------
//! ```
//!
//! - bytes 0..4: magic `LAB3` (0x4C 0x41 0x42 0x33): "this is one of ours";
//! - byte 4: version, 1;
//! - byte 5: kind, 0 = data, 1 = end marker;
//! - bytes 6..8: reserved, sent as 0 and ignored on receipt;
//! - bytes 8..16: session id, a random u64 per sender run, so a receiver can tell this
//!   run's datagrams from a previous run's stragglers or another sender's;
//! - bytes 16..24: sequence number. Data: 0, 1, 2, ... (64 bits: at a million datagrams
//!   a second it would take 580,000 years to wrap, so it never does). End marker: the
//!   number of data datagrams sent, the authoritative count;
//! - bytes 24..32: send time, nanoseconds since the UNIX epoch, for jitter.
//!
//! Like smoltcp's `wire` module, [`Packet`] is a view over bytes with each offset written
//! once and a checked constructor for untrusted input, and [`Repr`] is the parsed,
//! high-level form with `parse` and `emit`.
//!
//! The receiver's accounting over these headers is lab 03's own
//! (`crate::labs::udp_loss::tally`).

use std::fmt;

/// The magic bytes at offset 0.
pub const MAGIC: [u8; 4] = *b"LAB3";
/// The only version this code speaks.
pub const VERSION: u8 = 1;
/// Length of the header; also the smallest probe datagram.
pub const HEADER_LEN: usize = 32;

/// Field offsets, written once (smoltcp style).
mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const KIND: usize = 5;
    pub const RESERVED: Range<usize> = 6..8;
    pub const SESSION: Range<usize> = 8..16;
    pub const SEQ: Range<usize> = 16..24;
    pub const SENT_NS: Range<usize> = 24..32;
}

super::field_enum! {
    /// What a probe datagram is (byte 5).
    pub enum Kind(u8) {
        /// A numbered data datagram.
        Data = 0,
        /// "I sent N data datagrams": the sequence field holds N.
        End = 1,
    }
}

/// Why bytes are not a probe datagram (the receiver counts these as foreign).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the 32-byte header.
    Short(usize),
    /// The first four bytes are not `LAB3`.
    Magic,
    /// A version this code does not know.
    Version(u8),
    /// A kind other than 0 or 1.
    Kind(u8),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Short(n) => write!(f, "{n} bytes, shorter than the {HEADER_LEN}-byte header"),
            Error::Magic => write!(f, "no LAB3 magic"),
            Error::Version(v) => write!(f, "unknown version {v}"),
            Error::Kind(k) => write!(f, "unknown kind {k}"),
        }
    }
}

impl std::error::Error for Error {}

/// A view of a probe datagram over any byte buffer.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    /// The datagram's bytes (header and padding).
    buffer: T,
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps bytes without checking them; field access panics if they are too short.
    /// Use only on buffers you sized yourself.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps untrusted bytes: fails unless they hold a whole header.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Fails if the buffer is shorter than the header.
    pub fn check_len(&self) -> Result<(), Error> {
        let n = self.buffer.as_ref().len();
        if n < HEADER_LEN {
            Err(Error::Short(n))
        } else {
            Ok(())
        }
    }

    /// The bytes back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Bytes 0..4.
    pub fn magic(&self) -> [u8; 4] {
        let mut m = [0u8; 4];
        m.copy_from_slice(&self.buffer.as_ref()[field::MAGIC]);
        m
    }

    /// Byte 4.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// Byte 5: the kind, or the byte itself when no kind has it.
    pub fn kind(&self) -> Result<Kind, u8> {
        Kind::try_from(self.buffer.as_ref()[field::KIND])
    }

    /// Bytes 8..16.
    pub fn session(&self) -> u64 {
        be_u64(&self.buffer.as_ref()[field::SESSION])
    }

    /// Bytes 16..24.
    pub fn seq(&self) -> u64 {
        be_u64(&self.buffer.as_ref()[field::SEQ])
    }

    /// Bytes 24..32.
    pub fn sent_ns(&self) -> u64 {
        be_u64(&self.buffer.as_ref()[field::SENT_NS])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the magic.
    pub fn set_magic(&mut self) {
        self.buffer.as_mut()[field::MAGIC].copy_from_slice(&MAGIC);
    }

    /// Writes the version.
    pub fn set_version(&mut self, v: u8) {
        self.buffer.as_mut()[field::VERSION] = v;
    }

    /// Writes the kind byte.
    pub fn set_kind(&mut self, k: Kind) {
        self.buffer.as_mut()[field::KIND] = k.into();
    }

    /// Zeroes the reserved bytes.
    pub fn clear_reserved(&mut self) {
        self.buffer.as_mut()[field::RESERVED].fill(0);
    }

    /// Writes the session id.
    pub fn set_session(&mut self, s: u64) {
        self.buffer.as_mut()[field::SESSION].copy_from_slice(&s.to_be_bytes());
    }

    /// Writes the sequence number (or, for an end marker, the count).
    pub fn set_seq(&mut self, s: u64) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&s.to_be_bytes());
    }

    /// Writes the send time.
    pub fn set_sent_ns(&mut self, t: u64) {
        self.buffer.as_mut()[field::SENT_NS].copy_from_slice(&t.to_be_bytes());
    }
}

/// A parsed probe header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Data or end marker.
    pub kind: Kind,
    /// The sender run's random id.
    pub session: u64,
    /// Data: the sequence number. End marker: how many data datagrams were sent.
    pub seq: u64,
    /// When it was sent, nanoseconds since the UNIX epoch (sender's clock).
    pub sent_ns: u64,
}

impl Repr {
    /// Parses a checked packet; reserved bytes are ignored (room for later versions).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr, Error> {
        p.check_len()?;
        if p.magic() != MAGIC {
            return Err(Error::Magic);
        }
        if p.version() != VERSION {
            return Err(Error::Version(p.version()));
        }
        let kind = p.kind().map_err(Error::Kind)?;
        Ok(Repr {
            kind,
            session: p.session(),
            seq: p.seq(),
            sent_ns: p.sent_ns(),
        })
    }

    /// Parses raw bytes (any length; the padding is not looked at).
    pub fn parse_bytes(b: &[u8]) -> Result<Repr, Error> {
        Repr::parse(&Packet::new_checked(b)?)
    }

    /// Bytes the header needs.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first 32 bytes; the padding after it is left as is
    /// (senders keep one zeroed buffer and rewrite only the header).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_magic();
        p.set_version(VERSION);
        p.set_kind(self.kind);
        p.clear_reserved();
        p.set_session(self.session);
        p.set_seq(self.seq);
        p.set_sent_ns(self.sent_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data datagram from the lesson's worked example: session 0x0102030405060708,
    /// sequence 5, sent at 1 s + 2 ns.
    const BYTES: [u8; 32] = [
        0x4C, 0x41, 0x42, 0x33, // "LAB3"
        0x01, 0x00, 0x00, 0x00, // version 1, kind data, reserved
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // session
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, // sequence 5
        0x00, 0x00, 0x00, 0x00, 0x3B, 0x9A, 0xCA, 0x02, // 1_000_000_002 ns
    ];

    fn repr() -> Repr {
        Repr {
            kind: Kind::Data,
            session: 0x0102_0304_0506_0708,
            seq: 5,
            sent_ns: 1_000_000_002,
        }
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&BYTES[..]).unwrap();
        assert_eq!(p.magic(), *b"LAB3");
        assert_eq!(p.version(), 1);
        assert_eq!(p.kind(), Ok(Kind::Data));
        assert_eq!(p.session(), 0x0102_0304_0506_0708);
        assert_eq!(p.seq(), 5);
        assert_eq!(p.sent_ns(), 1_000_000_002);
    }

    #[test]
    fn construct() {
        let mut buf = [0xFFu8; 32];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_magic();
        p.set_version(1);
        p.set_kind(Kind::Data);
        p.clear_reserved();
        p.set_session(0x0102_0304_0506_0708);
        p.set_seq(5);
        p.set_sent_ns(1_000_000_002);
        assert_eq!(buf, BYTES);
    }

    #[test]
    fn parse() {
        assert_eq!(
            Repr::parse(&Packet::new_checked(&BYTES[..]).unwrap()),
            Ok(repr())
        );
        // Padding after the header is not looked at.
        let mut long = BYTES.to_vec();
        long.extend_from_slice(&[0; 1000]);
        assert_eq!(Repr::parse_bytes(&long), Ok(repr()));
    }

    #[test]
    fn emit() {
        let mut buf = [0xFFu8; 32];
        repr().emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, BYTES);
        let end = Repr {
            kind: Kind::End,
            seq: u64::MAX,
            ..repr()
        };
        end.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf[5], 1);
        assert_eq!(buf[16..24], [0xFF; 8]);
        assert_eq!(Repr::parse_bytes(&buf), Ok(end));
    }

    #[test]
    fn rejects_what_is_not_a_probe() {
        assert_eq!(Repr::parse_bytes(&BYTES[..31]), Err(Error::Short(31)));
        assert_eq!(Repr::parse_bytes(&[]), Err(Error::Short(0)));
        let mut b = BYTES;
        b[0] = b'X';
        assert_eq!(Repr::parse_bytes(&b), Err(Error::Magic));
        let mut b = BYTES;
        b[4] = 2;
        assert_eq!(Repr::parse_bytes(&b), Err(Error::Version(2)));
        let mut b = BYTES;
        b[5] = 7;
        assert_eq!(Repr::parse_bytes(&b), Err(Error::Kind(7)));
        // Reserved bytes are ignored.
        let mut b = BYTES;
        b[6] = 9;
        assert_eq!(Repr::parse_bytes(&b), Ok(repr()));
    }
}

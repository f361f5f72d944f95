//! Timestamped sample frames: the stream mode of `lab latency` (and lab 07's server, which
//! may reuse them) sends samples in buffers of N, each buffer stamped with the time its
//! first sample was produced, so the receiver can compute every sample's age on arrival.
//!
//! A frame on the wire (all integers big-endian, network order):
//!
//! ```text
//! offset size field
//!  0     2    magic    b"LS" ("lab stream"): tells a stream peer from anything else
//!  2     1    kind     1 samples, 2 subscribe, 3 clock request, 4 clock reply
//!  3     1    flags    0 (reserved; receivers ignore unknown bits)
//!  4     4    seq      samples: index of the first sample; subscribe: samples per buffer;
//!                      clock request/reply: probe number
//!  8     8    t0_ns    samples: production time of the first sample; clock: the sender's
//!                      clock at sending. Nanoseconds since the Unix epoch (CLOCK_REALTIME,
//!                      the only clock two processes or machines can compare)
//! 16     4    period_ns time between two samples (the producer's fixed rate)
//! 20     2    len      number of sample bytes that follow (at most 65535)
//! 22     len  samples  one byte per sample, 0-255, like the Arduino's A0 reading
//! ```
//!
//! Sample `i` of a frame was produced at `t0_ns + i * period_ns`: the producer runs on a
//! fixed schedule (an ADC clock), so one stamp per buffer is enough and the samples stay one
//! byte each, as on the serial line.
//!
//! [`Frame`] is a view over bytes in the smoltcp style: [`Frame::new_checked`] validates
//! untrusted input once, getters read fields, setters need a writable buffer. [`Repr`] is the
//! parsed form with `parse` and `emit`. [`decode`] tells "incomplete, wait for more bytes"
//! apart from "invalid, close this peer".

use std::fmt;

/// The first two bytes of every frame.
pub const MAGIC: [u8; 2] = *b"LS";
/// Bytes before the samples.
pub const HEADER_LEN: usize = 22;
/// Most samples one frame can carry (the `len` field is 16 bits).
pub const MAX_SAMPLES: usize = u16::MAX as usize;

mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..2;
    pub const KIND: usize = 2;
    pub const FLAGS: usize = 3;
    pub const SEQ: Range<usize> = 4..8;
    pub const T0: Range<usize> = 8..16;
    pub const PERIOD: Range<usize> = 16..20;
    pub const LEN: Range<usize> = 20..22;
}

/// What a frame is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A buffer of samples (producer to consumer).
    Samples,
    /// A consumer asks for a stream: `seq` samples per buffer at one every `period_ns`.
    Subscribe,
    /// A clock probe: `t0_ns` is the asker's clock when sent.
    ClockRequest,
    /// The answer to a probe: `t0_ns` is the answerer's clock when it answered.
    ClockReply,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Samples),
            2 => Some(Kind::Subscribe),
            3 => Some(Kind::ClockRequest),
            4 => Some(Kind::ClockReply),
            _ => None,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Kind::Samples => 1,
            Kind::Subscribe => 2,
            Kind::ClockRequest => 3,
            Kind::ClockReply => 4,
        }
    }
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Fewer bytes than the header, or than the header says follow.
    Truncated,
    /// The first two bytes are not [`MAGIC`]: this peer speaks another protocol.
    BadMagic,
    /// An unknown `kind` byte.
    BadKind(u8),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "truncated stamped frame"),
            Error::BadMagic => write!(f, "not a stamped frame (bad magic)"),
            Error::BadKind(k) => write!(f, "unknown stamped frame kind {k}"),
        }
    }
}

impl std::error::Error for Error {}

/// A view of a frame over any byte buffer.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    /// The bytes, starting at the magic. May be longer than the frame.
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps bytes without checking them (for buffers we are filling ourselves).
    pub fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps untrusted bytes: the header and every announced sample must be present, the
    /// magic and kind must be valid.
    pub fn new_checked(buffer: T) -> Result<Frame<T>, Error> {
        let f = Frame::new_unchecked(buffer);
        f.check()?;
        Ok(f)
    }

    fn check(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::MAGIC] != MAGIC {
            return Err(Error::BadMagic);
        }
        Kind::from_u8(b[field::KIND]).ok_or(Error::BadKind(b[field::KIND]))?;
        if b.len() < self.total_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    fn u32_at(&self, r: std::ops::Range<usize>) -> u32 {
        u32::from_be_bytes(self.buffer.as_ref()[r].try_into().expect("4 bytes"))
    }

    /// The frame kind (checked frames only have valid kinds).
    pub fn kind(&self) -> Option<Kind> {
        Kind::from_u8(self.buffer.as_ref()[field::KIND])
    }

    /// Reserved flags.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// First sample's index, or samples per buffer, or probe number (see the table above).
    pub fn seq(&self) -> u32 {
        self.u32_at(field::SEQ)
    }

    /// Nanoseconds since the Unix epoch.
    pub fn t0_ns(&self) -> u64 {
        u64::from_be_bytes(self.buffer.as_ref()[field::T0].try_into().expect("8 bytes"))
    }

    /// Nanoseconds between samples.
    pub fn period_ns(&self) -> u32 {
        self.u32_at(field::PERIOD)
    }

    /// Number of sample bytes after the header.
    pub fn sample_len(&self) -> usize {
        u16::from_be_bytes(
            self.buffer.as_ref()[field::LEN]
                .try_into()
                .expect("2 bytes"),
        ) as usize
    }

    /// Header plus samples.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.sample_len()
    }

    /// The samples.
    pub fn samples(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }

    /// When sample `i` of this frame was produced, in ns since the epoch.
    pub fn produced_ns(&self, i: usize) -> u64 {
        self.t0_ns() + i as u64 * u64::from(self.period_ns())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Writes the magic and kind.
    pub fn set_kind(&mut self, kind: Kind) {
        let b = self.buffer.as_mut();
        b[field::MAGIC].copy_from_slice(&MAGIC);
        b[field::KIND] = kind.to_u8();
        b[field::FLAGS] = 0;
    }

    /// Writes `seq`.
    pub fn set_seq(&mut self, v: u32) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&v.to_be_bytes());
    }

    /// Writes `t0_ns`.
    pub fn set_t0_ns(&mut self, v: u64) {
        self.buffer.as_mut()[field::T0].copy_from_slice(&v.to_be_bytes());
    }

    /// Writes `period_ns`.
    pub fn set_period_ns(&mut self, v: u32) {
        self.buffer.as_mut()[field::PERIOD].copy_from_slice(&v.to_be_bytes());
    }

    /// Writes the samples and their count; the buffer must have room for them.
    pub fn set_samples(&mut self, samples: &[u8]) {
        let n = samples.len().min(MAX_SAMPLES);
        let b = self.buffer.as_mut();
        b[field::LEN].copy_from_slice(&(n as u16).to_be_bytes());
        b[HEADER_LEN..HEADER_LEN + n].copy_from_slice(&samples[..n]);
    }
}

/// A parsed frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repr {
    /// What the frame is for.
    pub kind: Kind,
    /// See the field table in the module documentation.
    pub seq: u32,
    /// Nanoseconds since the Unix epoch.
    pub t0_ns: u64,
    /// Nanoseconds between samples.
    pub period_ns: u32,
    /// One byte per sample; at most [`MAX_SAMPLES`].
    pub samples: Vec<u8>,
}

impl Repr {
    /// Reads a checked frame.
    pub fn parse<T: AsRef<[u8]>>(f: &Frame<T>) -> Result<Repr, Error> {
        f.check()?;
        Ok(Repr {
            kind: f
                .kind()
                .ok_or(Error::BadKind(f.buffer.as_ref()[field::KIND]))?,
            seq: f.seq(),
            t0_ns: f.t0_ns(),
            period_ns: f.period_ns(),
            samples: f.samples().to_vec(),
        })
    }

    /// Bytes [`Repr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.samples.len().min(MAX_SAMPLES)
    }

    /// Writes the frame into `f`, which must be at least [`Repr::buffer_len`] long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, f: &mut Frame<T>) {
        f.set_kind(self.kind);
        f.set_seq(self.seq);
        f.set_t0_ns(self.t0_ns);
        f.set_period_ns(self.period_ns);
        f.set_samples(&self.samples);
    }

    /// The frame as a new byte vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut Frame::new_unchecked(&mut v[..]));
        v
    }
}

/// What the front of a receive buffer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Not a whole frame yet: keep the bytes and wait for more.
    Incomplete,
    /// A whole frame of this many bytes starts the buffer.
    Frame(usize),
    /// The bytes can never become a frame: close the peer.
    Invalid(Error),
}

/// Looks at the start of a stream buffer. Checks the magic and kind as soon as they have
/// arrived, so a peer speaking another protocol is rejected without waiting for 22 bytes.
pub fn decode(buf: &[u8]) -> Decoded {
    let magic_seen = buf.len().min(2);
    if buf[..magic_seen] != MAGIC[..magic_seen] {
        return Decoded::Invalid(Error::BadMagic);
    }
    if buf.len() > field::KIND && Kind::from_u8(buf[field::KIND]).is_none() {
        return Decoded::Invalid(Error::BadKind(buf[field::KIND]));
    }
    if buf.len() < HEADER_LEN {
        return Decoded::Incomplete;
    }
    let len = Frame::new_unchecked(buf).total_len();
    if buf.len() < len {
        Decoded::Incomplete
    } else {
        Decoded::Frame(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A samples frame written out by hand from the table in the module docs.
    const BYTES: [u8; 25] = [
        b'L', b'S', 1, 0, // magic, kind = samples, flags
        0, 0, 0, 7, // seq = 7
        0, 0, 0, 0, 0, 0, 0x03, 0xe8, // t0 = 1000 ns
        0, 0, 0, 100, // period = 100 ns
        0, 3, // three samples
        10, 20, 30,
    ];

    fn repr() -> Repr {
        Repr {
            kind: Kind::Samples,
            seq: 7,
            t0_ns: 1000,
            period_ns: 100,
            samples: vec![10, 20, 30],
        }
    }

    #[test]
    fn parses_a_frame_from_bytes() {
        let f = Frame::new_checked(&BYTES[..]).unwrap();
        assert_eq!(f.kind(), Some(Kind::Samples));
        assert_eq!(
            (f.seq(), f.t0_ns(), f.period_ns(), f.flags()),
            (7, 1000, 100, 0)
        );
        assert_eq!(f.samples(), &[10, 20, 30]);
        assert_eq!(f.produced_ns(2), 1200);
        assert_eq!(Repr::parse(&f).unwrap(), repr());
    }

    #[test]
    fn emits_the_same_bytes() {
        assert_eq!(repr().to_bytes(), BYTES);
        let mut buf = [0u8; 25];
        let mut f = Frame::new_unchecked(&mut buf[..]);
        repr().emit(&mut f);
        assert_eq!(buf, BYTES);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            Frame::new_checked(&BYTES[..21]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Frame::new_checked(&BYTES[..24]).unwrap_err(),
            Error::Truncated
        );
        let mut b = BYTES;
        b[0] = b'X';
        assert_eq!(Frame::new_checked(&b[..]).unwrap_err(), Error::BadMagic);
        let mut b = BYTES;
        b[2] = 9;
        assert_eq!(Frame::new_checked(&b[..]).unwrap_err(), Error::BadKind(9));
    }

    #[test]
    fn decode_separates_incomplete_from_invalid() {
        assert_eq!(decode(&[]), Decoded::Incomplete);
        assert_eq!(decode(b"L"), Decoded::Incomplete);
        assert_eq!(decode(b"GET / HTTP/1.1"), Decoded::Invalid(Error::BadMagic));
        assert_eq!(decode(b"LS\x07"), Decoded::Invalid(Error::BadKind(7)));
        assert_eq!(decode(&BYTES[..24]), Decoded::Incomplete);
        let mut two = BYTES.to_vec();
        two.extend_from_slice(&BYTES[..5]);
        assert_eq!(decode(&two), Decoded::Frame(25));
    }

    #[test]
    fn caps_samples_at_the_length_field() {
        let r = Repr {
            samples: vec![1; MAX_SAMPLES + 10],
            ..repr()
        };
        let bytes = r.to_bytes();
        assert_eq!(bytes.len(), HEADER_LEN + MAX_SAMPLES);
        assert_eq!(
            Frame::new_checked(&bytes[..]).unwrap().sample_len(),
            MAX_SAMPLES
        );
    }
}

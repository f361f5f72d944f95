//! Timestamped sample frames: the stream mode of `lab latency` and lab 07's server with
//! `--framing stamped` send samples in buffers of N, each buffer stamped with the time its
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
//!
//! Both servers share the rest of the protocol too: [`emit_samples`] stamps a buffer in
//! place, [`next_request`] reads what a client asks (clock probes, a subscription) and
//! [`clock_reply`] answers a probe; what a server accepts stays its own choice.

use std::fmt;
use std::time::Instant;

use super::WallClock;

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

super::field_enum! {
    /// What a frame is for (the `kind` byte).
    pub enum Kind(u8) {
        /// A buffer of samples (producer to consumer).
        Samples = 1,
        /// A consumer asks for a stream: `seq` samples per buffer at one every `period_ns`.
        Subscribe = 2,
        /// A clock probe: `t0_ns` is the asker's clock when sent.
        ClockRequest = 3,
        /// The answer to a probe: `t0_ns` is the answerer's clock when it answered.
        ClockReply = 4,
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
        Kind::try_from(b[field::KIND]).map_err(Error::BadKind)?;
        if b.len() < self.total_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    fn u32_at(&self, r: std::ops::Range<usize>) -> u32 {
        u32::from_be_bytes(self.buffer.as_ref()[r].try_into().expect("4 bytes"))
    }

    /// The frame kind; `None` for a byte no kind has (checked frames only have valid
    /// kinds).
    pub fn kind(&self) -> Option<Kind> {
        Kind::try_from(self.buffer.as_ref()[field::KIND]).ok()
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
        b[field::KIND] = kind.into();
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
    if buf.len() > field::KIND && Kind::try_from(buf[field::KIND]).is_err() {
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

/// One buffer's place in time and in the stream, for [`emit_samples`].
#[derive(Debug, Clone, Copy)]
pub struct BufferTime {
    /// When the buffer's first sample was born, as far as this machine can know it.
    pub oldest: Instant,
    /// Index of the first sample among those this client was given (or skipped).
    pub seq: u64,
    /// Time between two samples, in ns (the source's nominal rate).
    pub period_ns: u32,
}

/// Appends one samples frame carrying `samples` (at most [`MAX_SAMPLES`] of them) to
/// `out`; `now` puts the buffer's birth time on the wall clock. Written in place: no
/// [`Repr`] (and no copy of the samples) per buffer, as a server sends one per buffer.
pub fn emit_samples(samples: &[u8], time: BufferTime, now: WallClock, out: &mut Vec<u8>) {
    let start = out.len();
    let n = samples.len().min(MAX_SAMPLES);
    out.resize(start + HEADER_LEN + n, 0);
    let mut f = Frame::new_unchecked(&mut out[start..]);
    f.set_kind(Kind::Samples);
    // The frame's seq is 32 bits: it wraps after 55 days at 896/s.
    f.set_seq(time.seq as u32);
    f.set_t0_ns(now.epoch_ns(time.oldest));
    f.set_period_ns(time.period_ns);
    f.set_samples(&samples[..n]);
}

/// What a stamped client asks of its server. The exchange: a client on another machine
/// first probes the server's clock a few times (to estimate the offset between the two
/// clocks), then subscribes; from then on the server sends samples frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Send buffers of `samples` samples (0: the server's choice), the client expecting
    /// one sample every `period_ns` (0: no expectation).
    Subscribe {
        /// Samples per buffer, from the frame's `seq`.
        samples: u32,
        /// The client's idea of the sample period.
        period_ns: u32,
    },
    /// A clock probe numbered `seq`: answer with [`clock_reply`].
    ClockProbe {
        /// Echoed in the reply, so the client can match it to its probe.
        seq: u32,
    },
    /// A frame a client has no business sending (samples, a clock reply): ignored.
    Other(Kind),
}

/// Takes the next request off the front of a server's receive buffer. `Ok(None)`: no
/// whole frame yet, the bytes are kept; an error: the bytes can never become a frame,
/// close the peer. The caller bounds the buffer.
pub fn next_request(inbound: &mut Vec<u8>) -> Result<Option<Request>, Error> {
    let len = match decode(inbound) {
        Decoded::Incomplete => return Ok(None),
        Decoded::Invalid(e) => return Err(e),
        Decoded::Frame(len) => len,
    };
    let f = Frame::new_unchecked(&inbound[..len]);
    let request = match f.kind() {
        Some(Kind::Subscribe) => Request::Subscribe {
            samples: f.seq(),
            period_ns: f.period_ns(),
        },
        Some(Kind::ClockRequest) => Request::ClockProbe { seq: f.seq() },
        Some(other) => Request::Other(other),
        // `decode` checked the kind.
        None => return Err(Error::BadKind(inbound[field::KIND])),
    };
    inbound.drain(..len);
    Ok(Some(request))
}

/// The answer to clock probe `seq`: our wall clock `now_ns` (read just before sending).
pub fn clock_reply(seq: u32, now_ns: u64) -> Vec<u8> {
    Repr {
        kind: Kind::ClockReply,
        seq,
        t0_ns: now_ns,
        period_ns: 0,
        samples: Vec::new(),
    }
    .to_bytes()
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

    /// A buffer whose first sample was born 5 ms before a wall-clock reading of
    /// 1 000 000 000 ns: 995 000 000 ns.
    fn buffer_time() -> (BufferTime, WallClock) {
        let now = WallClock {
            at: Instant::now(),
            ns: 1_000_000_000,
        };
        let time = BufferTime {
            oldest: now.at - std::time::Duration::from_millis(5),
            seq: 32,
            period_ns: 1_116_071,
        };
        (time, now)
    }

    #[test]
    fn emit_samples_dates_the_first_sample_on_the_wall_clock() {
        let (time, now) = buffer_time();
        let mut out = vec![9]; // appended after what is already there
        emit_samples(&[1, 2, 3], time, now, &mut out);
        assert_eq!(out[0], 9);
        let f = Frame::new_checked(&out[1..]).unwrap();
        assert_eq!(f.kind(), Some(Kind::Samples));
        assert_eq!((f.seq(), f.period_ns()), (32, 1_116_071));
        assert_eq!(f.t0_ns(), 995_000_000);
        assert_eq!(f.samples(), &[1, 2, 3]);
        assert_eq!(f.produced_ns(2), 995_000_000 + 2 * 1_116_071);
        assert_eq!(out.len(), 1 + HEADER_LEN + 3);
    }

    #[test]
    fn emit_samples_writes_the_bytes_of_the_table() {
        let now = WallClock {
            at: Instant::now(),
            ns: 1000,
        };
        let time = BufferTime {
            oldest: now.at,
            seq: 7,
            period_ns: 100,
        };
        let mut out = Vec::new();
        emit_samples(&[10, 20, 30], time, now, &mut out);
        assert_eq!(out, BYTES);
    }

    #[test]
    fn a_server_reads_requests_one_whole_frame_at_a_time() {
        let sub = Repr {
            kind: Kind::Subscribe,
            seq: 8,
            t0_ns: 0,
            period_ns: 1_116_071,
            samples: Vec::new(),
        };
        let probe = Repr {
            kind: Kind::ClockRequest,
            seq: 3,
            t0_ns: 55,
            ..sub.clone()
        };
        let mut inbound = probe.to_bytes();
        inbound.extend_from_slice(&sub.to_bytes());
        inbound.extend_from_slice(&BYTES);
        inbound.extend_from_slice(&BYTES[..4]);
        assert_eq!(
            next_request(&mut inbound),
            Ok(Some(Request::ClockProbe { seq: 3 }))
        );
        assert_eq!(
            next_request(&mut inbound),
            Ok(Some(Request::Subscribe {
                samples: 8,
                period_ns: 1_116_071
            }))
        );
        assert_eq!(
            next_request(&mut inbound),
            Ok(Some(Request::Other(Kind::Samples)))
        );
        assert_eq!(next_request(&mut inbound), Ok(None));
        assert_eq!(inbound, BYTES[..4], "a partial frame is kept");
        let mut bad = b"GET / HTTP/1.1".to_vec();
        assert_eq!(next_request(&mut bad), Err(Error::BadMagic));
    }

    #[test]
    fn a_clock_reply_carries_the_probe_number_and_our_clock() {
        let reply = clock_reply(3, 0x0102_0304_0506_0708);
        assert_eq!(
            reply,
            [
                b'L', b'S', 4, 0, // magic, kind = clock reply, flags
                0, 0, 0, 3, // the probe's number
                1, 2, 3, 4, 5, 6, 7, 8, // our clock
                0, 0, 0, 0, // period: none
                0, 0, // no samples
            ]
        );
    }
}

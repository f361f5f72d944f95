//! ICMP for IPv4 (RFC 792): echo request and reply, and the two error messages a ping
//! reports (destination unreachable, time exceeded), which quote the packet they are
//! about.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |     Code      |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  echo: Identifier             |  echo: Sequence Number        |
//! |  errors: unused (zero)                                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  echo: data, returned unchanged by the replier ...
//! |  errors: the offending IPv4 header + the first 8 bytes of its payload
//! +-+-+-+-+-+-+-+-+-+-+-
//! ```
//!
//! The checksum covers the whole ICMP message, header and data, computed with the
//! field at zero (RFC 792, "Echo or Echo Reply Message"; the sum is RFC 1071's, see
//! [`super::checksum`]). Identifier and sequence number let a sender match replies to
//! requests: ping uses its process id as the identifier and counts the sequence up.
//!
//! [`Packet`] is a view over bytes with every offset written once; [`Repr`] is the
//! parsed form with `parse` (checksum verified, each failure a reason) and `emit`.

use std::fmt;

use super::{checksum, ipv4};

/// Type, code, checksum and the 4-byte rest of the header.
pub const HEADER_LEN: usize = 8;

/// How many bytes of the offending packet's payload an ICMP error quotes (RFC 792:
/// "Internet Header + 64 bits of Original Data Datagram"). Linux quotes more (up to
/// 576 bytes in all), which parsing accepts.
pub const QUOTED_DATA_LEN: usize = 8;

/// Field offsets, written once.
mod field {
    use std::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQNO: Range<usize> = 6..8;
    /// Unused in the error messages: sent as zero.
    pub const UNUSED: Range<usize> = 4..8;
    /// Echo data, or the quoted packet of an error.
    pub const DATA: usize = 8;
}

/// The message type (first byte). Types this code does not decode keep their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// 0: the answer to an echo request, data returned unchanged.
    EchoReply,
    /// 3: a router or the destination could not deliver our packet.
    DstUnreachable,
    /// 4: source quench (deprecated by RFC 6633).
    SourceQuench,
    /// 5: use another gateway.
    Redirect,
    /// 8: "please echo this" (what ping sends).
    EchoRequest,
    /// 11: the TTL reached zero on the way (what traceroute provokes).
    TimeExceeded,
    /// 12: a header field was bad.
    ParamProblem,
    /// 13: timestamp request.
    Timestamp,
    /// 14: timestamp reply.
    TimestampReply,
    /// Any other type.
    Unknown(u8),
}

impl From<u8> for Message {
    fn from(v: u8) -> Message {
        match v {
            0 => Message::EchoReply,
            3 => Message::DstUnreachable,
            4 => Message::SourceQuench,
            5 => Message::Redirect,
            8 => Message::EchoRequest,
            11 => Message::TimeExceeded,
            12 => Message::ParamProblem,
            13 => Message::Timestamp,
            14 => Message::TimestampReply,
            n => Message::Unknown(n),
        }
    }
}

impl From<Message> for u8 {
    fn from(m: Message) -> u8 {
        match m {
            Message::EchoReply => 0,
            Message::DstUnreachable => 3,
            Message::SourceQuench => 4,
            Message::Redirect => 5,
            Message::EchoRequest => 8,
            Message::TimeExceeded => 11,
            Message::ParamProblem => 12,
            Message::Timestamp => 13,
            Message::TimestampReply => 14,
            Message::Unknown(n) => n,
        }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Message::EchoReply => "echo reply",
            Message::DstUnreachable => "destination unreachable",
            Message::SourceQuench => "source quench",
            Message::Redirect => "redirect",
            Message::EchoRequest => "echo request",
            Message::TimeExceeded => "time exceeded",
            Message::ParamProblem => "parameter problem",
            Message::Timestamp => "timestamp",
            Message::TimestampReply => "timestamp reply",
            Message::Unknown(n) => return write!(f, "type {n}"),
        };
        f.write_str(s)
    }
}

/// What a destination-unreachable code means (RFC 792, RFC 1122 3.2.2.1), as ping says it.
pub fn unreachable_reason(code: u8) -> &'static str {
    match code {
        0 => "Destination Net Unreachable",
        1 => "Destination Host Unreachable",
        2 => "Destination Protocol Unreachable",
        3 => "Destination Port Unreachable",
        4 => "Frag needed and DF set",
        5 => "Source Route Failed",
        6 => "Destination Net Unknown",
        7 => "Destination Host Unknown",
        9 | 10 => "Communication with destination prohibited",
        13 => "Communication administratively prohibited",
        _ => "Destination Unreachable (other code)",
    }
}

/// What a time-exceeded code means (RFC 792).
pub fn time_exceeded_reason(code: u8) -> &'static str {
    match code {
        0 => "Time to live exceeded",
        1 => "Frag reassembly time exceeded",
        _ => "Time exceeded (other code)",
    }
}

/// Why bytes are not a usable ICMP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the 8-byte header.
    Truncated { got: usize },
    /// The checksum over the message does not verify.
    Checksum { received: u16, computed: u16 },
    /// A type [`Repr`] does not decode (the view still reads its fields).
    Unrecognized(Message),
    /// An echo with a code other than 0.
    Code { message: Message, code: u8 },
    /// An error message whose quoted packet is not a whole IPv4 header plus 8 bytes.
    Quoted(QuotedError),
}

/// What is wrong with the packet an ICMP error quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotedError {
    /// The quoted IPv4 header itself.
    Header(ipv4::Error),
    /// Fewer than 8 bytes after the quoted header.
    ShortData { got: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { got } => write!(
                f,
                "truncated ICMP message: {got} bytes, the header needs {HEADER_LEN}"
            ),
            Error::Checksum { received, computed } => write!(
                f,
                "ICMP checksum 0x{received:04x} received, 0x{computed:04x} computed"
            ),
            Error::Unrecognized(m) => write!(f, "ICMP {m} ({}) is not decoded", u8::from(*m)),
            Error::Code { message, code } => write!(f, "ICMP {message} with code {code}, not 0"),
            Error::Quoted(QuotedError::Header(e)) => write!(f, "the quoted packet: {e}"),
            Error::Quoted(QuotedError::ShortData { got }) => write!(
                f,
                "the quoted packet has {got} bytes after its header, not the {QUOTED_DATA_LEN} RFC 792 requires"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// A view of an ICMP message over any byte buffer (the IPv4 payload).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    /// The message's bytes, header first.
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps bytes without checks: accessors panic on a buffer shorter than 8 bytes.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps untrusted bytes: at least the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let got = buffer.as_ref().len();
        if got < HEADER_LEN {
            return Err(Error::Truncated { got });
        }
        Ok(Packet { buffer })
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, r: std::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The message type.
    pub fn msg_type(&self) -> Message {
        Message::from(self.buffer.as_ref()[field::TYPE])
    }

    /// The code (a sub-type: which kind of unreachable, for instance).
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// The checksum as received.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The checksum this message should carry: over everything with the field as zero.
    pub fn computed_checksum(&self) -> u16 {
        let b = self.buffer.as_ref();
        let acc = checksum::sum(&b[..field::CHECKSUM.start]);
        !checksum::fold(checksum::sum_more(acc, &b[field::CHECKSUM.end..]))
    }

    /// True when the checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.buffer.as_ref())
    }

    /// The echo identifier.
    pub fn echo_ident(&self) -> u16 {
        self.u16_at(field::ECHO_IDENT)
    }

    /// The echo sequence number.
    pub fn echo_seq_no(&self) -> u16 {
        self.u16_at(field::ECHO_SEQNO)
    }

    /// The 4 bytes after the checksum, as one number (zero in error messages).
    pub fn unused(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::UNUSED];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Everything after the 8-byte header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16(&mut self, r: std::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the type.
    pub fn set_msg_type(&mut self, m: Message) {
        self.buffer.as_mut()[field::TYPE] = m.into();
    }

    /// Sets the code.
    pub fn set_msg_code(&mut self, c: u8) {
        self.buffer.as_mut()[field::CODE] = c;
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, v: u16) {
        self.set_u16(field::ECHO_IDENT, v);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, v: u16) {
        self.set_u16(field::ECHO_SEQNO, v);
    }

    /// The data area, after the header.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }

    /// Stores a checksum computed elsewhere (see [`checksum::update_zeroed`]).
    pub fn set_checksum(&mut self, c: u16) {
        self.set_u16(field::CHECKSUM, c);
    }

    /// Computes and stores the checksum (last: it covers everything else).
    pub fn fill_checksum(&mut self) {
        self.set_u16(field::CHECKSUM, 0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_u16(field::CHECKSUM, c);
    }
}

/// An ICMP message, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repr<'a> {
    /// Type 8, code 0.
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    /// Type 0, code 0.
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    /// Type 3: `code` says why ([`unreachable_reason`]); `header` is the quoted IPv4
    /// header of our packet and `data` what follows it (at least 8 bytes: for an echo
    /// request, its ICMP header with our identifier and sequence number).
    DstUnreachable {
        code: u8,
        header: ipv4::Repr,
        data: &'a [u8],
    },
    /// Type 11, same layout as [`Repr::DstUnreachable`] ([`time_exceeded_reason`]).
    TimeExceeded {
        code: u8,
        header: ipv4::Repr,
        data: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Parses a message: checksum verified first (RFC 792), then the type's layout.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &'a Packet<&'a T>) -> Result<Repr<'a>, Error> {
        if !p.verify_checksum() {
            return Err(Error::Checksum {
                received: p.checksum(),
                computed: p.computed_checksum(),
            });
        }
        let data = &p.buffer.as_ref()[field::DATA..];
        let (message, code) = (p.msg_type(), p.msg_code());
        match message {
            Message::EchoRequest | Message::EchoReply => {
                if code != 0 {
                    return Err(Error::Code { message, code });
                }
                let (ident, seq_no) = (p.echo_ident(), p.echo_seq_no());
                Ok(if message == Message::EchoRequest {
                    Repr::EchoRequest {
                        ident,
                        seq_no,
                        data,
                    }
                } else {
                    Repr::EchoReply {
                        ident,
                        seq_no,
                        data,
                    }
                })
            }
            Message::DstUnreachable | Message::TimeExceeded => {
                let (header, data) = parse_quoted(data).map_err(Error::Quoted)?;
                Ok(if message == Message::DstUnreachable {
                    Repr::DstUnreachable { code, header, data }
                } else {
                    Repr::TimeExceeded { code, header, data }
                })
            }
            other => Err(Error::Unrecognized(other)),
        }
    }

    /// The bytes [`Repr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Repr::EchoRequest { data, .. } | Repr::EchoReply { data, .. } => data.len(),
                Repr::DstUnreachable { header, data, .. }
                | Repr::TimeExceeded { header, data, .. } => header.header_len() + data.len(),
            }
    }

    /// Writes the message into `p` (exactly [`Repr::buffer_len`] bytes), checksum last.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        match self {
            Repr::EchoRequest {
                ident,
                seq_no,
                data,
            }
            | Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                p.set_msg_type(if matches!(self, Repr::EchoRequest { .. }) {
                    Message::EchoRequest
                } else {
                    Message::EchoReply
                });
                p.set_msg_code(0);
                p.set_echo_ident(*ident);
                p.set_echo_seq_no(*seq_no);
                p.data_mut()[..data.len()].copy_from_slice(data);
            }
            Repr::DstUnreachable { code, header, data }
            | Repr::TimeExceeded { code, header, data } => {
                p.set_msg_type(if matches!(self, Repr::DstUnreachable { .. }) {
                    Message::DstUnreachable
                } else {
                    Message::TimeExceeded
                });
                p.set_msg_code(*code);
                p.buffer.as_mut()[field::UNUSED].fill(0);
                let out = p.data_mut();
                let n = header.header_len();
                header.emit(&mut ipv4::Packet::new_unchecked(&mut out[..n]));
                out[n..n + data.len()].copy_from_slice(data);
            }
        }
        p.fill_checksum();
    }

    /// For an error message about an echo request: the request's identifier and
    /// sequence number, read from the quoted ICMP header.
    pub fn quoted_echo(&self) -> Option<(u16, u16)> {
        match self {
            Repr::DstUnreachable { header, data, .. } | Repr::TimeExceeded { header, data, .. }
                if header.protocol == ipv4::Protocol::Icmp
                    && data.len() >= HEADER_LEN
                    && Message::from(data[0]) == Message::EchoRequest =>
            {
                let p = Packet::new_unchecked(*data);
                Some((p.echo_ident(), p.echo_seq_no()))
            }
            _ => None,
        }
    }
}

/// The quoted packet of an error: a whole IPv4 header (checksum verified) and at least
/// 8 bytes after it.
fn parse_quoted(data: &[u8]) -> Result<(ipv4::Repr, &[u8]), QuotedError> {
    let ip = ipv4::Packet::new_checked_quoted(data).map_err(QuotedError::Header)?;
    let header = ipv4::Repr::parse_quoted(&ip).map_err(QuotedError::Header)?;
    let rest = &data[ip.header_len()..];
    if rest.len() < QUOTED_DATA_LEN {
        return Err(QuotedError::ShortData { got: rest.len() });
    }
    Ok((header, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use std::net::Ipv4Addr;

    /// An echo request as `ping -p 61 -s 5` would send it: identifier 0x1234, sequence
    /// 1, five data bytes (odd on purpose). Checksum worked by hand (RFC 1071): words
    /// 0800 1234 0001 6161 6161 6100 (the odd byte padded) sum to 0x13df7; the
    /// end-around carry gives 0x3df8, whose complement is 0xc207.
    const ECHO_REQUEST: [u8; 13] = [
        0x08, 0x00, 0xc2, 0x07, // type 8, code 0, checksum
        0x12, 0x34, 0x00, 0x01, // identifier, sequence
        0x61, 0x61, 0x61, 0x61, 0x61, // data "aaaaa"
    ];

    fn echo_request() -> Repr<'static> {
        Repr::EchoRequest {
            ident: 0x1234,
            seq_no: 1,
            data: b"aaaaa",
        }
    }

    #[test]
    fn view_reads_every_field() {
        let p = Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert_eq!(p.msg_type(), Message::EchoRequest);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.checksum(), 0xc207);
        assert_eq!(p.computed_checksum(), 0xc207);
        assert!(p.verify_checksum());
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x1234, 1));
        assert_eq!(p.data(), b"aaaaa");
    }

    #[test]
    fn parse_bytes_to_repr() {
        let p = Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), echo_request());
    }

    #[test]
    fn emit_repr_to_bytes() {
        let r = echo_request();
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, ECHO_REQUEST);
        // A reply differs in the type byte only: the sum is 0x0800 lower, so the
        // checksum (its complement) is 0x0800 higher.
        let reply = Repr::EchoReply {
            ident: 0x1234,
            seq_no: 1,
            data: b"aaaaa",
        };
        let mut buf = vec![0u8; reply.buffer_len()];
        reply.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf[0], 0);
        assert_eq!(u16::from_be_bytes([buf[2], buf[3]]), 0xca07);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), reply);
    }

    /// A time-exceeded message quoting our echo request (IPv4 header + its 8-byte ICMP
    /// header), as a router on the way would send it.
    fn time_exceeded_bytes() -> Vec<u8> {
        let quoted_ip = ipv4::Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(192, 0, 2, 7),
            protocol: ipv4::Protocol::Icmp,
            ttl: 1,
            ident: 99,
            dont_frag: true,
            options: vec![],
            payload_len: ECHO_REQUEST.len(),
        };
        let r = Repr::TimeExceeded {
            code: 0,
            header: quoted_ip,
            data: &ECHO_REQUEST[..8],
        };
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        buf
    }

    #[test]
    fn errors_quote_our_request() {
        let buf = time_exceeded_bytes();
        assert_eq!(buf.len(), 8 + 20 + 8);
        assert_eq!((buf[0], buf[1]), (11, 0));
        let p = Packet::new_checked(&buf[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        let Repr::TimeExceeded { code, header, data } = &r else {
            panic!("{r:?}")
        };
        assert_eq!(*code, 0);
        assert_eq!(header.dst_addr, Ipv4Addr::new(192, 0, 2, 7));
        assert_eq!(data.len(), 8);
        assert_eq!(r.quoted_echo(), Some((0x1234, 1)));
        assert_eq!(time_exceeded_reason(0), "Time to live exceeded");
        // Linux quotes more than 8 bytes: accepted.
        let mut longer = buf.clone();
        longer.extend_from_slice(b"aaaaa");
        Packet::new_unchecked(&mut longer[..]).fill_checksum();
        let p = Packet::new_checked(&longer[..]).unwrap();
        assert!(matches!(Repr::parse(&p), Ok(Repr::TimeExceeded { .. })));
    }

    #[test]
    fn corrupted_messages_are_rejected_with_a_reason() {
        let mut b = ECHO_REQUEST;
        b[12] ^= 1;
        let p = Packet::new_checked(&b[..]).unwrap();
        let e = Repr::parse(&p).unwrap_err();
        assert_eq!(
            e,
            Error::Checksum {
                received: 0xc207,
                computed: 0xc307
            }
        );
        assert!(e.to_string().contains("0xc207 received, 0xc307 computed"));
        // Code 1 on an echo, checksum fixed up.
        let mut b = ECHO_REQUEST;
        b[1] = 1;
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_checksum();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            Repr::parse(&p).unwrap_err(),
            Error::Code {
                message: Message::EchoRequest,
                code: 1
            }
        );
        // An unknown type keeps its number.
        let mut b = ECHO_REQUEST;
        b[0] = 42;
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_checksum();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            Repr::parse(&p).unwrap_err(),
            Error::Unrecognized(Message::Unknown(42))
        );
        assert_eq!(u8::from(Message::Unknown(42)), 42);
        // A quoted header whose checksum is broken.
        let mut b = time_exceeded_bytes();
        b[8 + 8] ^= 0xff; // the quoted TTL
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_checksum();
        let p = Packet::new_checked(&b[..]).unwrap();
        let e = Repr::parse(&p).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Quoted(QuotedError::Header(ipv4::Error::Checksum { .. }))
            ),
            "{e}"
        );
    }

    #[test]
    fn every_truncation_is_rejected() {
        // Echo data ends in non-zero bytes, so a cut always changes the sum.
        for n in 0..ECHO_REQUEST.len() {
            let r =
                Packet::new_checked(&ECHO_REQUEST[..n]).and_then(|p| Repr::parse(&p).map(|_| ()));
            assert!(r.is_err(), "length {n} accepted");
        }
        let full = time_exceeded_bytes();
        for n in 0..full.len() {
            let r = Packet::new_checked(&full[..n]).and_then(|p| Repr::parse(&p).map(|_| ()));
            assert!(r.is_err(), "length {n} accepted");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let seed = 0x0792;
        eprintln!("seed {seed}");
        let mut rng = Rng::new(seed);
        let mut parsed = 0;
        for _ in 0..20_000 {
            let n = rng.range(0, 64);
            let mut b = rng.bytes(n);
            // Give most of them a valid checksum and a known type, so parsing goes deep.
            if n >= HEADER_LEN && rng.unit() < 0.8 {
                b[0] = [0, 3, 8, 11, 5, 99][rng.range(0, 6)];
                if (b[0] == 3 || b[0] == 11) && n > 8 {
                    b[8] = 0x45;
                }
                if rng.unit() < 0.5 {
                    b[1] = 0;
                }
                Packet::new_unchecked(&mut b[..]).fill_checksum();
            }
            if let Ok(p) = Packet::new_checked(&b[..]) {
                if let Ok(r) = Repr::parse(&p) {
                    parsed += 1;
                    let _ = r.quoted_echo();
                    let mut out = vec![0u8; r.buffer_len()];
                    r.emit(&mut Packet::new_unchecked(&mut out[..]));
                }
            }
        }
        assert!(
            parsed > 1000,
            "only {parsed} parsed: the test is not going deep"
        );
    }
}

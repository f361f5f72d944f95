//! The IPv4 header (RFC 791 section 3.1), as a raw ICMP socket hands it to us.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |Type of Service|          Total Length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Identification        |Flags|      Fragment Offset    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       Source Address                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Destination Address                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Options (0-40 bytes)       |    Padding    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The lesson of this file is IHL: the header is IHL x 4 bytes, 20 to 60, because
//! options may follow the fixed part. Code that skips a fixed 20 bytes reads options as
//! the ICMP message whenever a packet carries them.
//!
//! [`Packet`] is a view over bytes with every offset written once (the `field` module)
//! and a checked constructor for untrusted input; [`Repr`] is the parsed form with
//! `parse` (every check, each failure a reason) and `emit`.

use std::fmt;
use std::net::Ipv4Addr;

use super::checksum;

/// The fixed part of the header; also the smallest IHL (5 words).
pub const MIN_HEADER_LEN: usize = 20;
/// IHL is 4 bits counting 32-bit words: at most 15 x 4 = 60 bytes.
pub const MAX_HEADER_LEN: usize = 60;

/// Field offsets, written once.
mod field {
    use std::ops::Range;
    /// Version (high nibble) and IHL (low nibble).
    pub const VER_IHL: usize = 0;
    /// DSCP and ECN (formerly Type of Service).
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    /// Flags (3 high bits) and fragment offset (13 bits, in 8-byte units).
    pub const FLAGS_FRAG: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
    /// Options start here and run to IHL x 4.
    pub const OPTIONS: usize = 20;
}

/// The "don't fragment" flag bit in the flags/fragment word.
const FLAG_DF: u16 = 0x4000;
/// The "more fragments" flag bit.
const FLAG_MF: u16 = 0x2000;
/// The 13-bit fragment offset.
const FRAG_MASK: u16 = 0x1fff;

/// The protocol carried (IANA "Assigned Internet Protocol Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// 1: ICMP (RFC 792).
    Icmp,
    /// 6: TCP.
    Tcp,
    /// 17: UDP.
    Udp,
    /// Anything else, kept as the number seen.
    Unknown(u8),
}

impl From<u8> for Protocol {
    fn from(v: u8) -> Protocol {
        match v {
            1 => Protocol::Icmp,
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            n => Protocol::Unknown(n),
        }
    }
}

impl From<Protocol> for u8 {
    fn from(p: Protocol) -> u8 {
        match p {
            Protocol::Icmp => 1,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Unknown(n) => n,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Icmp => write!(f, "ICMP"),
            Protocol::Tcp => write!(f, "TCP"),
            Protocol::Udp => write!(f, "UDP"),
            Protocol::Unknown(n) => write!(f, "protocol {n}"),
        }
    }
}

/// Why bytes are not a usable IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Fewer bytes than the part being read needs.
    Truncated { need: usize, got: usize },
    /// The version nibble is not 4.
    Version(u8),
    /// IHL below 5 words (the fixed header does not fit).
    HeaderLen(u8),
    /// Total length smaller than the header, or larger than the bytes received.
    TotalLen {
        total: usize,
        header: usize,
        got: usize,
    },
    /// The header checksum does not verify.
    Checksum { received: u16, computed: u16 },
    /// A fragment: the payload is not whole (a raw socket gets reassembled packets, so
    /// this only appears in hand-made input).
    Fragment,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { need, got } => {
                write!(
                    f,
                    "truncated IPv4 packet: {got} bytes, the header needs {need}"
                )
            }
            Error::Version(v) => write!(f, "IP version {v}, not 4"),
            Error::HeaderLen(ihl) => write!(
                f,
                "IHL {ihl} ({} bytes) is below the 20-byte minimum",
                usize::from(*ihl) * 4
            ),
            Error::TotalLen { total, header, got } => write!(
                f,
                "total length {total} does not fit: header {header} bytes, {got} bytes received"
            ),
            Error::Checksum { received, computed } => write!(
                f,
                "IPv4 header checksum 0x{received:04x} received, 0x{computed:04x} computed"
            ),
            Error::Fragment => write!(f, "a fragment (offset or more-fragments set)"),
        }
    }
}

impl std::error::Error for Error {}

/// A view of an IPv4 packet over any byte buffer.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    /// The packet's bytes, header first.
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps bytes without checks: accessors panic on a buffer that is too short.
    /// Only for buffers sized by this code.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps untrusted bytes: the header (IHL included) and the total length must fit.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let p = Packet::new_unchecked(buffer);
        p.check_header()?;
        p.check_total_len()?;
        Ok(p)
    }

    /// Wraps the start of a packet quoted inside an ICMP error: the header must be whole,
    /// but the payload is cut (RFC 792 quotes only its first 8 bytes).
    pub fn new_checked_quoted(buffer: T) -> Result<Packet<T>, Error> {
        let p = Packet::new_unchecked(buffer);
        p.check_header()?;
        Ok(p)
    }

    /// Version 4 and a whole header of IHL x 4 bytes.
    fn check_header(&self) -> Result<(), Error> {
        let got = self.buffer.as_ref().len();
        if got < MIN_HEADER_LEN {
            return Err(Error::Truncated {
                need: MIN_HEADER_LEN,
                got,
            });
        }
        if self.version() != 4 {
            return Err(Error::Version(self.version()));
        }
        let header = self.header_len();
        if header < MIN_HEADER_LEN {
            return Err(Error::HeaderLen(self.ihl()));
        }
        if got < header {
            return Err(Error::Truncated { need: header, got });
        }
        Ok(())
    }

    /// Total length covers the header and does not claim more than we received. More
    /// bytes than it says (link padding) are fine: [`Packet::payload`] stops at it.
    fn check_total_len(&self) -> Result<(), Error> {
        let (total, header, got) = (
            usize::from(self.total_len()),
            self.header_len(),
            self.buffer.as_ref().len(),
        );
        if total < header || total > got {
            return Err(Error::TotalLen { total, header, got });
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, r: std::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn addr_at(&self, r: std::ops::Range<usize>) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[r];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The version nibble (4).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// IHL: the header length in 32-bit words.
    pub fn ihl(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] & 0x0f
    }

    /// The header length in bytes: IHL x 4.
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// DSCP and ECN.
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    /// Header plus payload, in bytes.
    pub fn total_len(&self) -> u16 {
        self.u16_at(field::TOTAL_LEN)
    }

    /// Identification, for reassembling fragments.
    pub fn ident(&self) -> u16 {
        self.u16_at(field::IDENT)
    }

    /// The "don't fragment" flag.
    pub fn dont_frag(&self) -> bool {
        self.u16_at(field::FLAGS_FRAG) & FLAG_DF != 0
    }

    /// The "more fragments" flag.
    pub fn more_frags(&self) -> bool {
        self.u16_at(field::FLAGS_FRAG) & FLAG_MF != 0
    }

    /// The fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (self.u16_at(field::FLAGS_FRAG) & FRAG_MASK) * 8
    }

    /// Time to live: hops left (each router subtracts one; 64 is Linux's default).
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The protocol of the payload.
    pub fn protocol(&self) -> Protocol {
        Protocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// The header checksum as received.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The header checksum this header should carry (computed with the field as zero).
    pub fn computed_checksum(&self) -> u16 {
        let h = &self.buffer.as_ref()[..self.header_len()];
        let acc = checksum::sum(&h[..field::CHECKSUM.start]);
        !checksum::fold(checksum::sum_more(acc, &h[field::CHECKSUM.end..]))
    }

    /// True when the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(&self.buffer.as_ref()[..self.header_len()])
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        self.addr_at(field::SRC)
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.addr_at(field::DST)
    }

    /// The options bytes (empty when IHL is 5).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }

    /// The payload: after IHL x 4 bytes, up to the total length (or the end of a quoted,
    /// cut packet).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = usize::from(self.total_len()).min(b.len());
        &b[self.header_len().min(end)..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16(&mut self, r: std::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets version 4 and the header length (a multiple of 4, 20 to 60).
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | (len / 4) as u8;
    }

    /// Sets DSCP/ECN.
    pub fn set_tos(&mut self, v: u8) {
        self.buffer.as_mut()[field::TOS] = v;
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, v: u16) {
        self.set_u16(field::TOTAL_LEN, v);
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, v: u16) {
        self.set_u16(field::IDENT, v);
    }

    /// Sets the flags/fragment word to "not a fragment", with or without DF.
    pub fn set_unfragmented(&mut self, dont_frag: bool) {
        self.set_u16(field::FLAGS_FRAG, if dont_frag { FLAG_DF } else { 0 });
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, p: Protocol) {
        self.buffer.as_mut()[field::PROTOCOL] = p.into();
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.octets());
    }

    /// The options area, to fill after `set_header_len`.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..end]
    }

    /// The payload area, after the header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }

    /// Computes and stores the header checksum (last: it covers every other field).
    pub fn fill_checksum(&mut self) {
        self.set_u16(field::CHECKSUM, 0);
        let c = checksum::checksum(&self.buffer.as_ref()[..self.header_len()]);
        self.set_u16(field::CHECKSUM, c);
    }
}

/// The header, parsed: what the lab reads and what the grader writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: Protocol,
    pub ttl: u8,
    /// Identification (fragment reassembly; Linux fills it in for raw sends).
    pub ident: u16,
    pub dont_frag: bool,
    /// Option bytes, a multiple of 4 and at most 40 (pad with 0 = End of Option List).
    pub options: Vec<u8>,
    /// Bytes after the header, as the total length says.
    pub payload_len: usize,
}

impl Repr {
    /// Parses a whole packet: version, IHL, total length and the header checksum are
    /// checked (RFC 791 section 3.1, RFC 1071), fragments refused.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr, Error> {
        p.check_header()?;
        p.check_total_len()?;
        Repr::parse_header(p)
    }

    /// Parses the header of a packet quoted in an ICMP error (its payload is cut).
    pub fn parse_quoted<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr, Error> {
        p.check_header()?;
        Repr::parse_header(p)
    }

    fn parse_header<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr, Error> {
        if !p.verify_checksum() {
            return Err(Error::Checksum {
                received: p.checksum(),
                computed: p.computed_checksum(),
            });
        }
        if p.more_frags() || p.frag_offset() != 0 {
            return Err(Error::Fragment);
        }
        Ok(Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            ttl: p.ttl(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            options: p.options().to_vec(),
            payload_len: usize::from(p.total_len()).saturating_sub(p.header_len()),
        })
    }

    /// The header's length in bytes.
    pub fn header_len(&self) -> usize {
        MIN_HEADER_LEN + self.options.len()
    }

    /// Header plus payload.
    pub fn total_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Writes the header (checksum included) at the start of `p`, which must hold at
    /// least [`Repr::header_len`] bytes. Options must be a multiple of 4, at most 40.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        debug_assert!(self.options.len().is_multiple_of(4) && self.options.len() <= 40);
        p.set_header_len(self.header_len());
        p.set_tos(0);
        p.set_total_len(self.total_len() as u16);
        p.set_ident(self.ident);
        p.set_unfragmented(self.dont_frag);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        p.options_mut().copy_from_slice(&self.options);
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// 127.0.0.1 -> 127.0.0.1, ICMP, TTL 64, DF, ident 0x1234, 4 bytes of payload, as
    /// Linux sends an echo reply on loopback. Checksum computed by hand with RFC 1071.
    const PACKET: [u8; 24] = [
        0x45, 0x00, 0x00, 0x18, // version 4, IHL 5; TOS 0; total length 24
        0x12, 0x34, 0x40, 0x00, // ident 0x1234; DF, offset 0
        0x40, 0x01, 0x2a, 0xaf, // TTL 64, ICMP; checksum
        0x7f, 0x00, 0x00, 0x01, // source 127.0.0.1
        0x7f, 0x00, 0x00, 0x01, // destination 127.0.0.1
        0xde, 0xad, 0xbe, 0xef, // payload
    ];

    fn repr() -> Repr {
        Repr {
            src_addr: Ipv4Addr::LOCALHOST,
            dst_addr: Ipv4Addr::LOCALHOST,
            protocol: Protocol::Icmp,
            ttl: 64,
            ident: 0x1234,
            dont_frag: true,
            options: vec![],
            payload_len: 4,
        }
    }

    #[test]
    fn view_reads_every_field() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!((p.version(), p.ihl(), p.header_len()), (4, 5, 20));
        assert_eq!(p.total_len(), 24);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag() && !p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!((p.ttl(), p.protocol()), (64, Protocol::Icmp));
        assert_eq!(p.checksum(), p.computed_checksum());
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), [0xde, 0xad, 0xbe, 0xef]);
        assert!(p.options().is_empty());
    }

    #[test]
    fn parse_bytes_to_repr() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), repr());
    }

    #[test]
    fn emit_repr_to_bytes() {
        let mut buf = [0u8; 24];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        repr().emit(&mut p);
        p.payload_mut().copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(buf, PACKET);
    }

    #[test]
    fn options_move_the_payload() {
        // IHL 6: four option bytes (three NOPs and End of Option List, RFC 791 3.1).
        let mut r = repr();
        r.options = vec![1, 1, 1, 0];
        let mut buf = vec![0u8; r.total_len()];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        r.emit(&mut p);
        p.payload_mut().copy_from_slice(b"ping");
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!((p.ihl(), p.header_len()), (6, 24));
        assert_eq!(p.options(), [1, 1, 1, 0]);
        assert_eq!(p.payload(), b"ping");
        assert_eq!(Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn corrupted_headers_are_rejected_with_a_reason() {
        let bad = |f: &dyn Fn(&mut [u8; 24])| {
            let mut b = PACKET;
            f(&mut b);
            Packet::new_checked(&b[..]).and_then(|p| Repr::parse(&p))
        };
        assert_eq!(bad(&|b| b[0] = 0x65).unwrap_err(), Error::Version(6));
        assert_eq!(bad(&|b| b[0] = 0x44).unwrap_err(), Error::HeaderLen(4));
        assert_eq!(
            bad(&|b| b[0] = 0x47).unwrap_err(),
            Error::Truncated { need: 28, got: 24 }
        );
        assert_eq!(
            bad(&|b| b[3] = 25).unwrap_err(),
            Error::TotalLen {
                total: 25,
                header: 20,
                got: 24
            }
        );
        assert_eq!(
            bad(&|b| b[3] = 19).unwrap_err(),
            Error::TotalLen {
                total: 19,
                header: 20,
                got: 24
            }
        );
        let e = bad(&|b| b[8] = 63).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Checksum {
                    received: 0x2aaf,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("0x2aaf received"), "{e}");
        // A fragment with a valid checksum.
        let mut b = PACKET;
        b[6] = 0x20;
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_checksum();
        assert_eq!(Repr::parse(&p).unwrap_err(), Error::Fragment);
    }

    #[test]
    fn every_truncation_is_rejected() {
        for n in 0..PACKET.len() {
            let e = Packet::new_checked(&PACKET[..n]).unwrap_err();
            assert!(!e.to_string().is_empty(), "length {n}");
        }
    }

    #[test]
    fn link_padding_after_the_total_length_is_ignored() {
        let mut b = PACKET.to_vec();
        b.extend_from_slice(&[0, 0]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload(), [0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn random_bytes_never_panic() {
        let seed = 0x0791;
        eprintln!("seed {seed}");
        let mut rng = Rng::new(seed);
        for _ in 0..20_000 {
            let n = rng.range(0, 80);
            let mut b = rng.bytes(n);
            // Half the time make it look like IPv4 so the deeper checks run too.
            if n > 0 && rng.unit() < 0.5 {
                b[0] = 0x45 + (rng.range(0, 11) as u8);
            }
            if let Ok(p) = Packet::new_checked(&b[..]) {
                let _ = Repr::parse(&p);
                let _ = (p.payload(), p.options(), p.computed_checksum());
            }
            if let Ok(p) = Packet::new_checked_quoted(&b[..]) {
                let _ = (Repr::parse_quoted(&p), p.payload());
            }
        }
    }
}

//! pcapng, the capture file format Wireshark and tshark read and write (the IETF
//! draft "PCAP Next Generation Capture File Format", draft-ietf-opsawg-pcapng): the
//! three blocks `lab --pcap` writes, and a writer that stops at a size cap.
//!
//! Why our own writer and not the `pcap-file` crate: its last stable release (2.0.0)
//! is from 2022 and 3.0 is still a release candidate; it brings three crates
//! (byteorder_slice, derive-into-owned, thiserror) for what is here three small block
//! layouts; and a size cap that stops cleanly is ours to write either way. No libpcap.
//!
//! A file is a sequence of blocks; every block is
//!
//! ```text
//!  0               4               8                        len-4
//! +---------------+---------------+------ body ------------+---------------+
//! | block type    | total length  | ... padded to 32 bits  | total length  |
//! +---------------+---------------+------------------------+---------------+
//! ```
//!
//! The length is repeated at the end so a reader can walk backwards. We write:
//! - one Section Header Block (SHB, type 0x0A0D0D0A): the byte-order magic 0x1A2B3C4D
//!   (we write little-endian; readers swap), version 1.0, section length -1 (unknown,
//!   the file is written as packets arrive), options `shb_comment` (the lab, the command,
//!   the seed), `shb_os` and `shb_userappl` ("lab 0.x");
//! - one Interface Description Block (IDB, type 1): link type 1 (LINKTYPE_ETHERNET:
//!   an AF_PACKET socket on Linux's `lo` sees 14-byte Ethernet headers with zero
//!   addresses), the snap length, `if_name` and `if_tsresol` = 9 (timestamps in
//!   nanoseconds, 10^-9 s, instead of the default microseconds);
//! - one Enhanced Packet Block (EPB, type 6) per packet: interface 0, the timestamp as
//!   two 32-bit halves (high, low) of ns since the Unix epoch, the captured and the
//!   original length, the bytes padded to 32 bits.
//!
//! Options are (code u16, length u16, value padded to 32 bits), ended by opt_endofopt
//! (code 0, length 0).

use std::io::{self, Write};

/// Block types (draft section 4 and 10.1).
pub const SHB_TYPE: u32 = 0x0A0D_0D0A;
/// Interface Description Block.
pub const IDB_TYPE: u32 = 0x0000_0001;
/// Enhanced Packet Block.
pub const EPB_TYPE: u32 = 0x0000_0006;
/// Written in the writer's byte order; a reader of the other order sees 0x4D3C2B1A.
pub const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// LINKTYPE_ETHERNET (tcpdump.org link-layer header types): what AF_PACKET gives on `lo`.
pub const LINKTYPE_ETHERNET: u16 = 1;

// Option codes (draft section 3.5, 4.1, 4.2).
const OPT_ENDOFOPT: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_OS: u16 = 3;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;

/// The longest option value: the length field is 16 bits.
const MAX_OPTION: usize = u16::MAX as usize;

/// What the section header says about the capture (shown by `capinfos` and Wireshark's
/// Capture File Properties).
#[derive(Debug, Clone, Default)]
pub struct Section {
    /// Free text: the lab, the command, the seed.
    pub comment: String,
    /// The operating system (e.g. "Linux 6.1.0").
    pub os: String,
    /// The application that wrote the file (e.g. "lab 0.1.0").
    pub application: String,
}

/// The one interface a capture has.
#[derive(Debug, Clone)]
pub struct Interface {
    /// Its name, e.g. "lo".
    pub name: String,
    /// The link-layer header type of every packet (LINKTYPE_*).
    pub linktype: u16,
    /// Bytes kept of each packet at most; longer ones are cut (their EPB keeps the
    /// original length, so tshark says "[Packet size limited during capture]").
    pub snaplen: u32,
}

/// Pads a length up to a multiple of 4 (32 bits), as every block and option must be.
pub fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

fn option(body: &mut Vec<u8>, code: u16, value: &[u8]) {
    let value = &value[..value.len().min(MAX_OPTION)];
    body.extend_from_slice(&code.to_le_bytes());
    body.extend_from_slice(&(value.len() as u16).to_le_bytes());
    body.extend_from_slice(value);
    body.resize(pad4(body.len()), 0);
}

fn text_option(body: &mut Vec<u8>, code: u16, value: &str) {
    // An empty option says nothing; leave it out.
    if !value.is_empty() {
        option(body, code, value.as_bytes());
    }
}

fn end_of_options(body: &mut Vec<u8>) {
    body.extend_from_slice(&OPT_ENDOFOPT.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
}

/// Wraps a body (already padded) into a block: type, total length, body, total length.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    debug_assert_eq!(body.len() % 4, 0, "block bodies are padded to 32 bits");
    let total = (12 + body.len()) as u32;
    let mut b = Vec::with_capacity(total as usize);
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&total.to_le_bytes());
    b.extend_from_slice(body);
    b.extend_from_slice(&total.to_le_bytes());
    b
}

/// The Section Header Block.
pub fn section_header(s: &Section) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
    body.extend_from_slice(&1u16.to_le_bytes()); // major version
    body.extend_from_slice(&0u16.to_le_bytes()); // minor version
    body.extend_from_slice(&(-1i64).to_le_bytes()); // section length: not known
    text_option(&mut body, OPT_COMMENT, &s.comment);
    text_option(&mut body, SHB_OS, &s.os);
    text_option(&mut body, SHB_USERAPPL, &s.application);
    end_of_options(&mut body);
    block(SHB_TYPE, &body)
}

/// The Interface Description Block, with nanosecond timestamps.
pub fn interface_description(i: &Interface) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&i.linktype.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes()); // reserved
    body.extend_from_slice(&i.snaplen.to_le_bytes());
    text_option(&mut body, IF_NAME, &i.name);
    // Bit 7 clear: a power of ten; 9 means 10^-9 s per timestamp unit.
    option(&mut body, IF_TSRESOL, &[9]);
    end_of_options(&mut body);
    block(IDB_TYPE, &body)
}

/// An Enhanced Packet Block on interface 0: `data` is what was captured (at most the
/// snap length), `original_len` the packet's length on the wire.
pub fn enhanced_packet(stamp_ns: u64, data: &[u8], original_len: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(20 + pad4(data.len()));
    body.extend_from_slice(&0u32.to_le_bytes()); // interface id
    body.extend_from_slice(&((stamp_ns >> 32) as u32).to_le_bytes());
    body.extend_from_slice(&(stamp_ns as u32).to_le_bytes());
    body.extend_from_slice(&(data.len() as u32).to_le_bytes());
    body.extend_from_slice(&original_len.max(data.len() as u32).to_le_bytes());
    body.extend_from_slice(data);
    body.resize(pad4(body.len()), 0);
    // No options: opt_endofopt may be left out when there are none.
    block(EPB_TYPE, &body)
}

/// Writes a pcapng file: the headers at once, then packets until the size cap. At the
/// cap it stops writing (the file stays valid: every block is whole) and says so.
pub struct Writer<W: Write> {
    out: W,
    snaplen: u32,
    /// Bytes written so far (headers included).
    written: u64,
    /// The file never grows beyond this many bytes.
    max_bytes: u64,
    /// Packets written.
    packets: u64,
    /// Packets not written because the cap was reached.
    skipped: u64,
}

/// Where a [`Writer`] ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Written {
    /// Packets in the file.
    pub packets: u64,
    /// The file's size in bytes.
    pub bytes: u64,
    /// Packets left out because the file reached its size cap.
    pub skipped: u64,
}

impl<W: Write> Writer<W> {
    /// Writes the section header and the interface description.
    pub fn new(
        mut out: W,
        section: &Section,
        iface: &Interface,
        max_bytes: u64,
    ) -> io::Result<Self> {
        let shb = section_header(section);
        let idb = interface_description(iface);
        out.write_all(&shb)?;
        out.write_all(&idb)?;
        Ok(Writer {
            out,
            snaplen: iface.snaplen,
            written: (shb.len() + idb.len()) as u64,
            max_bytes,
            packets: 0,
            skipped: 0,
        })
    }

    /// Writes one packet, cut to the snap length. Ok(false) when the size cap left no
    /// room for it (nothing written; later packets are refused too).
    pub fn packet(&mut self, stamp_ns: u64, data: &[u8], original_len: u32) -> io::Result<bool> {
        let data = &data[..data.len().min(self.snaplen as usize)];
        let size = 32 + pad4(data.len()) as u64;
        if self.skipped > 0 || self.written + size > self.max_bytes {
            self.skipped += 1;
            return Ok(false);
        }
        self.out
            .write_all(&enhanced_packet(stamp_ns, data, original_len))?;
        self.written += size;
        self.packets += 1;
        Ok(true)
    }

    /// True once a packet was refused for the cap.
    pub fn full(&self) -> bool {
        self.skipped > 0
    }

    /// Flushes and tells what was written.
    pub fn finish(mut self) -> io::Result<(W, Written)> {
        self.out.flush()?;
        let w = Written {
            packets: self.packets,
            bytes: self.written,
            skipped: self.skipped,
        };
        Ok((self.out, w))
    }
}

/// One packet of a file read back by [`packets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Its timestamp, ns since the Unix epoch.
    pub stamp_ns: u64,
    /// Its length on the wire.
    pub original_len: u32,
}

/// Reads back the packets of a file this module wrote (little-endian, one interface,
/// nanosecond timestamps): for the evidence report's figures. Anything else, or a
/// damaged block, is an error that says where.
pub fn packets(file: &[u8]) -> Result<Vec<Stamp>, String> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(file.get(at..at + 4)?.try_into().ok()?))
    };
    while at < file.len() {
        let (Some(kind), Some(len)) = (u32_at(at), u32_at(at + 4)) else {
            return Err(format!("a block cut short at byte {at}"));
        };
        let len = len as usize;
        if len < 12
            || !len.is_multiple_of(4)
            || at + len > file.len()
            || u32_at(at + len - 4) != Some(len as u32)
        {
            return Err(format!("a damaged block at byte {at}"));
        }
        if at == 0 && (kind != SHB_TYPE || u32_at(8) != Some(BYTE_ORDER_MAGIC)) {
            return Err("not a little-endian pcapng file".into());
        }
        if kind == EPB_TYPE && len >= 32 {
            let high = u64::from(u32_at(at + 12).unwrap_or(0));
            let low = u64::from(u32_at(at + 16).unwrap_or(0));
            out.push(Stamp {
                stamp_ns: high << 32 | low,
                original_len: u32_at(at + 24).unwrap_or(0),
            });
        }
        at += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// Every block: length a multiple of 4, the same length at both ends.
    fn check_block(b: &[u8], kind: u32) {
        assert_eq!(u32_at(b, 0), kind);
        let total = u32_at(b, 4) as usize;
        assert_eq!(total, b.len());
        assert_eq!(total % 4, 0, "padded to 32 bits");
        assert_eq!(u32_at(b, total - 4) as usize, total, "trailing length");
    }

    #[test]
    fn section_header_layout() {
        let b = section_header(&Section {
            comment: "lab run 01, seed 7".into(),
            os: String::new(),
            application: "lab".into(),
        });
        check_block(&b, SHB_TYPE);
        assert_eq!(&b[8..12], &[0x4D, 0x3C, 0x2B, 0x1A], "byte-order magic, LE");
        assert_eq!(&b[12..16], &[1, 0, 0, 0], "version 1.0");
        assert_eq!(&b[16..24], &[0xFF; 8], "section length -1");
        // Comment: code 1, length 18, 18 bytes + 2 of padding.
        assert_eq!(&b[24..28], &[1, 0, 18, 0]);
        assert_eq!(&b[28..46], b"lab run 01, seed 7");
        assert_eq!(&b[46..48], &[0, 0], "padding");
        // No empty shb_os; shb_userappl "lab": 3 bytes + 1 of padding.
        assert_eq!(&b[48..56], &[4, 0, 3, 0, b'l', b'a', b'b', 0]);
        assert_eq!(&b[56..60], &[0, 0, 0, 0], "opt_endofopt");
        assert_eq!(b.len(), 64);
    }

    #[test]
    fn interface_description_layout() {
        let b = interface_description(&Interface {
            name: "lo".into(),
            linktype: LINKTYPE_ETHERNET,
            snaplen: 65535,
        });
        check_block(&b, IDB_TYPE);
        assert_eq!(&b[8..12], &[1, 0, 0, 0], "ethernet, reserved");
        assert_eq!(u32_at(&b, 12), 65535);
        assert_eq!(&b[16..24], &[2, 0, 2, 0, b'l', b'o', 0, 0], "if_name");
        assert_eq!(&b[24..32], &[9, 0, 1, 0, 9, 0, 0, 0], "if_tsresol = ns");
        assert_eq!(&b[32..36], &[0, 0, 0, 0]);
        assert_eq!(b.len(), 40);
    }

    #[test]
    fn enhanced_packet_layout() {
        let stamp = 0x0000_0001_0000_0002u64;
        let b = enhanced_packet(stamp, &[0xAA; 5], 9);
        check_block(&b, EPB_TYPE);
        assert_eq!(u32_at(&b, 8), 0, "interface 0");
        assert_eq!(u32_at(&b, 12), 1, "timestamp high");
        assert_eq!(u32_at(&b, 16), 2, "timestamp low");
        assert_eq!(u32_at(&b, 20), 5, "captured");
        assert_eq!(u32_at(&b, 24), 9, "original");
        assert_eq!(&b[28..36], &[0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0, 0, 0]);
        assert_eq!(b.len(), 40);
        // A 4-byte packet needs no padding.
        assert_eq!(enhanced_packet(0, &[1; 4], 4).len(), 36);
    }

    #[test]
    fn writer_cuts_to_snaplen_and_stops_at_the_cap() {
        let iface = Interface {
            name: "lo".into(),
            linktype: LINKTYPE_ETHERNET,
            snaplen: 8,
        };
        let head = (section_header(&Section::default()).len() + interface_description(&iface).len())
            as u64;
        // Room for exactly two 8-byte packets (32 + 8 bytes each).
        let mut w = Writer::new(Vec::new(), &Section::default(), &iface, head + 80).unwrap();
        assert!(w.packet(1, &[7; 100], 100).unwrap(), "cut to 8 bytes");
        assert!(w.packet(2, &[7; 3], 3).unwrap());
        assert!(!w.full());
        assert!(!w.packet(3, &[7; 8], 8).unwrap(), "over the cap");
        // Even one that would fit is refused once the cap was hit: no holes.
        assert!(!w.packet(4, &[], 0).unwrap());
        assert!(w.full());
        let (bytes, done) = w.finish().unwrap();
        assert_eq!(
            done,
            Written {
                packets: 2,
                bytes: head + 76,
                skipped: 2
            }
        );
        assert_eq!(bytes.len() as u64, done.bytes);
        let first = &bytes[head as usize..];
        check_block(&first[..40], EPB_TYPE);
        assert_eq!(u32_at(first, 20), 8, "captured = snaplen");
        assert_eq!(u32_at(first, 24), 100, "original length kept");
        // And read back.
        let read = packets(&bytes).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!((read[1].stamp_ns, read[1].original_len), (2, 3));
        assert!(packets(&bytes[..bytes.len() - 1]).is_err(), "cut short");
        assert!(packets(b"not a capture at all").is_err());
    }
}

//! The annotated hex dump: every field of a packet on its own line, its bytes in hex,
//! its name, and what it means; checksums shown as received next to computed.
//!
//! ```text
//!   0000  45                      version 4, IHL 5      header is 5 x 4 = 20 bytes
//!   000a  f4 c3                   header checksum       0xf4c3 (computed 0xf4c3: ok)
//! ```

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::privilege::Access;
use crate::out::dim;
use crate::say;
use crate::wire::icmp::{self, Message};
use crate::wire::ipv4;

/// Pattern bytes shown before the rest is summarised (one dump column's worth).
const SHOW_DATA: usize = 8;

/// One line: offset, bytes, label, meaning.
fn line(out: &mut String, offset: usize, bytes: &[u8], label: &str, meaning: &str) {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let _ = writeln!(
        out,
        "    {offset:04x}  {:<24} {label:<18} {meaning}",
        hex.join(" ")
    );
}

/// "0x1234 (computed 0x1234: ok)" or a plain warning when they differ.
fn checksum_text(received: u16, computed: u16) -> String {
    if received == computed {
        format!("0x{received:04x} (computed 0x{computed:04x}: ok)")
    } else {
        format!("0x{received:04x} (computed 0x{computed:04x}: WRONG, a receiver drops this)")
    }
}

/// Prints the dump of a request we are about to send (ICMP only: the kernel writes the
/// IPv4 header around it).
pub fn request(bytes: &[u8], target: Ipv4Addr, access: Access) -> std::io::Result<()> {
    let mut out = String::new();
    let note = if access == Access::PingSocket {
        "; on a ping socket the kernel replaces the identifier and checksum"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "  {}",
        dim(format!(
            "request to {target}: {} bytes of ICMP (the kernel adds the IPv4 header){note}",
            bytes.len()
        ))
    );
    icmp_fields(&mut out, bytes, 0);
    say!("{}", out.trim_end())?;
    Ok(())
}

/// Prints the dump of a received packet (with its IPv4 header on a raw socket).
pub fn reply(bytes: &[u8], access: Access) -> std::io::Result<()> {
    let mut out = String::new();
    if access.sees_ip_header() {
        let _ = writeln!(
            out,
            "  {}",
            dim(format!(
                "received {} bytes: IPv4 header, then ICMP",
                bytes.len()
            ))
        );
        let start = ip_fields(&mut out, bytes);
        if let Some(start) = start {
            icmp_fields(&mut out, &bytes[start..], start);
        }
    } else {
        let _ = writeln!(
            out,
            "  {}",
            dim(format!(
                "received {} bytes of ICMP (a ping socket strips the IPv4 header)",
                bytes.len()
            ))
        );
        icmp_fields(&mut out, bytes, 0);
    }
    say!("{}", out.trim_end())?;
    Ok(())
}

/// The IPv4 header's fields; returns where the ICMP message starts (IHL x 4), or
/// `None` when the header does not parse (the reason is printed).
pub fn ip_fields(out: &mut String, b: &[u8]) -> Option<usize> {
    let p = match ipv4::Packet::new_checked(b) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(out, "    not an IPv4 packet: {e}");
            return None;
        }
    };
    let h = p.header_len();
    line(
        out,
        0,
        &b[0..1],
        &format!("version {}, IHL {}", p.version(), p.ihl()),
        &format!("header is {} x 4 = {h} bytes", p.ihl()),
    );
    line(out, 1, &b[1..2], "DSCP/ECN", &format!("{}", p.tos()));
    line(
        out,
        2,
        &b[2..4],
        "total length",
        &format!("{} bytes, header included", p.total_len()),
    );
    line(
        out,
        4,
        &b[4..6],
        "identification",
        &format!("{}", p.ident()),
    );
    line(
        out,
        6,
        &b[6..8],
        "flags, fragment",
        &format!(
            "DF={} MF={} offset {}",
            u8::from(p.dont_frag()),
            u8::from(p.more_frags()),
            p.frag_offset()
        ),
    );
    line(
        out,
        8,
        &b[8..9],
        "time to live",
        &format!("{} hops left", p.ttl()),
    );
    line(
        out,
        9,
        &b[9..10],
        "protocol",
        &format!("{} ({})", u8::from(p.protocol()), p.protocol()),
    );
    line(
        out,
        10,
        &b[10..12],
        "header checksum",
        &checksum_text(p.checksum(), p.computed_checksum()),
    );
    line(out, 12, &b[12..16], "source", &p.src_addr().to_string());
    line(
        out,
        16,
        &b[16..20],
        "destination",
        &p.dst_addr().to_string(),
    );
    if h > 20 {
        line(
            out,
            20,
            &b[20..h.min(28)],
            "options",
            &format!(
                "{} bytes (IHL > 5): the ICMP message starts at {h}, not 20",
                h - 20
            ),
        );
    }
    Some(h)
}

/// The ICMP message's fields, at `base` within the whole packet.
pub fn icmp_fields(out: &mut String, b: &[u8], base: usize) {
    let p = match icmp::Packet::new_checked(b) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(out, "    not an ICMP message: {e}");
            return;
        }
    };
    let t = p.msg_type();
    line(
        out,
        base,
        &b[0..1],
        "type",
        &format!("{} ({t})", u8::from(t)),
    );
    line(out, base + 1, &b[1..2], "code", &p.msg_code().to_string());
    line(
        out,
        base + 2,
        &b[2..4],
        "checksum",
        &checksum_text(p.checksum(), p.computed_checksum()),
    );
    match t {
        Message::EchoRequest | Message::EchoReply => {
            line(
                out,
                base + 4,
                &b[4..6],
                "identifier",
                &format!("0x{:04x} ({})", p.echo_ident(), p.echo_ident()),
            );
            line(
                out,
                base + 6,
                &b[6..8],
                "sequence",
                &p.echo_seq_no().to_string(),
            );
            let data = p.data();
            if data.len() >= 8 {
                let ns = u64::from_be_bytes(data[..8].try_into().unwrap_or([0; 8]));
                line(
                    out,
                    base + 8,
                    &data[..8],
                    "data: send time",
                    &format!(
                        "{}.{:09} s since 1970",
                        ns / 1_000_000_000,
                        ns % 1_000_000_000
                    ),
                );
                if data.len() > 8 {
                    let shown = &data[8..data.len().min(8 + SHOW_DATA)];
                    line(
                        out,
                        base + 16,
                        shown,
                        "data: pattern",
                        &format!(
                            "{} more bytes{}",
                            data.len() - 8,
                            if data.len() - 8 > SHOW_DATA {
                                ", first 8 shown"
                            } else {
                                ""
                            }
                        ),
                    );
                }
            } else if !data.is_empty() {
                line(
                    out,
                    base + 8,
                    data,
                    "data",
                    &format!("{} bytes", data.len()),
                );
            }
        }
        Message::DstUnreachable | Message::TimeExceeded => {
            line(out, base + 4, &b[4..8], "unused", "zero");
            let _ = writeln!(
                out,
                "    {:04x}  {}",
                base + 8,
                dim("the quoted packet: our request's IPv4 header + 8 bytes")
            );
            let d = p.data();
            if let Some(start) = ip_fields(out, d) {
                if d.len() >= start + 8 {
                    line(
                        out,
                        base + 8 + start,
                        &d[start..start + 8],
                        "quoted ICMP header",
                        "type, code, checksum, identifier, sequence of our request",
                    );
                }
            }
        }
        _ => {
            let _ = writeln!(out, "    {:04x}  {} bytes of {t}", base + 4, b.len() - 4);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_labelled_and_checksums_compared() {
        let data = [0u8; 9];
        let r = icmp::Repr::EchoRequest {
            ident: 0xbeef,
            seq_no: 3,
            data: &data,
        };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut icmp::Packet::new_unchecked(&mut b[..]));
        let mut out = String::new();
        icmp_fields(&mut out, &b, 0);
        for label in [
            "type",
            "code",
            "checksum",
            "identifier",
            "sequence",
            "send time",
            "pattern",
        ] {
            assert!(out.contains(label), "{label} missing:\n{out}");
        }
        assert!(out.contains(": ok)"), "{out}");
        b[2] ^= 1;
        let mut out = String::new();
        icmp_fields(&mut out, &b, 0);
        assert!(out.contains("WRONG"), "{out}");
        // A packet too short for its header says why instead of panicking.
        let mut out = String::new();
        assert_eq!(ip_fields(&mut out, &[0x45, 0, 0]), None);
        assert!(out.contains("truncated"), "{out}");
    }
}

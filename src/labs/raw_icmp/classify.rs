//! What a received packet is, from our point of view: [`classify`] reads the bytes a
//! raw socket (or a ping socket) hands us and says whether they are our reply, our own
//! request seen going by on loopback, another program's ping, an ICMP error quoting one
//! of our requests, something else, or bytes that do not parse (with the reason).
//! It only reads: acting on the answer is [`super::ping`]'s job.

use std::net::Ipv4Addr;

use crate::wire::icmp::{self, Message};
use crate::wire::ipv4;

use super::ping::STAMP_LEN;

/// What a received packet is, from our point of view.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// An echo reply to us.
    Reply {
        seq: u16,
        /// From the IPv4 header (unknown on a ping socket).
        ttl: Option<u8>,
        from: Ipv4Addr,
        /// ICMP bytes (header + data).
        icmp_len: usize,
        /// The send time the reply carried back, if the data held one.
        stamp_ns: Option<u64>,
    },
    /// Our own request, seen because a raw socket on loopback sees it go by.
    OwnRequest { seq: u16 },
    /// An echo reply or request with another identifier: another program's ping.
    Foreign { ident: u16, message: Message },
    /// An ICMP error quoting one of our requests.
    Error {
        seq: u16,
        message: Message,
        code: u8,
        from: Ipv4Addr,
    },
    /// Any other ICMP message, or an error about someone else's packet.
    Other { message: Message },
    /// Bytes that do not parse: the reason.
    Invalid { reason: String },
}

/// Classifies one received packet. `ip_header`: the bytes start with the IPv4 header
/// (raw sockets); `ident`: our identifier, or `None` when the kernel already filtered
/// by it (ping sockets); `from`: the sender's address from recvfrom.
pub fn classify(bytes: &[u8], ip_header: bool, ident: Option<u16>, from: Ipv4Addr) -> Incoming {
    let (icmp_bytes, ttl, src) = if ip_header {
        let ip = match ipv4::Packet::new_checked(bytes) {
            Ok(p) => p,
            Err(e) => {
                return Incoming::Invalid {
                    reason: e.to_string(),
                }
            }
        };
        if let Err(e) = ipv4::Repr::parse(&ip) {
            return Incoming::Invalid {
                reason: e.to_string(),
            };
        }
        if ip.protocol() != ipv4::Protocol::Icmp {
            return Incoming::Invalid {
                reason: format!("{} inside, not ICMP", ip.protocol()),
            };
        }
        // The lesson of IHL: the ICMP message starts after IHL x 4 bytes, not 20.
        let start = ip.header_len();
        let end = usize::from(ip.total_len());
        (&bytes[start..end], Some(ip.ttl()), ip.src_addr())
    } else {
        (bytes, None, from)
    };
    let p = match icmp::Packet::new_checked(icmp_bytes) {
        Ok(p) => p,
        Err(e) => {
            return Incoming::Invalid {
                reason: e.to_string(),
            }
        }
    };
    let repr = match icmp::Repr::parse(&p) {
        Ok(r) => r,
        Err(icmp::Error::Unrecognized(message)) => return Incoming::Other { message },
        Err(e) => {
            return Incoming::Invalid {
                reason: e.to_string(),
            }
        }
    };
    let ours = |id: u16| ident.is_none_or(|mine| mine == id);
    match repr {
        icmp::Repr::EchoReply {
            ident: id,
            seq_no,
            data,
        } if ours(id) => Incoming::Reply {
            seq: seq_no,
            ttl,
            from: src,
            icmp_len: icmp_bytes.len(),
            stamp_ns: data
                .get(..STAMP_LEN)
                .map(|s| u64::from_be_bytes(s.try_into().unwrap_or([0; 8]))),
        },
        icmp::Repr::EchoRequest {
            ident: id, seq_no, ..
        } if ours(id) => Incoming::OwnRequest { seq: seq_no },
        icmp::Repr::EchoReply { ident: id, .. } => Incoming::Foreign {
            ident: id,
            message: Message::EchoReply,
        },
        icmp::Repr::EchoRequest { ident: id, .. } => Incoming::Foreign {
            ident: id,
            message: Message::EchoRequest,
        },
        ref
        r @ (icmp::Repr::DstUnreachable { code, .. } | icmp::Repr::TimeExceeded { code, .. }) => {
            let message = p.msg_type();
            match r.quoted_echo() {
                Some((id, seq)) if ours(id) => Incoming::Error {
                    seq,
                    message,
                    code,
                    from: src,
                },
                _ => Incoming::Other { message },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: u16 = 0x4242;

    fn echo(message: Message, ident: u16, seq: u16, options: &[u8]) -> Vec<u8> {
        let data = [0x10u8; 11];
        let r = match message {
            Message::EchoReply => icmp::Repr::EchoReply {
                ident,
                seq_no: seq,
                data: &data,
            },
            _ => icmp::Repr::EchoRequest {
                ident,
                seq_no: seq,
                data: &data,
            },
        };
        wrap(&r, options)
    }

    fn wrap(r: &icmp::Repr, options: &[u8]) -> Vec<u8> {
        let ip = ipv4::Repr {
            src_addr: Ipv4Addr::new(127, 0, 0, 2),
            dst_addr: Ipv4Addr::LOCALHOST,
            protocol: ipv4::Protocol::Icmp,
            ttl: 61,
            ident: 1,
            dont_frag: false,
            options: options.to_vec(),
            payload_len: r.buffer_len(),
        };
        let mut buf = vec![0u8; ip.total_len()];
        let mut p = ipv4::Packet::new_unchecked(&mut buf[..]);
        ip.emit(&mut p);
        r.emit(&mut icmp::Packet::new_unchecked(p.payload_mut()));
        buf
    }

    fn classify_raw(b: &[u8]) -> Incoming {
        classify(b, true, Some(ME), Ipv4Addr::UNSPECIFIED)
    }

    #[test]
    fn our_reply_is_recognised_past_ip_options() {
        for options in [&[][..], &[1, 1, 1, 0], &[1; 40]] {
            match classify_raw(&echo(Message::EchoReply, ME, 7, options)) {
                Incoming::Reply {
                    seq,
                    ttl,
                    from,
                    icmp_len,
                    ..
                } => {
                    assert_eq!((seq, ttl, icmp_len), (7, Some(61), 19));
                    assert_eq!(from, Ipv4Addr::new(127, 0, 0, 2));
                }
                other => panic!("options {options:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn own_requests_and_other_identifiers_are_not_replies() {
        assert_eq!(
            classify_raw(&echo(Message::EchoRequest, ME, 3, &[])),
            Incoming::OwnRequest { seq: 3 }
        );
        assert_eq!(
            classify_raw(&echo(Message::EchoReply, ME + 1, 3, &[])),
            Incoming::Foreign {
                ident: ME + 1,
                message: Message::EchoReply
            }
        );
    }

    #[test]
    fn errors_quoting_our_request_are_reported() {
        let request = echo(Message::EchoRequest, ME, 9, &[]);
        let quoted_ip =
            ipv4::Repr::parse(&ipv4::Packet::new_checked(&request[..]).unwrap()).unwrap();
        let r = icmp::Repr::DstUnreachable {
            code: 1,
            header: quoted_ip,
            data: &request[20..28],
        };
        match classify_raw(&wrap(&r, &[])) {
            Incoming::Error {
                seq, message, code, ..
            } => {
                assert_eq!((seq, message, code), (9, Message::DstUnreachable, 1));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_checksums_and_garbage_are_invalid_with_a_reason() {
        let mut b = echo(Message::EchoReply, ME, 1, &[]);
        let last = b.len() - 1;
        b[last] ^= 0xff;
        match classify_raw(&b) {
            Incoming::Invalid { reason } => assert!(reason.contains("ICMP checksum"), "{reason}"),
            other => panic!("{other:?}"),
        }
        for n in 0..b.len() {
            assert!(
                matches!(classify_raw(&b[..n]), Incoming::Invalid { .. }),
                "length {n}"
            );
        }
    }

    #[test]
    fn ping_sockets_hand_us_icmp_only() {
        let b = echo(Message::EchoReply, 999, 2, &[]);
        match classify(&b[20..], false, None, Ipv4Addr::LOCALHOST) {
            Incoming::Reply { seq, ttl, from, .. } => {
                assert_eq!((seq, ttl, from), (2, None, Ipv4Addr::LOCALHOST))
            }
            other => panic!("{other:?}"),
        }
    }
}

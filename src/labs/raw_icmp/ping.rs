//! The ping itself, in the order things happen: build a request, send it, wait for
//! what comes back, decide whether it is ours, print a line, and at the end the summary.
//!
//! A raw ICMP socket receives every ICMP packet that reaches this network namespace,
//! not just answers to us. On loopback that includes our own requests (they go out and
//! come back in through `lo`), and anywhere it includes other programs' pings. So each
//! packet is classified ([`classify`]): our reply (type 0, our identifier, a sequence
//! number we sent), our own request (type 8: skipped), someone else's reply (another
//! identifier: skipped), an error quoting one of our requests (reported, like ping's
//! "Destination Host Unreachable"), or anything else (skipped).
//!
//! On a raw socket we also ask the kernel to filter for us, as iputils ping does
//! (`ping/ping.c`): `ICMP_FILTER` lets only echo replies and errors through, so our own
//! requests never reach the socket (on loopback they otherwise arrive during our own
//! `sendto`, and the kernel copies and queues each one before it answers it); and, the
//! first time another program's reply shows up, a socket filter (classic BPF) that
//! drops echo replies with another identifier. [`classify`] still skips both, since a
//! ping socket or an older kernel may not filter.
//!
//! Round-trip times are taken like iputils ping takes them (`ping4_send_probe`,
//! `main_loop`, `gather_statistics`): the wall clock read right before `sendto`, after
//! the request is built (the stamp is written into the data and the checksum updated
//! for those 8 bytes only, RFC 1624), and the kernel's receive timestamp of the reply
//! (SO_TIMESTAMPNS, read from recvmsg's control message), which the kernel takes when
//! the reply reaches the network stack, before any process is woken up. The summary
//! also shows the times as the program itself saw them (its clock after recvmsg
//! returned): the difference is the time from the kernel having the reply to the
//! program holding it, which on loopback is the end of our own `sendto` (the kernel
//! answers inside it), then poll and recvmsg, and elsewhere the process waking up.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use socket2::{SockAddr, Socket};

use super::classify::{classify, Incoming};
use super::dump;
use super::privilege::Access;
use super::summary::{Ms, Stats};
use super::wait::{self, Wait};
use crate::say;
use crate::wire::checksum;
use crate::wire::icmp::{self, Message};

/// The largest echo data: an IPv4 packet is at most 65535 bytes, minus the 20-byte
/// IPv4 header and the 8-byte ICMP header.
pub const MAX_SIZE: usize = 65_535 - 20 - 8;

/// Bytes of the send time at the start of the data (nanoseconds, big-endian), so the
/// reply carries its own timestamp back, as ping's does.
pub(super) const STAMP_LEN: usize = 8;

/// What one run does.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the requests go.
    pub target: Ipv4Addr,
    /// How many requests.
    pub count: u32,
    /// Time between requests.
    pub interval: Duration,
    /// Echo data bytes per request (ping's -s; 56 makes 64-byte ICMP messages).
    pub size: usize,
    /// IP time to live of our requests (ping's -t).
    pub ttl: u8,
    /// How long to wait for each reply.
    pub timeout: Duration,
    /// Print the annotated hex dump of every packet.
    pub dump: bool,
    /// Our identifier (ping uses its process id; a ping socket's kernel overrides it).
    pub ident: u16,
    /// Spin or sleep between requests (`--wait`; auto decides as ping does).
    pub wait: wait::Mode,
}

/// The echo data: room for the send time (zeros until [`stamp`] writes it), then a
/// counting pattern (ping's is 0x08, 0x09, ...; ours starts at 0x10) so a corrupted
/// reply is visible in the dump.
fn fill_data(data: &mut [u8]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b = if i < STAMP_LEN {
            0
        } else {
            0x10u8.wrapping_add(i as u8)
        };
    }
}

/// Writes the send time into a request built and checksummed by [`fill_data`] and
/// `emit`, and updates the checksum for those 8 bytes only, as ping does: the least
/// work between reading the clock and `sendto`. Data shorter than the stamp carries
/// none (ping's rule too); the reply is then timed by our table alone.
fn stamp(request: &mut [u8], sent_ns: u64) {
    let mut p = icmp::Packet::new_unchecked(request);
    if p.data_mut().len() >= STAMP_LEN {
        let bytes = sent_ns.to_be_bytes();
        p.data_mut()[..STAMP_LEN].copy_from_slice(&bytes);
        let c = checksum::update_zeroed(p.checksum(), &bytes);
        p.set_checksum(c);
    }
}

/// Nanoseconds since the UNIX epoch: the clock SO_TIMESTAMPNS stamps replies with.
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Where the request with sequence number `seq` is in the table of requests sent
/// (index i went out with sequence number i + 1, which wraps at 65536): the latest
/// one with that number, or `None` when we never sent it.
fn index_of(seq: u16, sent: usize) -> Option<usize> {
    let back = (sent as u16).wrapping_sub(seq) as usize;
    sent.checked_sub(1)?.checked_sub(back)
}

/// An empty vector with room for `n` items whose memory has been written once, so
/// that pushing up to `n` items neither reallocates nor page-faults. (`Vec::with_capacity`
/// alone reserves address space; the kernel maps each page at its first write.)
fn touched<T: Clone>(n: usize, fill: T) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    v.resize(n, fill);
    v.clear();
    v
}

/// A round trip in ms, computed as ping computes it: both times cut to whole
/// microseconds first (ping's send time is a `gettimeofday` timeval, its receive time
/// SO_TIMESTAMP's timeval), then subtracted. Our clocks give nanoseconds, and the
/// difference rounded to the printed 1 us would be a little closer to the truth; but it
/// steps differently from ping's (a 2.2 us round trip always prints as 2 us rounded,
/// and as 2 or 3 us, 2.2 on average, the way ping counts), which shifts a median of
/// 2 us by up to 5% against ping's. Counted ping's way, the two compare like with like.
fn rtt_ms(sent_ns: u64, at_ns: u64) -> f64 {
    (at_ns / 1000).saturating_sub(sent_ns / 1000) as f64 / 1e3
}

/// One request we sent.
#[derive(Debug, Clone, Copy)]
struct Sent {
    /// Wall-clock send time (ns since the epoch), compared with the kernel's receive stamp.
    at_ns: u64,
    /// Monotonic send time, for the timeout.
    at: Instant,
    /// Replies seen for it (more than one: duplicates).
    replies: u32,
    /// True once "no reply" was printed for it.
    timed_out: bool,
}

/// The ICMP types a raw socket lets through (ping's `ICMP_FILTER`): echo replies and
/// the errors that can quote our requests. Echo requests, ours included, are dropped
/// by the kernel before they are copied for us.
pub const RAW_FILTER_ALLOWS: [u8; 6] = [
    0,  // echo reply
    3,  // destination unreachable
    4,  // source quench
    5,  // redirect
    11, // time exceeded
    12, // parameter problem
];

/// Sets up the kernel's side of `sock` as ping does: receive timestamps, and on a raw
/// socket the ICMP type filter. Whether a reply carries a kernel timestamp is seen on
/// each one (`kernel_stamped`). A missing filter is only slower (classify skips what it would have dropped), so it
/// is a warning, as in ping.
fn prepare(sock: &Socket, access: Access, cfg: &Config) -> io::Result<()> {
    sock.set_ttl_v4(u32::from(cfg.ttl))?;
    if access.sees_ip_header() {
        if let Err(e) = crate::sys::set_icmp_filter(sock, &RAW_FILTER_ALLOWS) {
            say!("warning: setsockopt(ICMP_FILTER): {e}; our own requests will reach us and be skipped")?;
        }
    }
    // The kernel's receive time of each packet; without it we fall back to our own clock.
    let _ = crate::sys::enable_rx_timestamps(sock);
    Ok(())
}

/// One packet read from the socket, with both ends of its timing.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// Bytes in the receive buffer.
    pub len: usize,
    /// Who sent it.
    pub from: Ipv4Addr,
    /// When it arrived: the kernel's stamp, or the program's clock when there is none.
    pub at_ns: u64,
    /// The program's clock right after recvmsg returned.
    pub read_ns: u64,
    /// True when `at_ns` is the kernel's stamp.
    pub kernel_stamped: bool,
}

/// Reads one packet without waiting (`WouldBlock` when none is queued), timed by the
/// kernel's receive stamp when the socket has SO_TIMESTAMPNS on.
pub fn receive(sock: &Socket, buf: &mut [u8]) -> io::Result<Arrival> {
    let got = crate::sys::recv_stamped(sock, buf)?;
    let read_ns = now_ns();
    let from = match got.from {
        std::net::SocketAddr::V4(a) => *a.ip(),
        std::net::SocketAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    Ok(Arrival {
        len: got.len.min(buf.len()),
        from,
        at_ns: got.stamp_ns.unwrap_or(read_ns),
        read_ns,
        kernel_stamped: got.stamp_ns.is_some(),
    })
}

/// Sends `cfg.count` requests on `sock` and prints what comes back; returns the stats.
pub fn run(sock: &Socket, access: Access, cfg: &Config) -> io::Result<Stats> {
    prepare(sock, access, cfg)?;
    let dest = SockAddr::from(SocketAddrV4::new(cfg.target, 0));
    let ident = access.sees_ip_header().then_some(cfg.ident);
    let began = Instant::now();
    // The per-request tables get all their memory, touched, before the first request
    // (`count` is at most 100,000: a few MB). Grown during the run, they cost about 20
    // page faults and a few copies (realloc) in a 2000-request run, work between
    // replies that ping, with its fixed arrays, never does.
    let capacity = cfg.count as usize;
    let mut stats = Stats {
        rtts_ms: touched(capacity, 0.0),
        program_rtts_ms: touched(capacity, 0.0),
        ..Stats::default()
    };
    // In send order, so the requests still waiting are after `oldest` and time out in
    // order: each turn of the loop looks at a few entries, not at all of them (a scan
    // of a thousand entries per turn cost more time than the round trip it measures,
    // and evicted the kernel's send path from the CPU caches). Bounded by `count`.
    let unsent = Sent {
        at_ns: 0,
        at: began,
        replies: 0,
        timed_out: false,
    };
    let mut sent: Vec<Sent> = touched(capacity, unsent);
    // Every request before this index is answered or reported late.
    let mut oldest = 0;
    let mut request = vec![0u8; icmp::HEADER_LEN + cfg.size];
    let mut scratch = vec![0u8; cfg.size];
    // Room for the largest IPv4 packet: nothing received is ever cut.
    let mut buf = vec![0u8; 65_536];
    // Installed on the first reply of another program's ping, as ping does.
    let mut ident_filter = false;
    let mut next_send = began;
    let mut last_send = began;
    loop {
        let now = Instant::now();
        if stats.transmitted < cfg.count && now >= next_send {
            let seq = (stats.transmitted + 1) as u16;
            fill_data(&mut scratch);
            let repr = icmp::Repr::EchoRequest {
                ident: cfg.ident,
                seq_no: seq,
                data: &scratch,
            };
            repr.emit(&mut icmp::Packet::new_unchecked(&mut request[..]));
            // The clock is read as late as it can be, right before sendto, as iputils
            // ping does: only the 8-byte stamp and a checksum update come between, so
            // the RTT starts where ping's starts. The dump comes after, so printing it
            // is not counted either.
            let at_ns = now_ns();
            stamp(&mut request, at_ns);
            let sent_ok = sock.send_to(&request, &dest);
            if cfg.dump {
                dump::request(&request, cfg.target, access)?;
            }
            match sent_ok {
                Ok(_) => {}
                // ping reports a send error and carries on (the next one may work).
                Err(e) => say!("sendto {}: {e}", cfg.target)?,
            }
            stats.transmitted += 1;
            sent.push(Sent {
                at_ns,
                at: now,
                replies: 0,
                timed_out: false,
            });
            last_send = now;
            // The interval is the pause after this send, as ping's -i is ("wait
            // interval seconds between sending each packet"): a late wake-up does not
            // send a burst to catch up, since back-to-back requests find the CPU warm
            // and would report shorter round trips than paced ones.
            next_send = now + cfg.interval;
            continue;
        }
        // Report requests whose time is up, once each, oldest first.
        let waiting = |s: &Sent| s.replies == 0 && !s.timed_out;
        while sent.get(oldest).is_some_and(|s| !waiting(s)) {
            oldest += 1;
        }
        for (i, s) in sent.iter_mut().enumerate().skip(oldest) {
            if now < s.at + cfg.timeout {
                break;
            }
            if waiting(s) {
                s.timed_out = true;
                say!(
                    "no reply for seq={} within {} s",
                    (i + 1) as u16,
                    cfg.timeout.as_secs_f64()
                )?;
            }
        }
        while sent.get(oldest).is_some_and(|s| !waiting(s)) {
            oldest += 1;
        }
        let all_sent = stats.transmitted >= cfg.count;
        let all_answered = stats.received >= stats.transmitted;
        let end = last_send + cfg.timeout;
        if all_sent && (all_answered || now >= end) {
            break;
        }
        // Spin or sleep, as ping decides (see [`wait`]): a sleep shorter than a
        // scheduler tick is not trusted to end on time, and spinning keeps the CPU warm.
        let until_send = (!all_sent).then(|| next_send.saturating_duration_since(now));
        let reply_pending = sent.last().is_some_and(waiting);
        match wait::choose(cfg.wait, until_send, reply_pending) {
            Wait::Spin => {
                // ping's `sched_yield()`, then the non-blocking reads below.
                stats.waits.spins += 1;
                std::thread::yield_now();
            }
            Wait::Sleep(at_most) => {
                // Until the next thing we must do: a send (or ping's 10 ms poll while a
                // reply is pending), a timeout, the end.
                let mut wake = end;
                if let Some(d) = at_most {
                    wake = wake.min(now + d);
                }
                if let Some(t) = sent.get(oldest).map(|s| s.at + cfg.timeout) {
                    wake = wake.min(t);
                }
                let wait = wake
                    .saturating_duration_since(now)
                    .max(Duration::from_micros(100));
                // Sleep until a packet waits or the deadline, then read it with its
                // kernel timestamp. The wait is a nanosecond timer (ppoll), not the
                // socket's receive timeout: SO_RCVTIMEO counts in scheduler ticks (4 ms
                // at HZ=250), so "every 2 ms" became bursts of back-to-back requests
                // every 8 ms, whose round trips run on a hot CPU and look 3x shorter
                // than ping's, which really paces.
                stats.waits.sleeps += 1;
                if !crate::sys::wait_readable(sock, wait)? {
                    continue;
                }
            }
        }
        // Then read what is queued, one recvmsg each, as ping does; bounded so a flood
        // of foreign ICMP cannot keep us from sending.
        for _ in 0..64 {
            let a = match receive(sock, &mut buf) {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            };
            let foreign = handle(&buf[..a.len], access, ident, a, cfg, &mut sent, &mut stats)?;
            if foreign && !ident_filter && access.sees_ip_header() {
                // Another program pings too: let the kernel drop its replies for us from
                // now on (ping's `install_filter`). Failing only costs us the skipping.
                ident_filter = true;
                let _ = crate::sys::attach_echo_ident_filter(sock, cfg.ident);
            }
        }
    }
    Ok(stats)
}

/// A reply's TTL as ping prints it, "?" when unknown (a ping socket has no IP header).
struct Ttl(Option<u8>);

impl std::fmt::Display for Ttl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(t) => write!(f, "{t}"),
            None => f.write_str("?"),
        }
    }
}

/// Acts on one received packet: a line for ours, silence for the rest. True when it
/// was another program's echo reply.
fn handle(
    bytes: &[u8],
    access: Access,
    ident: Option<u16>,
    arrival: Arrival,
    cfg: &Config,
    sent: &mut [Sent],
    stats: &mut Stats,
) -> std::io::Result<bool> {
    let what = classify(bytes, access.sees_ip_header(), ident, arrival.from);
    let foreign = matches!(
        what,
        Incoming::Foreign {
            message: Message::EchoReply,
            ..
        }
    );
    match what {
        Incoming::Reply {
            seq,
            ttl,
            from,
            icmp_len,
            ..
        } => {
            let Some(s) = index_of(seq, sent.len()).and_then(|i| sent.get_mut(i)) else {
                // Our identifier but a sequence we never sent: a previous run's straggler.
                stats.skipped += 1;
                return Ok(foreign);
            };
            if cfg.dump {
                dump::reply(bytes, access)?;
            }
            s.replies += 1;
            let ms = rtt_ms(s.at_ns, arrival.at_ns);
            let dup = s.replies > 1;
            if dup {
                stats.duplicates += 1;
            } else {
                stats.received += 1;
                stats.rtts_ms.push(ms);
                if arrival.kernel_stamped {
                    let read = arrival.read_ns.saturating_sub(s.at_ns) as f64 / 1e6;
                    stats.program_rtts_ms.push(read);
                }
            }
            // Formatted straight into stdout's buffer: no String per reply.
            say!(
                "{icmp_len} bytes from {from}: seq={seq} ttl={} time={} ms{}{}",
                Ttl(ttl),
                Ms(ms),
                if dup { " (DUP!)" } else { "" },
                if s.timed_out { " (late)" } else { "" },
            )?;
        }
        Incoming::Error {
            seq,
            message,
            code,
            from,
        } if index_of(seq, sent.len()).is_some() => {
            if cfg.dump {
                dump::reply(bytes, access)?;
            }
            stats.errors += 1;
            let reason = if message == Message::TimeExceeded {
                icmp::time_exceeded_reason(code)
            } else {
                icmp::unreachable_reason(code)
            };
            say!("From {from} seq={seq} {reason}")?;
        }
        // Our own requests, other programs' pings, other ICMP, garbage: not ours.
        _ => stats.skipped += 1,
    }
    Ok(foreign)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: u16 = 0x4242;

    #[test]
    fn sequence_numbers_find_the_latest_request_across_the_wrap() {
        assert_eq!(index_of(1, 0), None);
        assert_eq!(index_of(1, 1), Some(0));
        assert_eq!(index_of(3, 5), Some(2));
        assert_eq!(index_of(6, 5), None);
        assert_eq!(index_of(0, 5), None);
        // Index 65535 went out as seq 0, index 65536 as seq 1 again.
        assert_eq!(index_of(0, 65_536), Some(65_535));
        assert_eq!(index_of(1, 65_537), Some(65_536));
        assert_eq!(index_of(2, 65_537), Some(1));
    }

    #[test]
    fn round_trips_count_whole_microseconds_like_ping() {
        // Sent at 1.999 us, back at 4.2 us: ping's timevals say 1 and 4, so 3 us.
        assert_eq!(rtt_ms(1_999, 4_200), 0.003);
        assert_eq!(rtt_ms(2_000, 4_200), 0.002);
        assert_eq!(rtt_ms(2_000, 2_999), 0.0);
        assert_eq!(rtt_ms(1_000_000, 3_500_000), 2.5);
        // A reply stamped before its send (clock stepped back) is 0, not a panic.
        assert_eq!(rtt_ms(5_000, 1_000), 0.0);
    }

    #[test]
    fn tables_are_sized_before_the_run() {
        let v = touched(1000, 7u64);
        assert!(v.is_empty());
        assert!(v.capacity() >= 1000, "{}", v.capacity());
        assert_eq!(touched(0, 7u64).capacity(), 0);
    }

    #[test]
    fn reply_lines_print_the_ttl_like_ping() {
        assert_eq!(Ttl(Some(64)).to_string(), "64");
        assert_eq!(Ttl(None).to_string(), "?");
    }

    #[test]
    fn the_late_stamp_keeps_the_checksum_valid() {
        for size in [0usize, 7, 8, 9, 56, 57] {
            let mut request = vec![0u8; icmp::HEADER_LEN + size];
            let mut scratch = vec![0u8; size];
            fill_data(&mut scratch);
            icmp::Repr::EchoRequest {
                ident: ME,
                seq_no: 1,
                data: &scratch,
            }
            .emit(&mut icmp::Packet::new_unchecked(&mut request[..]));
            stamp(&mut request, 0x0123_4567_89ab_cdef);
            let p = icmp::Packet::new_checked(&request[..]).unwrap();
            assert!(p.verify_checksum(), "size {size}");
            if size >= STAMP_LEN {
                assert_eq!(&p.data()[..8], &0x0123_4567_89ab_cdefu64.to_be_bytes());
            }
        }
    }

    #[test]
    fn arrivals_are_timed_by_the_kernel_not_by_the_read() {
        use socket2::{Domain, Type};
        let rx = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        rx.bind(&SockAddr::from(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)))
            .unwrap();
        crate::sys::enable_rx_timestamps(&rx).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap().as_socket().unwrap();
        // The kernel turns receive stamping on for the whole machine through deferred
        // work (`net_enable_timestamp`), and a packet that went by before that is
        // stamped when recvmsg reads it, i.e. after `asked`. That happens in a fresh
        // test process under load, so try a few datagrams: with stamps taken by the
        // kernel, one soon shows the stamp before the read; with the program's own
        // clock none ever would.
        let mut seen = Vec::new();
        for _ in 0..10 {
            tx.send_to(b"ping", to).unwrap();
            // Once queued on the socket (a loaded kernel may deliver it late), the
            // datagram waits while we sleep: its kernel stamp is before `asked`, a stamp
            // taken by the program after recvmsg would be after it.
            assert!(crate::sys::wait_readable(&rx, Duration::from_secs(20)).unwrap());
            std::thread::sleep(Duration::from_millis(30));
            let asked = now_ns();
            let mut buf = [0u8; 16];
            let a = receive(&rx, &mut buf).unwrap();
            assert!(a.kernel_stamped);
            assert_eq!((a.len, a.from), (4, Ipv4Addr::LOCALHOST));
            assert!(asked <= a.read_ns, "{a:?} asked {asked}");
            if a.at_ns < asked {
                return;
            }
            seen.push((a, asked));
        }
        panic!("no arrival was stamped before the read: {seen:?}");
    }
}

//! Unit tests of the core's slot bookkeeping, which integration tests cannot see.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use super::*;

/// A "UDP socket" that is really a regular file: epoll refuses to watch it (EPERM),
/// which is the one way to make `register` fail from outside. `listen` and
/// `adopt_udp_batched` cannot be fed such a thing (the first makes its own socket, the
/// second's setsockopt fails before a slot is taken), but all ways in share
/// `Ctx::register`, so this covers them.
fn not_a_socket() -> std::net::UdpSocket {
    let file = tempfile::tempfile().expect("temp file");
    std::net::UdpSocket::from(OwnedFd::from(file))
}

#[test]
fn a_failed_register_gives_its_slot_back() {
    let mut ev = EventLoop::new().unwrap();
    let ctx = ev.ctx();
    for _ in 0..3 {
        assert!(ctx.adopt_udp(not_a_socket(), 16).is_err());
    }
    assert_eq!(
        ctx.free.len(),
        ctx.slots.len(),
        "every slot taken is free again"
    );
    assert!(ctx.slots.len() <= 1, "failed registers reuse one slot");
}

#[test]
fn a_stale_handle_never_reaches_the_new_source_in_its_slot() {
    let mut ev = EventLoop::new().unwrap();
    let ctx = ev.ctx();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let old = ctx.bind_udp(any, 16).unwrap();
    let token = ctx.live(old.0).unwrap();
    ctx.drop_source(token, Closed::ByUs);
    let new = ctx.bind_udp(any, 16).unwrap();
    assert_eq!(old.0.index, new.0.index, "the slot is reused");
    assert_ne!(old, new);
    assert_eq!(ctx.local_addr(old), None);
    assert!(ctx.send_to(old, b"x", any).is_err());
    assert!(ctx.local_addr(new).is_some());
}

//! Batched UDP for the core: `recvmmsg`/`sendmmsg`, kernel drop counts, arrival stamps.
//!
//! A socket adopted with [`Ctx::adopt_udp_batched`] is read up to
//! [`sys::MAX_BATCH`] datagrams per system call instead of one. Each datagram still
//! reaches [`Handler::on_datagram`] on its own, now with the kernel's arrival time, and
//! when the socket's receive buffer overflowed the handler hears the kernel's running
//! count through [`Handler::on_kernel_drops`] (SO_RXQ_OVFL): loss inside this machine,
//! told apart from loss on the network.
//!
//! Why bother: on loopback a UDP receiver is bound by packets per second, and a system
//! call per datagram is most of the cost. A real system would also consider GRO/GSO
//! (`UDP_SEGMENT`) and busy polling; batching alone is the simple, portable step.

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;
use mio::{Interest, Token};

use super::{Ctx, Datagram, EventLoop, Handler, Source, Udp, UdpId};
use crate::sys;

/// Receive state of a batched socket: its buffers and the last drop count seen.
pub(super) struct RxBatch {
    /// One buffer per datagram of a batch, each `recv_len` bytes.
    bufs: Vec<Vec<u8>>,
    /// What the last `recvmmsg` returned; reused to avoid allocating per call.
    items: Vec<sys::BatchItem>,
    /// The kernel's cumulative SO_RXQ_OVFL count last reported to the handler.
    drops: u32,
}

impl Ctx {
    /// Adopts a UDP socket that is read in batches of up to `batch` datagrams (at most
    /// [`sys::MAX_BATCH`]); datagrams longer than `recv_len` are truncated and reported.
    /// Memory: `batch * recv_len` bytes of buffers.
    pub fn adopt_udp_batched(
        &mut self,
        sock: std::net::UdpSocket,
        recv_len: usize,
        batch: usize,
    ) -> io::Result<UdpId> {
        sock.set_nonblocking(true)?;
        sys::enable_rx_metadata(&sock)?;
        let mut sock = UdpSocket::from_std(sock);
        let token = self.register(&mut sock, Interest::READABLE)?;
        let n = batch.clamp(1, sys::MAX_BATCH);
        self.slots[token.0] = Some(Source::Udp(Udp {
            sock,
            queue: Default::default(),
            writable: false,
            recv_len: recv_len.max(1),
            batch: Some(Box::new(RxBatch {
                bufs: vec![vec![0; recv_len.max(1)]; n],
                items: Vec::with_capacity(n),
                drops: 0,
            })),
        }));
        Ok(UdpId(self.key(token)))
    }

    /// Sends up to [`sys::MAX_BATCH`] datagrams to `to` in one system call, without
    /// queueing: returns how many the kernel took (the first ones), 0 when its buffer
    /// is full. The caller keeps the rest and tries again later; nothing is lost
    /// silently. Use [`Ctx::send_to`] instead when a bounded queue is wanted.
    ///
    /// `to: None` sends to the address a connected socket (see
    /// [`Ctx::adopt_udp`]) is connected to: the kernel then reuses the route it
    /// cached at `connect` instead of looking it up for every datagram.
    pub fn send_batch(
        &mut self,
        sock: UdpId,
        datagrams: &[&[u8]],
        to: Option<SocketAddr>,
    ) -> io::Result<usize> {
        let token = self.live(sock.0).ok_or(io::ErrorKind::NotConnected)?;
        let Some(Some(Source::Udp(u))) = self.slots.get(token.0) else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        loop {
            match sys::send_batch(&u.sock, datagrams, to) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
                Err(e) => return Err(e),
            }
        }
    }
}

impl EventLoop {
    /// Rule 1 for a batched socket: `recvmmsg` until `WouldBlock`, within the turn's
    /// budget, then a place on the rerun list.
    pub(super) fn recv_batched<H: Handler>(&mut self, handler: &mut H, token: Token) {
        let id = UdpId(self.ctx.key(token));
        for _ in 0..self.ctx.limits.reads_per_turn {
            // Rule 9, between batches: a batch received is handed over whole.
            if self.stopping(handler) {
                return;
            }
            let Some(Some(Source::Udp(u))) = self.ctx.slots.get_mut(token.0) else {
                return;
            };
            let Some(mut b) = u.batch.take() else { return };
            let RxBatch { bufs, items, .. } = &mut *b;
            let result = sys::recv_batch(&u.sock, bufs, items);
            // Fewer datagrams than slots: the queue was empty when the kernel looked, and
            // epoll reports each later arrival anew, so no failing call is needed to
            // learn it (UDP has no FIN to miss).
            let drained = result.is_ok() && b.items.len() < b.bufs.len();
            match result {
                Ok(_) => {
                    let mut newest = b.drops;
                    for (i, it) in b.items.iter().enumerate() {
                        newest = it.drops.map_or(newest, |d| d.max(newest));
                        let d = Datagram {
                            data: &b.bufs[i][..it.len],
                            from: it.from,
                            wire_len: it.wire_len,
                            arrival_ns: it.stamp_ns,
                        };
                        handler.on_datagram(&mut self.ctx, id, d);
                    }
                    if newest != b.drops {
                        b.drops = newest;
                        handler.on_kernel_drops(&mut self.ctx, id, u64::from(newest));
                    }
                    self.ctx.report(handler);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.put_back(token, b);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => handler.on_udp_error(&mut self.ctx, id, &e),
            }
            if !self.put_back(token, b) || drained {
                return; // the handler closed the socket, or nothing is left to read
            }
        }
        self.ctx.rerun.push(token);
    }

    /// Returns the batch state to its socket; false if the socket is gone.
    fn put_back(&mut self, token: Token, b: Box<RxBatch>) -> bool {
        match self.ctx.slots.get_mut(token.0) {
            Some(Some(Source::Udp(u))) => {
                u.batch = Some(b);
                true
            }
            _ => false,
        }
    }
}

//! The few system calls the standard library and our crates do not wrap.
//!
//! This is the only module with `unsafe`. Each block is a plain libc call on a file
//! descriptor we own or on plain-old-data out-parameters, and says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

/// One datagram read by [`recv_from_trunc`].
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// Bytes copied into the caller's buffer.
    pub len: usize,
    /// The datagram's real length on the wire: larger than `len` when it was truncated
    /// because the buffer was too small (the kernel discards the rest).
    pub wire_len: usize,
    /// Who sent it.
    pub from: SocketAddr,
}

/// `recvfrom(2)` with `MSG_TRUNC`, so a datagram larger than `buf` is detected: Linux
/// then returns the datagram's full length instead of the bytes copied.
pub fn recv_from_trunc(sock: &impl AsRawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut addr = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut addr_len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `buf` is valid for `buf.len()` writable bytes; `addr` is a zeroed
    // sockaddr_storage large enough for any address and `addr_len` says its size.
    let n = unsafe {
        libc::recvfrom(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_TRUNC,
            addr.as_mut_ptr().cast(),
            &mut addr_len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled `addr_len` bytes of the zero-initialised storage.
    let storage = unsafe { addr.assume_init() };
    let from =
        sockaddr_to_std(&storage).ok_or_else(|| io::Error::other("unknown address family"))?;
    let wire_len = n as usize;
    Ok(Received {
        len: wire_len.min(buf.len()),
        wire_len,
        from,
    })
}

fn sockaddr_to_std(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in, which it is
            // large enough and suitably aligned for.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The soft and hard limits on open files (`RLIMIT_NOFILE`).
// rlim_t is u64 on 64-bit Linux but not on every target: keep the casts.
#[allow(clippy::unnecessary_cast)]
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((r.rlim_cur, r.rlim_max))
}

/// Raises the soft open-file limit to the hard limit (at most `want`), as servers do so
/// that a thousand clients do not run into the common default of 1024. Returns the new
/// soft limit.
pub fn raise_nofile_limit(want: u64) -> io::Result<u64> {
    let (soft, hard) = nofile_limit()?;
    let target = want.min(hard);
    if target <= soft {
        return Ok(soft);
    }
    let r = libc::rlimit {
        rlim_cur: target as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit reads one rlimit struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(target)
}

/// The supplementary groups of this process, plus its effective group.
pub fn groups() -> Vec<u32> {
    // SAFETY: a count of 0 asks only for the number of groups.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let mut v = vec![0 as libc::gid_t; n.max(0) as usize];
    // SAFETY: `v` has room for `n` gids.
    let got = unsafe { libc::getgroups(n, v.as_mut_ptr()) };
    v.truncate(got.max(0) as usize);
    // SAFETY: getegid cannot fail.
    v.push(unsafe { libc::getegid() });
    v
}

/// The effective user id (0 is root).
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// A new pseudo-terminal, close-on-exec from birth: returns its master end and the
/// slave's path (/dev/pts/N), which a program opens as it would a serial port. Writing to
/// the master is a device sending bytes; closing it is unplugging the device.
/// (`serialport::TTYPort::pair()` does not set close-on-exec, so a program spawned
/// meanwhile would inherit the master and keep the "device" alive.)
pub fn open_pty() -> io::Result<(std::fs::File, String)> {
    use std::os::fd::FromRawFd;
    // SAFETY: posix_openpt returns a new descriptor or -1; we check it before owning it.
    let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let master = unsafe { std::fs::File::from_raw_fd(fd) };
    // SAFETY: grantpt and unlockpt only act on the master descriptor we own.
    if unsafe { libc::grantpt(fd) } != 0 || unsafe { libc::unlockpt(fd) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: ptsname_r writes at most `name.len()` bytes, NUL-terminated, into `name`.
    if unsafe { libc::ptsname_r(fd, name.as_mut_ptr(), name.len()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success `name` holds a NUL-terminated string.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    Ok((master, path.to_string_lossy().into_owned()))
}

/// Marks a descriptor close-on-exec, so programs we spawn do not inherit it.
pub fn set_cloexec(fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: F_SETFD on a descriptor the caller owns; no memory is involved.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `signal` (e.g. `libc::SIGTERM`) to process `pid`, as `kill -TERM pid` does.
pub fn send_signal(pid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid as libc::pid_t, signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn detects_truncated_datagrams() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(&[7u8; 100], rx.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 16];
        let r = recv_from_trunc(&rx, &mut buf).unwrap();
        assert_eq!((r.len, r.wire_len), (16, 100));
        assert_eq!(r.from, tx.local_addr().unwrap());
        assert_eq!(buf, [7u8; 16]);
    }

    #[test]
    fn nofile_limits_are_ordered() {
        let (soft, hard) = nofile_limit().unwrap();
        assert!(soft <= hard);
    }
}

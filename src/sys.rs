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
    let from = sockaddr_to_std(&storage).ok_or_else(|| io::Error::other("unknown address family"))?;
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
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port))))
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

// ---------------------------------------------------------------------------------------
// Sandboxing the programs the grader runs (src/grade/sandbox.rs). Everything that runs
// between fork and exec (`pre_exec`) must be async-signal-safe: plain system calls on
// values prepared before the fork, no allocation, no locks.

/// Resource limits for a program the grader runs (`None` leaves the inherited limit).
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// RLIMIT_NPROC: processes/threads of the user; stops fork bombs (not enforced for
    /// root, so the grader also uses a pids cgroup where it can).
    pub nproc: Option<u64>,
    /// RLIMIT_FSIZE: largest file the program may write, in bytes (SIGXFSZ beyond).
    pub fsize: Option<u64>,
    /// RLIMIT_CPU: CPU seconds (SIGXCPU, then SIGKILL).
    pub cpu_secs: Option<u64>,
    /// RLIMIT_AS: address space in bytes.
    pub address_space: Option<u64>,
    /// RLIMIT_NOFILE: open file descriptors (the fd-leak check lowers it).
    pub nofile: Option<u64>,
}

/// Makes `cmd` apply `limits`, join the pids cgroup whose `cgroup.procs` file is
/// `cgroup_procs` (if any), and die with SIGKILL if the grader dies (PR_SET_PDEATHSIG),
/// in the child between fork and exec. The process group is set with std's
/// `CommandExt::process_group`.
pub fn confine(
    cmd: &mut std::process::Command,
    limits: Limits,
    cgroup_procs: Option<std::ffi::CString>,
) {
    use std::os::unix::process::CommandExt;
    let pairs: [(libc::__rlimit_resource_t, Option<u64>); 5] = [
        (libc::RLIMIT_NPROC, limits.nproc),
        (libc::RLIMIT_FSIZE, limits.fsize),
        (libc::RLIMIT_CPU, limits.cpu_secs),
        (libc::RLIMIT_AS, limits.address_space),
        (libc::RLIMIT_NOFILE, limits.nofile),
    ];
    // SAFETY: the closure only makes async-signal-safe system calls (prctl, setrlimit,
    // open, write, close) on data captured before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(path) = &cgroup_procs {
                // Writing "0" moves the writing process into the cgroup; its children
                // inherit it, so a fork bomb hits pids.max.
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd >= 0 {
                    libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                }
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            for (resource, value) in pairs {
                if let Some(v) = value {
                    let r = libc::rlimit {
                        rlim_cur: v as libc::rlim_t,
                        rlim_max: v as libc::rlim_t,
                    };
                    if libc::setrlimit(resource, &r) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
            }
            Ok(())
        });
    }
}

/// Sends `signal` to every process in process group `pgid` (`kill(-pgid, sig)`).
/// A group that no longer exists is not an error.
pub fn kill_group(pgid: u32, signal: i32) -> io::Result<()> {
    kill_raw(-(pgid as libc::pid_t), signal)
}

/// Sends `signal` to one process; a process that no longer exists is not an error.
pub fn kill_pid(pid: u32, signal: i32) -> io::Result<()> {
    kill_raw(pid as libc::pid_t, signal)
}

fn kill_raw(target: libc::pid_t, signal: i32) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(target, signal) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(e);
        }
    }
    Ok(())
}

/// The name of a signal number (`SIGPIPE`), or `signal N`.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}

/// Brings the loopback interface up. A fresh network namespace starts with `lo` down;
/// this is `ip link set lo up` without needing iproute2.
pub fn loopback_up() -> io::Result<()> {
    // From <linux/sockios.h>: get and set interface flags.
    const SIOCGIFFLAGS: u64 = 0x8913;
    const SIOCSIFFLAGS: u64 = 0x8914;
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").or_else(|_| {
        // With lo down even binding 0.0.0.0 works; this fallback is for odd kernels.
        std::net::UdpSocket::bind("[::]:0")
    })?;
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGIFFLAGS as _, &mut ifr) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just wrote ifru_flags, the active union member.
    unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), SIOCSIFFLAGS as _, &ifr) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Clock ticks per second, the unit of CPU times in `/proc/PID/stat`.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
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

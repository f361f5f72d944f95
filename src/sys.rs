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

/// Puts a terminal in raw mode (`cfmakeraw`: no line editing, no echo, no CR/LF
/// translation, no XON/XOFF, no signal characters, 8 data bits), so every byte written
/// to a pty's master reaches the slave's reader unchanged, like a serial line. On a pty
/// master this sets the slave's modes (the kernel applies terminal ioctls to the slave).
pub fn set_raw(fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: termios is plain data; tcgetattr fills it, cfmakeraw edits it in place,
    // tcsetattr reads it; all on a descriptor the caller owns.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd.as_raw_fd(), &mut t) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::cfmakeraw(&mut t);
        if libc::tcsetattr(fd.as_raw_fd(), libc::TCSANOW, &t) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Makes reads and writes on a descriptor return WouldBlock instead of waiting
/// (O_NONBLOCK), for files std offers no `set_nonblocking` on (a pty master).
pub fn set_nonblocking(fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor the caller owns; no memory is involved.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
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

/// Ignores SIGXFSZ, so writing past the file-size limit (RLIMIT_FSIZE, `ulimit -f`)
/// makes `write` fail with `EFBIG` instead of killing the process: lab 06's receiver
/// then rolls its file back and reports a full disk like any other write error.
pub fn ignore_sigxfsz() -> io::Result<()> {
    // SAFETY: installs SIG_IGN, a constant disposition; no handler code runs.
    if unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Sandboxing the programs the grader runs (src/grade/sandbox.rs). Everything that runs
// between fork and exec (`pre_exec`) must be async-signal-safe: plain system calls on
// values prepared before the fork, no allocation, no locks.

/// Resource limits for a program the grader runs (`None` leaves the inherited limit).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessLimits {
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
    limits: ProcessLimits,
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

/// Moves this process into a new user namespace and a new network namespace of its own
/// (`unshare -Urn` done in-process), maps our uid and gid to themselves, and brings the
/// new loopback up. In the new user namespace the process holds every capability,
/// CAP_NET_RAW included, but only over namespaces that user namespace owns: the new
/// network namespace (just `lo`), never the machine's. Lab 04 uses it to open a raw
/// socket without root.
///
/// The kernel refuses CLONE_NEWUSER in a multi-threaded process (EINVAL): call this
/// before any thread starts. Fails with EPERM (or ENOSPC) where user namespaces are
/// disabled (`kernel.unprivileged_userns_clone=0`, `user.max_user_namespaces=0`,
/// AppArmor's `kernel.apparmor_restrict_unprivileged_userns=1`, seccomp in containers).
pub fn enter_private_netns() -> io::Result<()> {
    // SAFETY: geteuid/getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    // SAFETY: unshare only changes this process's namespaces; no memory is involved.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Without a map our uid reads as 65534 ("nobody") inside. setgroups must be denied
    // before an unprivileged process may write gid_map (user_namespaces(7)).
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    loopback_up()
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

/// Waits until `fd` has something to read or `timeout` has passed, with a nanosecond
/// timer (`ppoll(2)`, an hrtimer): true when readable. A socket's SO_RCVTIMEO counts in
/// scheduler ticks (4 ms at HZ=250), far too coarse to pace a ping every 2 ms.
pub fn wait_readable(fd: &impl AsRawFd, timeout: std::time::Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one pollfd we own, a timespec we own, no signal mask (null).
    let r = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    match r {
        n if n > 0 => Ok(true),
        0 => Ok(false),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
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

// ---------------------------------------------------------------------------------------
// Batched UDP (recvmmsg/sendmmsg) with kernel drop counts and arrival stamps, for
// `crate::core::udp_batch`. One system call moves up to MAX_BATCH datagrams, which is
// what lets a receiver keep up with a sender at full speed on loopback.
// ---------------------------------------------------------------------------------------

/// Most datagrams moved by one [`recv_batch`] or [`send_batch`] call. 64 amortises the
/// system call well (the gain flattens beyond ~32) and keeps the headers on the stack.
pub const MAX_BATCH: usize = 64;

/// Control-message room per datagram: SCM_TIMESTAMPNS (a 16-byte timespec) plus
/// SO_RXQ_OVFL (a u32), each with its cmsghdr, fit in 64 bytes on every Linux ABI.
const CTRL_LEN: usize = 64;

/// One datagram read by [`recv_batch`].
#[derive(Debug, Clone, Copy)]
pub struct BatchItem {
    /// Bytes copied into its buffer.
    pub len: usize,
    /// Its length on the wire; larger than `len` when truncated.
    pub wire_len: usize,
    /// Who sent it.
    pub from: SocketAddr,
    /// When the kernel received it (SO_TIMESTAMPNS), ns since the UNIX epoch.
    pub stamp_ns: Option<u64>,
    /// The socket's cumulative count of datagrams the kernel dropped because its
    /// receive buffer was full (SO_RXQ_OVFL), as of this datagram.
    pub drops: Option<u32>,
}

/// Asks the kernel to attach, to every datagram received on `sock`, its arrival time
/// (SO_TIMESTAMPNS) and the socket's drop counter (SO_RXQ_OVFL).
pub fn enable_rx_metadata(sock: &impl AsRawFd) -> io::Result<()> {
    for opt in [libc::SO_TIMESTAMPNS, libc::SO_RXQ_OVFL] {
        let on: libc::c_int = 1;
        // SAFETY: setsockopt reads one c_int we own, and we pass its size.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `recvmmsg(2)`: reads up to `bufs.len()` (at most [`MAX_BATCH`]) datagrams without
/// waiting, one per buffer, and describes each in `out` (cleared first). Returns how many
/// were read; `WouldBlock` when none was waiting.
pub fn recv_batch(
    sock: &impl AsRawFd,
    bufs: &mut [Vec<u8>],
    out: &mut Vec<BatchItem>,
) -> io::Result<usize> {
    out.clear();
    let n = bufs.len().min(MAX_BATCH);
    // SAFETY (all zeroed): iovec, mmsghdr and sockaddr_storage are plain C structs for
    // which all-zero bytes are valid values.
    let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
    let mut addrs: [libc::sockaddr_storage; MAX_BATCH] = unsafe { std::mem::zeroed() };
    // u64 elements: control buffers must be aligned for cmsghdr.
    let mut ctrl = [[0u64; CTRL_LEN / 8]; MAX_BATCH];
    for i in 0..n {
        iovs[i] = libc::iovec {
            iov_base: bufs[i].as_mut_ptr().cast(),
            iov_len: bufs[i].len(),
        };
        let h = &mut hdrs[i].msg_hdr;
        h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        h.msg_iov = &mut iovs[i];
        h.msg_iovlen = 1;
        h.msg_control = ctrl[i].as_mut_ptr().cast();
        h.msg_controllen = CTRL_LEN as _;
    }
    // SAFETY: every header points at live buffers of the stated sizes, all owned by
    // this frame or by `bufs`, which outlive the call. MSG_TRUNC makes each msg_len the
    // datagram's full length, so truncation is visible.
    let got = unsafe {
        libc::recvmmsg(
            sock.as_raw_fd(),
            hdrs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            std::ptr::null_mut(),
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = got as usize;
    for i in 0..got {
        let h = &hdrs[i].msg_hdr;
        let wire_len = hdrs[i].msg_len as usize;
        let from =
            sockaddr_to_std(&addrs[i]).ok_or_else(|| io::Error::other("unknown address family"))?;
        let mut item = BatchItem {
            len: wire_len.min(bufs[i].len()),
            wire_len,
            from,
            stamp_ns: None,
            drops: None,
        };
        // SAFETY: the kernel wrote msg_controllen bytes of well-formed cmsgs into
        // `ctrl[i]`; the CMSG_* macros walk them within those bounds.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            while !c.is_null() {
                let data = libc::CMSG_DATA(c);
                match ((*c).cmsg_level, (*c).cmsg_type) {
                    (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => {
                        let ts = std::ptr::read_unaligned(data.cast::<libc::timespec>());
                        item.stamp_ns = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
                    }
                    (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) => {
                        item.drops = Some(std::ptr::read_unaligned(data.cast::<u32>()));
                    }
                    _ => {}
                }
                c = libc::CMSG_NXTHDR(h, c);
            }
        }
        out.push(item);
    }
    Ok(got)
}

fn std_to_sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut s: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_flowinfo = v6.flowinfo();
            sin6.sin6_scope_id = v6.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (s, len as libc::socklen_t)
}

/// `sendmmsg(2)`: sends up to [`MAX_BATCH`] datagrams to `to` (or, with `None`, to the
/// address the socket is connected to) without waiting. Returns how many the kernel took
/// (the first ones, in order); `WouldBlock` when none.
pub fn send_batch(
    sock: &impl AsRawFd,
    datagrams: &[&[u8]],
    to: Option<SocketAddr>,
) -> io::Result<usize> {
    let n = datagrams.len().min(MAX_BATCH);
    if n == 0 {
        return Ok(0);
    }
    let (mut addr, addr_len) = match to {
        Some(to) => std_to_sockaddr(to),
        // SAFETY: all-zero bytes are a valid sockaddr_storage; it is not passed.
        None => (unsafe { std::mem::zeroed() }, 0),
    };
    // SAFETY: plain C structs, valid when zeroed.
    let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        iovs[i] = libc::iovec {
            // sendmmsg only reads through this pointer; the cast to *mut is the C API's.
            iov_base: datagrams[i].as_ptr() as *mut libc::c_void,
            iov_len: datagrams[i].len(),
        };
        let h = &mut hdrs[i].msg_hdr;
        if addr_len > 0 {
            h.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = addr_len;
        }
        h.msg_iov = &mut iovs[i];
        h.msg_iovlen = 1;
    }
    // SAFETY: the headers point at `addr`, `iovs` and the caller's slices, all alive for
    // the call; the kernel only reads the payloads.
    let r = unsafe {
        libc::sendmmsg(
            sock.as_raw_fd(),
            hdrs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as usize)
}

/// Sets SO_RCVBUF and returns what the kernel granted (Linux doubles the request for
/// its bookkeeping and caps it at net.core.rmem_max).
pub fn set_recv_buffer(sock: &impl AsRawFd, bytes: usize) -> io::Result<usize> {
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: setsockopt reads one c_int we own.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut got: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes one c_int we own and its length.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut got as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(got.max(0) as usize)
}

#[cfg(test)]
mod batch_tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn batches_round_trip_with_truncation_stamps_and_drop_counter() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_rx_metadata(&rx).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let a = [1u8; 10];
        let b = [2u8; 300];
        assert_eq!(send_batch(&tx, &[&a, &b], Some(to)).unwrap(), 2);
        let mut bufs = vec![vec![0u8; 100]; 4];
        let mut out = Vec::new();
        // Loopback delivers synchronously inside sendmmsg, so both are already queued.
        assert_eq!(recv_batch(&rx, &mut bufs, &mut out).unwrap(), 2);
        assert_eq!((out[0].len, out[0].wire_len), (10, 10));
        assert_eq!(
            (out[1].len, out[1].wire_len),
            (100, 300),
            "truncated to the buffer"
        );
        assert_eq!(out[0].from, tx.local_addr().unwrap());
        assert!(out[0]
            .stamp_ns
            .is_some_and(|t| t > 1_600_000_000 * 1_000_000_000));
        // The kernel attaches SO_RXQ_OVFL only once something was dropped.
        assert_eq!(out[0].drops.unwrap_or(0), 0);
        assert_eq!(bufs[1][..100], [2u8; 100]);
        let e = recv_batch(&rx, &mut bufs, &mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }
}

//! The few system calls the standard library and our crates do not wrap.
//!
//! This is the only module with `unsafe`. Each block is a plain libc call on a file
//! descriptor we own or on plain-old-data out-parameters, and says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

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

/// The effective group id.
pub fn egid() -> u32 {
    // SAFETY: getegid cannot fail.
    unsafe { libc::getegid() }
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
    privileges: Option<Privileges>,
) {
    use std::os::unix::process::CommandExt;
    // A private mount namespace (root's builds) comes with its own network namespace
    // and needs no user namespace: the maps are only for a grader that is not root.
    let ns_maps = privileges
        .as_ref()
        .filter(|d| d.own_netns && d.mounts.is_none())
        .map(|_| {
            // SAFETY: geteuid/getegid have no preconditions.
            let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
            (
                format!("{uid} {uid} 1").into_bytes(),
                format!("{gid} {gid} 1").into_bytes(),
            )
        });
    let pairs: [(libc::__rlimit_resource_t, Option<u64>); 5] = [
        (libc::RLIMIT_NPROC, limits.nproc),
        (libc::RLIMIT_FSIZE, limits.fsize),
        (libc::RLIMIT_CPU, limits.cpu_secs),
        (libc::RLIMIT_AS, limits.address_space),
        (libc::RLIMIT_NOFILE, limits.nofile),
    ];
    let parent = std::process::id() as libc::pid_t;
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
            if let Some(d) = &privileges {
                drop_privileges(d, ns_maps.as_ref())?;
                // A change of uid clears the parent-death signal (prctl(2)): set it
                // again, or a program run as nobody outlives a grader killed with
                // SIGKILL (it was found reparented to init).
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            }
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// A private view of the file system, made by a root grader for a build or a program
/// it runs as nobody (`grade/jail.rs` decides what goes in it): folders nobody cannot
/// pass (a 0700 /root holding the toolchain, a private temporary folder holding the
/// workspace) are covered by an empty tmpfs, and the few paths the build needs are
/// bound back at the same place (a program's workspace: its readable copy, bound at
/// the workspace's path), so every path, and every compiler message, reads as outside.
#[derive(Debug, Default)]
pub struct PrivateMounts {
    /// Folders covered by an empty tmpfs (mode 0755), outermost first.
    pub cover: Vec<std::ffi::CString>,
    /// Folders made inside those (parents first) as mount points.
    pub mkdirs: Vec<std::ffi::CString>,
    /// Bind mounts, (from, at): a path bound back at its own place (from = at), or a
    /// root grader's copy of a workspace shown at the workspace's path (at most
    /// [`MAX_BINDS`]). Each source is opened in the child once its mount namespace
    /// exists (a bind mount's source must be in the caller's namespace), before the
    /// covers hide it.
    pub binds: Vec<(std::ffi::CString, std::ffi::CString)>,
    /// Where to change directory once the view is made (the program's working folder).
    pub chdir: Option<std::ffi::CString>,
}

/// Most paths a [`PrivateMounts`] binds back (the child keeps their descriptors on its
/// stack: nothing may allocate between fork and exec).
pub const MAX_BINDS: usize = 16;

/// `/proc/self/fd/FD` as a C string in `buf`, without allocating (between fork and exec).
fn fd_path(fd: libc::c_int, buf: &mut [u8; 32]) -> *const libc::c_char {
    let prefix = b"/proc/self/fd/";
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 12];
    let mut n = fd.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[prefix.len() + i] = digits[len - 1 - i];
    }
    buf[prefix.len() + len] = 0;
    buf.as_ptr().cast()
}

/// How a program gives up privilege before exec (see `grade/jail.rs` for the policy).
#[derive(Debug)]
pub struct Privileges {
    /// A Landlock ruleset to enforce (`landlock_restrict_self`), kept open by the caller
    /// until the spawn returns.
    pub landlock_fd: Option<RawFd>,
    /// uid and gid to switch to (supplementary groups are cleared).
    pub ids: Option<(u32, u32)>,
    /// Keep CAP_NET_RAW, as an ambient capability, and no other.
    pub keep_net_raw: bool,
    /// Enter a new user + network namespace first (no network at all).
    pub own_netns: bool,
    /// A root grader's build or program: a new mount namespace (and, with
    /// `own_netns`, a new network namespace; no user namespace), this view of the
    /// files, then the switch to `ids`.
    pub mounts: Option<PrivateMounts>,
}

/// Header and data of capset(2), version 3 (two 32-bit words per set).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

// From <linux/securebits.h>: uid 0 gets no capabilities from exec, uid changes do not
// touch capabilities, and no one may raise ambient capabilities; each locked.
/// From <linux/capability.h>.
const CAP_NET_RAW: libc::c_int = 13;
const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_KEEP_CAPS: libc::c_ulong = 1 << 4;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

/// The part of `confine` that gives up privilege, in the child between fork and exec:
/// only system calls on data prepared before the fork.
///
/// # Safety
/// Call only in a `pre_exec` closure (a freshly forked, single-threaded child).
unsafe fn drop_privileges(d: &Privileges, ns_maps: Option<&(Vec<u8>, Vec<u8>)>) -> io::Result<()> {
    let fail = || Err(io::Error::last_os_error());
    if let Some(m) = &d.mounts {
        // A build gets no network at all; a program keeps the grading's loopback.
        let net = if d.own_netns { libc::CLONE_NEWNET } else { 0 };
        if libc::unshare(libc::CLONE_NEWNS | net) != 0 {
            return fail();
        }
        // Nothing mounted here may propagate back to the host's namespace.
        let none = std::ptr::null::<libc::c_char>();
        if libc::mount(
            none,
            c"/".as_ptr(),
            none,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return fail();
        }
        // Open what is bound back before the covers hide it.
        let mut fds = [-1 as libc::c_int; MAX_BINDS];
        if m.binds.len() > MAX_BINDS {
            return Err(io::Error::from_raw_os_error(libc::E2BIG));
        }
        for (slot, (path, _)) in fds.iter_mut().zip(&m.binds) {
            *slot = libc::open(
                path.as_ptr(),
                libc::O_PATH | libc::O_CLOEXEC | libc::O_DIRECTORY,
            );
            if *slot < 0 {
                return fail();
            }
        }
        for dir in &m.cover {
            if libc::mount(
                c"tmpfs".as_ptr(),
                dir.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"mode=0755,size=1m".as_ptr().cast(),
            ) != 0
            {
                return fail();
            }
        }
        for dir in &m.mkdirs {
            if libc::mkdir(dir.as_ptr(), 0o755) != 0
                && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST)
            {
                return fail();
            }
        }
        for (fd, (_, to)) in fds.iter().zip(&m.binds) {
            let mut buf = [0u8; 32];
            if libc::mount(
                fd_path(*fd, &mut buf),
                to.as_ptr(),
                none,
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ) != 0
            {
                return fail();
            }
            libc::close(*fd);
        }
        if let Some(dir) = &m.chdir {
            if libc::chdir(dir.as_ptr()) != 0 {
                return fail();
            }
        }
    }
    if let Some((uid_map, gid_map)) = ns_maps {
        if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) != 0 {
            return fail();
        }
        for (file, data) in [
            (c"/proc/self/setgroups".as_ptr(), &b"deny"[..]),
            (c"/proc/self/uid_map".as_ptr(), &uid_map[..]),
            (c"/proc/self/gid_map".as_ptr(), &gid_map[..]),
        ] {
            let fd = libc::open(file, libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::write(fd, data.as_ptr().cast(), data.len()) < 0 {
                return fail();
            }
            libc::close(fd);
        }
    }
    // The bounding set caps what any later exec can gain; dropping needs CAP_SETPCAP,
    // which an unprivileged grader lacks (and then has nothing to drop): ignore EPERM.
    for cap in 0..64 {
        if d.keep_net_raw && cap == CAP_NET_RAW {
            continue;
        }
        libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
    }
    let mut bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED;
    if !d.keep_net_raw {
        bits |= SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    } else if d.ids.is_some() {
        // Switching away from uid 0 empties the permitted set unless KEEP_CAPS is set:
        // keep it for CAP_NET_RAW (exec clears this bit again).
        bits |= SECBIT_KEEP_CAPS;
    }
    libc::prctl(libc::PR_SET_SECUREBITS, bits, 0, 0, 0);
    if let Some((uid, gid)) = d.ids {
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(gid, gid, gid) != 0
            || libc::setresuid(uid, uid, uid) != 0
        {
            return fail();
        }
    }
    libc::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL,
        0,
        0,
        0,
    );
    let keep: u32 = if d.keep_net_raw { 1 << CAP_NET_RAW } else { 0 };
    let mut header = CapHeader {
        // _LINUX_CAPABILITY_VERSION_3
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [
        CapData {
            effective: keep,
            permitted: keep,
            inheritable: keep,
        },
        CapData {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        },
    ];
    if libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) != 0 {
        return fail();
    }
    if d.keep_net_raw
        && libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE,
            CAP_NET_RAW,
            0,
            0,
        ) != 0
    {
        return fail();
    }
    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
        return fail();
    }
    // What Landlock does not cover: pathname UNIX sockets, io_uring (SANDBOX_FILTER).
    if let Some(filter) = SANDBOX_FILTER.as_ref() {
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr().cast_mut(),
        };
        if libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const _,
            0,
            0,
        ) != 0
        {
            return fail();
        }
    }
    if let Some(fd) = d.landlock_fd {
        // Fail closed: a ruleset we prepared and could not enforce means no program.
        if libc::syscall(libc::SYS_landlock_restrict_self, fd, 0) != 0 {
            return fail();
        }
    }
    Ok(())
}

/// The architecture seccomp reports (`AUDIT_ARCH_*` in <linux/audit.h>).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: Option<u32> = Some(0xC000_003E);
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: Option<u32> = Some(0xC000_00B7);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const AUDIT_ARCH: Option<u32> = None;

/// A classic BPF instruction (`BPF_STMT` / `BPF_JUMP`).
const fn bpf(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

// BPF opcodes: load a 32-bit word of `seccomp_data`, AND the accumulator with a
// constant, jump if equal, return.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_ALU_AND_K: u16 = 0x54;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;

/// The seccomp filter every sandboxed program runs under. Offsets into
/// `seccomp_data`: nr at 0, arch at 4, the first argument's low word at 16, the
/// second's at 24 (little-endian). A foreign architecture's calls are let through.
///
/// - `socket(AF_UNIX, ..)` fails with EACCES: Landlock (up to ABI 8) does not cover
///   connecting to a pathname socket, so host services on one (a database, Docker)
///   stay out of reach by never letting the program make such a socket;
/// - `socketpair(AF_UNIX, SOCK_DGRAM, ..)` fails with EACCES: a datagram socket may
///   still `sendto()` a pathname address (such as /dev/log); stream pairs, which
///   asyncio and runtimes use, ignore addresses and stay allowed;
/// - `io_uring_setup` fails with ENOSYS (runtimes then fall back to plain calls):
///   io_uring's operations are not seen by this filter.
const SANDBOX_FILTER: Option<[libc::sock_filter; 17]> = match AUDIT_ARCH {
    Some(arch) => Some([
        /* 0 */ bpf(BPF_LD_W_ABS, 0, 0, 4),
        /* 1 */ bpf(BPF_JEQ_K, 0, 12, arch),
        /* 2 */ bpf(BPF_LD_W_ABS, 0, 0, 0),
        /* 3 */ bpf(BPF_JEQ_K, 12, 0, libc::SYS_io_uring_setup as u32),
        /* 4 */ bpf(BPF_JEQ_K, 2, 0, libc::SYS_socket as u32),
        /* 5 */ bpf(BPF_JEQ_K, 3, 0, libc::SYS_socketpair as u32),
        /* 6 */ bpf(BPF_RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        // socket: refuse AF_UNIX.
        /* 7 */ bpf(BPF_LD_W_ABS, 0, 0, 16),
        /* 8 */ bpf(BPF_JEQ_K, 6, 5, libc::AF_UNIX as u32),
        // socketpair: refuse AF_UNIX with SOCK_DGRAM (the type's low 4 bits; the rest
        // are SOCK_NONBLOCK and SOCK_CLOEXEC).
        /* 9 */
        bpf(BPF_LD_W_ABS, 0, 0, 16),
        /* 10 */ bpf(BPF_JEQ_K, 0, 3, libc::AF_UNIX as u32),
        /* 11 */ bpf(BPF_LD_W_ABS, 0, 0, 24),
        /* 12 */ bpf(BPF_ALU_AND_K, 0, 0, 0xf),
        /* 13 */ bpf(BPF_JEQ_K, 1, 0, libc::SOCK_DGRAM as u32),
        /* 14 */ bpf(BPF_RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        /* 15 */
        bpf(
            BPF_RET_K,
            0,
            0,
            libc::SECCOMP_RET_ERRNO | libc::EACCES as u32,
        ),
        /* 16 */
        bpf(
            BPF_RET_K,
            0,
            0,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ),
    ]),
    None => None,
};

/// The kernel's Landlock ABI version, or 0 when Landlock is absent or disabled.
pub fn landlock_abi() -> i32 {
    // LANDLOCK_CREATE_RULESET_VERSION asks for the ABI instead of creating a ruleset.
    const VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute and size 0 this only returns a number.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            VERSION,
        )
    };
    if v < 0 {
        0
    } else {
        v as i32
    }
}

/// Makes this process non-dumpable: its /proc entries (environ, fd/, mem) then belong
/// to root and need ptrace rights, so a program running as the same uid cannot read the
/// grader's environment or write to its file descriptors.
pub fn set_not_dumpable() {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}

/// Makes `cmd`'s process die with SIGKILL when the thread that spawned it ends
/// (PR_SET_PDEATHSIG): the isolated grading run must not outlive a grader that was
/// killed (`timeout lab grade ...` left `lab __grade-inner` running, reparented to init).
/// Spawn and wait on the same thread: the signal follows the spawning thread, not the
/// process. A parent that died before the prctl is caught by comparing getppid.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure makes only async-signal-safe calls (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Makes this process the reaper of its orphaned descendants (PR_SET_CHILD_SUBREAPER):
/// a program that daemonizes (double fork + setsid) stays our descendant, to be killed.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reaps child `pid` if it has ended (waitpid with WNOHANG); true when reaped.
pub fn reap(pid: u32) -> bool {
    let mut status = 0;
    // SAFETY: waitpid writes only to the status we own.
    unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) == pid as libc::pid_t }
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

/// `setsockopt(2)` with one plain value (an int, a mask, a `sock_fprog`): the kernel
/// reads `size_of::<T>()` bytes at `value` during the call and keeps no pointer.
fn setsockopt<T>(
    sock: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is a live reference to a T of exactly the size we pass; a T that
    // holds pointers (sock_fprog) points at memory the caller keeps alive over the call.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel to attach, to every datagram received on `sock`, its arrival time
/// (SO_TIMESTAMPNS) and the socket's drop counter (SO_RXQ_OVFL).
pub fn enable_rx_metadata(sock: &impl AsRawFd) -> io::Result<()> {
    for opt in [libc::SO_TIMESTAMPNS, libc::SO_RXQ_OVFL] {
        let on: libc::c_int = 1;
        setsockopt(sock, libc::SOL_SOCKET, opt, &on)?;
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
    setsockopt(sock, libc::SOL_SOCKET, libc::SO_RCVBUF, &v)?;
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

// ---------------------------------------------------------------------------------------
// Packet capture (`--pcap`, src/capture.rs): an AF_PACKET socket on one interface, each
// frame read with its kernel timestamp and direction. Needs CAP_NET_RAW in the network
// namespace's owning user namespace: root, `setcap cap_net_raw+ep`, or a namespace of
// our own (where the grader runs anyway).
// ---------------------------------------------------------------------------------------

/// One frame read by [`recv_frame`].
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    /// Bytes copied into the buffer.
    pub len: usize,
    /// The frame's real length (larger than `len` when the buffer cut it).
    pub wire_len: usize,
    /// When the kernel saw it (SO_TIMESTAMPNS), ns since the Unix epoch.
    pub stamp_ns: Option<u64>,
    /// PACKET_OUTGOING: a copy of a frame this host sends. On `lo` every frame is seen
    /// twice, leaving and arriving; tcpdump keeps only the arriving one, and so do we.
    pub outgoing: bool,
}

/// Opens an AF_PACKET SOCK_RAW socket for every protocol (ETH_P_ALL) bound to
/// interface `name` of this network namespace, with kernel timestamps on. EPERM
/// without CAP_NET_RAW.
pub fn packet_socket(name: &str) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let cname = std::ffi::CString::new(name).map_err(io::Error::other)?;
    // SAFETY: if_nametoindex reads a NUL-terminated string we own.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    // The protocol goes in network byte order (packet(7)).
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: socket() has no memory preconditions; we own the returned descriptor.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::c_int::from(proto),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; zeroed is valid.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = proto;
    addr.sll_ifindex = index as i32;
    // SAFETY: bind reads the sockaddr_ll we own, of the size we pass.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    enable_rx_timestamps(&sock)?;
    Ok(sock)
}

/// `recvmsg(2)` of one frame from a [`packet_socket`], with its timestamp and
/// direction. Blocks as the socket does (a read timeout gives `WouldBlock`).
pub fn recv_frame(sock: &impl AsRawFd, buf: &mut [u8]) -> io::Result<Frame> {
    // SAFETY: all-zero bytes are a valid sockaddr_ll (a plain C struct).
    let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    // MSG_TRUNC: the return value is the frame's full length even when `buf` cut it.
    let (wire_len, stamp_ns) = recvmsg_stamped(sock, &mut from, buf, libc::MSG_TRUNC)?;
    Ok(Frame {
        len: wire_len.min(buf.len()),
        wire_len,
        stamp_ns,
        outgoing: from.sll_pkttype == PACKET_OUTGOING,
    })
}

/// One `recvmsg(2)` into `buf`, the sender's address written into `addr` (a C socket
/// address struct), and the SO_TIMESTAMPNS stamp read from the control data by
/// [`cmsg_stamp_ns`] when the socket has the option on. Returns recvmsg's count.
fn recvmsg_stamped<A>(
    sock: &impl AsRawFd,
    addr: &mut A,
    buf: &mut [u8],
    flags: libc::c_int,
) -> io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64 elements: a control buffer must be aligned for cmsghdr.
    let mut ctrl = [0u64; CTRL_LEN / 8];
    // SAFETY: all-zero bytes are a valid msghdr.
    let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
    h.msg_name = (addr as *mut A).cast();
    h.msg_namelen = std::mem::size_of::<A>() as libc::socklen_t;
    h.msg_iov = &mut iov;
    h.msg_iovlen = 1;
    h.msg_control = ctrl.as_mut_ptr().cast();
    h.msg_controllen = CTRL_LEN as _;
    // SAFETY: the header points at `addr`, `iov` (over `buf`) and `ctrl`, all alive for
    // the call and of the stated sizes.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut h, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `ctrl` is CTRL_LEN initialised bytes; u8 has no alignment to keep.
    let bytes: &[u8] = unsafe { std::slice::from_raw_parts(ctrl.as_ptr().cast(), CTRL_LEN) };
    let used = (h.msg_controllen as usize).min(CTRL_LEN);
    Ok((n as usize, cmsg_stamp_ns(&bytes[..used])))
}

/// `sll_pkttype` of a frame this host sent (<linux/if_packet.h>).
const PACKET_OUTGOING: u8 = 4;

/// Frames the kernel dropped on a [`packet_socket`] because its receive buffer was full,
/// since the last call (PACKET_STATISTICS resets the counters when read).
pub fn packet_drops(sock: &impl AsRawFd) -> io::Result<u32> {
    // From <linux/if_packet.h>: struct tpacket_stats { tp_packets, tp_drops }.
    const PACKET_STATISTICS: libc::c_int = 6;
    let mut stats = [0u32; 2];
    let mut len = std::mem::size_of_val(&stats) as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `stats`, which we own.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_STATISTICS,
            stats.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stats[1])
}

/// SO_RCVBUFFORCE: a receive buffer beyond net.core.rmem_max. Needs CAP_NET_ADMIN over
/// the socket's network namespace (EPERM otherwise).
pub fn force_recv_buffer(sock: &impl AsRawFd, bytes: usize) -> io::Result<()> {
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    setsockopt(sock, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &v)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Raw ICMP sockets (lab 04): the two filters iputils ping asks the kernel for, and one
// datagram read with the kernel's receive time, as ping reads it.
// ---------------------------------------------------------------------------------------

/// `ICMP_FILTER` (linux/icmp.h): an option of raw IPPROTO_ICMP sockets, level SOL_RAW.
const ICMP_FILTER: libc::c_int = 1;

/// `SO_ATTACH_FILTER` (asm-generic/socket.h: x86, arm, riscv; the libc crate names it
/// only for some targets).
const SO_ATTACH_FILTER: libc::c_int = 26;

/// Lets only the ICMP types in `allowed` reach the raw ICMP socket `sock`. The option is
/// a 32-bit mask in which bit N set means "drop type N" (types 32 and up always pass).
/// The kernel tests it before it copies a packet for the socket (`raw_v4_input`), so a
/// dropped type costs nothing: no copy, no queueing, no wake-up. iputils ping allows
/// echo replies and the errors only, so its own requests, which a raw socket on
/// loopback otherwise receives inside its own `sendto`, never reach it.
pub fn set_icmp_filter(sock: &impl AsRawFd, allowed: &[u8]) -> io::Result<()> {
    let mut drop_mask = u32::MAX;
    for &t in allowed.iter().filter(|&&t| t < 32) {
        drop_mask &= !(1u32 << t);
    }
    setsockopt(sock, libc::SOL_RAW, ICMP_FILTER, &drop_mask)?;
    Ok(())
}

/// Attaches iputils ping's socket filter (`ping4_install_filter`, classic BPF) to the
/// raw ICMP socket `sock`: echo replies with another identifier than `ident` are
/// dropped in the kernel; everything else passes. The program runs over the IPv4
/// packet: skip the header by its IHL, load the identifier (ICMP offset 4) and the type
/// (offset 0).
pub fn attach_echo_ident_filter(sock: &impl AsRawFd, ident: u16) -> io::Result<()> {
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let mut prog = [
        // X = 4 * (packet[0] & 0x0f): the IPv4 header length.
        op(libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH, 0, 0, 0),
        // A = the 16-bit word at X + 4: the echo identifier, in host order.
        op(libc::BPF_LD | libc::BPF_H | libc::BPF_IND, 0, 0, 4),
        // Ours? Then accept the whole packet.
        op(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            0,
            1,
            u32::from(ident),
        ),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX),
        // A = the ICMP type; an echo reply (type 0) with another identifier is dropped.
        op(libc::BPF_LD | libc::BPF_B | libc::BPF_IND, 0, 0, 0),
        op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 1, 0, 0),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as libc::c_ushort,
        filter: prog.as_mut_ptr(),
    };
    // The kernel copies the program during the call; `prog` outlives it.
    setsockopt(sock, libc::SOL_SOCKET, SO_ATTACH_FILTER, &fprog)?;
    Ok(())
}

/// Turns on SO_TIMESTAMPNS: each datagram then carries, as a control message, the time
/// the kernel received it (nanoseconds, CLOCK_REALTIME).
pub fn enable_rx_timestamps(sock: &impl AsRawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    setsockopt(sock, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &on)?;
    Ok(())
}

/// One datagram read by [`recv_stamped`].
#[derive(Debug, Clone, Copy)]
pub struct Stamped {
    /// Bytes copied into the caller's buffer.
    pub len: usize,
    /// Who sent it.
    pub from: SocketAddr,
    /// When the kernel received it (SO_TIMESTAMPNS), ns since the UNIX epoch; `None`
    /// when the socket does not have the option on.
    pub stamp_ns: Option<u64>,
}

/// `recvmsg(2)` of one datagram without waiting (`WouldBlock` when none is queued),
/// with its SO_TIMESTAMPNS control message read by [`cmsg_stamp_ns`]: the same call
/// iputils ping makes for each reply.
pub fn recv_stamped(sock: &impl AsRawFd, buf: &mut [u8]) -> io::Result<Stamped> {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let (len, stamp_ns) = recvmsg_stamped(sock, &mut addr, buf, libc::MSG_DONTWAIT)?;
    let from = sockaddr_to_std(&addr).ok_or_else(|| io::Error::other("unknown address family"))?;
    Ok(Stamped {
        len,
        from,
        stamp_ns,
    })
}

/// Finds the SCM_TIMESTAMPNS control message in `control` (the bytes recvmsg wrote into
/// msg_control) and returns its time in ns since the UNIX epoch. The layout, as the
/// kernel writes it (`struct cmsghdr`, man 3 cmsg): a size_t `cmsg_len` (header plus
/// data), an int level, an int type, then the data, each message starting at a multiple
/// of sizeof(size_t). Safe code over bytes, so a malformed buffer ends the walk instead
/// of reading past it.
pub fn cmsg_stamp_ns(control: &[u8]) -> Option<u64> {
    const W: usize = std::mem::size_of::<usize>();
    let int = std::mem::size_of::<libc::c_int>();
    let header = (W + 2 * int).div_ceil(W) * W;
    let mut at = 0;
    while at + header <= control.len() {
        let len = usize::from_ne_bytes(control[at..at + W].try_into().ok()?);
        let level = libc::c_int::from_ne_bytes(control[at + W..at + W + int].try_into().ok()?);
        let kind =
            libc::c_int::from_ne_bytes(control[at + W + int..at + W + 2 * int].try_into().ok()?);
        if len < header || at + len > control.len() {
            return None;
        }
        let data = &control[at + header..at + len];
        if (level, kind) == (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) {
            // struct timespec: two longs, seconds then nanoseconds.
            let l = std::mem::size_of::<libc::c_long>();
            if data.len() < 2 * l {
                return None;
            }
            let sec = libc::c_long::from_ne_bytes(data[..l].try_into().ok()?);
            let nsec = libc::c_long::from_ne_bytes(data[l..2 * l].try_into().ok()?);
            return Some(
                (sec as u64)
                    .wrapping_mul(1_000_000_000)
                    .wrapping_add(nsec as u64),
            );
        }
        at += len.div_ceil(W) * W;
    }
    None
}

#[cfg(test)]
mod icmp_socket_tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// One control message as the kernel lays it out (see [`cmsg_stamp_ns`]).
    fn cmsg(level: libc::c_int, kind: libc::c_int, data: &[u8]) -> Vec<u8> {
        let w = std::mem::size_of::<usize>();
        let header = (w + 8).div_ceil(w) * w;
        let mut v = (header + data.len()).to_ne_bytes().to_vec();
        v.extend(level.to_ne_bytes());
        v.extend(kind.to_ne_bytes());
        v.resize(header, 0);
        v.extend(data);
        v.resize(v.len().div_ceil(w) * w, 0);
        v
    }

    fn timespec(sec: i64, nsec: i64) -> Vec<u8> {
        let mut v = (sec as libc::c_long).to_ne_bytes().to_vec();
        v.extend((nsec as libc::c_long).to_ne_bytes());
        v
    }

    #[test]
    fn the_parser_finds_the_timestamp_among_other_messages() {
        let ts = cmsg(
            libc::SOL_SOCKET,
            libc::SCM_TIMESTAMPNS,
            &timespec(1_700_000_000, 5),
        );
        assert_eq!(cmsg_stamp_ns(&ts), Some(1_700_000_000_000_000_005));
        // After a message of another kind with odd-sized data (padded to the next one).
        let mut two = cmsg(libc::SOL_IP, libc::IP_TTL, &64i32.to_ne_bytes());
        two.extend(&ts);
        assert_eq!(cmsg_stamp_ns(&two), Some(1_700_000_000_000_000_005));
        // SO_TIMESTAMP (microseconds, a timeval) is not SO_TIMESTAMPNS.
        let other = cmsg(libc::SOL_SOCKET, libc::SO_TIMESTAMP, &timespec(1, 2));
        assert_eq!(cmsg_stamp_ns(&other), None);
        assert_eq!(cmsg_stamp_ns(&[]), None);
    }

    #[test]
    fn the_parser_stops_at_malformed_buffers_without_panicking() {
        let ts = cmsg(libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &timespec(3, 4));
        for n in 0..ts.len() {
            assert_eq!(cmsg_stamp_ns(&ts[..n]), None, "cut at {n}");
        }
        // A length field shorter than the header, or past the end.
        for bad in [0usize, 3, 10_000] {
            let mut b = ts.clone();
            b[..std::mem::size_of::<usize>()].copy_from_slice(&bad.to_ne_bytes());
            assert_eq!(cmsg_stamp_ns(&b), None, "cmsg_len {bad}");
        }
    }

    fn now_ns() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    }

    #[test]
    fn the_stamp_is_the_kernels_arrival_time_not_the_read() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_rx_timestamps(&rx).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        // The first SO_TIMESTAMPNS of a machine turns stamping on through deferred
        // work (`net_enable_timestamp`); a packet that goes by before that is stamped
        // when recvmsg reads it, after `read_at`. So try a few datagrams: one soon
        // carries the kernel's arrival time; a reader's own stamp never would.
        let mut seen = Vec::new();
        let mut buf = [0u8; 8];
        for _ in 0..10 {
            let before = now_ns();
            tx.send_to(b"x", rx.local_addr().unwrap()).unwrap();
            // Once it is on the socket's queue (on a loaded machine the kernel may
            // deliver it late, and stamp it then), it waits there; a stamp taken by the
            // reader would be later than `read_at`.
            assert!(wait_readable(&rx, Duration::from_secs(20)).unwrap());
            std::thread::sleep(Duration::from_millis(30));
            let read_at = now_ns();
            let got = recv_stamped(&rx, &mut buf).unwrap();
            assert_eq!((got.len, got.from), (1, tx.local_addr().unwrap()));
            let stamp = got.stamp_ns.expect("SO_TIMESTAMPNS control message");
            assert!(before <= stamp, "{before} {stamp}");
            if stamp < read_at {
                break;
            }
            seen.push((before, stamp, read_at));
            assert!(seen.len() < 10, "every stamp was after the read: {seen:?}");
        }
        // Nothing more queued: WouldBlock, not a wait.
        let e = recv_stamped(&rx, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn icmp_filter_is_refused_loudly_on_other_sockets() {
        // Its effect needs a raw socket (CAP_NET_RAW): checked end to end in
        // tests/raw_icmp.rs. Here only that a non-raw socket refuses the option.
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(set_icmp_filter(&s, &[0]).is_err());
    }
}

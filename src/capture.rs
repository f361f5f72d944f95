//! `--pcap FILE`: a packet capture of a lab's conversation, for Wireshark and tshark.
//!
//! An AF_PACKET socket (packet(7)) bound to `lo` sees every frame on the loopback
//! interface of the current network namespace, as a 14-byte Ethernet header (zero
//! addresses) and the IP packet. A thread reads frames with their kernel timestamps
//! (SO_TIMESTAMPNS: when the kernel handled the frame, not when we read it) and writes
//! them to a pcapng file ([`crate::wire::pcapng`]) until stopped; at stop it drains what
//! the kernel still queues, so the last FIN or end marker is in the file.
//!
//! Where it runs:
//! - `lab check` / `lab grade`: inside the grader's own user + network namespace
//!   ([`crate::grade::ns`]). There `lab` holds CAP_NET_RAW over that namespace (not over
//!   the machine), so no root is needed, and `lo` carries only the grading.
//! - `lab run`: on the machine's `lo`, which needs CAP_NET_RAW (root, or
//!   `setcap cap_net_raw+ep`). Without it the run goes on uncaptured and says how to
//!   get one, including `unshare -Urn` (a namespace of its own, where `lab` brings `lo`
//!   up). The machine's `lo` may carry other programs' traffic: with `--role` and fixed
//!   ports the capture keeps only those ports; a demo's ports are chosen by the kernel,
//!   so a demo keeps everything on `lo` while it runs (in a namespace, that is the demo).
//!
//! Bounded: each frame is cut to [`SNAPLEN`] bytes and the file stops growing at
//! [`MAX_BYTES`] (it stays a valid file; the summary says how many frames were left out).
//! The thread reads with a short timeout, so stopping never waits on a quiet network.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::LabError;
use crate::wire::pcapng::{Interface, Section, Writer, Written, LINKTYPE_ETHERNET};

/// Bytes kept of each frame: 262,144 as tcpdump's default, more than `lo`'s largest
/// frame (MTU 65,536 + 14), so nothing a lab sends is cut.
pub const SNAPLEN: u32 = 262_144;

/// The file never grows beyond 256 MiB: lab 03's default run is ~5 MB (20,000
/// datagrams seen twice, sender -> relay -> receiver); a runaway capture must not fill
/// the disk.
pub const MAX_BYTES: u64 = 256 << 20;

/// How long one read waits before looking at the stop flag, and how long a quiet queue
/// means "drained" at stop. Loopback frames are queued as they are sent, so 50 ms of
/// silence after the run's last write means nothing more is coming.
const POLL: Duration = Duration::from_millis(50);

/// The interface every lab talks over.
const IFACE: &str = "lo";

/// What to capture, serializable so the grader can hand it to its copy of `lab`
/// inside the namespaces.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Request {
    /// The pcapng file to write (absolute: the grader's copy may run elsewhere).
    pub path: PathBuf,
    /// The section comment: the lab, the command, the seed.
    pub comment: String,
    /// Keep only TCP/UDP frames to or from these ports (ICMP always); empty: all.
    #[serde(default)]
    pub ports: Vec<u16>,
}

impl Request {
    /// A request for `path`, commented with the command line that made it.
    pub fn new(path: &Path, lab: &str, seed: Option<u64>) -> Request {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let command: Vec<String> = std::env::args().collect();
        let mut comment = format!("lab {lab}: `{}`", command.join(" "));
        if let Some(seed) = seed {
            comment.push_str(&format!("; seed {seed}"));
        }
        Request {
            path,
            comment,
            ports: Vec::new(),
        }
    }
}

/// What a finished capture wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Frames in the file, the file's size, frames left out at the size cap.
    pub written: WrittenSummary,
    /// Frames the kernel dropped because the capture fell behind.
    pub kernel_drops: u64,
    /// Frames of other conversations that the port filter left out.
    pub filtered: u64,
}

/// [`Written`], serializable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenSummary {
    pub packets: u64,
    pub bytes: u64,
    pub skipped: u64,
}

impl From<Written> for WrittenSummary {
    fn from(w: Written) -> Self {
        WrittenSummary {
            packets: w.packets,
            bytes: w.bytes,
            skipped: w.skipped,
        }
    }
}

/// A running capture: a thread writing frames until [`Capture::stop`].
pub struct Capture {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<Summary>>>,
}

/// Opens the socket on `lo` and the file, and starts the capture thread. Fails with a
/// message that says how to get the privilege when CAP_NET_RAW is missing.
pub fn start(req: &Request) -> Result<Capture, LabError> {
    // A fresh namespace's `lo` starts down (and a packet socket bound to a down
    // interface reports ENETDOWN): bring it up first. With CAP_NET_RAW in our own
    // namespace we hold CAP_NET_ADMIN there too; on the machine's `lo`, already up,
    // this changes nothing (or is refused, which is fine).
    let _ = crate::sys::loopback_up();
    let sock = crate::sys::packet_socket(IFACE).map_err(privilege_error)?;
    let sock = socket2::Socket::from(sock);
    sock.set_read_timeout(Some(POLL))
        .map_err(|e| LabError::usage(format!("cannot set up the capture socket: {e}")))?;
    // 8 MiB of queue (capped by net.core.rmem_max unless privileged): lab 03 at full
    // speed outruns a small queue while the thread writes.
    // SO_RCVBUFFORCE goes past that cap with CAP_NET_ADMIN, which the grader's own
    // namespace grants: its checks push megabytes through `lo` in 64 KiB frames.
    if crate::sys::force_recv_buffer(&sock, 32 << 20).is_err() {
        let _ = sock.set_recv_buffer_size(8 << 20);
    }
    if let Some(dir) = req.path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| file_error(&req.path, e))?;
    }
    let file = File::create(&req.path).map_err(|e| file_error(&req.path, e))?;
    let section = Section {
        comment: req.comment.clone(),
        os: format!(
            "Linux {}",
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
        ),
        application: format!("lab {}", env!("CARGO_PKG_VERSION")),
    };
    let iface = Interface {
        name: IFACE.into(),
        linktype: LINKTYPE_ETHERNET,
        snaplen: SNAPLEN,
    };
    let writer = Writer::new(BufWriter::new(file), &section, &iface, MAX_BYTES)
        .map_err(|e| file_error(&req.path, e))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let ports = req.ports.clone();
    let thread = std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || capture_loop(sock, writer, &flag, &ports))
        .map_err(|e| LabError::usage(format!("cannot start the capture thread: {e}")))?;
    Ok(Capture {
        path: req.path.clone(),
        stop,
        thread: Some(thread),
    })
}

/// Starts a capture, or explains on stderr why not and goes on without one: a missing
/// capture must never stop a run or a grading.
pub fn start_or_explain(req: &Request) -> Option<Capture> {
    start(req).map_err(|e| explain(&e)).ok()
}

/// Says on stderr why there is no capture, and how to get one.
pub fn explain(e: &LabError) {
    eprintln!(
        "{NOTE} none written, the run goes on without one: {}",
        e.what
    );
    if let Some(fix) = &e.fix {
        eprintln!("{NOTE} fix: {fix}");
    }
}

/// How capture notes start on stderr; the grader relays such lines from its copy of
/// `lab` in the namespaces ([`relay_notes`]).
pub const NOTE: &str = "lab: capture:";

impl Capture {
    /// Stops the thread after draining what the kernel still queues, and closes the
    /// file.
    pub fn stop(mut self) -> io::Result<Summary> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the capture thread panicked")),
            None => Ok(Summary::default()),
        }
    }

    /// Stops and says on stderr what was written (and what was not).
    pub fn stop_and_say(self) {
        let path = self.path.clone();
        match self.stop() {
            Ok(s) => eprintln!("{}", describe(&path, &s)),
            Err(e) => eprintln!("{NOTE} writing {} failed: {e}", path.display()),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The summary line(s): the file, its frames, the cap and the drops if any.
pub fn describe(path: &Path, s: &Summary) -> String {
    let mut text = format!(
        "{NOTE} {} frames ({} bytes) in {}; open it with `tshark -r {}` or Wireshark",
        s.written.packets,
        s.written.bytes,
        path.display(),
        path.display()
    );
    if s.written.skipped > 0 {
        text.push_str(&format!(
            "\n{NOTE} the file reached its size cap ({} MiB): the last {} frames were not written",
            MAX_BYTES >> 20,
            s.written.skipped
        ));
    }
    if s.kernel_drops > 0 {
        text.push_str(&format!(
            "\n{NOTE} the kernel dropped {} frames the capture could not keep up with",
            s.kernel_drops
        ));
    }
    text
}

/// Prints the capture lines found in a grader copy's stderr (which is otherwise only
/// shown when that copy fails).
pub fn relay_notes(stderr: &[u8]) {
    for line in String::from_utf8_lossy(stderr).lines() {
        if line.starts_with(NOTE) {
            eprintln!("{line}");
        }
    }
}

fn capture_loop(
    sock: socket2::Socket,
    mut writer: Writer<BufWriter<File>>,
    stop: &AtomicBool,
    ports: &[u16],
) -> io::Result<Summary> {
    let mut buf = vec![0u8; SNAPLEN as usize];
    let mut filtered = 0u64;
    let mut kernel_drops = 0u64;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        match crate::sys::recv_frame(&sock, &mut buf) {
            Ok(f) if f.outgoing => {}
            Ok(f) => {
                let data = &buf[..f.len];
                if !ports.is_empty() && !matches_ports(data, ports) {
                    filtered += 1;
                    continue;
                }
                let stamp = f.stamp_ns.unwrap_or_else(crate::wire::epoch_ns);
                writer.packet(stamp, data, f.wire_len as u32)?;
            }
            // The timeout: nothing queued for POLL. At stop, that means drained.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                // A quiet moment to read the drop counter (one more system call per
                // frame would slow the capture down when it is busiest).
                kernel_drops += u64::from(crate::sys::packet_drops(&sock).unwrap_or(0));
                if stopping {
                    break;
                }
            }
            // EINTR; ENETDOWN is the socket's note that `lo` was down when it was bound.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => {}
            Err(e) => return Err(e),
        }
        if writer.full() && stopping {
            break;
        }
    }
    kernel_drops += u64::from(crate::sys::packet_drops(&sock).unwrap_or(0));
    let (_, written) = writer.finish()?;
    Ok(Summary {
        written: written.into(),
        kernel_drops,
        filtered,
    })
}

/// True when an Ethernet frame carries TCP or UDP to or from one of `ports`, or ICMP
/// (an error about one of them, e.g. port unreachable, quotes its ports inside).
pub fn matches_ports(frame: &[u8], ports: &[u16]) -> bool {
    let Some(ethertype) = frame.get(12..14) else {
        return false;
    };
    let (proto, l4) = match ethertype {
        [0x08, 0x00] => {
            let Some(&vihl) = frame.get(14) else {
                return false;
            };
            let ihl = usize::from(vihl & 0x0F) * 4;
            (frame.get(14 + 9).copied(), 14 + ihl)
        }
        // IPv6: the next header right after the fixed 40 bytes (labs send no
        // extension headers).
        [0x86, 0xDD] => (frame.get(14 + 6).copied(), 14 + 40),
        _ => return false,
    };
    match proto {
        Some(1 | 58) => true,
        Some(6 | 17) => match frame.get(l4..l4 + 4) {
            Some(p) => {
                let src = u16::from_be_bytes([p[0], p[1]]);
                let dst = u16::from_be_bytes([p[2], p[3]]);
                ports.contains(&src) || ports.contains(&dst)
            }
            None => false,
        },
        _ => false,
    }
}

fn privilege_error(e: io::Error) -> LabError {
    if e.kind() == io::ErrorKind::PermissionDenied {
        LabError::usage(format!(
            "capturing packets needs CAP_NET_RAW, which this process does not have ({e})"
        ))
        .fix(
            "run with sudo; or `sudo setcap cap_net_raw+ep $(which lab)` once; or in a \
             network namespace of its own, where `lab` has it: `unshare -Urn lab run ID --pcap FILE` \
             (loopback only; `lab check --pcap` does this by itself)",
        )
    } else {
        LabError::usage(format!("cannot open a packet socket on {IFACE}: {e}"))
            .fix("`lab doctor` checks loopback; `ip link show lo` should say UP")
    }
}

fn file_error(path: &Path, e: io::Error) -> LabError {
    LabError::usage(format!("cannot write the capture {}: {e}", path.display()))
        .fix("choose a file in a folder you can write to")
}

/// `--pcap F` on `lab grade` with several labs: one file per lab, named after it.
/// A folder (existing, or written with a trailing `/`) gets `<lab>.pcapng`; a name
/// with `{lab}` gets the id there; otherwise, with several labs, the lab id goes
/// before the extension (`run.pcapng` -> `run-01-tcp-echo.pcapng`).
pub fn path_for_lab(path: &Path, lab: &str, several: bool) -> PathBuf {
    let text = path.to_string_lossy();
    if text.contains("{lab}") {
        return PathBuf::from(text.replace("{lab}", lab));
    }
    if path.is_dir() || text.ends_with('/') {
        return path.join(format!("{lab}.pcapng"));
    }
    if !several {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    path.with_file_name(format!("{stem}-{lab}{ext}"))
}

/// Ports named in a lab's flags: `--port N`, and `HOST:PORT` values (`--bind`,
/// `--connect`, ...). A demo without them uses ports the kernel picks.
pub fn ports_in_args(args: &[String]) -> Vec<u16> {
    let mut ports = Vec::new();
    let mut after_port = false;
    for a in args {
        let value = a.split_once('=').map_or(a.as_str(), |(_, v)| v);
        if after_port || a.starts_with("--port=") {
            ports.extend(value.parse::<u16>().ok());
        } else if let Ok(addr) = value.parse::<std::net::SocketAddr>() {
            ports.push(addr.port());
        }
        after_port = a == "--port";
    }
    ports.retain(|&p| p != 0);
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Takes `NAME VALUE` or `NAME=VALUE` out of a lab's flags (`lab run ID --pcap F`:
/// flags of `lab` itself, not of the lab). The last one wins.
pub fn take_flag(args: &mut Vec<String>, name: &str) -> Result<Option<PathBuf>, LabError> {
    let mut found = None;
    let mut i = 0;
    while i < args.len() {
        if args[i] == name {
            let Some(v) = args.get(i + 1).filter(|v| !v.starts_with("--")) else {
                return Err(LabError::usage(format!("{name} needs a value"))
                    .fix(format!("e.g. `lab run 01 {name} run-01.pcapng`")));
            };
            found = Some(PathBuf::from(v));
            args.drain(i..i + 2);
        } else if let Some(v) = args[i].strip_prefix(&format!("{name}=")) {
            found = Some(PathBuf::from(v));
            args.remove(i);
        } else {
            i += 1;
        }
    }
    Ok(found)
}

/// What `lab run ID --pcap F` captures: a role keeps only its ports (those in its
/// flags, else the lab's default ones, `defaults`); a demo, whose ports the kernel
/// picks, keeps everything on `lo` (see the module comment). A port 0 in the flags is
/// one the kernel picks too: no filter then.
pub fn run_request(path: &Path, lab: &str, args: &[String], defaults: &[u16]) -> Request {
    let mut req = Request::new(path, lab, None);
    let role = args
        .iter()
        .any(|a| a == "--role" || a.starts_with("--role="));
    let any_port = args.iter().any(|a| a.ends_with(":0") || a == "0");
    if role && !any_port {
        req.ports = ports_in_args(args);
        if req.ports.is_empty() {
            req.ports = defaults.to_vec();
        }
    }
    req
}

/// The ports in a lab's `[defaults]` (`bind = "127.0.0.1:7001"`, ...).
pub fn default_ports(defaults: &toml::Table) -> Vec<u16> {
    let words: Vec<String> = defaults
        .values()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    ports_in_args(&words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(proto: u8, src: u16, dst: u16) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0u8; 20];
        ip[0] = 0x45;
        ip[9] = proto;
        f.extend_from_slice(&ip);
        f.extend_from_slice(&src.to_be_bytes());
        f.extend_from_slice(&dst.to_be_bytes());
        f
    }

    #[test]
    fn the_port_filter_keeps_the_conversation_and_icmp() {
        assert!(matches_ports(&frame(6, 50000, 7001), &[7001]));
        assert!(matches_ports(&frame(17, 7003, 40000), &[7003, 7004]));
        assert!(!matches_ports(&frame(17, 40000, 53), &[7003]));
        assert!(matches_ports(&frame(1, 0, 0), &[7003]), "ICMP is kept");
        assert!(!matches_ports(&[0u8; 10], &[7003]), "short frames are not");
        assert!(
            !matches_ports(&frame(6, 1, 2)[..36], &[1]),
            "no room for ports"
        );
    }

    #[test]
    fn ports_come_from_the_lab_flags() {
        let args: Vec<String> = [
            "--role",
            "server",
            "--bind",
            "127.0.0.1:7001",
            "--port",
            "9",
            "--x=[::1]:8",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(ports_in_args(&args), vec![8, 9, 7001]);
        assert!(ports_in_args(&["--count".into(), "5".into()]).is_empty());
    }

    #[test]
    fn lab_flags_of_lab_itself_are_taken_out() {
        let mut args: Vec<String> = ["--count", "5", "--pcap", "a.pcapng", "--pcap=b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(take_flag(&mut args, "--pcap").unwrap(), Some("b".into()));
        assert_eq!(args, ["--count", "5"]);
        let mut bare = vec!["--pcap".to_string()];
        assert!(take_flag(&mut bare, "--pcap").is_err());
    }

    #[test]
    fn a_role_keeps_its_ports_a_demo_everything() {
        let words = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        let p = Path::new("x.pcapng");
        assert!(run_request(p, "01", &words("--count 5"), &[7001])
            .ports
            .is_empty());
        assert_eq!(
            run_request(p, "01", &words("--role server"), &[7001]).ports,
            [7001]
        );
        assert_eq!(
            run_request(
                p,
                "01",
                &words("--role server --bind 127.0.0.1:9000"),
                &[7001]
            )
            .ports,
            [9000]
        );
        assert!(
            run_request(p, "01", &words("--role server --bind 127.0.0.1:0"), &[7001])
                .ports
                .is_empty()
        );
        let defaults: toml::Table = toml::from_str("bind = \"127.0.0.1:7001\"\ncount = 5").unwrap();
        assert_eq!(default_ports(&defaults), [7001]);
    }

    #[test]
    fn one_file_per_lab_when_grading_several() {
        let p = Path::new("out/run.pcapng");
        assert_eq!(path_for_lab(p, "01-tcp-echo", false), p);
        assert_eq!(
            path_for_lab(p, "01-tcp-echo", true),
            Path::new("out/run-01-tcp-echo.pcapng")
        );
        assert_eq!(
            path_for_lab(Path::new("caps/"), "03-udp-loss", false),
            Path::new("caps/03-udp-loss.pcapng")
        );
        assert_eq!(
            path_for_lab(Path::new("c-{lab}.pcapng"), "03-udp-loss", true),
            Path::new("c-03-udp-loss.pcapng")
        );
    }
}

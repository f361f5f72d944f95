//! Running untrusted programs: each in its own process group (and a pids cgroup where
//! the machine has one), with resource limits, stdin closed, output captured up to a
//! cap, and a guard that always kills the whole group and reaps it, even on panic.
//!
//! The PID and network namespaces are set up one level up (see `ns.rs`): the whole
//! grading run is re-executed inside them, so this module works the same either way.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::jail::{Applied, Policy};
use crate::sys::{self, ProcessLimits};

/// Bytes of each output stream kept for the report; the rest is read and discarded so
/// a chatty program never blocks on a full pipe (and never fills our memory).
pub const OUTPUT_CAP: usize = 16 * 1024;

/// How long a program gets between SIGTERM and SIGKILL: enough for a clean exit, short
/// enough that a program ignoring SIGTERM costs little.
pub const TERM_GRACE: Duration = Duration::from_millis(300);

/// Limits for student programs: generous for a socket server, fatal for abuse.
pub fn program_limits() -> ProcessLimits {
    ProcessLimits {
        nproc: nproc_limit(),
        // 16 MiB: an echo server has no reason to write big files.
        fsize: Some(16 << 20),
        // CPU seconds: wall-clock deadlines end checks much sooner; this catches a
        // program that escapes them.
        cpu_secs: Some(60),
        // 4 GiB of address space: Python and Rust need far less; stops runaway growth.
        address_space: Some(4 << 30),
        // 256 descriptors: plenty for the checks' few dozen clients.
        nofile: Some(256),
    }
}

/// RLIMIT_NPROC counts every process of the user, so the limit is "what runs now plus
/// 128" (room for a thread per client). Root ignores it; the cgroup covers root.
fn nproc_limit() -> Option<u64> {
    let uid = sys::euid();
    if uid == 0 {
        return None;
    }
    let mut n = 0u64;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Ok(st) = std::fs::read_to_string(e.path().join("status")) {
                if st.lines().any(|l| {
                    l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(&uid.to_string())
                }) {
                    n += st
                        .lines()
                        .find_map(|l| l.strip_prefix("Threads:"))
                        .and_then(|t| t.trim().parse::<u64>().ok())
                        .unwrap_or(1);
                }
            }
        }
    }
    Some(n + 128)
}

/// Where a program's CPU-queue time (and its threads' states) are read from: its pid,
/// and its cgroup's folder (whose `cgroup.procs` lists the processes it started). Cheap
/// to clone and to send to another thread; reads 0 once the program is gone.
#[derive(Debug, Clone)]
pub struct QueueMeter {
    pid: u32,
    cgroup: Option<PathBuf>,
}

impl QueueMeter {
    /// Seconds the program's threads were runnable but waited for a CPU, summed over
    /// its threads (and its cgroup's processes): see [`Program::queued_seconds`].
    pub fn queued_seconds(&self) -> f64 {
        let ns: u64 = self
            .tasks()
            .iter()
            .filter_map(|t| read_schedstat(&t.join("schedstat")))
            .map(|(_, wait)| wait)
            .sum();
        ns as f64 / 1e9
    }

    /// Whether any thread of the program (or of its cgroup) is busy right now: state `R`
    /// in its /proc stat (running or waiting for a CPU), or `D` (in the kernel on its
    /// behalf, uninterruptibly). A loop polling a non-blocking pty is in `D` much of the
    /// time on a loaded machine: each empty read waits for the kernel's pty worker
    /// (`__flush_work`), seen 29 times in 130 looks at load 30, where it read as idle;
    /// an idle program sleeps in `S`. None when no live thread's state can be read (the
    /// program is gone, or a zombie).
    pub fn runnable_now(&self) -> Option<bool> {
        let mut any = None;
        for t in self.tasks() {
            let Ok(stat) = std::fs::read_to_string(t.join("stat")) else {
                continue;
            };
            // The state follows the parenthesised name, which may hold spaces.
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next());
            match state {
                Some("R" | "D") => return Some(true),
                // A zombie (or dead) thread is no thread to look at.
                Some("Z" | "X") | None => {}
                Some(_) => any = Some(false),
            }
        }
        any
    }

    /// The /proc folders of every thread of the program and of its cgroup's processes.
    fn tasks(&self) -> Vec<PathBuf> {
        let mut pids = vec![self.pid];
        if let Some(dir) = &self.cgroup {
            pids.extend(Cgroup::pids_in(dir).into_iter().filter(|&p| p != self.pid));
        }
        pids.iter()
            .filter_map(|pid| std::fs::read_dir(format!("/proc/{pid}/task")).ok())
            .flat_map(|d| d.flatten().map(|t| t.path()))
            .collect()
    }
}

/// A schedstat file's first two fields: ns on a CPU, ns runnable waiting for one. The
/// kernel adds a wait when the thread gets its CPU, so a wait under way is not counted
/// yet: a deadline that excuses it is only ever too strict, never too lenient.
fn read_schedstat(path: &Path) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(path).ok()?;
    let mut f = s.split_whitespace().map(|x| x.parse::<u64>().ok());
    Some((f.next()??, f.next()??))
}

/// Seconds the calling thread has been runnable but waited for a CPU (its own
/// schedstat run delay); 0 where the kernel does not keep schedstat. A grader thread
/// that times what it receives notes it too: a reply timed late because the reader was
/// not given a CPU is not the program's delay.
pub fn thread_queued_seconds() -> f64 {
    read_schedstat(Path::new("/proc/thread-self/schedstat")).map_or(0.0, |(_, w)| w as f64 / 1e9)
}

/// A pids cgroup (v1 `pids` hierarchy or v2) that caps and tracks every process a
/// program starts, even those that leave its process group with setsid().
#[derive(Debug)]
pub struct Cgroup {
    /// The cgroup's folder; removed on drop.
    dir: PathBuf,
}

impl Cgroup {
    /// Creates a cgroup allowing `max` processes/threads, or None where cgroups are not
    /// writable (not root, read-only /sys, no pids controller).
    pub fn create(name: &str, max: u32) -> Option<Cgroup> {
        for root in ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"] {
            let root = Path::new(root);
            if !root.join("cgroup.procs").exists()
                || (root.ends_with("cgroup") && !root.join("cgroup.controllers").exists())
            {
                continue;
            }
            let dir = root.join(name);
            if std::fs::create_dir(&dir).is_err() {
                continue;
            }
            if std::fs::write(dir.join("pids.max"), max.to_string()).is_ok() {
                return Some(Cgroup { dir });
            }
            let _ = std::fs::remove_dir(&dir);
        }
        None
    }

    /// The `cgroup.procs` path for `sys::confine`.
    pub fn procs_path(&self) -> Option<CString> {
        CString::new(
            self.dir
                .join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .ok()
    }

    /// Process ids still in the cgroup.
    pub fn pids(&self) -> Vec<u32> {
        Cgroup::pids_in(&self.dir)
    }

    /// Process ids in the cgroup whose folder is `dir` (none once it is removed).
    fn pids_in(dir: &Path) -> Vec<u32> {
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// SIGKILLs everything in the cgroup, repeatedly, until it is empty (a fork bomb
    /// keeps forking while we kill; pids.max bounds how long that takes).
    pub fn kill_all(&self) {
        // Bounded: 200 rounds of at most pids.max kills each.
        for _ in 0..200 {
            let pids = self.pids();
            if pids.is_empty() {
                return;
            }
            for p in pids {
                let _ = sys::kill_pid(p, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.kill_all();
        // rmdir succeeds once the last member has been reaped by its parent.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// What is known about how a program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The raw status.
    pub status: ExitStatus,
    /// True when the grader had to SIGKILL it after SIGTERM was ignored.
    pub ignored_sigterm: bool,
}

/// Explains an exit status the way a shell would show it, with the usual cause.
pub fn describe_status(status: ExitStatus) -> String {
    if let Some(sig) = status.signal() {
        let name = sys::signal_name(sig);
        let why = match sig {
            libc::SIGPIPE => ": it wrote to a connection the peer had closed (handle EPIPE / BrokenPipeError, or ignore SIGPIPE)",
            libc::SIGKILL => ": killed (by the grader at a deadline, or out of memory)",
            libc::SIGXFSZ => ": it wrote a file larger than the 16 MiB limit",
            libc::SIGXCPU => ": it used more CPU time than allowed (a busy loop?)",
            libc::SIGSEGV => ": invalid memory access",
            libc::SIGABRT => ": it aborted (a Rust panic with panic=abort, a failed assert in C)",
            libc::SIGTERM => "",
            _ => "",
        };
        format!("killed by {name} (status {}){why}", 128 + sig)
    } else {
        match status.code() {
            Some(0) => "exited with status 0".to_string(),
            Some(101) => "exited with status 101 (a Rust panic)".to_string(),
            Some(c) => format!("exited with status {c}"),
            None => "ended".to_string(),
        }
    }
}

/// Captured output of one stream: the first `OUTPUT_CAP` bytes and how many in total.
#[derive(Debug, Default)]
struct Captured {
    /// Kept bytes.
    kept: Vec<u8>,
    /// Every byte read, kept or not.
    total: u64,
}

/// A running program in its own process group; dropping it kills the group and reaps.
#[derive(Debug)]
pub struct Program {
    /// The child (the group leader).
    child: Child,
    /// Its pid, which is also the process-group id.
    pub pid: u32,
    /// How it ended, once known.
    ended: Option<Ended>,
    /// stdout then stderr capture, filled by reader threads.
    output: [Arc<Mutex<Captured>>; 2],
    /// Reader threads, joined on drop.
    readers: Vec<std::thread::JoinHandle<()>>,
    /// The cgroup, if any; dropped (everything in it killed) after the group.
    cgroup: Option<Cgroup>,
    /// What the jail enforced, when the program ran in one.
    pub applied: Option<Applied>,
}

/// How to start a program.
#[derive(Debug, Clone)]
pub struct Spawn {
    /// Command words; the first is the executable.
    pub argv: Vec<String>,
    /// Working directory.
    pub dir: Option<PathBuf>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Limits.
    pub limits: ProcessLimits,
    /// Cap on processes+threads via a pids cgroup, where available.
    pub pids_max: u32,
    /// What the program may touch (`jail.rs`); None runs it with the grader's rights
    /// and environment (the grader's own tools and tests).
    pub jail: Option<Policy>,
}

impl Spawn {
    /// A spawn of `argv` with the student-program limits.
    pub fn new(argv: Vec<String>) -> Spawn {
        Spawn {
            argv,
            dir: None,
            env: Vec::new(),
            limits: program_limits(),
            // Threads count too: 128 is ample for a thread per client in our checks.
            pids_max: 128,
            jail: None,
        }
    }
}

/// Nanoseconds of the clock at first use, hex: tells apart cgroups of different
/// gradings that share a pid (each namespace's pid 1).
fn unique_suffix() -> &'static str {
    static SUFFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SUFFIX.get_or_init(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        format!("{:x}", t.as_nanos())
    })
}

/// Leaders of the programs this process runs: its own children, whose exit status the
/// [`Program`] reads; every other child that ends up ours is an orphan to reap.
static TRACKED: Mutex<std::collections::BTreeSet<u32>> =
    Mutex::new(std::collections::BTreeSet::new());

/// Deals with orphans a program left behind (re-parented to us: we are PID 1 of the
/// grading namespace, or a subreaper outside): children of ours that are not a
/// program's leader and not in our own process group (the grader's own helpers are).
/// With `kill`, live ones are SIGKILLed (a daemon that escaped its group); zombies
/// are always reaped, so a fork bomb leaves no zombies behind.
pub fn reap_orphans(kill: bool) {
    let me = std::process::id();
    let tracked: Vec<u32> = TRACKED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .copied()
        .collect();
    // Our own children only: a handful of reads, not a scan of every process on the
    // machine (which cost ~0.3 s per check on a busy host and made checks time out).
    let candidates: Vec<u32> = children_of_self()
        .into_iter()
        .filter(|pid| !tracked.contains(pid))
        .collect();
    if candidates.is_empty() {
        return;
    }
    let my_pgid = stat_fields(me).map(|f| f.2).unwrap_or(0);
    for pid in candidates {
        let Some((state, ppid, pgid)) = stat_fields(pid) else {
            continue;
        };
        if ppid != me || pgid == my_pgid {
            continue;
        }
        if state != 'Z' && kill {
            let _ = sys::kill_pid(pid, libc::SIGKILL);
        }
        if state == 'Z' || kill {
            // A killed process becomes a zombie shortly: wait briefly for it.
            for _ in 0..50 {
                if sys::reap(pid) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

/// Pids of this process's children, from /proc/self/task/*/children (an orphan is
/// re-parented to one of our threads); a scan of /proc for our pid as parent where the
/// kernel lacks that file (CONFIG_PROC_CHILDREN).
fn children_of_self() -> Vec<u32> {
    let me = std::process::id();
    let mut pids = Vec::new();
    let mut have_file = false;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                have_file = true;
                pids.extend(s.split_whitespace().filter_map(|w| w.parse::<u32>().ok()));
            }
        }
    }
    if !have_file {
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                    continue;
                };
                if stat_fields(pid).is_some_and(|f| f.1 == me) {
                    pids.push(pid);
                }
            }
        }
    }
    pids
}

/// State, parent pid and process group of `pid`, from /proc/PID/stat.
fn stat_fields(pid: u32) -> Option<(char, u32, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f.first()?.chars().next()?,
        f.get(1)?.parse().ok()?,
        f.get(2)?.parse().ok()?,
    ))
}

/// Counter for unique cgroup names within this process.
static SPAWNED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Program {
    /// Starts the program: own process group, stdin closed, output captured, limits.
    pub fn start(spec: &Spawn) -> std::io::Result<Program> {
        let Some((exe, args)) = spec.argv.split_first() else {
            return Err(std::io::Error::other("empty command"));
        };
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(d) = &spec.dir {
            cmd.current_dir(d);
        }
        if spec.jail.is_some() {
            // Only what the caller chose (`jail::clean_env`), never the grader's own.
            cmd.env_clear();
        }
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let mut prepared = spec.jail.as_ref().map(Policy::prepare);
        // Fail closed: a program the jail cannot confine as it must does not start.
        if let Some(why) = prepared.as_ref().and_then(|p| p.refused.clone()) {
            return Err(std::io::Error::other(why));
        }
        let n = SPAWNED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cgroup = Cgroup::create(
            // Unique across namespaces too: inside each PID namespace the grader is pid 1,
            // so the pid alone would collide between parallel gradings.
            &format!("lab-grade-{}-{}-{n}", std::process::id(), unique_suffix()),
            spec.pids_max,
        );
        use std::os::fd::AsRawFd;
        let privileges = prepared.as_mut().map(|p| sys::Privileges {
            landlock_fd: p.ruleset.as_ref().map(|fd| fd.as_raw_fd()),
            ids: p.ids,
            keep_net_raw: p.keep_net_raw,
            own_netns: p.own_netns,
            mounts: p.mounts.take(),
        });
        sys::confine(
            &mut cmd,
            spec.limits,
            cgroup.as_ref().and_then(Cgroup::procs_path),
            privileges,
        );
        // Held across the spawn so the reaper never takes a leader's exit status before
        // it is known to be ours.
        let mut tracked = TRACKED.lock().unwrap_or_else(|p| p.into_inner());
        let mut child = cmd.spawn()?;
        let pid = child.id();
        tracked.insert(pid);
        drop(tracked);
        // The ruleset's descriptor is closed here (the child has enforced it).
        let applied = prepared.map(|p| p.applied);
        let output = [
            Arc::new(Mutex::new(Captured::default())),
            Arc::new(Mutex::new(Captured::default())),
        ];
        let mut readers = Vec::new();
        let streams: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        for (stream, cap) in streams.into_iter().zip(output.iter()) {
            let Some(mut stream) = stream else { continue };
            let cap = Arc::clone(cap);
            readers.push(std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                // Ends at EOF: when every process holding the pipe has exited.
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut c = cap.lock().unwrap_or_else(|p| p.into_inner());
                    let room = OUTPUT_CAP.saturating_sub(c.kept.len()).min(n);
                    c.kept.extend_from_slice(&buf[..room]);
                    c.total += n as u64;
                }
            }));
        }
        Ok(Program {
            child,
            pid,
            ended: None,
            output,
            readers,
            cgroup,
            applied,
        })
    }

    /// Waits (up to 2 s) for the output readers to reach EOF and joins them; a reader
    /// still blocked after that (a pipe held by a process that escaped every kill) is
    /// left to finish on its own rather than hang the grader. Checks call it once the
    /// program has exited, before reading what it printed: what it wrote just before
    /// exiting may still sit in the pipe. The bound is generous because a reader whose
    /// pipe is at EOF still needs a CPU to get there, which a loaded machine can take
    /// hundreds of milliseconds to give; only a process that escaped every kill costs it.
    pub fn settle_readers(&mut self) {
        let until = Instant::now() + Duration::from_secs(2);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        for r in self.readers.drain(..) {
            if r.is_finished() {
                let _ = r.join();
            }
        }
    }

    /// True when a pids cgroup confines this program.
    pub fn in_cgroup(&self) -> bool {
        self.cgroup.is_some()
    }

    /// How it ended, if it has (non-blocking; reaps).
    pub fn try_ended(&mut self) -> Option<Ended> {
        if self.ended.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.ended = Some(Ended {
                    status,
                    ignored_sigterm: false,
                });
            }
        }
        self.ended.clone()
    }

    /// True while the program runs.
    pub fn alive(&mut self) -> bool {
        self.try_ended().is_none()
    }

    /// Waits up to `limit` for the program to end by itself.
    pub fn wait_for(&mut self, limit: Duration) -> Option<Ended> {
        let until = Instant::now() + limit;
        loop {
            if let Some(e) = self.try_ended() {
                return Some(e);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the program to end by itself, for `limit` of its own time: time it
    /// spent runnable but waiting for a CPU is not charged (the rule of
    /// [`super::harness::deadline_passed`]), so a program that exits promptly is not
    /// judged as hanging on a loaded machine, and one that waits for input forever
    /// (asleep, so never queued) is judged after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<Ended> {
        let wait = super::harness::Wait::start(limit, self.queued_seconds());
        loop {
            if let Some(e) = self.try_ended() {
                return Some(e);
            }
            if wait.over(|| self.queued_seconds()) {
                // This thread may itself have waited long for a CPU: look once more.
                return self.try_ended();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the whole process group: SIGTERM, up to [`TERM_GRACE`] to exit, then
    /// SIGKILL; reaps the leader; kills anything left in the cgroup. Idempotent.
    pub fn stop(&mut self) -> Ended {
        let _ = sys::kill_group(self.pid, libc::SIGTERM);
        let mut ended = self.wait_for(TERM_GRACE);
        if ended.is_none() {
            let _ = sys::kill_group(self.pid, libc::SIGKILL);
            let status = self
                .child
                .wait()
                .unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL));
            ended = Some(Ended {
                status,
                ignored_sigterm: true,
            });
            self.ended = ended.clone();
        }
        // Children of the leader that outlived it are still in the group: kill them too.
        let _ = sys::kill_group(self.pid, libc::SIGKILL);
        if let Some(cg) = &self.cgroup {
            cg.kill_all();
        }
        ended.unwrap_or_else(|| unreachable!("set above"))
    }

    /// Kills the whole group with SIGKILL at once (no SIGTERM first: a crash, as lab
    /// 06's checks need) and reaps the leader. Idempotent.
    pub fn kill(&mut self) -> Ended {
        let _ = sys::kill_group(self.pid, libc::SIGKILL);
        if let Some(cg) = &self.cgroup {
            cg.kill_all();
        }
        if self.ended.is_none() {
            let status = self
                .child
                .wait()
                .unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL));
            self.ended = Some(Ended {
                status,
                ignored_sigterm: false,
            });
        }
        self.ended
            .clone()
            .unwrap_or_else(|| unreachable!("set above"))
    }

    /// The captured output (stderr first, then stdout), as lossy text, with a note
    /// when it was cut.
    pub fn output_tail(&self) -> String {
        let mut s = String::new();
        for (i, label) in [(1, "stderr"), (0, "stdout")] {
            let c = self.output[i].lock().unwrap_or_else(|p| p.into_inner());
            // Nothing, or only blank lines: nothing worth showing (an "its output:"
            // followed by an empty stream reads like a missing message).
            if c.total == c.kept.len() as u64 && c.kept.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            s.push_str(&format!("--- {label} ---\n"));
            s.push_str(&String::from_utf8_lossy(&c.kept));
            if c.total > c.kept.len() as u64 {
                s.push_str(&format!(
                    "\n... ({} more bytes not kept)",
                    c.total - c.kept.len() as u64
                ));
            }
            if !s.ends_with('\n') {
                s.push('\n');
            }
        }
        s
    }

    /// What the program has written to stdout so far (up to [`OUTPUT_CAP`] bytes): for
    /// exercises that report on stdout, such as 03-udp-loss's JSON summary line.
    pub fn stdout_kept(&self) -> Vec<u8> {
        self.output[0]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .kept
            .clone()
    }

    /// Total bytes written to stdout and stderr.
    pub fn output_total(&self) -> u64 {
        self.output
            .iter()
            .map(|c| c.lock().unwrap_or_else(|p| p.into_inner()).total)
            .sum()
    }

    /// CPU time (user + system) the leader has used, in seconds, from /proc.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // Fields after the parenthesised name; utime and stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        Some(ticks as f64 / sys::clock_ticks_per_sec() as f64)
    }

    /// Seconds the program's threads were runnable but waited for a CPU (schedstat's
    /// run delay): time a loaded machine withheld, which a deadline should not charge
    /// to the program. Zero when schedstat is not available.
    pub fn queued_seconds(&self) -> f64 {
        self.meter().queued_seconds()
    }

    /// A handle that reads [`Program::queued_seconds`] without the program: a check's
    /// reader thread takes it along to note, at each receive, how long the program had
    /// waited for a CPU so far.
    pub fn meter(&self) -> QueueMeter {
        QueueMeter {
            pid: self.pid,
            cgroup: self.cgroup.as_ref().map(|c| c.dir.clone()),
        }
    }

    /// Ports the program's processes listen on (TCP) or are bound to (UDP), read from
    /// /proc: used to say "you listen on 5000, not the port you were given".
    pub fn bound_ports(&self, udp: bool) -> Vec<u16> {
        let mut inodes = std::collections::HashSet::new();
        let mut pids = vec![self.pid];
        if let Some(cg) = &self.cgroup {
            pids.extend(cg.pids());
        }
        for pid in pids {
            if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
                for e in dir.flatten() {
                    if let Ok(t) = std::fs::read_link(e.path()) {
                        let t = t.to_string_lossy().to_string();
                        if let Some(i) =
                            t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']'))
                        {
                            inodes.insert(i.to_string());
                        }
                    }
                }
            }
        }
        let mut ports = Vec::new();
        let files: &[&str] = if udp {
            &["/proc/net/udp", "/proc/net/udp6"]
        } else {
            &["/proc/net/tcp", "/proc/net/tcp6"]
        };
        for f in files {
            for (port, state, inode) in proc_net(f) {
                // TCP state 0A is LISTEN; any UDP socket counts.
                if inodes.contains(&inode) && (udp || state == "0A") && !ports.contains(&port) {
                    ports.push(port);
                }
            }
        }
        ports
    }
}

/// Rows of /proc/net/{tcp,udp}[6]: (local port, state, inode).
pub fn proc_net(file: &str) -> Vec<(u16, String, String)> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            Some((port, f.get(3)?.to_string(), f.get(9)?.to_string()))
        })
        .collect()
}

/// Bytes waiting in the receive queue of the TCP connection with local port
/// `local_port` and remote port `remote_port` (the server's end of a client's
/// connection), from /proc/net/tcp; None when there is no such connection.
pub fn rx_queue(local_port: u16, remote_port: u16) -> Option<u64> {
    tcp_queues(local_port, remote_port).map(|(_, rx)| rx)
}

/// The send queue (bytes written but not yet acknowledged, sent or not) and the
/// receive queue (bytes not yet read) of that connection, from /proc/net/tcp.
pub fn tcp_queues(local_port: u16, remote_port: u16) -> Option<(u64, u64)> {
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = |i: usize| {
                f.get(i)
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            if port(1) == Some(local_port) && port(2) == Some(remote_port) {
                let (tx, rx) = f.get(4)?.split_once(':')?;
                return Some((
                    u64::from_str_radix(tx, 16).ok()?,
                    u64::from_str_radix(rx, 16).ok()?,
                ));
            }
        }
    }
    None
}

/// True when something on this machine (this network namespace) listens on TCP `port`
/// or has UDP `port` bound; a readiness probe that sends no traffic.
pub fn port_bound(port: u16, udp: bool) -> bool {
    let files: &[&str] = if udp {
        &["/proc/net/udp", "/proc/net/udp6"]
    } else {
        &["/proc/net/tcp", "/proc/net/tcp6"]
    };
    files.iter().any(|f| {
        proc_net(f)
            .iter()
            .any(|(p, state, _)| *p == port && (udp || state == "0A"))
    })
}

impl Drop for Program {
    fn drop(&mut self) {
        if self.try_ended().is_none() {
            self.stop();
        } else {
            let _ = sys::kill_group(self.pid, libc::SIGKILL);
        }
        // The cgroup's drop kills stragglers that left the group.
        self.cgroup.take();
        TRACKED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.pid);
        // Daemons that left the group (setsid) were re-parented to us: kill them.
        reap_orphans(true);
        // Pipes reach EOF once every holder is dead. Should a holder escape every kill
        // (no cgroup, setsid), do not wait for it: after a short grace the readers are
        // left to finish on their own.
        self.settle_readers();
    }
}

/// Runs a command to completion under limits with a wall-clock deadline (builds):
/// returns (success, combined output tail, description of the ending).
pub fn run_to_end(spec: &Spawn, deadline: Duration) -> std::io::Result<(bool, String, String)> {
    run_to_end_under(spec, deadline).map(|(ok, out, how, _)| (ok, out, how))
}

/// [`run_to_end`], with what the jail enforced (None without a jail).
pub fn run_to_end_under(
    spec: &Spawn,
    deadline: Duration,
) -> std::io::Result<(bool, String, String, Option<Applied>)> {
    let mut p = Program::start(spec)?;
    let applied = p.applied.clone();
    match p.wait_for(deadline) {
        Some(e) => {
            // Anything the command left running would hold the pipes open: kill the
            // group, then let the readers finish draining.
            let _ = sys::kill_group(p.pid, libc::SIGKILL);
            if let Some(cg) = &p.cgroup {
                cg.kill_all();
            }
            p.settle_readers();
            let out = p.output_tail();
            Ok((e.status.success(), out, describe_status(e.status), applied))
        }
        None => {
            p.stop();
            let out = p.output_tail();
            Ok((
                false,
                out,
                format!(
                    "did not finish within {} s and was stopped",
                    deadline.as_secs()
                ),
                applied,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_are_decoded_like_a_shell() {
        // Raw wait statuses: a signal number alone means "killed by"; code << 8 an exit.
        assert!(
            describe_status(ExitStatus::from_raw(libc::SIGPIPE)).contains("SIGPIPE (status 141)")
        );
        assert!(describe_status(ExitStatus::from_raw(libc::SIGKILL)).contains("status 137"));
        assert!(describe_status(ExitStatus::from_raw(libc::SIGXFSZ)).contains("SIGXFSZ"));
        assert_eq!(
            describe_status(ExitStatus::from_raw(101 << 8)),
            "exited with status 101 (a Rust panic)"
        );
    }

    #[test]
    fn output_is_capped_and_the_group_is_killed() {
        // `yes` writes without end; its child `sleep` is in the same group.
        let spec = Spawn::new(vec!["sh".into(), "-c".into(), "sleep 30 & yes".into()]);
        let mut p = Program::start(&spec).unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        while p.output_total() < 4 * OUTPUT_CAP as u64 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        let pgid = p.pid;
        let ended = p.stop();
        assert!(ended.status.signal().is_some(), "{ended:?}");
        let tail = p.output_tail();
        assert!(
            tail.len() < OUTPUT_CAP + 200 && tail.contains("more bytes not kept"),
            "{} bytes kept",
            tail.len()
        );
        drop(p);
        // Nothing is left in the group (zombies aside).
        let alive = group_has_members(pgid);
        assert!(!alive, "process group {pgid} still has members");
    }

    /// Whether any process is in group `pgid` (scans /proc, no signals).
    fn group_has_members(pgid: u32) -> bool {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|s| {
                    let rest = s[s.rfind(')')? + 2..].to_string();
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    // state, ppid, pgrp: skip zombies (reaped by init shortly).
                    Some(f.first()? != &"Z" && f.get(2)?.parse::<u32>().ok()? == pgid)
                })
                == Some(true)
        })
    }

    #[test]
    fn a_spinning_program_looks_runnable_and_a_sleeping_one_does_not() {
        // A spinning thread is R at every look, whether it runs or waits for a CPU (the
        // suite runs beside other jobs); a sleeping one is S at every look.
        let spin = Program::start(&Spawn::new(vec![
            "sh".into(),
            "-c".into(),
            "while :; do :; done".into(),
        ]))
        .unwrap();
        let sleep = Program::start(&Spawn::new(vec!["sleep".into(), "30".into()])).unwrap();
        // Both have started (sleep's exec done) before the looks count.
        std::thread::sleep(Duration::from_millis(200));
        let looks = |p: &Program| {
            (0..50)
                .filter(|_| {
                    std::thread::sleep(Duration::from_millis(2));
                    p.meter().runnable_now() == Some(true)
                })
                .count()
        };
        assert_eq!(looks(&spin), 50, "the spinning shell is always runnable");
        assert!(looks(&sleep) <= 1, "sleep is runnable at most once");
    }

    #[test]
    fn a_program_that_exits_is_seen_to_and_one_that_waits_is_not() {
        let mut quick = Program::start(&Spawn::new(vec!["true".into()])).unwrap();
        assert!(quick.wait_exit(Duration::from_secs(10)).is_some());
        let mut slow = Program::start(&Spawn::new(vec!["sleep".into(), "30".into()])).unwrap();
        // A sleeping program is never queued: its limit ends the wait.
        assert!(slow.wait_exit(Duration::from_millis(100)).is_none());
    }

    #[test]
    fn run_to_end_stops_at_its_deadline() {
        let (ok, _, how) = run_to_end(
            &Spawn::new(vec!["sleep".into(), "30".into()]),
            Duration::from_millis(100),
        )
        .unwrap();
        assert!(!ok);
        assert!(how.contains("did not finish"), "{how}");
        let (ok, out, _) = run_to_end(
            &Spawn::new(vec!["sh".into(), "-c".into(), "echo hi >&2".into()]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(ok && out.contains("hi"), "{out}");
    }
}

//! What a check sees: a context that starts the program under test, waits until it is
//! ready by probing (never by sleeping a fixed time), plays clients against it, and
//! writes every action and expectation into a numbered transcript.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use std::path::{Path, PathBuf};

use super::jail::{self, Policy};
use super::sandbox::{describe_status, port_bound, Program, Spawn};
use crate::out::escape_bytes;
use crate::sys::ProcessLimits;

/// How long a program gets to start listening: Python starts in ~50 ms and a built Rust
/// binary faster; 5 s leaves room for a loaded 2-core CI runner. Time the program spent
/// waiting for a CPU is not charged (see [`ready_deadline_passed`]).
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// However loaded the machine, a program that has not started after this many times
/// the readiness deadline of wall-clock time is judged as never starting.
pub const READY_WALL_FACTOR: u32 = 12;

/// Whether a program that began `elapsed` ago, and spent `queued` seconds of it
/// runnable but waiting for a CPU, has used up its readiness deadline. On a machine
/// running 30 jobs on 2 CPUs, Python can need 10 s of wall time to start; the time the
/// scheduler withheld is the machine's, not the program's, so it is not charged. A
/// program that never listens is still judged after the deadline on an idle machine,
/// and after `READY_WALL_FACTOR` times it on any machine.
pub fn ready_deadline_passed(elapsed: Duration, queued: f64) -> bool {
    deadline_passed(ready_timeout(), elapsed, queued)
}

/// Whether a wait of `limit` for the program (to start, to answer, to read its queue)
/// is over after `elapsed`, of which the program spent `queued` seconds runnable but
/// waiting for a CPU: that time is not charged, up to [`READY_WALL_FACTOR`] times
/// `limit` of wall-clock time. The same rule as readiness, for every wait that a loaded
/// machine stretches and a wrong program never ends.
pub fn deadline_passed(limit: Duration, elapsed: Duration, queued: f64) -> bool {
    deadline_passed_within(limit, elapsed, queued, READY_WALL_FACTOR)
}

/// [`deadline_passed`] with its own cap of wall time (`wall_factor` times `limit`), for
/// a wait whose mistake costs less than the usual cap would allow (01's slow reader,
/// 03's long run).
pub fn deadline_passed_within(
    limit: Duration,
    elapsed: Duration,
    queued: f64,
    wall_factor: u32,
) -> bool {
    let queued = Duration::try_from_secs_f64(queued.max(0.0)).unwrap_or(elapsed);
    let charged = elapsed.saturating_sub(queued);
    charged > limit || elapsed > limit * wall_factor
}

/// One wait under the rule of [`deadline_passed`]: started with the CPU-queue time so
/// far (of the program, or of whatever the waiter counts as the machine's), then asked
/// with the time now whether it is over.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    limit: Duration,
    wall_factor: u32,
    began: Instant,
    queued_before: f64,
}

impl Wait {
    /// A wait of `limit` from now; `queued_now` is the queue time so far.
    pub fn start(limit: Duration, queued_now: f64) -> Wait {
        Wait {
            limit,
            wall_factor: READY_WALL_FACTOR,
            began: Instant::now(),
            queued_before: queued_now,
        }
    }

    /// The same wait with its own cap of wall time (see [`deadline_passed_within`]).
    pub fn within(self, wall_factor: u32) -> Wait {
        Wait {
            wall_factor,
            ..self
        }
    }

    /// Whether the wait is over; `queued_now` (the queue time now) is only asked for
    /// once `limit` of wall time has gone by, since nothing is over before that (it can
    /// be a /proc walk over the program's threads).
    pub fn over(&self, queued_now: impl FnOnce() -> f64) -> bool {
        let elapsed = self.began.elapsed();
        elapsed > self.limit
            && deadline_passed_within(
                self.limit,
                elapsed,
                queued_now() - self.queued_before,
                self.wall_factor,
            )
    }

    /// Wall time since it started.
    pub fn elapsed(&self) -> Duration {
        self.began.elapsed()
    }

    /// The queue time gathered since it started, given the queue time now.
    pub fn queued_since(&self, queued_now: f64) -> f64 {
        queued_now - self.queued_before
    }
}

/// The readiness deadline: [`READY_TIMEOUT`], or `LAB_READY_TIMEOUT_MS` (slow machines
/// raise it; the test suite lowers it for programs that never listen).
pub fn ready_timeout() -> Duration {
    std::env::var("LAB_READY_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(READY_TIMEOUT)
}

/// How long the grader waits for an expected reply: loopback answers in microseconds,
/// so 2 s only ever expires when the reply is not coming.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long [`Harness::wait_consumed`] waits for the program to read what a client
/// sent: a server reading its sockets does so within microseconds, and one that does
/// not read is left to fail what follows, so this only bounds the wait.
const CONSUME_LIMIT: Duration = Duration::from_millis(500);

/// How many times [`Harness::busy_share`] looks at the program's state, at least.
const BUSY_LOOKS: u32 = 100;

/// Bytes of data shown in a message before it is cut.
pub const SHOW_BYTES: usize = 80;

/// Why a check did not pass.
#[derive(Debug, Clone)]
pub struct Unmet {
    /// True for "could not judge" (error), false for "behaviour was wrong" (fail).
    pub error: bool,
    /// The first unmet expectation, with the bytes involved.
    pub message: String,
}

impl Unmet {
    /// An unmet expectation.
    pub fn fail(message: impl Into<String>) -> Unmet {
        Unmet {
            error: false,
            message: message.into(),
        }
    }

    /// Something that stopped the check from judging behaviour.
    pub fn error(message: impl Into<String>) -> Unmet {
        Unmet {
            error: true,
            message: message.into(),
        }
    }
}

/// The result type of checks and their steps.
pub type Outcome<T = ()> = Result<T, Unmet>;

/// The transport the exercise serves, for readiness probing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Listens on TCP.
    Tcp,
    /// Binds a UDP port.
    Udp,
    /// Serves no port: the program runs to completion (04's ping). Checks start it
    /// themselves with [`Harness::launch`] and judge its output and exit status.
    Exits,
}

/// The seeded generator the checks draw from.
pub use crate::rng::Rng;

/// The program under test, as the grader will start it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Command words without the contract's arguments.
    pub argv: Vec<String>,
    /// The contract's arguments, with placeholders still to fill in: `{port}` and
    /// `{connect}` from the port, any other `{name}` from the check ([`Harness::set_arg`],
    /// e.g. 07's `{serial}` and `{buffer}`).
    pub args: Vec<String>,
    /// Working directory.
    pub dir: Option<std::path::PathBuf>,
    /// Extra environment (tests set a marker to find leftover processes).
    pub env: Vec<(String, String)>,
    /// A root grader's view of the files, when nobody cannot reach them where they are
    /// (`nobody.rs`): the program reads a copy of its workspace, at the same path.
    pub view: Option<super::nobody::ProgramView>,
}

impl Target {
    /// The command line as the user wrote it: `--cmd CMD` is run as
    /// `sh -c 'exec CMD "$@"' sh ARGS`, shown as `CMD ARGS`.
    pub fn shown(&self, port: u16) -> Vec<String> {
        self.shown_with(port, &[])
    }

    /// [`Target::shown`] with the check's own placeholders filled in.
    pub fn shown_with(&self, port: u16, vars: &[(String, String)]) -> Vec<String> {
        let full = self.command_with(port, vars);
        match full.as_slice() {
            [sh, c, script, zero, args @ ..] if sh == "sh" && c == "-c" && zero == "sh" => {
                match script
                    .strip_prefix("exec ")
                    .and_then(|s| s.strip_suffix(" \"$@\""))
                {
                    Some(cmd) => std::iter::once(cmd.to_string())
                        .chain(args.iter().cloned())
                        .collect(),
                    None => full,
                }
            }
            _ => full,
        }
    }

    /// The full command line for `port`.
    pub fn command(&self, port: u16) -> Vec<String> {
        self.command_with(port, &[])
    }

    /// The full command line for `port`, with `vars` (`("serial", "/dev/pts/3")`)
    /// filling in `{serial}` and the like.
    pub fn command_with(&self, port: u16, vars: &[(String, String)]) -> Vec<String> {
        let mut v = self.argv.clone();
        v.extend(self.args.iter().map(|a| {
            let mut a = a
                .replace("{port}", &port.to_string())
                .replace("{connect}", &format!("127.0.0.1:{port}"));
            for (name, value) in vars {
                a = a.replace(&format!("{{{name}}}"), value);
            }
            a
        }));
        v
    }
}

/// One check's view of the world.
#[derive(Debug)]
pub struct Harness {
    /// The port the program is told to use.
    pub port: u16,
    /// Seeded randomness for this check.
    pub rng: Rng,
    /// TCP or UDP, for readiness.
    pub transport: Transport,
    /// The program under test.
    target: Target,
    /// Numbered actions and expectations so far.
    pub transcript: Vec<String>,
    /// Programs started by this check; stopped when the check ends.
    programs: Vec<Program>,
    /// The check's own placeholder values (`serial`, `buffer`), set before `start`.
    vars: Vec<(String, String)>,
    /// True when a pids cgroup confined the programs.
    pub cgroup_used: bool,
    /// True when the check runs in the grader's own user + network namespaces, where it
    /// may change network sysctls and holds CAP_NET_RAW (04's checks need both).
    pub isolated: bool,
    /// A folder of this check's own for files the program writes (`{out}`), made on
    /// first use and removed when the check ends.
    scratch: Option<std::path::PathBuf>,
    /// Protections the programs of this check ran under (`jail::Applied::on`).
    pub confinement: std::collections::BTreeSet<String>,
    /// Protections this machine could not give them.
    pub confinement_off: std::collections::BTreeSet<String>,
    /// Connections a check's prologue opened and left idle (name, stream, last use,
    /// what the check must remember of it: a nickname), taken back by
    /// [`Harness::resume_idle`].
    pub held: Vec<(String, TcpStream, Instant, String)>,
}

impl Harness {
    /// A context for one check.
    pub fn new(target: Target, port: u16, seed: u64, transport: Transport) -> Harness {
        Harness {
            port,
            rng: Rng::new(seed),
            transport,
            target,
            transcript: Vec::new(),
            programs: Vec::new(),
            vars: Vec::new(),
            cgroup_used: false,
            isolated: false,
            scratch: None,
            confinement: Default::default(),
            confinement_off: Default::default(),
            held: Vec::new(),
        }
    }

    /// Starts the program with `args` instead of the contract's, without waiting for
    /// any port: for programs that run to completion ([`Transport::Exits`]).
    pub fn launch(&mut self, args: &[String]) -> Outcome<usize> {
        let mut argv = self.target.argv.clone();
        argv.extend(args.iter().cloned());
        let shown = Target {
            argv: self.target.argv.clone(),
            args: args.to_vec(),
            dir: None,
            env: vec![],
            view: None,
        }
        .shown(self.port);
        let mut spawn = Spawn::new(argv.clone());
        spawn.dir = self.target.dir.clone();
        let (policy, env) = self.jail(&argv);
        spawn.env = env;
        spawn.jail = Some(policy);
        self.step(format!("start `{}`", shown.join(" ")));
        let p = Program::start(&spawn)
            .map_err(|e| Unmet::error(format!("cannot start `{}`: {e}", argv[0])))?;
        self.note_jail(&p);
        self.cgroup_used |= p.in_cgroup();
        self.programs.push(p);
        Ok(self.programs.len() - 1)
    }

    /// The file the contract's `{out}` argument names: `received.jsonl` in a folder of
    /// this check's own, the same across restarts within the check.
    pub fn out_path(&mut self) -> std::path::PathBuf {
        self.scratch_dir().join("received.jsonl")
    }

    /// This check's own folder: the program's HOME and TMPDIR, the only place it may
    /// write, and where `{out}` points.
    fn scratch_dir(&mut self) -> std::path::PathBuf {
        let port = self.port;
        let dir = self.scratch.get_or_insert_with(|| {
            // Unique on this machine even across parallel gradings, where each namespace
            // has the same pid (1), port and seed: `create_dir` fails on a name taken,
            // and the clock moves on.
            let base = std::env::temp_dir();
            for attempt in 0u32.. {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos();
                let d = base.join(format!("lab-check-{port}-{nanos:x}-{attempt}"));
                match std::fs::create_dir(&d) {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 1000 => {}
                    // Any other failure shows up when the program cannot create its file.
                    _ => return d,
                }
            }
            unreachable!("the loop returns")
        });
        dir.clone()
    }

    /// The jail for a program started with `argv` (see `jail.rs`), and its clean
    /// environment. Everything the grader names on the command line stays reachable:
    /// the workspace, the executable and script, the devices (07's pty).
    fn jail(&mut self, argv: &[String]) -> (Policy, Vec<(String, String)>) {
        let home = self.scratch_dir();
        let view = self.target.view.clone();
        let dir = self.target.dir.as_deref();
        // Its folder (or nobody's copy of it: the copy's own inodes are what it opens
        // through the bind, and Landlock's rules hold inodes), and files the grader
        // named by absolute path on the command line, such as a script.
        let mut read: Vec<PathBuf> = match view.as_ref().and_then(|v| v.copy.clone()) {
            Some(copy) => vec![copy],
            None => dir.map(Path::to_path_buf).into_iter().collect(),
        };
        read.extend(super::nobody::named_files(argv, dir));
        let devices: Vec<PathBuf> = self
            .vars
            .iter()
            .map(|(_, v)| PathBuf::from(v))
            .filter(|p| p.starts_with("/dev/"))
            .collect();
        // Root switches to nobody, always (where nobody cannot reach the files, through
        // the view): outside namespaces, and inside them when a root grader mapped 65534
        // into its user namespace.
        let drop_uid = jail::nobody_mapped();
        if drop_uid && crate::sys::euid() == 0 {
            for p in std::iter::once(&home).chain(&devices) {
                let _ = std::os::unix::fs::chown(p, Some(jail::NOBODY), Some(jail::NOBODY));
            }
        }
        let policy = Policy {
            read,
            write: vec![home.clone()],
            devices,
            bind: Some(vec![self.port]),
            connect: Some(vec![self.port]),
            // 04's program opens a raw socket: CAP_NET_RAW over the grader's own
            // namespace only (a program that runs to completion is 04's kind).
            keep_net_raw: self.isolated && self.transport == Transport::Exits,
            drop_uid,
            own_netns: false,
            view: view.map(|v| v.view),
        };
        let env = jail::clean_env(&home, jail::SYSTEM_PATH, &self.target.env);
        (policy, env)
    }

    /// Records, once per check, what the program ran under.
    fn note_jail(&mut self, p: &Program) {
        if let Some(a) = &p.applied {
            for on in &a.on {
                self.confinement.insert(on.clone());
            }
            for off in &a.off {
                self.confinement_off.insert(off.clone());
            }
        }
    }

    /// Kills program `idx` with SIGKILL at once (a crash: no clean-up runs) and reaps it.
    pub fn kill(&mut self, idx: usize) -> String {
        describe_status(self.programs[idx].kill().status)
    }

    /// Sets the value of the contract's placeholder `{name}` for the next `start`.
    pub fn set_arg(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some(v) => v.1 = value,
            None => self.vars.push((name.to_string(), value)),
        }
    }

    /// The share of `window` the newest program spent runnable (running or waiting for
    /// a CPU): a busy loop fills it whatever the machine's load, a blocked program
    /// leaves it near 0.
    ///
    /// Measured by looking at its threads' states (`R` or `D` in /proc/PID/task/*/stat,
    /// see `QueueMeter::runnable_now`) every couple of milliseconds, at least
    /// [`BUSY_LOOKS`] times. Not from schedstat's
    /// counters: the kernel adds a wait to them only when the thread gets its CPU, so a
    /// spinning program queued behind busier work for the whole window showed 0% and
    /// passed as idle on a loaded machine. A look sees `R` then too. (CPU time is no
    /// stand-in: a starved busy loop gets little of it.)
    pub fn busy_share(&mut self, window: Duration) -> Outcome<f64> {
        let t = Instant::now();
        let (mut looks, mut busy) = (0u32, 0u32);
        // Bounded: at most READY_WALL_FACTOR windows of wall time, however few looks a
        // starved grader gets.
        while (t.elapsed() < window || looks < BUSY_LOOKS)
            && t.elapsed() < window * READY_WALL_FACTOR
        {
            let Some(p) = self.program() else {
                return Err(Unmet::error("the grader lost track of the program"));
            };
            match p.meter().runnable_now() {
                Some(r) => {
                    looks += 1;
                    busy += u32::from(r);
                }
                // No thread to look at: it ended (a program that ends is not idle).
                None if !p.alive() => {
                    return Err(Unmet::fail(format!(
                        "the program {} while the grader watched it",
                        p.try_ended()
                            .map_or("ended".into(), |e| describe_status(e.status))
                    )))
                }
                None => {}
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        self.step(format!(
            "{looks} looks at the program's threads in {} ms: running, waiting for a CPU or in the kernel (R or D) at {busy}",
            t.elapsed().as_millis()
        ));
        if looks == 0 {
            return Err(Unmet::error(
                "the grader could not read the program's state from /proc",
            ));
        }
        Ok(f64::from(busy) / f64::from(looks))
    }

    /// Stops the newest program for `how_long` and continues it (SIGSTOP, then SIGCONT
    /// to its process group: what Ctrl-Z then `fg` does). A system call the stop
    /// interrupts returns early: a blocking send() returns the count it sent so far,
    /// which a program that ignores that count never sees. Always continues it.
    pub fn pause_program(&mut self, how_long: Duration) {
        let Some(p) = self.program() else { return };
        let pgid = p.pid;
        let _ = crate::sys::kill_group(pgid, libc::SIGSTOP);
        std::thread::sleep(how_long);
        let _ = crate::sys::kill_group(pgid, libc::SIGCONT);
    }

    /// The newest program's peak resident memory so far, in bytes (VmHWM in
    /// /proc/PID/status: a high-water mark, so one read after a run sees its peak).
    pub fn peak_memory(&mut self) -> Option<u64> {
        let pid = self.program()?.pid;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    /// The address the program should serve.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Records an action or expectation in the transcript.
    pub fn step(&mut self, text: impl Into<String>) {
        self.transcript.push(text.into());
    }

    /// Starts the program with the default limits and waits until it is ready.
    pub fn start(&mut self) -> Outcome<usize> {
        self.start_with(|_| {})
    }

    /// Starts the program with adjusted limits (the fd-leak check lowers NOFILE) and
    /// waits until it listens (TCP) or has bound the port (UDP), while checking it is
    /// still alive: never a fixed sleep.
    pub fn start_with(&mut self, tweak: impl FnOnce(&mut ProcessLimits)) -> Outcome<usize> {
        // `{out}`: a file in this check's own folder, unless the check chose one.
        if self.target.args.iter().any(|a| a.contains("{out}"))
            && !self.vars.iter().any(|(n, _)| n == "out")
        {
            let out = self.out_path().display().to_string();
            self.set_arg("out", out);
        }
        let argv = self.target.command_with(self.port, &self.vars);
        let contract = &argv[self.target.argv.len()..];
        if let Some(a) = contract.iter().find(|a| a.contains('{') && a.contains('}')) {
            // A contract placeholder this check did not fill: a bug in the check.
            return Err(Unmet::error(format!(
                "the grader left `{a}` unfilled in the command line (a bug in lab: please report it)"
            )));
        }
        let mut spawn = Spawn::new(argv.clone());
        spawn.dir = self.target.dir.clone();
        let (policy, env) = self.jail(&argv);
        spawn.env = env;
        spawn.jail = Some(policy);
        tweak(&mut spawn.limits);
        self.step(format!(
            "start `{}`",
            self.target.shown_with(self.port, &self.vars).join(" ")
        ));
        let mut p = Program::start(&spawn)
            .map_err(|e| Unmet::error(format!("cannot start `{}`: {e}", argv[0])))?;
        self.note_jail(&p);
        self.cgroup_used |= p.in_cgroup();
        let udp = self.transport == Transport::Udp;
        let what = if udp { "bind UDP" } else { "listen on TCP" };
        let began = Instant::now();
        loop {
            if port_bound(self.port, udp) {
                self.step(format!(
                    "it is ready: {what} 127.0.0.1:{} after {} ms",
                    self.port,
                    began.elapsed().as_millis()
                ));
                break;
            }
            if let Some(e) = p.try_ended() {
                // What it printed as it died (a traceback) may still sit in the pipe, or
                // in a reader that has not had a CPU since: kill what is left of its
                // group and read both streams to EOF before quoting them.
                p.stop();
                p.settle_readers();
                let out = p.output_tail();
                return Err(Unmet::error(format!(
                    "the program {} before it would {what} port {}{}{}",
                    describe_status(e.status),
                    self.port,
                    // Landlock refuses a TCP bind to any other port with EACCES.
                    if !udp
                        && out.contains("bind")
                        && (out.contains("Permission denied") || out.contains("EACCES"))
                        && self.confinement.iter().any(|c| c.contains("TCP ports"))
                    {
                        format!(
                            " (the sandbox lets it bind only port {}: read the port from the `--port N` argument instead of hard-coding it)",
                            self.port
                        )
                    } else {
                        String::new()
                    },
                    if out.is_empty() {
                        String::new()
                    } else {
                        format!("; its output:\n{}", out.trim_end())
                    }
                )));
            }
            if ready_deadline_passed(began.elapsed(), p.queued_seconds()) {
                // It may have started listening since the probe above (on a loaded
                // machine that gap is long): look once more before judging, or the
                // verdict reads "uses port N, not N".
                if port_bound(self.port, udp) {
                    continue;
                }
                let others = p.bound_ports(udp);
                let msg = if others.is_empty() {
                    format!(
                        "the program is running but did not {what} 127.0.0.1:{} within {} s (never listens: is bind/listen missing, or does it wait for input? stdin is closed)",
                        self.port,
                        ready_timeout().as_secs_f64()
                    )
                } else {
                    format!(
                        "the program is running but uses port {:?}, not {}: read the port from the `--port N` argument instead of hard-coding it",
                        others,
                        self.port
                    )
                };
                let ended = p.stop();
                let mut msg = msg;
                if ended.ignored_sigterm {
                    msg.push_str(&format!(
                        "; it also ignored SIGTERM and was killed with SIGKILL after {} ms",
                        super::sandbox::TERM_GRACE.as_millis()
                    ));
                }
                // Kept so the report can show what it printed.
                self.programs.push(p);
                return Err(Unmet::error(msg));
            }
            // Probing interval: short enough to add little latency, long enough not to
            // compete with the program for the CPU.
            std::thread::sleep(Duration::from_millis(5));
        }
        self.programs.push(p);
        Ok(self.programs.len() - 1)
    }

    /// Stops program `idx` (SIGTERM, then SIGKILL) and says how it ended.
    pub fn stop(&mut self, idx: usize) -> String {
        let e = self.programs[idx].stop();
        let mut s = describe_status(e.status);
        if e.ignored_sigterm {
            s.push_str(" (it ignored SIGTERM)");
        }
        s
    }

    /// The program under test (the last one started).
    pub fn program(&mut self) -> Option<&mut Program> {
        self.programs.last_mut()
    }

    /// Stops everything; returns a note about any program that died during the check
    /// and the captured output of the last one.
    pub fn finish(&mut self) -> (String, String) {
        let mut note = String::new();
        let mut output = String::new();
        for p in &mut self.programs {
            if let Some(e) = p.try_ended() {
                note = format!("the program {} during the check", describe_status(e.status));
            }
        }
        for p in &mut self.programs {
            if p.stop().ignored_sigterm {
                self.transcript.push(format!(
                    "the program ignored SIGTERM: killed with SIGKILL after {} ms",
                    super::sandbox::TERM_GRACE.as_millis()
                ));
            }
            // Its last words may still be in the pipe: read to EOF before quoting.
            p.settle_readers();
            output = p.output_tail();
        }
        self.programs.clear();
        (note, output)
    }

    /// Waits for the program under test to print a complete line on stdout (the first
    /// one when several), within `limit`.
    pub fn expect_stdout_line(&mut self, what: &str, limit: Duration) -> Outcome<String> {
        self.step(format!("the grader expects {what} on the program's stdout"));
        // Time the program waits for a CPU is not charged (a loaded machine's, not its):
        // counted from here, as the run delay its threads gather from now on.
        let wait = Wait::start(
            limit,
            self.programs.last().map_or(0.0, |p| p.queued_seconds()),
        );
        loop {
            let Some(p) = self.programs.last_mut() else {
                return Err(Unmet::error("no program is running"));
            };
            let ended = !p.alive();
            if ended {
                // The program may have printed its line just before exiting (03's
                // receiver does exactly that): let the reader drain the pipe first.
                p.settle_readers();
            }
            let out = p.stdout_kept();
            if let Some(end) = out.iter().position(|&b| b == b'\n') {
                return Ok(String::from_utf8_lossy(&out[..end])
                    .trim_end_matches('\r')
                    .to_string());
            }
            if ended || wait.over(|| p.queued_seconds()) {
                return Err(Unmet::fail(format!(
                    "expected {what} on stdout within {} s but got \"{}\"",
                    limit.as_secs_f64(),
                    escape_bytes(&out, SHOW_BYTES)
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    // ----- TCP clients -------------------------------------------------------------

    /// Connects a TCP client named `name` (A, B, ...).
    pub fn connect(&mut self, name: &str) -> Outcome<TcpStream> {
        self.step(format!("client {name} connects to {}", self.addr()));
        let s = TcpStream::connect_timeout(&self.addr(), REPLY_TIMEOUT).map_err(|e| {
            Unmet::fail(format!(
                "client {name} could not connect to {}: {e}",
                self.addr()
            ))
        })?;
        // Small writes must leave as separate segments for the framing checks.
        let _ = s.set_nodelay(true);
        Ok(s)
    }

    /// Connects a TCP client whose receive buffer is `rcvbuf` bytes (set before connect,
    /// so the window it advertises stays small): a slow reader.
    pub fn connect_small_window(&mut self, name: &str, rcvbuf: usize) -> Outcome<TcpStream> {
        self.step(format!(
            "client {name} connects to {} with a {rcvbuf}-byte receive buffer",
            self.addr()
        ));
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .map_err(|e| Unmet::error(format!("cannot make a socket: {e}")))?;
        let _ = sock.set_recv_buffer_size(rcvbuf);
        sock.connect_timeout(&self.addr().into(), REPLY_TIMEOUT)
            .map_err(|e| {
                Unmet::fail(format!(
                    "client {name} could not connect to {}: {e}",
                    self.addr()
                ))
            })?;
        Ok(sock.into())
    }

    /// Sends bytes on a TCP client in one write.
    pub fn send(&mut self, name: &str, s: &mut TcpStream, data: &[u8]) -> Outcome {
        self.step(format!(
            "client {name} sends \"{}\"",
            escape_bytes(data, SHOW_BYTES)
        ));
        s.write_all(data).map_err(|e| send_failed(name, &e))
    }

    /// Expects exactly `expected` next on `s` within [`REPLY_TIMEOUT`], comparing as bytes
    /// arrive so a wrong reply fails at once. A [`Wait`]: time the program and this
    /// thread spent waiting for a CPU is not charged (with two copies of the suite and
    /// two busy loops running, 06's solution acked its first record after more than 2 s).
    pub fn expect(&mut self, name: &str, s: &mut TcpStream, expected: &[u8]) -> Outcome {
        self.step(format!(
            "client {name} expects \"{}\"",
            escape_bytes(expected, SHOW_BYTES)
        ));
        let meter = self.programs.last().map(|p| p.meter());
        let queued = move || {
            meter.as_ref().map_or(0.0, |m| m.queued_seconds())
                + super::sandbox::thread_queued_seconds()
        };
        let got = read_upto(s, expected, Wait::start(REPLY_TIMEOUT, queued()), queued);
        let (bytes, why) = match got {
            Ok(b) if b == expected => return Ok(()),
            Ok(b) => (b, None),
            Err((b, w)) => (b, Some(w)),
        };
        let mut msg = format!(
            "client {name} expected \"{}\" but got \"{}\"",
            escape_bytes(expected, SHOW_BYTES),
            escape_bytes(&bytes, SHOW_BYTES)
        );
        if let Some(w) = why {
            msg.push_str(&format!(" and then {w}"));
        }
        Err(Unmet::fail(msg))
    }

    /// Waits until the program has read everything client `s` sent (the kernel's
    /// receive queue of the server's end, in /proc/net/tcp, is empty), so the next write
    /// arrives in a separate read. Bounded by [`CONSUME_LIMIT`] of the program's own
    /// time: a server that is not reading at all is left to fail the expectation that
    /// follows. Time it waited for a CPU is not charged: on a loaded machine a starved
    /// server that reads late would otherwise get the next write merged into the same
    /// read, and a server that assumes one message per recv would pass the checks
    /// built to catch it.
    pub fn wait_consumed(&mut self, s: &TcpStream) {
        let Ok(local) = s.local_addr() else { return };
        let queued = |h: &Self| h.programs.last().map_or(0.0, |p| p.queued_seconds());
        let wait = Wait::start(CONSUME_LIMIT, queued(self));
        loop {
            if super::sandbox::rx_queue(self.port, local.port()) == Some(0) {
                return;
            }
            if wait.over(|| queued(self)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Expects the server to close the connection (read returns 0) within the timeout.
    pub fn expect_eof(&mut self, name: &str, s: &mut TcpStream) -> Outcome {
        self.step(format!(
            "client {name} expects the server to close the connection (EOF)"
        ));
        let _ = s.set_read_timeout(Some(REPLY_TIMEOUT));
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => Ok(()),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(()),
            Ok(n) => Err(Unmet::fail(format!(
                "client {name} expected EOF but got \"{}\"",
                escape_bytes(&buf[..n], SHOW_BYTES)
            ))),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(Unmet::fail(format!(
                    "client {name} closed its side (EOF) but the server did not close within {} s",
                    REPLY_TIMEOUT.as_secs()
                )))
            }
            Err(e) => Err(Unmet::fail(format!("client {name}: {e}"))),
        }
    }

    /// Leaves client `name`'s connection idle while the other checks run (a check's
    /// prologue); [`Harness::resume_idle`] takes it back.
    pub fn hold_idle(&mut self, name: &str, s: TcpStream, note: &str) {
        self.step(format!(
            "client {name} stays connected and sends nothing while the other checks run"
        ));
        self.held
            .push((name.to_string(), s, Instant::now(), note.to_string()));
    }

    /// Takes back the connection `name` a prologue left idle once it has sat idle for
    /// [`IDLE`] (waiting only for what remains: the other checks usually took that
    /// long). Err when the program closed or reset it meanwhile, saying after how long
    /// and why that is a mistake (a socket timeout cuts off a person who pauses).
    pub fn resume_idle(&mut self, name: &str) -> Outcome<(TcpStream, String)> {
        let Some(i) = self.held.iter().position(|(n, ..)| n == name) else {
            return Err(Unmet::error(format!(
                "client {name} was never opened (a bug in lab: please report it)"
            )));
        };
        let (_, s, since, note) = self.held.remove(i);
        std::thread::sleep(IDLE.saturating_sub(since.elapsed()));
        let idle = since.elapsed().as_secs_f64();
        self.step(format!(
            "client {name} has sent nothing for {idle:.1} s (a person at nc who pauses)"
        ));
        // What became of it, without waiting: data, EOF or a reset are all news.
        let _ = s.set_nonblocking(true);
        let mut b = [0u8; 64];
        let state = s.peek(&mut b);
        let _ = s.set_nonblocking(false);
        let what = match state {
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok((s, note)),
            Ok(0) => "closed the connection (EOF)".to_string(),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                "reset the connection (RST)".to_string()
            }
            Ok(n) => {
                return Err(Unmet::fail(format!(
                    "client {name} sent nothing for {idle:.1} s but got \"{}\"",
                    escape_bytes(&b[..n], SHOW_BYTES)
                )))
            }
            Err(e) => format!("broke the connection ({e})"),
        };
        Err(idle_cut(name, &what, idle))
    }

    /// Half-closes a client's sending side (the server reads EOF).
    pub fn shutdown_write(&mut self, name: &str, s: &TcpStream) {
        self.step(format!(
            "client {name} closes its sending side (shutdown SHUT_WR: the server reads EOF)"
        ));
        let _ = s.shutdown(Shutdown::Write);
    }

    // ----- UDP -----------------------------------------------------------------------

    /// A UDP client socket on an ephemeral loopback port.
    pub fn udp_client(&mut self, name: &str) -> Outcome<UdpSocket> {
        let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Unmet::error(format!("cannot bind a UDP client: {e}")))?;
        let _ = socket2::SockRef::from(&s).set_recv_buffer_size(1 << 20);
        if let Ok(a) = s.local_addr() {
            self.step(format!("client {name} binds {a}"));
        }
        Ok(s)
    }

    /// Sends one datagram to the program.
    pub fn send_to(&mut self, name: &str, s: &UdpSocket, data: &[u8]) -> Outcome {
        self.step(format!(
            "client {name} sends a {}-byte datagram \"{}\"",
            data.len(),
            escape_bytes(data, 24)
        ));
        s.send_to(data, self.addr())
            .map(|_| ())
            .map_err(|e| Unmet::error(format!("client {name} could not send: {e}")))
    }

    /// Expects the next datagram on `s` to be exactly `expected`, from the program.
    pub fn expect_datagram(&mut self, name: &str, s: &UdpSocket, expected: &[u8]) -> Outcome {
        self.step(format!(
            "client {name} expects the same {} bytes back",
            expected.len()
        ));
        let _ = s.set_read_timeout(Some(REPLY_TIMEOUT));
        let mut buf = vec![0u8; 65536];
        match crate::sys::recv_from_trunc(s, &mut buf) {
            Ok(r) if r.from != self.addr() => Err(Unmet::fail(format!(
                "client {name} got a datagram from {} instead of the server's address {}",
                r.from,
                self.addr()
            ))),
            Ok(r) if &buf[..r.len] == expected => Ok(()),
            Ok(r) => Err(Unmet::fail(format!(
                "client {name} sent {} bytes and got {} bytes back: \"{}\"{}",
                expected.len(),
                r.wire_len,
                escape_bytes(&buf[..r.len], 24),
                first_difference(expected, &buf[..r.len])
            ))),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(Unmet::fail(format!(
                    "client {name} sent {} bytes and got nothing back within {} s",
                    expected.len(),
                    REPLY_TIMEOUT.as_secs()
                )))
            }
            Err(e) => Err(Unmet::fail(format!("client {name}: {e}"))),
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.finish();
        if let Some(dir) = self.scratch.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Where two byte strings first differ, for messages.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!(" (first difference at byte {i})"),
        None if a.len() != b.len() => format!(" (the first {} bytes match)", a.len().min(b.len())),
        None => String::new(),
    }
}

/// Reads until `expected.len()` bytes arrived, a byte differs, EOF, or the deadline.
/// Ok(bytes) when the length was reached or a difference was seen; Err((bytes, why))
/// when the stream ended or went quiet first.
fn read_upto(
    s: &mut TcpStream,
    expected: &[u8],
    wait: Wait,
    queued: impl Fn() -> f64,
) -> Result<Vec<u8>, (Vec<u8>, String)> {
    let quiet = || format!("nothing more within {} s", wait.limit.as_secs());
    let mut got = Vec::with_capacity(expected.len());
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < expected.len() {
        if wait.over(&queued) {
            return Err((got, quiet()));
        }
        // Short reads of the clock, so the wait's rule (not the socket's timeout) decides.
        let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
        let want = (expected.len() - got.len()).min(buf.len());
        match s.read(&mut buf[..want]) {
            Ok(0) => return Err((got, "the server closed the connection".into())),
            Ok(n) => {
                let start = got.len();
                got.extend_from_slice(&buf[..n]);
                if got[start..] != expected[start..got.len()] {
                    return Ok(got);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err((got, format!("the connection failed: {e}"))),
        }
    }
    Ok(got)
}

/// Reads everything until EOF or `limit`, at most `max` bytes (a bound for memory).
pub fn read_all(s: &mut TcpStream, max: usize, limit: Duration) -> (Vec<u8>, Option<String>) {
    let until = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < max {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (got, Some("timed out".into()));
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (got, Some(e.to_string())),
        }
    }
    (got, None)
}

/// How long [`Harness::resume_idle`] leaves a connection idle: longer than the 5 s
/// socket timeouts students set, so a server that drops an idle client is seen to.
pub const IDLE: Duration = Duration::from_secs(7);

/// The failure of a client the program cut off while it sat idle `idle` seconds.
pub fn idle_cut(name: &str, what: &str, idle: f64) -> Unmet {
    Unmet::fail(format!(
        "the program {what} after client {name} sat idle for {idle:.1} s: a socket timeout? \
         A person typing at nc may pause for minutes; a timeout on the client's socket (settimeout(), \
         set_read_timeout()) cuts them off. Fix: no timeout on client sockets (block in recv(), or wait \
         in select/poll), or one of many minutes"
    ))
}

/// Why a TCP client's write failed, in the order things happened: a write fails when
/// the *program* ended the connection before it, so say that first.
pub fn send_failed(name: &str, e: &std::io::Error) -> Unmet {
    let why = match e.kind() {
        // EPIPE: our side already knew the connection was closed (the program's FIN or
        // RST arrived before this write).
        ErrorKind::BrokenPipe => "the program had already closed this connection".to_string(),
        // ECONNRESET: the program's RST arrived: it closed with unread data, or died.
        ErrorKind::ConnectionReset => {
            "the program had reset this connection (it closed the socket with data still unread, or it ended)".to_string()
        }
        _ => "did the program close or reset the connection?".to_string(),
    };
    Unmet::fail(format!("client {name} could not send: {why} ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_spent_waiting_for_a_cpu_is_not_charged_to_a_starting_program() {
        // LAB_READY_TIMEOUT_MS is not set for lib tests: the limit is READY_TIMEOUT (5 s).
        let s = Duration::from_secs;
        assert!(!ready_deadline_passed(s(4), 0.0), "within the deadline");
        assert!(
            ready_deadline_passed(s(6), 0.0),
            "an idle machine: 6 s is too long"
        );
        assert!(
            !ready_deadline_passed(s(9), 5.0),
            "5 s of the 9 were the machine's: 4 s charged"
        );
        assert!(ready_deadline_passed(s(9), 3.0), "6 s charged");
        assert!(
            ready_deadline_passed(s(61), 60.0),
            "however loaded, 12 times the deadline ends the wait"
        );
        assert!(
            !ready_deadline_passed(s(6), 1e300),
            "a huge figure cannot panic"
        );
    }

    #[test]
    fn any_wait_charges_only_the_programs_own_time() {
        let ms = Duration::from_millis;
        // 03's drain wait (1 s) and report wait (2 s), 07's stall (3 s).
        assert!(deadline_passed(ms(1000), ms(1001), 0.0), "idle: 1 s is 1 s");
        assert!(
            !deadline_passed(ms(1000), ms(5000), 4.5),
            "4.5 s of 5 waiting for a CPU: 0.5 s charged"
        );
        assert!(deadline_passed(ms(2000), ms(9000), 6.0), "3 s charged");
        assert!(
            deadline_passed(ms(2000), ms(24_001), 24.0),
            "however loaded, 12 times the limit ends the wait"
        );
        assert!(
            !deadline_passed(ms(2000), ms(1000), -5.0),
            "a negative figure (a thread that exited) charges the whole wait, no more"
        );
    }

    #[test]
    fn a_wait_charges_what_it_gathered_since_it_started() {
        let ms = Duration::from_millis;
        let w = Wait::start(Duration::from_secs(3600), 1.0);
        assert!(!w.over(|| panic!("asked for the queue time before the limit")));
        // A wall cap no loaded machine reaches (2000 s), so only the charge decides.
        let w = Wait::start(ms(2), 1.0).within(1_000_000);
        std::thread::sleep(ms(5));
        assert!(w.over(|| 1.0), "nothing queued since it started: over");
        assert!(!w.over(|| 3601.0), "queued all along: not charged");
        assert_eq!(w.queued_since(3.5), 2.5);
        let w = Wait::start(ms(1), 0.0).within(2);
        std::thread::sleep(ms(5));
        assert!(w.over(|| 3600.0), "past its own cap of wall time");
    }

    #[test]
    fn a_failed_send_says_the_program_closed_first() {
        let pipe = std::io::Error::from(ErrorKind::BrokenPipe);
        let text = send_failed("A", &pipe).message;
        assert!(
            text.contains(
                "client A could not send: the program had already closed this connection"
            ),
            "{text}"
        );
        let reset = std::io::Error::from(ErrorKind::ConnectionReset);
        assert!(send_failed("B", &reset)
            .message
            .contains("had reset this connection"));
    }

    #[test]
    fn blank_output_is_not_shown_as_its_output() {
        // The program prints only blank lines and exits before it listens.
        let target = Target {
            argv: vec!["sh".into(), "-c".into(), "echo; echo >&2; exit 3".into()],
            args: vec![],
            dir: None,
            env: vec![],
            view: None,
        };
        let mut ctx = Harness::new(target, 9, 1, Transport::Tcp);
        let err = ctx.start().unwrap_err();
        let text = err.message;
        assert!(text.contains("exit"), "{text}");
        assert!(!text.contains("its output"), "{text}");
        ctx.finish();
    }

    #[test]
    fn rng_is_reproducible_from_its_seed() {
        let (mut a, mut b, mut c) = (Rng::new(7), Rng::new(7), Rng::new(8));
        let (x, y, z): (Vec<u64>, Vec<u64>, Vec<u64>) = (
            (0..8).map(|_| a.next_u64()).collect(),
            (0..8).map(|_| b.next_u64()).collect(),
            (0..8).map(|_| c.next_u64()).collect(),
        );
        assert_eq!(x, y);
        assert_ne!(x, z);
        for _ in 0..1000 {
            let v = a.range(3, 12);
            assert!((3..12).contains(&v));
        }
    }

    #[test]
    fn target_fills_in_the_contract_arguments() {
        let t = Target {
            argv: vec!["srv".into()],
            args: vec![
                "--port".into(),
                "{port}".into(),
                "--connect".into(),
                "{connect}".into(),
            ],
            dir: None,
            env: vec![],
            view: None,
        };
        assert_eq!(
            t.command(7001),
            ["srv", "--port", "7001", "--connect", "127.0.0.1:7001"]
        );
        let wrapped = Target {
            argv: vec![
                "sh".into(),
                "-c".into(),
                "exec python3 s.py \"$@\"".into(),
                "sh".into(),
            ],
            args: vec!["--port".into(), "{port}".into()],
            dir: None,
            env: vec![],
            view: None,
        };
        assert_eq!(wrapped.shown(9), ["python3 s.py", "--port", "9"]);
    }

    #[test]
    fn a_checks_own_placeholders_are_filled_and_a_missing_one_is_refused() {
        let t = Target {
            argv: vec!["fwd".into(), "{literal}".into()],
            args: [
                "--serial", "{serial}", "--port", "{port}", "--buffer", "{buffer}",
            ]
            .map(String::from)
            .to_vec(),
            dir: None,
            env: vec![],
            view: None,
        };
        let vars = [("serial", "/dev/pts/7"), ("buffer", "24")]
            .map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(
            t.command_with(1234, &vars),
            [
                "fwd",
                "{literal}",
                "--serial",
                "/dev/pts/7",
                "--port",
                "1234",
                "--buffer",
                "24"
            ]
        );
        // A check that forgets `{buffer}` is refused before anything starts; braces in
        // the user's own command words are theirs.
        let mut ctx = Harness::new(t, 1, 1, Transport::Tcp);
        ctx.set_arg("serial", "/dev/pts/7");
        let err = ctx.start().unwrap_err();
        assert!(
            err.error && err.message.contains("`{buffer}` unfilled"),
            "{err:?}"
        );
        assert!(ctx.program().is_none());
    }

    #[test]
    fn reads_a_report_line_from_a_udp_receivers_stdout() {
        // The shape 03-udp-loss's receiver will have: bind UDP, print one JSON line.
        let script = "import socket, sys, time\n\
                      s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                      s.bind(('127.0.0.1', int(sys.argv[2])))\n\
                      print('{\"received\": 3}', flush=True)\n\
                      time.sleep(10)\n";
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let target = Target {
            argv: vec!["python3".into(), "-c".into(), script.into()],
            args: vec!["--port".into(), "{port}".into()],
            dir: None,
            env: vec![],
            view: None,
        };
        let mut ctx = Harness::new(target, port, 1, Transport::Udp);
        ctx.start().unwrap();
        let line = ctx
            .expect_stdout_line("a JSON summary", Duration::from_secs(5))
            .unwrap();
        assert_eq!(line, "{\"received\": 3}");
        ctx.finish();
    }
}

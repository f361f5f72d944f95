//! `lab doctor`: what this machine can do for the labs, and how to fix what it cannot.
//! Each finding says what it means for which lab (`means`), so "raw sockets work"
//! does not read as "04 works" while 04 is not built yet.

use std::net::{TcpListener, UdpSocket};
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::out::{bad, bold, dim, good, warn};
use crate::{say, sys};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Works.
    Ok,
    /// Some labs will not work, or will fall back; not fatal.
    Warn,
    /// Nothing will work until fixed.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// The outcome.
    pub level: Level,
    /// What was found.
    pub detail: String,
    /// What it means for which lab.
    pub means: String,
    /// How to fix it, when it is not ok.
    pub fix: Option<String>,
}

fn check(
    name: &'static str,
    level: Level,
    detail: impl Into<String>,
    fix: Option<String>,
) -> Check {
    Check {
        name,
        level,
        detail: detail.into(),
        means: String::new(),
        fix,
    }
}

impl Check {
    /// Says what the finding means for which lab.
    fn means(mut self, means: impl Into<String>) -> Check {
        self.means = means.into();
        self
    }
}

/// A lab's id, with "(planned: not in this version yet)" when it is not built.
fn lab_named(id: &str) -> String {
    let planned = crate::catalog::Catalog::load(None).ok().is_some_and(|c| {
        c.find(id)
            .is_ok_and(|l| l.status == crate::catalog::Status::Planned)
    });
    if planned {
        format!("{id} (planned: not in this version yet)")
    } else {
        id.to_string()
    }
}

/// What kind of serial device a path names: only USB adapters can be an Arduino.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortKind {
    /// ttyACM* (USB CDC, an Uno R3 or Leonardo) or ttyUSB* (a USB-serial chip, clones).
    Usb,
    /// ttyS* (a PC's built-in UART) or ttyAMA*/serial* (a Raspberry Pi's GPIO UART).
    BuiltIn,
}

fn port_kind(path: &str) -> PortKind {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.starts_with("ttyACM") || name.starts_with("ttyUSB") || name.starts_with("cu.usb") {
        PortKind::Usb
    } else {
        PortKind::BuiltIn
    }
}

/// Runs every check.
pub fn checks() -> Vec<Check> {
    let mut v = Vec::new();

    v.push(
        match (
            TcpListener::bind("127.0.0.1:0"),
            UdpSocket::bind("127.0.0.1:0"),
        ) {
            (Ok(t), Ok(u)) => check(
                "loopback IPv4",
                Level::Ok,
                format!(
                    "TCP {} and UDP {} bound",
                    t.local_addr().map(|a| a.to_string()).unwrap_or_default(),
                    u.local_addr().map(|a| a.to_string()).unwrap_or_default()
                ),
                None,
            ),
            (Err(e), _) | (_, Err(e)) => check(
                "loopback IPv4",
                Level::Fail,
                format!("cannot bind 127.0.0.1: {e}"),
                Some("bring loopback up: `ip link set lo up` (as root)".into()),
            ),
        }
        .means("every lab: demos, checks and `lab latency` run on 127.0.0.1"),
    );
    v.push(
        match TcpListener::bind("[::1]:0") {
            Ok(_) => check("loopback IPv6", Level::Ok, "[::1] bound", None),
            Err(e) => check(
                "loopback IPv6",
                Level::Warn,
                format!("cannot bind [::1]: {e}"),
                Some("IPv6 is optional; labs default to 127.0.0.1".into()),
            ),
        }
        .means("optional: only when you give a lab an IPv6 address such as --bind [::1]:7001"),
    );

    v.push(raw_icmp_check());
    v.push(sandbox_check());

    v.push(serial_check());

    v.push(match sys::nofile_limit() {
        Ok((soft, hard)) if soft >= 4096 || hard >= 4096 => check(
            "open-file limit",
            Level::Ok,
            format!("soft {soft}, hard {hard} (lab raises the soft limit itself for servers)"),
            None,
        )
        .means(format!(
            "01-tcp-echo and {}: a server can hold thousands of clients",
            lab_named("05-chat")
        )),
        Ok((soft, hard)) => check(
            "open-file limit",
            Level::Warn,
            format!("soft {soft}, hard {hard}: a server cannot hold 1000 clients"),
            Some(
                "raise it: `ulimit -n 4096` in the shell, or `nofile` in /etc/security/limits.conf"
                    .into(),
            ),
        ),
        Err(e) => check("open-file limit", Level::Warn, e.to_string(), None),
    });
    if let Some(c) = v.last_mut() {
        if c.means.is_empty() {
            c.means = format!(
                "01-tcp-echo and {}: how many clients one server can hold",
                lab_named("05-chat")
            );
        }
    }

    for (tool, why, means) in [
        (
            "cargo",
            "builds Rust exercises",
            "`lab check` of any lab's Rust exercise",
        ),
        (
            "python3",
            "runs Python exercises and starters",
            "`lab check` of any lab's Python exercise (`--lang python`)",
        ),
        (
            "nc",
            "talks to lab servers by hand",
            "the lessons' `nc 127.0.0.1 7001` tries (01, 02); no lab needs it",
        ),
    ] {
        v.push(
            match which(tool) {
                Some(p) => check(
                    tool_name(tool),
                    Level::Ok,
                    format!("{} ({why})", p.display()),
                    None,
                ),
                None => check(
                    tool_name(tool),
                    Level::Warn,
                    format!("not found on PATH ({why})"),
                    Some(format!(
                        "install it (Debian: `apt-get install {}`)",
                        debian_package(tool)
                    )),
                ),
            }
            .means(means),
        );
    }
    v
}

fn tool_name(tool: &str) -> &'static str {
    match tool {
        "cargo" => "cargo",
        "python3" => "python3",
        _ => "netcat",
    }
}

fn debian_package(tool: &str) -> &'static str {
    match tool {
        "cargo" => "cargo (or rustup from rust-lang.org)",
        "python3" => "python3",
        _ => "netcat-openbsd",
    }
}

/// Which of lab 04's paths applies here, in the order `lab run 04` tries them (see
/// `labs::raw_icmp::privilege`): a raw socket, a namespace of its own, a ping socket.
/// The grader's sandbox: which protections this machine gives untrusted programs.
fn sandbox_check() -> Check {
    let abi = crate::grade::jail::landlock_abi();
    let mut off: Vec<String> = crate::grade::ns::why_off().into_iter().collect();
    if abi <= 0 {
        off.push("Landlock: not available (files limited by uid and mode bits only)".into());
    } else if abi < 4 {
        off.push(format!("Landlock ABI {abi}: no TCP port rules (needs 4)"));
    } else if abi < 6 {
        off.push(format!(
            "Landlock ABI {abi}: no signal/abstract-socket scoping (needs 6)"
        ));
    }
    let means = "lab grade / lab check run untrusted programs under this sandbox (docs/grading.md: threat model)";
    if off.is_empty() {
        check(
            "grader sandbox",
            Level::Ok,
            format!("namespaces, Landlock ABI {abi}, no capabilities, seccomp"),
            None,
        )
        .means(means)
    } else {
        check(
            "grader sandbox",
            Level::Warn,
            format!("protection off: {}", off.join("; ")),
            Some("enable user namespaces (kernel.unprivileged_userns_clone=1) and Landlock (lsm=landlock,... on the kernel command line, Linux 6.7+ for TCP rules)".into()),
        )
        .means(means)
    }
}

fn raw_icmp_check() -> Check {
    use crate::labs::raw_icmp::privilege;
    let fix = || Some(privilege::FIX.to_string());
    let lab04 = lab_named("04-raw-icmp");
    let raw_err = match privilege::raw_socket() {
        Ok(_) => {
            return check(
                "raw sockets",
                Level::Ok,
                "raw ICMP socket opened: 04-raw-icmp pings any --target",
                None,
            )
            .means(format!(
                "{lab04}: builds and sends its own ICMP packets to any target"
            ))
        }
        Err(e) => e,
    };
    // The same kind of namespace lab enters, probed in a child so doctor stays put.
    let ns = privilege::namespaces_allowed()
        && std::process::Command::new("unshare")
            .args(["--user", "--map-root-user", "--net", "true"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if ns {
        return check(
            "raw sockets",
            Level::Ok,
            format!("no raw socket here ({raw_err}), but user namespaces work: 04-raw-icmp runs in a namespace of its own, against 127.0.0.1 only"),
            fix(),
        )
        .means(format!("{lab04}: works against 127.0.0.1 (in its own namespace); other targets need the fix"));
    }
    match privilege::ping_socket() {
        Ok(_) => check(
            "raw sockets",
            Level::Warn,
            format!("no raw socket ({raw_err}) and no user namespaces; 04-raw-icmp falls back to a ping socket (the kernel then writes identifier and checksum)"),
            fix(),
        )
        .means(format!("{lab04}: pings with the kernel's help, without its own IP header")),
        Err(e) => check(
            "raw sockets",
            Level::Warn,
            format!("no raw socket ({raw_err}), no user namespaces, no ping socket ({e}, ping_group_range {}): 04-raw-icmp cannot send", privilege::ping_group_range()),
            fix(),
        )
        .means(format!("{lab04}: cannot send pings here until one of the fixes is applied")),
    }
}

fn serial_check() -> Check {
    let ports = crate::labs::serial_stream::available_ports();
    let (usb, built_in): (Vec<String>, Vec<String>) = ports
        .iter()
        .map(|p| p.port_name.clone())
        .partition(|d| port_kind(d) == PortKind::Usb);
    let also = if built_in.is_empty() {
        String::new()
    } else {
        format!(
            "; built-in ports {} (a PC's or a Pi's own UART, not an Arduino)",
            built_in.join(", ")
        )
    };
    if usb.is_empty() {
        return check(
            "serial ports",
            Level::Ok,
            format!("no USB serial adapter (ttyACM*, ttyUSB*){also}"),
            None,
        )
        .means(
            "07-serial-stream: uses its simulated Arduino; plug an Arduino in for the real one",
        );
    }
    // Access to /dev/ttyACM0 and friends is usually through the `dialout` group.
    let mut blocked = Vec::new();
    for d in &usb {
        if std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(d)
            .is_err()
        {
            blocked.push(d.clone());
        }
    }
    let means = format!(
        "07-serial-stream: `lab run 07 --serial {}` reads a real Arduino",
        usb[0]
    );
    if blocked.is_empty() || sys::euid() == 0 {
        check(
            "serial ports",
            Level::Ok,
            format!("USB serial {}{also}", usb.join(", ")),
            None,
        )
        .means(means)
    } else {
        let in_group = group_id(Path::new(&blocked[0])).is_some_and(|g| sys::groups().contains(&g));
        check(
            "serial ports",
            Level::Warn,
            format!(
                "USB serial {} found, but cannot open {}{also}",
                usb.join(", "),
                blocked.join(", ")
            ),
            Some(if in_group {
                "the device is busy or locked: close other programs using it (Arduino IDE serial monitor)".into()
            } else {
                "join the dialout group: `sudo usermod -aG dialout $USER`, then log out and in"
                    .into()
            }),
        )
        .means("07-serial-stream: cannot read the Arduino until fixed (the simulation still works)")
    }
}

fn group_id(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.gid())
}

/// Finds a program on PATH.
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// `lab doctor`.
pub fn run(json: bool) -> Result<()> {
    let all = checks();
    if json {
        say!("{}", serde_json::to_string_pretty(&all)?)?;
    } else {
        say!("{}", bold("lab doctor: what this machine can do"))?;
        for c in &all {
            let mark = match c.level {
                Level::Ok => good("ok  "),
                Level::Warn => warn("warn"),
                Level::Fail => bad("FAIL"),
            };
            say!("  {mark} {:<16} {}", c.name, c.detail)?;
            if !c.means.is_empty() {
                say!("       {:<16} {}", "", dim(format!("means: {}", c.means)))?;
            }
            if let Some(fix) = &c.fix {
                say!("       {:<16} {}", "", dim(format!("fix: {fix}")))?;
            }
        }
    }
    if all.iter().any(|c| c.level == Level::Fail) {
        return Err(crate::error::LabError::usage(
            "this machine cannot run the labs yet (see FAIL above)",
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usb_adapters_are_told_from_built_in_ports() {
        assert_eq!(port_kind("/dev/ttyACM0"), PortKind::Usb);
        assert_eq!(port_kind("/dev/ttyUSB1"), PortKind::Usb);
        assert_eq!(port_kind("/dev/ttyS0"), PortKind::BuiltIn);
        assert_eq!(port_kind("/dev/ttyAMA0"), PortKind::BuiltIn);
    }

    #[test]
    fn every_finding_says_what_it_means_for_which_lab() {
        for c in checks() {
            assert!(
                !c.means.is_empty(),
                "{} says nothing about the labs",
                c.name
            );
        }
        let raw = checks()
            .into_iter()
            .find(|c| c.name == "raw sockets")
            .unwrap();
        // Whichever path this machine takes, the finding names lab 04.
        assert!(raw.means.starts_with("04-raw-icmp"), "{}", raw.means);
    }
}

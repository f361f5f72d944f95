//! Errors a user sees, and the exit codes they map to.
//!
//! Exit codes (documented in the README and `lab --help`):
//! - 0: success;
//! - 1: a lab or check ran and its expectation was not met (a failed grade, a loss
//!   test that saw loss it should not have);
//! - 2: usage or environment error: bad arguments, unknown lab, port in use, missing
//!   permission. The message names the fix.
//!
//! Most code returns `anyhow::Result`; where the user can act on a failure, wrap it in
//! [`LabError`] with a fix so `main` prints `lab: <what>` and `  fix: <how>` once.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Exit status for "the expectation was not met".
pub const EXIT_FAILED: u8 = 1;
/// Exit status for usage and environment errors.
pub const EXIT_USAGE: u8 = 2;

/// An error with a suggested fix and an exit code.
#[derive(Debug)]
pub struct LabError {
    /// What went wrong, in one line.
    pub what: String,
    /// What the user can do about it, if anything.
    pub fix: Option<String>,
    /// The process exit code ([`EXIT_FAILED`] or [`EXIT_USAGE`]).
    pub code: u8,
}

impl LabError {
    /// A usage/environment error (exit 2).
    pub fn usage(what: impl Into<String>) -> LabError {
        LabError {
            what: what.into(),
            fix: None,
            code: EXIT_USAGE,
        }
    }

    /// An unmet expectation (exit 1).
    pub fn failed(what: impl Into<String>) -> LabError {
        LabError {
            what: what.into(),
            fix: None,
            code: EXIT_FAILED,
        }
    }

    /// Adds the fix.
    pub fn fix(mut self, fix: impl Into<String>) -> LabError {
        self.fix = Some(fix.into());
        self
    }
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for LabError {}

/// Explains a failed `bind`: the usual causes have well-known fixes.
pub fn bind_error(addr: SocketAddr, e: io::Error, flag: &str) -> LabError {
    match e.kind() {
        io::ErrorKind::AddrInUse => LabError::usage(format!("cannot bind {addr}: address already in use"))
            .fix(format!(
                "another program is using port {port}: stop it (`ss -ltnup 'sport = :{port}'` shows which), \
                 or choose another port with {flag} {ip}:PORT (port 0 lets the kernel pick)",
                port = addr.port(),
                ip = addr.ip()
            )),
        io::ErrorKind::PermissionDenied => LabError::usage(format!("cannot bind {addr}: permission denied"))
            .fix(format!(
                "ports below 1024 need root: choose a port of 1024 or above with {flag}"
            )),
        io::ErrorKind::AddrNotAvailable => LabError::usage(format!(
            "cannot bind {addr}: no interface on this machine has that address"
        ))
        .fix(format!("use 127.0.0.1, 0.0.0.0 (all interfaces) or an address `ip addr` lists, with {flag}")),
        _ => LabError::usage(format!("cannot bind {addr}: {e}")),
    }
}

/// Explains a failed `connect`.
pub fn connect_error(addr: SocketAddr, e: io::Error) -> LabError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            LabError::usage(format!("cannot connect to {addr}: connection refused (nothing is listening there)"))
                .fix("start the server first (for example `lab run ID --role server`), or check the host and port")
        }
        io::ErrorKind::TimedOut => LabError::usage(format!("cannot connect to {addr}: timed out"))
            .fix("check that the host is up and that no firewall drops the port"),
        _ => LabError::usage(format!("cannot connect to {addr}: {e}")),
    }
}

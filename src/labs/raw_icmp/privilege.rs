//! Getting a socket that can send ICMP, in the order that gives the most honest lesson.
//!
//! 1. A raw socket (`socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)`): the kernel hands us
//!    every ICMP packet with its IPv4 header, and sends our bytes as they are. It needs
//!    CAP_NET_RAW (root has it; `setcap cap_net_raw+ep` gives it to one binary), because
//!    a program that can write any packet can forge any ICMP message.
//! 2. No CAP_NET_RAW, target on loopback: a private user + network namespace of our
//!    own. In a user namespace we hold every capability, but only over what it owns:
//!    a fresh network namespace with nothing but `lo`. So the raw socket works there,
//!    against 127.0.0.1 only, and nothing leaves the machine.
//! 3. A ping socket (`socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)`) where
//!    `net.ipv4.ping_group_range` includes one of our groups: the kernel then writes
//!    the identifier (the socket's "port"), fills in the checksum, strips the IPv4
//!    header from what we receive, and passes us only replies to our own identifier.
//!    Most of this lab's lesson is then done for us, so we say so.
//! 4. Nothing works: an error naming the three fixes, exit 2.
//!
//! `LAB_NO_NAMESPACES=1` skips step 2 (the grader's switch, also a test hook).

use std::io;
use std::net::Ipv4Addr;

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::LabError;

/// How we got our socket: decides what we receive and what we must skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A raw socket with the machine's own CAP_NET_RAW.
    Raw,
    /// A raw socket inside a user + network namespace lab entered for this run.
    Namespace,
    /// An unprivileged ping socket: no IPv4 header in, identifier and checksum by the
    /// kernel.
    PingSocket,
}

impl Access {
    /// True when what we receive starts with the IPv4 header.
    pub fn sees_ip_header(self) -> bool {
        self != Access::PingSocket
    }

    /// One line for the banner.
    pub fn describe(self) -> &'static str {
        match self {
            Access::Raw => "raw socket (this process has CAP_NET_RAW)",
            Access::Namespace => {
                "raw socket in a private user + network namespace lab entered for this run (no CAP_NET_RAW here, so only its own 127.0.0.1 exists)"
            }
            Access::PingSocket => {
                "ping socket (SOCK_DGRAM, IPPROTO_ICMP: allowed by net.ipv4.ping_group_range)"
            }
        }
    }
}

/// A socket that can send echo requests, and how it was obtained.
pub struct Opened {
    /// The socket, blocking (the lab's loop sets timeouts on it).
    pub socket: Socket,
    /// Which path applied.
    pub access: Access,
}

/// The fixes named when no path works (also `lab doctor`'s advice).
pub const FIX: &str = "raw sockets need CAP_NET_RAW: run with sudo, or give lab the capability once with `sudo setcap cap_net_raw+ep $(which lab)`; or allow unprivileged ping sockets with `sudo sysctl net.ipv4.ping_group_range=\"0 2147483647\"`; or allow user namespaces (kernel.unprivileged_userns_clone=1) so lab can ping inside a namespace of its own";

/// A raw ICMP socket in the current network namespace.
pub fn raw_socket() -> io::Result<Socket> {
    Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
}

/// An unprivileged ICMP ping socket.
pub fn ping_socket() -> io::Result<Socket> {
    Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4))
}

/// True unless `LAB_NO_NAMESPACES` (non-zero) forbids entering a namespace.
pub fn namespaces_allowed() -> bool {
    std::env::var_os("LAB_NO_NAMESPACES").is_none_or(|v| v == "0")
}

/// Opens a socket for pinging `target`, trying the paths in order. `say` receives the
/// plain explanation of any fallback taken.
pub fn open(target: Ipv4Addr, say: &mut dyn FnMut(&str)) -> Result<Opened, LabError> {
    let raw_err = match raw_socket() {
        Ok(socket) => {
            return Ok(Opened {
                socket,
                access: Access::Raw,
            })
        }
        Err(e) => e,
    };
    let mut tried = vec![format!("raw socket: {raw_err}")];
    if !target.is_loopback() {
        tried.push(format!(
            "private namespace: not tried, {target} is not on loopback (a namespace of our own has only 127.0.0.1)"
        ));
    } else if !namespaces_allowed() {
        tried.push("private namespace: not tried (LAB_NO_NAMESPACES is set)".into());
    } else {
        match crate::sys::enter_private_netns().and_then(|()| raw_socket()) {
            Ok(socket) => {
                say(&format!(
                    "no CAP_NET_RAW here ({raw_err}), so lab entered a user + network namespace of its own: \
                     a raw socket works there, but only its private loopback exists, so {target} is that \
                     namespace's loopback (same kernel, same ICMP code, nothing leaves the machine)"
                ));
                return Ok(Opened {
                    socket,
                    access: Access::Namespace,
                });
            }
            Err(e) => tried.push(format!("private namespace: {e}")),
        }
    }
    match ping_socket() {
        Ok(socket) => {
            say(&format!(
                "no CAP_NET_RAW ({raw_err}), using a ping socket instead: the kernel writes the \
                 identifier and the checksum for us, hands us replies without their IPv4 header, \
                 and only those to our identifier. Run as root (or in a namespace) to see it all."
            ));
            Ok(Opened {
                socket,
                access: Access::PingSocket,
            })
        }
        Err(e) => {
            tried.push(format!(
                "ping socket: {e} (net.ipv4.ping_group_range is {})",
                ping_group_range()
            ));
            Err(LabError::usage(format!(
                "cannot open a socket that sends ICMP ({})",
                tried.join("; ")
            ))
            .fix(FIX))
        }
    }
}

/// The current `net.ipv4.ping_group_range`, for messages ("1 0" means nobody).
pub fn ping_group_range() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
        .map(|s| format!("\"{}\"", s.split_whitespace().collect::<Vec<_>>().join(" ")))
        .unwrap_or_else(|_| "unreadable".into())
}

//! # 01-tcp-echo: a TCP server and client, every call narrated
//!
//! What you will learn: the life of a TCP connection (socket, bind, listen, accept,
//! connect, send, recv, shutdown, close), that a stream has no message boundaries, what
//! EOF looks like, what `connect_ex` returns when nobody listens, and why servers set
//! `SO_REUSEADDR`.
//!
//! Run `lab run 01` and read along: the server (on the event-loop core, in a thread)
//! and a blocking client (like the course's Python client) print each call as it
//! happens, with real addresses. `--role server` serves `nc 127.0.0.1 7001`;
//! `--role client` talks to any echo server.
//!
//! The protocol: each newline-terminated line L gets `Received: L` and a newline back.
//! Lines are capped at [`MAX_LINE`] bytes; a longer one gets one `Error:` reply and is
//! skipped up to its newline, so memory stays bounded whatever a client sends. Bytes are
//! echoed as received, UTF-8 or not.

pub mod checks;
mod client;
mod demo;
mod server;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, ValueEnum};

use crate::catalog::Lab;
use crate::units;

/// Longest line the server accepts, in bytes, without its newline. 64 KiB is far more
/// than any line a person types, and bounds what one client can make us hold.
pub const MAX_LINE: usize = 64 * 1024;

/// The documented default address of `--role server`.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7001";

/// Backlog for `listen()`: connections the kernel completes and queues before we
/// `accept()` them. 1024 lets a thousand clients connect at once without retries (the
/// kernel caps it at net.core.somaxconn, 4096 on current Linux).
const BACKLOG: i32 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Server and client in one process on loopback, every call narrated.
    Demo,
    /// Only the server: serves many clients until Ctrl-C.
    Server,
    /// Only the client: sends lines and prints the replies.
    Client,
}

/// Flags of `lab run 01-tcp-echo`.
#[derive(Debug, Parser)]
#[command(about = "TCP echo: a narrated server and client. Each line L gets `Received: L` back.")]
pub(crate) struct Args {
    /// What to run.
    #[arg(long, value_enum, default_value_t = Role::Demo)]
    role: Role,
    /// Address the server listens on (`0.0.0.0:7001` to accept other machines).
    #[arg(long, default_value = DEFAULT_ADDR)]
    bind: SocketAddr,
    /// Address the client connects to.
    #[arg(long, default_value = DEFAULT_ADDR)]
    connect: SocketAddr,
    /// Client: send this line instead of reading stdin (repeat for several lines).
    #[arg(long, short)]
    message: Vec<String>,
    /// Client: give up waiting for replies after this long a silence: seconds (`5`) or
    /// with a unit (`500ms`).
    #[arg(long, default_value = "5", value_name = "SECONDS", value_parser = units::seconds)]
    timeout: Duration,
    /// Server: print only the address it listens on, not every connection.
    #[arg(long, short)]
    quiet: bool,
    /// Server: stop after this long: seconds (`30`) or with a unit (`2m`); default: run
    /// until Ctrl-C.
    #[arg(long, value_name = "SECONDS", value_parser = units::seconds)]
    duration: Option<Duration>,
}

/// Entry point of the lab.
pub fn run(lab: &Lab, args: &[String]) -> Result<()> {
    let args: Args = super::parse_args(lab, args)?;
    match args.role {
        Role::Demo => demo::demo(),
        Role::Server => server::serve(&args),
        Role::Client => client::client(&args),
    }
}

// ---------------------------------------------------------------------------------------
// Narration: who did what, with which result.
// ---------------------------------------------------------------------------------------

/// How much the server says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verbosity {
    Quiet,
    Connections,
    Calls,
}

fn bytes(n: usize) -> String {
    if n == 1 {
        "1 byte".into()
    } else {
        format!("{n} bytes")
    }
}

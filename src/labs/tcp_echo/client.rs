//! The client (`--role client`): plain blocking calls, as a first socket program is
//! written.

use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};

use super::Args;
use crate::error::connect_error;
use crate::out::dim;

/// `--role client`: send lines, print whatever comes back, until the server closes or
/// stays silent for `--timeout` seconds.
pub(super) fn client(args: &Args) -> Result<()> {
    let stream = TcpStream::connect_timeout(&args.connect, Duration::from_secs(5))
        .map_err(|e| connect_error(args.connect, e))?;
    // At least 1 ms (see `units::seconds`): a zero timeout would be refused.
    let idle = args.timeout;
    stream.set_read_timeout(Some(idle))?;
    eprintln!(
        "{}",
        dim(format!(
            "connected to {} from {}",
            args.connect,
            stream.local_addr()?
        ))
    );
    let mut writer = stream.try_clone()?;
    let messages = args.message.clone();
    // A second thread sends, so replies are printed as they arrive even while the
    // user is still typing.
    let sender = thread::spawn(move || -> io::Result<()> {
        if messages.is_empty() {
            for line in io::stdin().lock().lines() {
                writer.write_all(format!("{}\n", line?).as_bytes())?;
            }
        } else {
            for m in messages {
                writer.write_all(format!("{m}\n").as_bytes())?;
            }
        }
        // Tell the server we are done: it reads EOF, answers what is left, and closes.
        writer.shutdown(Shutdown::Write)
    });
    let mut reader = stream;
    let mut buf = [0u8; 16 * 1024];
    let mut out = io::stdout();
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
                    break; // stdout closed (a pipe into `head`)
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if sender.is_finished() {
                    eprintln!(
                        "{}",
                        dim(format!(
                            "no reply for {:.1} s: giving up",
                            idle.as_secs_f64()
                        ))
                    );
                    break;
                }
            }
            Err(e) => return Err(e).context("reading replies"),
        }
    }
    if sender.is_finished() {
        match sender.join() {
            Ok(Err(e)) if e.kind() != io::ErrorKind::NotConnected => {
                return Err(e).context("sending to the server")
            }
            _ => {}
        }
    }
    Ok(())
}

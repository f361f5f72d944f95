//! The labs' demos, one module per lab, each readable top to bottom as a lesson.
//!
//! Labs share code only through [`crate::core`] (the event loop) and [`crate::wire`]
//! (byte formats), never with each other. Adding a lab: write `src/labs/<name>.rs` with
//! `pub fn run(lab: &Lab, args: &[String]) -> anyhow::Result<()>`, add it to [`DEMOS`],
//! and see CONTRIBUTING.md for the rest of the checklist.

pub mod json_to_file;
pub mod latency;
pub mod serial_stream;
pub mod tcp_echo;
pub mod udp_echo;
pub mod udp_loss;

use crate::catalog::Lab;

/// A lab's demo: parses the lab's own flags from `args` and runs.
pub type Demo = fn(&Lab, &[String]) -> anyhow::Result<()>;

/// Demos by lab id.
const DEMOS: &[(&str, Demo)] = &[
    ("01-tcp-echo", tcp_echo::run),
    ("02-udp-echo", udp_echo::run),
    ("03-udp-loss", udp_loss::run),
    ("06-json-to-file", json_to_file::run),
    ("07-serial-stream", serial_stream::run),
    ("08-latency", latency::run),
];

/// The demo of a lab, if it is built.
pub fn find(id: &str) -> Option<Demo> {
    DEMOS.iter().find(|(i, _)| *i == id).map(|(_, d)| *d)
}

/// Parses a lab's flags; `--help` prints the lab's own help.
pub fn parse_args<T: clap::Parser>(lab: &Lab, args: &[String]) -> Result<T, clap::Error> {
    let name = format!("lab run {}", lab.id);
    T::try_parse_from(std::iter::once(name).chain(args.iter().cloned()))
}

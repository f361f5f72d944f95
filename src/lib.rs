//! `lab`: a hands-on workbook for network sockets.
//!
//! See ARCHITECTURE.md for the map. In short: [`cli`] parses commands and dispatches;
//! [`catalog`] holds the labs' metadata and lessons (embedded from `labs/`); each lab is
//! one module under [`labs`]; all of them do their non-blocking I/O through [`core`];
//! byte formats live in [`wire`].
#![deny(unsafe_code)]

pub mod capture;
pub mod catalog;
pub mod cli;
pub mod core;
pub mod doctor;
pub mod error;
pub mod evidence;
pub mod grade;
pub mod impair;
pub mod labs;
pub mod latency;
pub mod next;
pub mod out;
pub mod progress;
pub mod rng;
pub mod sys;
pub mod units;
pub mod wire;

//! `lab serial list`: the serial ports of this machine (also read by `lab doctor`).

use anyhow::Result;
use clap::Subcommand;

use crate::out::{bold, code, dim};
use crate::say;

/// `lab serial` subcommands.
#[derive(Debug, Subcommand)]
pub enum SerialCommand {
    /// List the serial ports this machine has (an Arduino is usually /dev/ttyACM0).
    List,
}

/// Runs a `lab serial` subcommand.
pub fn serial_command(cmd: SerialCommand) -> Result<()> {
    match cmd {
        SerialCommand::List => list_ports(),
    }
}

/// The serial ports of this machine (also used by `lab doctor`).
pub fn available_ports() -> Vec<serialport::SerialPortInfo> {
    // serialport scans /sys/class/tty (no libudev); it panics if that is missing, as in
    // some containers, so look first.
    if std::path::Path::new("/sys/class/tty").is_dir() {
        serialport::available_ports().unwrap_or_default()
    } else {
        Vec::new()
    }
}

fn list_ports() -> Result<()> {
    let ports = available_ports();
    if ports.is_empty() {
        say!("No serial ports found.")?;
        say!("  Plug in the Arduino (USB) and run this again; it shows up as /dev/ttyACM0 or /dev/ttyUSB0.")?;
        say!(
            "  Without one, {} uses a simulated Arduino.",
            code("lab run 07")
        )?;
        return Ok(());
    }
    for p in ports {
        let what = match p.port_type {
            serialport::SerialPortType::UsbPort(u) => format!(
                "USB {:04x}:{:04x} {} {}",
                u.vid,
                u.pid,
                u.manufacturer.unwrap_or_default(),
                u.product.unwrap_or_default()
            ),
            serialport::SerialPortType::PciPort => "PCI".into(),
            serialport::SerialPortType::BluetoothPort => "Bluetooth".into(),
            serialport::SerialPortType::Unknown => "built-in or unknown".into(),
        };
        say!("{}  {}", bold(&p.port_name), dim(what.trim()))?;
    }
    say!()?;
    say!(
        "Use one with {}",
        code("lab run 07 --role server --serial PATH")
    )?;
    Ok(())
}

//! The hello a `lab latency` ping-pong client opens a TCP connection with: it tells the
//! server the message size and whether to disable Nagle's algorithm, and the server
//! echoes it back, so the client knows it reached a latency server.
//!
//! Eight bytes, integers big-endian (network order):
//!
//! ```text
//! offset size field
//!  0     2    magic    b"LP" ("lab ping-pong"): tells it from a stamped frame (b"LS")
//!  2     1    version  1
//!  3     1    flags    bit 0: TCP_NODELAY on both ends; other bits ignored
//!  4     4    size     bytes per message, both ways
//! ```
//!
//! [`Packet`] is a view over bytes with each offset written once, [`Repr`] the parsed
//! form with `parse` and `emit` (the smoltcp style of the other formats here).

use std::fmt;

/// The first two bytes of a hello.
pub const MAGIC: [u8; 2] = *b"LP";
/// The only version this code speaks.
pub const VERSION: u8 = 1;
/// Bytes of a hello.
pub const LEN: usize = 8;
/// Flags bit: both ends set TCP_NODELAY.
const NODELAY: u8 = 1;

/// Field offsets, written once.
mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..2;
    pub const VERSION: usize = 2;
    pub const FLAGS: usize = 3;
    pub const SIZE: Range<usize> = 4..8;
}

/// Why bytes are not a hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Fewer than [`LEN`] bytes.
    Truncated,
    /// The first two bytes are not [`MAGIC`].
    BadMagic,
    /// A version this code does not know.
    BadVersion(u8),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "truncated hello"),
            Error::BadMagic => write!(f, "not a ping-pong hello (bad magic)"),
            Error::BadVersion(v) => write!(f, "unknown hello version {v}"),
        }
    }
}

impl std::error::Error for Error {}

/// A view of a hello over any byte buffer.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    /// The bytes, starting at the magic. May be longer than the hello.
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps bytes without checking them (for buffers we sized ourselves).
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps untrusted bytes: all eight must be there, with the magic and version.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let p = Packet::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    fn check(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < LEN {
            return Err(Error::Truncated);
        }
        if b[field::MAGIC] != MAGIC {
            return Err(Error::BadMagic);
        }
        if b[field::VERSION] != VERSION {
            return Err(Error::BadVersion(b[field::VERSION]));
        }
        Ok(())
    }

    /// Byte 2.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// Whether the client asks for TCP_NODELAY (flags bit 0).
    pub fn nodelay(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & NODELAY != 0
    }

    /// Bytes per message.
    pub fn size(&self) -> u32 {
        u32::from_be_bytes(
            self.buffer.as_ref()[field::SIZE]
                .try_into()
                .expect("4 bytes"),
        )
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the magic and the version.
    pub fn set_header(&mut self) {
        let b = self.buffer.as_mut();
        b[field::MAGIC].copy_from_slice(&MAGIC);
        b[field::VERSION] = VERSION;
    }

    /// Writes the flags byte (the other bits cleared).
    pub fn set_nodelay(&mut self, on: bool) {
        self.buffer.as_mut()[field::FLAGS] = if on { NODELAY } else { 0 };
    }

    /// Writes the message size.
    pub fn set_size(&mut self, size: u32) {
        self.buffer.as_mut()[field::SIZE].copy_from_slice(&size.to_be_bytes());
    }
}

/// A parsed hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Bytes per message, both ways.
    pub size: usize,
    /// Whether both ends disable Nagle's algorithm.
    pub nodelay: bool,
}

impl Repr {
    /// Reads a hello from a view (checked again: a view may be unchecked).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr, Error> {
        p.check()?;
        Ok(Repr {
            size: p.size() as usize,
            nodelay: p.nodelay(),
        })
    }

    /// Reads a hello from the first [`LEN`] bytes of `b`.
    pub fn parse_bytes(b: &[u8]) -> Result<Repr, Error> {
        Repr::parse(&Packet::new_checked(b)?)
    }

    /// Writes the hello into the first [`LEN`] bytes of `p`. Sizes are validated before
    /// a hello is made (at most 1 MiB), so the 32-bit field holds them.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_header();
        p.set_nodelay(self.nodelay);
        p.set_size(self.size as u32);
    }

    /// The eight bytes on the wire.
    pub fn to_bytes(self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        self.emit(&mut Packet::new_unchecked(&mut b[..]));
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hello for 1024-byte messages with TCP_NODELAY, from the table above.
    const BYTES: [u8; 8] = [b'L', b'P', 1, 1, 0, 0, 0x04, 0x00];

    fn repr() -> Repr {
        Repr {
            size: 1024,
            nodelay: true,
        }
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&BYTES[..]).unwrap();
        assert_eq!((p.version(), p.nodelay(), p.size()), (1, true, 1024));
    }

    #[test]
    fn construct() {
        let mut buf = [0xFFu8; 8];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_header();
        p.set_nodelay(true);
        p.set_size(1024);
        assert_eq!(buf, BYTES);
    }

    #[test]
    fn parse() {
        assert_eq!(Repr::parse_bytes(&BYTES), Ok(repr()));
        // Unknown flag bits are ignored; bit 0 clear is Nagle on.
        let mut b = BYTES;
        b[3] = 0b110;
        assert_eq!(
            Repr::parse_bytes(&b),
            Ok(Repr {
                nodelay: false,
                ..repr()
            })
        );
    }

    #[test]
    fn emit() {
        assert_eq!(repr().to_bytes(), BYTES);
        let mut buf = [0xFFu8; 8];
        repr().emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, BYTES);
    }

    #[test]
    fn rejects_what_is_not_a_hello() {
        assert_eq!(Repr::parse_bytes(b"LP\x01"), Err(Error::Truncated));
        assert_eq!(
            Repr::parse_bytes(b"LS\x01\x01\x00\x00\x04\x00"),
            Err(Error::BadMagic)
        );
        assert_eq!(
            Repr::parse_bytes(b"LP\x02\x01\x00\x00\x04\x00"),
            Err(Error::BadVersion(2))
        );
    }
}

//! Typed handles on the core's sockets: [`ListenerId`], [`ConnId`], [`UdpId`].
//!
//! The core keeps its sockets in a slab (a vector of slots, reused once freed). A bare
//! slot number would be dangerous to hand out: after a connection closes, its slot may
//! hold the next client, and a lab that kept the old number would write to a stranger.
//! So each handle carries the slot's *generation* too, which the core bumps whenever it
//! frees the slot. A stale handle no longer matches and behaves like a closed one
//! (`SendError::Gone`, a no-op close, `None` for addresses). Three types instead of one
//! let the compiler catch a listener passed where a connection was meant.
//!
//! The generation is a `u32`: a lab would have to keep a handle while one slot is
//! reused four billion times before it could be mistaken, which we accept.

/// Slot index and generation; what every handle is inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub(super) index: u32,
    pub(super) gen: u32,
}

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub(super) Key);

        impl sealed::Sealed for $name {
            fn key(&self) -> Key {
                self.0
            }
        }
        impl Handle for $name {}
    };
}

handle!(
    /// A TCP listener made by [`super::Ctx::listen`].
    ListenerId
);
handle!(
    /// A TCP connection: accepted, connected or adopted.
    ConnId
);
handle!(
    /// A UDP socket made by [`super::Ctx::bind_udp`] or adopted.
    UdpId
);

/// Any of the three handles, for the few calls that accept every kind of socket
/// ([`super::Ctx::local_addr`]).
pub trait Handle: sealed::Sealed + Copy {}

pub(super) mod sealed {
    /// Keeps [`super::Handle`] to the three types above, and their key private.
    pub trait Sealed {
        fn key(&self) -> super::Key;
    }
}

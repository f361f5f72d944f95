//! How the ping waits between requests: sleep in the kernel until something happens,
//! or spin (yield the CPU, check the socket without waiting, look at the clock again).
//!
//! iputils ping decides this in its main loop (`ping_common.c`, `main_loop`, the part
//! its comment calls "Technical part. Looks wicked."): when the next request is due
//! within 10 ms (one scheduler tick at its assumed HZ of 100, `1000 / HZ`), a sleep
//! could not end on time, so it does not sleep: if a reply is still expected it polls
//! for up to 10 ms (`MIN_INTERVAL_MS`), else it spins: `sched_yield()` and a
//! non-blocking `recvmsg`, over and over until the send is due. Otherwise it sleeps
//! until the next send (poll, or recvmsg with SO_RCVTIMEO).
//!
//! The choice shows in the round trips it reports. A spinning process never lets its
//! CPU go idle, so the next request leaves from a CPU that is awake, at full clock,
//! with the send path in its caches; after a sleep the CPU may have dropped into an
//! idle state and must climb back out first. At `-i 0.002` ping spins and reads
//! shorter round trips than a program that sleeps the same gaps. Lab 08's
//! `--busy-poll` is the same effect on the receive side.

use std::time::Duration;

/// The wait between requests (`--wait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// As iputils ping: spin when the next request is due within 10 ms and no reply is
    /// pending, else sleep.
    Auto,
    /// Always sleep (ppoll) until the next thing to do.
    Sleep,
    /// Spin whenever no reply is pending and a request is still to be sent, however
    /// far away it is (to see the effect at long intervals; it keeps a CPU busy).
    Spin,
}

impl Mode {
    /// The flag's value, for the summary.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Sleep => "sleep",
            Mode::Spin => "spin",
        }
    }
}

/// ping's threshold: a wait shorter than one scheduler tick at HZ=100 (`1000 / HZ` ms)
/// is not trusted to a sleep.
pub const SPIN_BELOW: Duration = Duration::from_millis(10);

/// How long ping polls when a reply is expected and the next send is near
/// (`MIN_INTERVAL_MS`): on loopback the reply is usually queued already.
pub const PENDING_POLL: Duration = Duration::from_millis(10);

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Yield the CPU once, then read the socket without waiting.
    Spin,
    /// Sleep until a packet arrives or this much time has passed (`None`: no send is
    /// left; only the reply timeouts and the end of the run bound the sleep).
    Sleep(Option<Duration>),
}

/// Decides the next wait. `until_send`: time until the next request is due (`None`
/// when all are sent); `reply_pending`: the latest request is still unanswered (ping's
/// `in_flight`, which counts from the last acknowledged sequence number).
pub fn choose(mode: Mode, until_send: Option<Duration>, reply_pending: bool) -> Wait {
    let Some(next) = until_send else {
        // All sent: ping's next wake-up is its exit deadline, far beyond a tick.
        return Wait::Sleep(None);
    };
    let near = match mode {
        Mode::Auto => next <= SPIN_BELOW,
        Mode::Spin => true,
        Mode::Sleep => false,
    };
    match (near, reply_pending) {
        (true, true) => Wait::Sleep(Some(PENDING_POLL)),
        (true, false) => Wait::Spin,
        (false, _) => Wait::Sleep(Some(next)),
    }
}

/// How the waits of one run went: counts of each kind, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Turns spent spinning (sched_yield + non-blocking recvmsg).
    pub spins: u64,
    /// Sleeps in ppoll.
    pub sleeps: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn auto_follows_pings_rule() {
        // Next send within 10 ms, no reply pending: spin (the -i 0.002 case).
        assert_eq!(choose(Mode::Auto, ms(2), false), Wait::Spin);
        assert_eq!(choose(Mode::Auto, ms(10), false), Wait::Spin);
        assert_eq!(choose(Mode::Auto, Some(Duration::ZERO), false), Wait::Spin);
        // ... with a reply pending: poll for MIN_INTERVAL_MS, not until the send.
        assert_eq!(choose(Mode::Auto, ms(2), true), Wait::Sleep(ms(10)));
        // Further than a tick away: sleep until the send (the -i 0.02 case).
        let just_over = Some(SPIN_BELOW + Duration::from_micros(1));
        assert_eq!(choose(Mode::Auto, just_over, false), Wait::Sleep(just_over));
        assert_eq!(choose(Mode::Auto, ms(20), false), Wait::Sleep(ms(20)));
        assert_eq!(choose(Mode::Auto, ms(20), true), Wait::Sleep(ms(20)));
        // Nothing left to send: sleep until the timeouts.
        assert_eq!(choose(Mode::Auto, None, false), Wait::Sleep(None));
    }

    #[test]
    fn the_flag_overrides_the_threshold() {
        assert_eq!(choose(Mode::Sleep, ms(2), false), Wait::Sleep(ms(2)));
        assert_eq!(choose(Mode::Spin, ms(20), false), Wait::Spin);
        assert_eq!(choose(Mode::Spin, ms(20), true), Wait::Sleep(ms(10)));
        assert_eq!(choose(Mode::Spin, None, false), Wait::Sleep(None));
    }
}

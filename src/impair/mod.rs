//! `lab impair`: a seeded UDP impairment relay, the lossy network of every lab and test.
//!
//! `tc netem` is not available on our machines, so this relay plays the network: it
//! receives datagrams on `--listen`, and forwards each to `--forward` after deciding, from
//! a seeded random stream, whether to drop it, send it twice, hold it back so the next
//! one overtakes it, and how long to delay it. Replies from the forward address go back,
//! unimpaired, to the last sender, so request/response labs (02-udp-echo) work through it.
//!
//! Deterministic: datagram number i (counted from 0 in arrival order) always gets the
//! same decision for a given seed, whatever the other settings, because every datagram
//! draws the same four random numbers. What the relay did is counted exactly; those
//! counts are the ground truth a receiver's accounting is checked against.
//!
//! The decisions, in order, for each datagram:
//! 1. **loss**: dropped with probability `loss`; nothing else applies.
//! 2. **duplication**: with probability `dup` a second copy follows the original.
//! 3. **reordering**: with probability `reorder` the datagram (and its copy) is held back
//!    and sent right after the next datagram that is forwarded, which thus overtakes it.
//!    If no datagram follows within [`HOLD_LIMIT`], it is sent anyway, in order, and not
//!    counted as reordered (nothing overtook it).
//! 4. **delay**: `delay` plus a uniform random `-jitter..=+jitter`, never below 0. The
//!    relay keeps delivery in FIFO order (a datagram never leaves before one that arrived
//!    earlier), so jitter varies the spacing without reordering; only step 3 reorders.
//!
//! Probe end markers (lab 03's "I sent N") are dropped, duplicated and delayed like
//! everything else but counted apart (`end_markers`, `end_markers_dropped`), so
//! `forwarded`, `dropped`, `duplicated` and `reordered` count data datagrams only. An end
//! marker is never held back, and never overtakes data that is held: that data leaves
//! first, so a receiver that stops at the first end marker has seen everything.
//!
//! Memory is bounded: at most [`MAX_QUEUED_BYTES`] wait in the delay queue (each
//! datagram counted at its real cost, payload plus bookkeeping, so a flood of empty
//! ones is bounded too) and
//! [`MAX_HELD`] are held for reordering; a datagram beyond that is dropped and counted
//! under `overflow`, as is one the kernel refuses to send, and what a stop (Ctrl-C)
//! could not send promptly (at most 100,000 datagrams are flushed then).

mod command;
mod relay;

pub use command::{print_stats, random_seed, run, run_relay, ImpairArgs};
pub use relay::{Relay, RelayStats};

use std::time::Duration;

/// How long a datagram held for reordering waits for one to overtake it. 50 ms is far
/// longer than the gap between datagrams of any flow worth reordering, and short enough
/// not to stall the end of a run.
pub const HOLD_LIMIT: Duration = Duration::from_millis(50);
/// Most datagrams held for reordering at once (consecutive "reorder" decisions).
pub const MAX_HELD: usize = 64;
/// Most bytes waiting in the delay queue: 64 MiB holds 100 ms of 5 Gbit/s.
pub const MAX_QUEUED_BYTES: usize = 64 << 20;
/// Receive buffer the relay asks for: 4 MiB (capped by net.core.rmem_max).
const RCVBUF: usize = 4 << 20;
/// Datagrams read per recvmmsg by the relay.
const BATCH: usize = 32;

/// Impairment settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Probability of dropping a datagram, 0..=1.
    pub loss: f64,
    /// Probability of sending a second copy, 0..=1.
    pub dup: f64,
    /// Probability of holding a datagram back so the next overtakes it, 0..=1.
    pub reorder: f64,
    /// Base delay added to every datagram.
    pub delay: Duration,
    /// Uniform variation of the delay, plus or minus.
    pub jitter: Duration,
    /// Seed of the decision stream.
    pub seed: u64,
}

impl Settings {
    /// One line for reports: `loss 3% dup 1% reorder 2% delay 0ms±0ms seed 42`.
    pub fn describe(&self) -> String {
        format!(
            "loss {}% dup {}% reorder {}% delay {}±{} seed {}",
            self.loss * 100.0,
            self.dup * 100.0,
            self.reorder * 100.0,
            fmt_dur(self.delay),
            fmt_dur(self.jitter),
            self.seed
        )
    }
}

fn fmt_dur(d: Duration) -> String {
    if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros())
    }
}

/// The seeded generator behind every decision (shared by the whole crate).
pub use crate::rng::Rng;

/// What happens to one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Dropped (nothing else applies).
    pub drop: bool,
    /// A second copy follows it.
    pub duplicate: bool,
    /// Held back until the next forwarded datagram has gone.
    pub reorder: bool,
    /// Extra time before it leaves.
    pub delay: Duration,
}

/// The pure decision stream: the same seed gives the same decisions.
#[derive(Debug, Clone)]
pub struct Impairer {
    /// The settings the decisions follow.
    settings: Settings,
    /// Random stream seeded from `settings.seed`.
    rng: Rng,
}

impl Impairer {
    /// A decision stream for these settings.
    pub fn new(settings: Settings) -> Impairer {
        Impairer {
            settings,
            rng: Rng::new(settings.seed),
        }
    }

    /// The decision for the next datagram. Always draws four numbers, so datagram i's
    /// fate depends only on the seed and i.
    pub fn decide(&mut self) -> Decision {
        let s = &self.settings;
        let (u_loss, u_dup, u_reorder, u_jitter) = (
            self.rng.unit(),
            self.rng.unit(),
            self.rng.unit(),
            self.rng.unit(),
        );
        let drop = u_loss < s.loss;
        let jitter = s.jitter.as_nanos() as f64 * (2.0 * u_jitter - 1.0);
        let delay_ns = (s.delay.as_nanos() as f64 + jitter).max(0.0);
        Decision {
            drop,
            duplicate: !drop && u_dup < s.dup,
            reorder: !drop && u_reorder < s.reorder,
            delay: Duration::from_nanos(delay_ns as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(seed: u64) -> Settings {
        Settings {
            loss: 0.05,
            dup: 0.01,
            reorder: 0.02,
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(5),
            seed,
        }
    }

    #[test]
    fn same_seed_same_decisions() {
        let a: Vec<Decision> = (0..1000)
            .scan(Impairer::new(settings(7)), |i, _| Some(i.decide()))
            .collect();
        let b: Vec<Decision> = (0..1000)
            .scan(Impairer::new(settings(7)), |i, _| Some(i.decide()))
            .collect();
        let c: Vec<Decision> = (0..1000)
            .scan(Impairer::new(settings(8)), |i, _| Some(i.decide()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn drop_decisions_do_not_depend_on_the_other_settings() {
        let mut plain = Impairer::new(Settings {
            dup: 0.0,
            reorder: 0.0,
            ..settings(3)
        });
        let mut full = Impairer::new(settings(3));
        for i in 0..1000 {
            assert_eq!(plain.decide().drop, full.decide().drop, "datagram {i}");
        }
    }

    #[test]
    fn rates_and_delays_are_as_asked() {
        let seed = 12345;
        let mut imp = Impairer::new(settings(seed));
        let n = 100_000;
        let (mut drops, mut dups, mut reorders) = (0, 0, 0);
        for _ in 0..n {
            let d = imp.decide();
            drops += d.drop as u32;
            dups += d.duplicate as u32;
            reorders += d.reorder as u32;
            assert!(
                !(d.drop && (d.duplicate || d.reorder)),
                "a dropped datagram has no other fate"
            );
            assert!(
                d.delay >= Duration::from_millis(5) && d.delay <= Duration::from_millis(15),
                "{:?}",
                d.delay
            );
        }
        // Binomial standard deviations at n = 100,000 are 69, 31 and 44: 6 sigma bounds.
        let near = |got: u32, p: f64, sd: f64| (got as f64 - n as f64 * p).abs() < 6.0 * sd;
        assert!(near(drops, 0.05, 69.0), "seed {seed}: {drops} drops");
        assert!(near(dups, 0.0095, 31.0), "seed {seed}: {dups} dups");
        assert!(
            near(reorders, 0.019, 44.0),
            "seed {seed}: {reorders} reorders"
        );
    }

    /// The relay's rules, without sockets: the arrival order a receiver sees for `n`
    /// datagrams, and the counts the relay would report.
    fn model(settings: Settings, n: u64) -> (Vec<u64>, u64, u64, u64) {
        let mut imp = Impairer::new(settings);
        let (mut out, mut held) = (Vec::new(), Vec::new());
        let (mut dropped, mut duplicated, mut reordered) = (0u64, 0u64, 0u64);
        for seq in 0..n {
            let d = imp.decide();
            if d.drop {
                dropped += 1;
                continue;
            }
            let copies = if d.duplicate { 2 } else { 1 };
            duplicated += copies as u64 - 1;
            if d.reorder && held.len() + copies <= MAX_HELD {
                held.extend(std::iter::repeat_n(seq, copies));
                continue;
            }
            out.extend(std::iter::repeat_n(seq, copies));
            reordered +=
                held.len() as u64 - held.windows(2).filter(|w| w[0] == w[1]).count() as u64;
            out.append(&mut held);
        }
        out.append(&mut held); // the end marker lets held data go first, in order
        (out, dropped, duplicated, reordered)
    }

    #[test]
    fn tally_agrees_with_the_relay_rules_for_a_thousand_seeds() {
        use crate::labs::udp_loss::tally::Tally;
        use crate::wire::probe::{Kind, Repr};
        for seed in 0..1000u64 {
            let settings = Settings {
                loss: (seed % 7) as f64 / 20.0,
                dup: (seed % 5) as f64 / 20.0,
                reorder: (seed % 3) as f64 / 10.0,
                ..settings(seed)
            };
            let n = 500 + seed % 500;
            let (arrivals, dropped, duplicated, reordered) = model(settings, n);
            let mut t = Tally::new();
            for seq in arrivals {
                let h = Repr {
                    kind: Kind::Data,
                    session: 1,
                    seq,
                    sent_ns: 0,
                };
                t.data(&h, 64, 0);
            }
            assert_eq!(t.lost(Some(n)), dropped, "seed {seed}: lost == dropped");
            assert_eq!(
                t.duplicates, duplicated,
                "seed {seed}: duplicates == duplicated"
            );
            assert_eq!(
                t.out_of_order, reordered,
                "seed {seed}: out_of_order == reordered"
            );
            assert_eq!(
                t.received + t.lost(Some(n)),
                n,
                "seed {seed}: sent == unique + lost"
            );
        }
    }
}

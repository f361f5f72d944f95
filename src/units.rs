//! Numbers a person types on the command line: durations, rates and percentages.
//!
//! Every flag of every command that takes one goes through these parsers (as clap
//! `value_parser`s), so the flag arrives as a [`Duration`], a [`Rate`] or a checked
//! probability and no code downstream has to check it again. Before this module each
//! command parsed an `f64` and called `Duration::from_secs_f64` on it, which panics on
//! `-1`, `nan`, `inf` or `1e300`.
//!
//! The grammar is the one people write: plain decimal digits with at most one point
//! (`2`, `0.5`, `.25`), then a unit where it helps (`500ms`, `2s`, `1m`). No sign, no
//! exponent, no `inf`/`nan`, no hex: Rust's `f64::from_str` accepts all of those, and
//! none of them is a sensible flag value. Each value is bounded, because a value far
//! past any real use (a duration of 10^300 seconds, a rate of 10^-300 per second) only
//! turns into a panic or a program that never ends.
//!
//! Errors are one line that says what to type instead; clap adds the flag's name.

use std::fmt;
use std::time::Duration;

/// Longest value looked at: anything longer is not a number a person typed, and we do
/// not want to echo 10 kB back in the error.
const MAX_LEN: usize = 40;

/// Longest duration a flag accepts: a day. Longer runs are a loop in a script, and a
/// bound keeps every deadline (`Instant::now() + d`) far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Shortest non-zero duration: 1 ms. Below that, timers and report intervals only burn
/// CPU (the event loop's timers have millisecond resolution anyway).
pub const MIN_DURATION: Duration = Duration::from_millis(1);

/// Longest relay delay or receiver wait (`lab impair --delay`, lab 03's `--idle`): an
/// hour, which is already far beyond any network.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// Shortest non-zero relay delay: 1 us, the resolution the relay's delays are printed
/// in; the relay schedules them on its own queue, not one timer each.
pub const MIN_DELAY: Duration = Duration::from_micros(1);

/// Slowest rate: one event every 100 s. Slower is a pause, not a rate.
pub const MIN_RATE: f64 = 0.01;

/// Fastest rate a paced sender here keeps (`lab latency --rate`, lab 07's `--rate`): a
/// million per second is beyond one socket's round trips and one core's timers.
pub const MAX_RATE: f64 = 1e6;

/// A value shortened for an error message.
fn shown(s: &str) -> String {
    if s.chars().count() > MAX_LEN {
        let head: String = s.chars().take(12).collect();
        format!("{head}... ({} bytes)", s.len())
    } else {
        s.to_string()
    }
}

/// Plain decimal digits with at most one point: `2`, `0.5`, `.25`, `10.`.
fn number(s: &str) -> Option<f64> {
    if s.is_empty() || s.len() > MAX_LEN {
        return None;
    }
    let mut points = 0;
    let mut digits = 0;
    for b in s.bytes() {
        match b {
            b'0'..=b'9' => digits += 1,
            b'.' => points += 1,
            _ => return None,
        }
    }
    if digits == 0 || points > 1 {
        return None;
    }
    // Digits and one point always parse, to a finite value (at most 40 digits).
    s.parse().ok().filter(|v: &f64| v.is_finite())
}

/// Splits `500ms` into (`500`, seconds per unit); `None` unit when there is none.
fn split_unit(t: &str) -> (&str, Option<f64>) {
    for (suffix, scale) in [
        ("us", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
    ] {
        if let Some(n) = t.strip_suffix(suffix) {
            return (n, Some(scale));
        }
    }
    (t, None)
}

/// How a duration flag reads its value.
#[derive(Debug, Clone, Copy)]
struct DurationRule {
    /// A bare number is seconds (`--duration 5`); else a unit is required (except 0).
    bare_seconds: bool,
    /// 0 is accepted (it means "no delay" or "until stopped", as the flag says).
    zero: bool,
    /// Shortest non-zero value accepted.
    min: Duration,
    /// Longest value accepted.
    max: Duration,
}

fn duration_with(s: &str, rule: DurationRule) -> Result<Duration, String> {
    let t = s.trim();
    let example = if rule.bare_seconds {
        "a number of seconds (2, 0.5) or a unit: 500ms, 2s, 1m"
    } else {
        "a number with its unit: 250us, 10ms, 2s"
    };
    let bad = || format!("`{}` is not a duration: write {example}", shown(s));
    let (num, unit) = split_unit(t);
    let v = number(num.trim()).ok_or_else(bad)?;
    let scale = match unit {
        Some(scale) => scale,
        None if rule.bare_seconds || v == 0.0 => 1.0,
        None => {
            return Err(format!(
                "`{}` has no unit: write {v}ms or {v}s (or 250us)",
                shown(s)
            ))
        }
    };
    let secs = v * scale;
    if secs == 0.0 {
        if rule.zero {
            return Ok(Duration::ZERO);
        }
        return Err(format!(
            "`{}`: the duration must be above 0 (at least 1ms)",
            shown(s)
        ));
    }
    if secs > rule.max.as_secs_f64() {
        return Err(format!(
            "`{}` is longer than {}: give at most {}",
            shown(s),
            human(rule.max),
            human(rule.max)
        ));
    }
    if secs < rule.min.as_secs_f64() {
        return Err(format!(
            "`{}` is shorter than {:?}: give {:?} or more{}",
            shown(s),
            rule.min,
            rule.min,
            if rule.zero { " (or 0)" } else { "" }
        ));
    }
    // Finite and within min..=max: from_secs_f64 cannot panic.
    Ok(Duration::from_secs_f64(secs))
}

/// `1 day`, `1 hour`: a bound for an error message.
fn human(d: Duration) -> String {
    match d.as_secs() {
        86_400 => "1 day (24h)".into(),
        3600 => "1 hour (1h)".into(),
        s => format!("{s}s"),
    }
}

/// A positive duration: a bare number is seconds (`5`, `0.5`), or with a unit (`500ms`,
/// `2s`, `1m`); 1ms to 1 day. For `--duration`, `--timeout`, `--interval` and the like.
pub fn seconds(s: &str) -> Result<Duration, String> {
    duration_with(
        s,
        DurationRule {
            bare_seconds: true,
            zero: false,
            min: MIN_DURATION,
            max: MAX_DURATION,
        },
    )
}

/// Time per report line (lab 03's `--interval`): as [`seconds`], but at least 100 ms,
/// iperf3's own floor. Shorter lines cost more to print than the traffic they describe
/// (a 1 us interval made a receiver print instead of receive, and miss 82% of a run).
pub fn report_interval(s: &str) -> Result<Duration, String> {
    duration_with(
        s,
        DurationRule {
            bare_seconds: true,
            zero: false,
            min: MIN_REPORT_INTERVAL,
            max: MAX_DURATION,
        },
    )
}

/// The shortest report interval, as iperf3's `--interval`.
pub const MIN_REPORT_INTERVAL: Duration = Duration::from_millis(100);

/// As [`seconds`], and `0` too, for flags where 0 means "until stopped".
pub fn seconds_or_zero(s: &str) -> Result<Duration, String> {
    duration_with(
        s,
        DurationRule {
            bare_seconds: true,
            zero: true,
            min: MIN_DURATION,
            max: MAX_DURATION,
        },
    )
}

/// A delay with its unit (`10ms`, `250us`, `1.5s`) or `0`, 1 us to an hour: the relay's
/// `--delay`/`--jitter` and lab 03's receiver waits. The unit is required because these
/// are usually milliseconds, and a bare `10` read as 10 s would stall a run for nothing.
pub fn delay(s: &str) -> Result<Duration, String> {
    duration_with(
        s,
        DurationRule {
            bare_seconds: false,
            zero: true,
            min: MIN_DELAY,
            max: MAX_DELAY,
        },
    )
}

/// `5%`, `5` (also percent) or `0.5%` into a probability 0..=1.
pub fn percent(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let t = t.strip_suffix('%').unwrap_or(t);
    let v = number(t.trim())
        .ok_or_else(|| format!("`{}` is not a percentage: write 5% or 0.5%", shown(s)))?;
    if v > 100.0 {
        return Err(format!(
            "`{}` is outside 0%..100%: give a share such as 5% or 0.5%",
            shown(s)
        ));
    }
    Ok(v / 100.0)
}

/// Events per second, within [`MIN_RATE`]..=[`MAX_RATE`].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Rate(f64);

impl Rate {
    /// A rate known to be in range (for defaults written in code).
    ///
    /// # Panics
    /// When `per_second` is outside [`MIN_RATE`]..=[`MAX_RATE`]: a bug in a constant.
    pub const fn new(per_second: f64) -> Rate {
        assert!(per_second >= MIN_RATE && per_second <= MAX_RATE);
        Rate(per_second)
    }

    /// Events per second.
    pub fn per_second(self) -> f64 {
        self.0
    }

    /// Time between two events (10 ms at 100/s); at most 100 s, at least 1 us.
    pub fn period(self) -> Duration {
        Duration::from_secs_f64(1.0 / self.0)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", self.0)
    }
}

/// A number of events per second (`896`, `20000`, `0.5`, or with `/s`), from one every
/// 100 s to a million per second.
pub fn rate(s: &str) -> Result<Rate, String> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let v = number(t.trim()).ok_or_else(|| {
        format!(
            "`{}` is not a rate: write a number per second, e.g. 896 or 20000",
            shown(s)
        )
    })?;
    if !(MIN_RATE..=MAX_RATE).contains(&v) {
        return Err(format!(
            "`{}` per second is out of range: give {MIN_RATE} to {MAX_RATE:.0}",
            shown(s)
        ));
    }
    Ok(Rate(v))
}

/// A plain non-negative number in the grammar above, for parsers of their own units
/// (lab 03's `10Mbps`); `None` if it is not one.
pub fn plain_number(s: &str) -> Option<f64> {
    number(s.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What people type, and every shape that used to panic or run forever.
    const HOSTILE: &[&str] = &[
        "-1",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "infinity",
        "1e300",
        "1e-300",
        "0x10",
        "",
        " ",
        "18446744073709551616",
        "5s5",
        "١",
        "1..2",
        ".",
        "+5",
        "5 s s",
        "ms",
    ];

    #[test]
    fn seconds_take_bare_numbers_and_units() {
        assert_eq!(seconds("5"), Ok(Duration::from_secs(5)));
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(seconds(".25"), Ok(Duration::from_millis(250)));
        assert_eq!(seconds("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(seconds("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(seconds("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(seconds("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(seconds("24h"), Ok(MAX_DURATION));
        assert_eq!(seconds(" 3 "), Ok(Duration::from_secs(3)));
        assert!(seconds("0").is_err());
        assert!(seconds("86401").is_err());
        assert!(seconds("0.0001").is_err());
        assert_eq!(seconds_or_zero("0"), Ok(Duration::ZERO));
        assert_eq!(seconds_or_zero("2"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn delays_need_a_unit() {
        assert_eq!(delay("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(delay("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(delay("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(delay("0"), Ok(Duration::ZERO));
        assert_eq!(delay("0ms"), Ok(Duration::ZERO));
        assert!(delay("10").unwrap_err().contains("10ms"), "names the fix");
        assert!(delay("-5ms").is_err());
        assert!(delay("2h").is_err());
        assert!(delay("0.1us").is_err());
    }

    #[test]
    fn percentages() {
        assert_eq!(percent("5%"), Ok(0.05));
        assert_eq!(percent("5"), Ok(0.05));
        assert_eq!(percent("100%"), Ok(1.0));
        assert_eq!(percent("0"), Ok(0.0));
        assert!(percent("101%").is_err());
        assert!(percent("-1%").is_err());
        assert!(percent("lots").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(rate("896").map(Rate::per_second), Ok(896.0));
        assert_eq!(rate("20000/s").map(Rate::per_second), Ok(20000.0));
        assert_eq!(rate("1000000").map(Rate::per_second), Ok(1e6));
        assert_eq!(rate("100").unwrap().period(), Duration::from_millis(10));
        assert!(rate("1000001").is_err());
        assert!(rate("0").is_err());
        assert!(rate("0.001").is_err());
        assert_eq!(rate("0.01").unwrap().period(), Duration::from_secs(100));
    }

    #[test]
    fn every_parser_refuses_every_hostile_string_without_panicking() {
        let long = "9".repeat(10_000);
        let mut inputs: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
        inputs.push(long);
        // Seeded noise as well: any mix of digits, points, signs, letters and units.
        let seed = 18;
        let mut rng = crate::rng::Rng::new(seed);
        let alphabet: Vec<char> = "0123456789.-+eEnaifx%smuh/ ١\u{0}".chars().collect();
        for _ in 0..5000 {
            let len = (rng.next_u64() % 12) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize])
                .collect();
            // Whatever it is, nothing panics and every accepted value is in bounds.
            if let Ok(d) = seconds(&s) {
                assert!(d >= MIN_DURATION && d <= MAX_DURATION, "seed {seed}: {s:?}");
            }
            if let Ok(d) = delay(&s) {
                assert!(d <= MAX_DELAY, "seed {seed}: {s:?}");
            }
            if let Ok(p) = percent(&s) {
                assert!((0.0..=1.0).contains(&p), "seed {seed}: {s:?}");
            }
            if let Ok(r) = rate(&s) {
                assert!((MIN_RATE..=MAX_RATE).contains(&r.per_second()), "{s:?}");
                let _ = r.period();
            }
        }
        for s in &inputs {
            assert!(seconds(s).is_err(), "seconds accepted {s:?}");
            assert!(
                seconds_or_zero(s).is_err(),
                "seconds_or_zero accepted {s:?}"
            );
            assert!(delay(s).is_err(), "delay accepted {s:?}");
            assert!(percent(s).is_err(), "percent accepted {s:?}");
            assert!(rate(s).is_err(), "rate accepted {s:?}");
            assert!(seconds(s).unwrap_err().len() < 200, "short error for {s:?}");
        }
    }
}

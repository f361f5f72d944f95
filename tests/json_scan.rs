//! The receiver's one-pass validator (`wire::json_scan`) against serde_json, the
//! reference it replaces on the fast path: for every line, the same verdict (accepted, or
//! refused for the same reason), the same `sender` and `seq`, and "save as it came" only
//! for lines that are compact and name each of the two once.
//!
//! A property test with the crate's seeded generator (no proptest: it would add a dozen
//! crates to the build for what 200 lines do here): random JSON-ish byte strings, valid
//! records and values written out with random spacing, and mutations of those
//! (truncations, flipped, inserted and deleted bytes, invalid UTF-8, deep nesting,
//! escapes, numbers at the edge of f64). A disagreement is shrunk to a short line and
//! printed with the seed. `JSON_SCAN_SEED=N` replays a seed; `JSON_SCAN_CASES=N` runs more.

use std::fmt::Write as _;

use lab::rng::Rng;
use lab::wire::json_scan::{scan, Invalid, MAX_DEPTH};
use lab::wire::jsonl::{parse, Reject};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

/// What a line is, as the receiver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Record {
        sender: Option<String>,
        seq: Option<u64>,
    },
    NotUtf8,
    NotJson,
    NotObject,
    BadSeq,
    BadSender(Option<u64>),
}

/// serde_json's verdict, through the receiver's reference parser.
fn reference(line: &[u8]) -> Verdict {
    match parse(line) {
        Ok(r) => Verdict::Record {
            sender: r.sender,
            seq: r.seq,
        },
        Err((_, Reject::NotUtf8)) => Verdict::NotUtf8,
        Err((_, Reject::NotJson(_))) => Verdict::NotJson,
        Err((_, Reject::NotObject)) => Verdict::NotObject,
        Err((_, Reject::BadSeq)) => Verdict::BadSeq,
        Err((seq, Reject::BadSender)) => Verdict::BadSender(seq),
        Err((_, other)) => panic!("parse gave {other:?}"),
    }
}

/// The validator's verdict, and whether it would save the line as it came.
fn ours(line: &[u8]) -> (Verdict, bool) {
    match scan(line) {
        Ok(h) => (
            Verdict::Record {
                sender: h.sender.map(|s| s.into_owned()),
                seq: h.seq,
            },
            h.as_is,
        ),
        Err(Invalid::NotUtf8) => (Verdict::NotUtf8, false),
        Err(Invalid::Syntax) => (Verdict::NotJson, false),
        Err(Invalid::NotObject) => (Verdict::NotObject, false),
        Err(Invalid::BadSeq) => (Verdict::BadSeq, false),
        Err(Invalid::BadSender(seq)) => (Verdict::BadSender(seq), false),
    }
}

/// The top-level keys of an object, duplicates included (serde_json's map keeps one).
struct Keys(Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

/// True when no whitespace stands outside strings (the receiver's old compactness
/// check, kept here as an oracle written differently from the validator).
fn compact(line: &[u8]) -> bool {
    let (mut in_string, mut escaped) = (false, false);
    for &b in line {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
            return false;
        }
    }
    true
}

/// Why `line` is a counterexample, or `None` when the validator is right about it.
fn disagreement(line: &[u8]) -> Option<String> {
    let want = reference(line);
    let (got, as_is) = ours(line);
    if got != want {
        return Some(format!("serde_json: {want:?}, json_scan: {got:?}"));
    }
    let Verdict::Record { sender, seq } = want else {
        return None;
    };
    let keys = serde_json::from_slice::<Keys>(line).map(|k| k.0).ok()?;
    let count = |name: &str| keys.iter().filter(|k| *k == name).count();
    let should = sender.is_some() && seq.is_some() && compact(line);
    let should = should && count("seq") == 1 && count("sender") == 1;
    (as_is != should).then(|| format!("as_is {as_is}, should be {should}"))
}

/// Shrinks a counterexample: drops ranges of bytes while the disagreement remains.
fn shrink(mut line: Vec<u8>) -> Vec<u8> {
    let mut width = line.len() / 2;
    while width > 0 {
        let mut at = 0;
        while at + width <= line.len() {
            let mut shorter = line.clone();
            shorter.drain(at..at + width);
            if disagreement(&shorter).is_some() {
                line = shorter;
            } else {
                at += width;
            }
        }
        width /= 2;
    }
    line
}

fn check(line: &[u8], seed: u64, case: usize) {
    if let Some(why) = disagreement(line) {
        let small = shrink(line.to_vec());
        panic!(
            "json_scan disagrees with serde_json (seed {seed}, case {case}; replay with \
             JSON_SCAN_SEED={seed}):\n  line   {:?}\n  shrunk {:?}\n  {}",
            String::from_utf8_lossy(line),
            String::from_utf8_lossy(&small),
            disagreement(&small).unwrap_or(why)
        );
    }
}

/// Numbers: ordinary ones, and ones at every edge serde_json draws (u64, f64's range,
/// negative zero, leading zeros, exponents without digits ...).
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "7",
    "42",
    "-1",
    "-0",
    "0.5",
    "-0.0",
    "1.5",
    "21.5",
    "1e5",
    "1E+2",
    "1e-5",
    "0.1e-5",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999",
    "-9223372036854775808",
    "-9223372036854775809",
    "1e308",
    "1.7976931348623157e308",
    "1.7976931348623158e308",
    "1.7976931348623159e308",
    "2e308",
    "1e309",
    "-1e309",
    "1e400",
    "0e99999",
    "0.0e400",
    "1e-400",
    "1e-99999999999",
    "1e99999999999",
    "0.00001e305",
    "0.1e310",
    "10e307",
    "100e306",
    "01",
    "1.",
    ".5",
    "-",
    "1e",
    "1e+",
    "+1",
    "--1",
    "1.5.5",
    "0x10",
    "1ee2",
    "-.5",
    "00",
];

/// Pieces of strings: plain text, every escape, \u escapes (surrogates paired and
/// not), raw non-ASCII, and things a string may not hold.
const STRING_PARTS: &[&str] = &[
    "a",
    "bench-1",
    "x y",
    "seq",
    "sender",
    "\\n",
    "\\\"",
    "\\\\",
    "\\/",
    "\\b",
    "\\f",
    "\\r",
    "\\t",
    "\\u0041",
    "\\u00e9",
    "\\u2713",
    "\\ud83d\\ude00",
    "\\uD83D\\uDE00",
    "\\ud83d",
    "\\ude00",
    "\\ud83d\\u0041",
    "\\ud83dx",
    "\\ud83d\\n",
    "\\udbff\\udfff",
    "\\u",
    "\\u12",
    "\\u12g4",
    "\\x",
    "\\",
    "é",
    "✓",
    "😀",
    "\u{7f}",
    "\t",
    "\u{1}",
    "\u{ffff}",
    "\u{10ffff}",
];

/// Keys: the two that matter, spelled plainly and with escapes, and others.
const KEYS: &[&str] = &[
    "seq",
    "sender",
    "a",
    "t_ms",
    "",
    "s\\u0065q",
    "sen\\u0064er",
    "\\u0073eq",
    "seq ",
    "Seq",
    "sender\\u0000",
    "value",
];

fn pick<'a>(rng: &mut Rng, from: &[&'a str]) -> &'a str {
    from[rng.range(0, from.len())]
}

fn space(rng: &mut Rng, out: &mut String) {
    if rng.range(0, 8) == 0 {
        out.push_str(pick(rng, &[" ", "\t", "\r", "  ", "\n", " \t"]));
    }
}

fn string(rng: &mut Rng, out: &mut String) {
    out.push('"');
    for _ in 0..rng.range(0, 5) {
        // Mostly parts that a valid string may hold.
        let part = pick(rng, STRING_PARTS);
        out.push_str(part);
    }
    out.push('"');
}

/// A JSON-ish value: valid most of the time, as the parts are mostly valid.
fn value(rng: &mut Rng, out: &mut String, depth: usize) {
    space(rng, out);
    let kind = if depth > 4 {
        rng.range(0, 4)
    } else {
        rng.range(0, 6)
    };
    match kind {
        0 => out.push_str(pick(rng, &["true", "false", "null"])),
        1 => out.push_str(pick(rng, NUMBERS)),
        2 | 3 => string(rng, out),
        4 => {
            out.push('[');
            for i in 0..rng.range(0, 4) {
                if i > 0 {
                    out.push(',');
                }
                value(rng, out, depth + 1);
            }
            space(rng, out);
            out.push(']');
        }
        _ => object(rng, out, depth + 1, false),
    }
    space(rng, out);
}

fn object(rng: &mut Rng, out: &mut String, depth: usize, record: bool) {
    out.push('{');
    let n = rng.range(0, 6);
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        space(rng, out);
        let key = if record && i < 2 && rng.range(0, 4) != 0 {
            ["sender", "seq"][i]
        } else {
            pick(rng, KEYS)
        };
        let _ = write!(out, "\"{key}\"");
        space(rng, out);
        out.push(':');
        match key {
            "seq" if rng.range(0, 3) != 0 => {
                let _ = write!(out, "{}", rng.next_u64() >> rng.range(0, 64));
            }
            "sender" if rng.range(0, 3) != 0 => {
                let n = rng.range(1, 12);
                let _ = write!(out, "\"{}\"", rng.word(n));
            }
            _ => value(rng, out, depth),
        }
    }
    space(rng, out);
    out.push('}');
}

/// A record-like line, valid or nearly.
fn record(rng: &mut Rng) -> Vec<u8> {
    let mut out = String::new();
    space(rng, &mut out);
    object(rng, &mut out, 1, true);
    space(rng, &mut out);
    out.into_bytes()
}

/// Bytes from JSON's alphabet and around it, in no order.
fn jsonish(rng: &mut Rng) -> Vec<u8> {
    const TOKENS: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b":",
        b",",
        b"\"",
        b"\\",
        b"\\u",
        b"d83d",
        b"de00",
        b"0",
        b"1",
        b"-",
        b".",
        b"e",
        b"+",
        b"true",
        b"false",
        b"null",
        b"tru",
        b" ",
        b"\t",
        b"\n",
        b"\"seq\"",
        b"\"sender\"",
        b"\"a\"",
        b"a",
        b"\xc3\xa9",
        b"\xff",
        b"\xc3",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xe0\x80\xaf",
        b"\x00",
        b"\x1f",
        b"\x7f",
        b"{\"seq\":",
        b"{\"sender\":\"s\",\"seq\":",
    ];
    let mut out = Vec::new();
    for _ in 0..rng.range(0, 24) {
        out.extend_from_slice(TOKENS[rng.range(0, TOKENS.len())]);
    }
    out
}

/// One random change to a line.
fn mutate(rng: &mut Rng, line: &mut Vec<u8>) {
    let at = rng.range(0, line.len() + 1);
    match rng.range(0, 7) {
        0 => line.truncate(at),
        1 if at < line.len() => line[at] = rng.next_u64() as u8,
        2 => line.insert(at, rng.next_u64() as u8),
        3 if at < line.len() => {
            line.remove(at);
        }
        4 => {
            let bad: &[&[u8]] = &[b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xb0\x80", b"\x80"];
            let piece = bad[rng.range(0, bad.len())];
            line.splice(at..at, piece.iter().copied());
        }
        5 => {
            let piece = pick(rng, STRING_PARTS).as_bytes().to_vec();
            line.splice(at..at, piece);
        }
        _ => {
            let end = rng.range(at, line.len() + 1);
            let copy = line[at..end].to_vec();
            line.splice(end..end, copy);
        }
    }
}

/// Nesting around the edge of the depth limit, in arrays or objects.
fn deep(rng: &mut Rng) -> Vec<u8> {
    let n = rng.range(MAX_DEPTH as usize - 3, MAX_DEPTH as usize + 3);
    let object = rng.range(0, 2) == 0;
    let (open, close) = if object { ("{\"a\":", "}") } else { ("[", "]") };
    let inner = n.saturating_sub(1); // the record itself is one level
    let mut s = String::from("{\"sender\":\"d\",\"seq\":1,\"x\":");
    s.push_str(&open.repeat(inner));
    s.push('1');
    s.push_str(&close.repeat(inner));
    s.push('}');
    s.into_bytes()
}

fn seed() -> u64 {
    let seed = std::env::var("JSON_SCAN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(13);
    eprintln!("json_scan property test: seed {seed}");
    seed
}

fn cases() -> usize {
    std::env::var("JSON_SCAN_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000)
}

#[test]
fn agrees_with_serde_json_on_random_records_values_and_bytes() {
    let seed = seed();
    let mut rng = Rng::new(seed);
    for case in 0..cases() {
        let line = match case % 4 {
            0 => record(&mut rng),
            1 => {
                let mut s = String::new();
                value(&mut rng, &mut s, 0);
                s.into_bytes()
            }
            2 => jsonish(&mut rng),
            _ => deep(&mut rng),
        };
        check(&line, seed, case);
    }
}

#[test]
fn agrees_with_serde_json_on_mutated_records() {
    let seed = seed();
    let mut rng = Rng::new(seed ^ 0x6a73_6f6e);
    for case in 0..cases() {
        let mut line = record(&mut rng);
        for _ in 0..rng.range(1, 4) {
            mutate(&mut rng, &mut line);
            check(&line, seed, case);
        }
    }
}

#[test]
fn agrees_with_serde_json_on_hand_written_lines() {
    let mut lines: Vec<Vec<u8>> = [
        &br#"{"sender":"bench-1","seq":1,"sensor":"A0","value":811.6,"t_ms":2}"#[..],
        br#"{"sender":"a","seq":3,"t":[1,{"x":"y z"}]}"#,
        br#"{}"#,
        br#" {"seq":1} "#,
        b"{\"seq\":1}\n",
        b"\t{\"seq\":1}\r",
        br#"{"seq":1,}"#,
        br#"{"seq":1,,"a":2}"#,
        br#"{,"seq":1}"#,
        br#"{"seq"1}"#,
        br#"{"seq":}"#,
        br#"{"seq"}"#,
        br#"{seq:1}"#,
        br#"{'seq':1}"#,
        br#"[1,]"#,
        br#"[,1]"#,
        br#"[1 2]"#,
        br#"[]"#,
        br#"[[]]"#,
        br#"{"a":[]}"#,
        br#"{"a":{}}"#,
        br#"{"a":[}"#,
        br#"{"a":{]}"#,
        br#"{"a":1}}"#,
        br#"{"a":1]"#,
        br#"{"a":1"#,
        br#"{"a""#,
        br#"{"a"#,
        br#"{"#,
        b"",
        b" ",
        b"null",
        b"true",
        b"1",
        br#""s""#,
        br#"{"seq":18446744073709551615,"sender":"m"}"#,
        br#"{"seq":18446744073709551616,"sender":"m"}"#,
        br#"{"seq":-0}"#,
        br#"{"seq":0}"#,
        br#"{"seq":1.0}"#,
        br#"{"seq":1e2}"#,
        br#"{"seq":"1"}"#,
        br#"{"seq":null}"#,
        br#"{"seq":[1]}"#,
        br#"{"seq":{}}"#,
        br#"{"seq":true}"#,
        br#"{"seq":1,"sender":2}"#,
        br#"{"seq":1,"sender":null}"#,
        br#"{"seq":1,"sender":[]}"#,
        br#"{"sender":1}"#,
        br#"{"seq":"x","seq":2}"#,
        br#"{"seq":2,"seq":"x"}"#,
        br#"{"sender":1,"sender":"s","seq":1}"#,
        br#"{"sender":"a","seq":1,"sender":"b"}"#,
        br#"{"s\u0065q":5,"sen\u0064er":"\u0041"}"#,
        br#"{"s\u0065q":"5"}"#,
        br#"{"sender":"\ud83d\ude00","seq":1}"#,
        br#"{"sender":"\ud83d","seq":1}"#,
        br#"{"sender":"\ude00","seq":1}"#,
        br#"{"sender":"\ud83d\u0041","seq":1}"#,
        br#"{"a":{"seq":"nested, not mine"},"seq":1}"#,
        br#"[{"seq":"x"}]"#,
        br#"{"x":1e400}"#,
        br#"{"x":-1e400}"#,
        br#"{"x":1.7976931348623157e308}"#,
        br#"{"x":1.7976931348623159e308}"#,
        br#"{"x":0e400}"#,
        br#"{"x":1e-400}"#,
        b"{\"x\":\"\x01\"}",
        b"{\"x\":\"\x7f\"}",
        b"{\"x\":\"\xc3\xa9\"}",
        b"{\"x\":\"\xc3\"}",
        b"{\"x\":\"\xed\xa0\x80\"}",
        b"{\"x\":\"\xf4\x90\x80\x80\"}",
        b"{\"x\":\"\xe0\x80\xaf\"}",
        b"{\"x\":\"\xf0\x9f\x98\x80\"}",
        b"{\"x\":1}\xff",
        b"{\"x\":tru,\"y\":\"\xff\"}",
        b"\xef\xbb\xbf{}",
        b"{\"x\":\xc3\xa9}",
    ]
    .iter()
    .map(|l| l.to_vec())
    .collect();
    // A 309-digit integer is the first one past f64::MAX, and one digit less is not.
    lines.push(format!("{{\"x\":1{}}}", "0".repeat(308)).into_bytes());
    lines.push(format!("{{\"x\":1{}}}", "0".repeat(307)).into_bytes());
    lines.push(format!("{{\"x\":179769313486231580{}}}", "0".repeat(291)).into_bytes());
    lines.push(format!("{{\"x\":179769313486231590{}}}", "0".repeat(291)).into_bytes());
    lines.push(format!("{{\"x\":0.{}1e310}}", "0".repeat(20)).into_bytes());
    // The depth limit, exactly: 127 levels pass, 128 do not.
    for n in [
        MAX_DEPTH as usize - 1,
        MAX_DEPTH as usize,
        MAX_DEPTH as usize + 1,
    ] {
        lines.push(format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes());
        let inner = n - 1;
        lines.push(format!("{{\"a\":{}1{}}}", "[".repeat(inner), "]".repeat(inner)).into_bytes());
    }
    for line in &lines {
        check(line, 0, 0);
    }
    // The edges really are where we say (so the vectors above test both sides).
    let depth = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n - 1), "]".repeat(n - 1));
    assert!(scan(depth(MAX_DEPTH as usize).as_bytes()).is_ok());
    assert_eq!(
        scan(depth(MAX_DEPTH as usize + 1).as_bytes()),
        Err(Invalid::Syntax)
    );
}

/// CPU time of this thread, in ns (from /proc: 10 ms ticks, so measure a second or more).
fn thread_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the command (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks * 1_000_000_000 / lab::sys::clock_ticks_per_sec()
}

/// Not a test: CPU ns per record of the old fast path (UTF-8 pass, compactness scan,
/// serde reading `sender`/`seq` and skipping the rest) against the one-pass scan, on
/// bench/json_to_file.sh's records, and of the sender table's lookup. CPU time, not wall
/// time, so a loaded machine disturbs it less. Run:
/// `cargo test --release --test json_scan -- --ignored --nocapture per_record_cost`
#[test]
#[ignore]
fn per_record_cost() {
    #[derive(serde::Deserialize)]
    struct OldHead<'a> {
        #[serde(borrow, default)]
        sender: Option<&'a str>,
        #[serde(default)]
        seq: Option<u64>,
    }
    let mut rng = Rng::new(6);
    let lines: Vec<String> = (1..=1_000_000u64)
        .map(|seq| {
            let value = rng.range(0, 10_240) as f64 / 10.0;
            format!(
                r#"{{"sender":"bench-1","seq":{seq},"sensor":"A0","value":{value:.1},"t_ms":{}}}"#,
                seq * 2
            )
        })
        .collect();
    let n = lines.len() as u64;
    let table = std::cell::RefCell::new(std::collections::HashMap::<String, u64>::new());
    // Each case runs ROUNDS times, the cases alternating so drift hits them all; the
    // least CPU time of each is kept (interference only ever adds).
    type Case<'a> = (&'a str, Box<dyn Fn(&[u8]) -> u64 + 'a>);
    let cases: Vec<Case> = vec![
        (
            "old: utf8 + compact + serde IgnoredAny walk",
            Box::new(|l| {
                let ok = memchr::memchr3(b' ', b'\t', b'\r', l).is_none();
                let text = std::str::from_utf8(l).unwrap();
                let h: OldHead = serde_json::from_str(text).unwrap();
                assert!(ok && h.sender.is_some());
                h.seq.unwrap()
            }),
        ),
        (
            "new: json_scan::scan",
            Box::new(|l| {
                let h = scan(l).unwrap();
                assert!(h.as_is && h.sender.is_some());
                h.seq.unwrap()
            }),
        ),
        (
            "new + sender table: std HashMap (SipHash)",
            Box::new(|l| {
                let h = scan(l).unwrap();
                let (sender, seq) = (h.sender.unwrap(), h.seq.unwrap());
                let mut t = table.borrow_mut();
                match t.get_mut(&*sender) {
                    Some(v) => *v = seq,
                    None => {
                        t.insert(sender.into_owned(), seq);
                    }
                }
                seq
            }),
        ),
    ];
    let mut best = vec![u64::MAX; cases.len()];
    for _ in 0..5 {
        for (i, (name, f)) in cases.iter().enumerate() {
            let t0 = thread_cpu_ns();
            let sum: u64 = lines.iter().map(|l| f(l.as_bytes())).sum();
            best[i] = best[i].min(thread_cpu_ns() - t0);
            assert_eq!(sum, n * (n + 1) / 2, "{name}");
        }
    }
    for ((name, _), ns) in cases.iter().zip(best) {
        eprintln!("{name:<44} {:>6.1} ns/record", ns as f64 / n as f64);
    }
}

//! A one-pass JSON validator for record lines: lab 06's receiver checks every byte of
//! every line here, once, and learns the two fields it needs on the way.
//!
//! Why not serde_json, which the rest of the lab uses? The receiver must refuse any line
//! that is not UTF-8 JSON, but it saves a valid record byte for byte, so it needs a
//! verdict and `sender`/`seq`, not a value. serde_json gives a verdict only by building
//! a value (allocations) or by skipping fields with `IgnoredAny`, which checks neither
//! UTF-8 nor `\u` surrogates nor the range of numbers: the receiver's old fast path did
//! that plus a UTF-8 pass, and so saved as they came lines (`"\udc00"`, `1e400`) that
//! serde_json refuses to read back. One walk that checks UTF-8 inside strings as it goes
//! (plain ASCII eight bytes at a time) does the whole job. Measured on 75-byte records
//! it costs what the old path did (~130 ns, BENCHMARKS.md, 06): the gain is a verdict
//! that is serde_json's, not speed.
//!
//! The verdict is meant to be serde_json's own, line for line (the property test in
//! `tests/json_scan.rs` holds the two against each other): the grammar of RFC 8259
//! sections 2 to 7, plus three rules of serde_json's that the RFC leaves to
//! implementations:
//!
//! - nesting deeper than [`MAX_DEPTH`] arrays and objects is refused (section 9 allows a
//!   limit; serde_json's keeps its recursion off the stack's edge);
//! - a number too large for an `f64` (`1e400`) is refused (section 6 allows that too);
//! - a `\u` escape must not leave a UTF-16 surrogate unpaired (section 8.2 calls such
//!   strings legal but unpredictable: serde_json refuses them as text).
//!
//! Duplicate keys are allowed, and the last one counts, as in serde_json's map.

use std::borrow::Cow;

/// The deepest nesting of arrays and objects accepted: serde_json refuses the 128th
/// level (its recursion limit), so both agree on every line.
pub const MAX_DEPTH: u32 = 127;

/// What the receiver needs from a line that is a valid JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head<'a> {
    /// The top-level `sender` string (its last occurrence), unescaped; borrowed from the
    /// line unless it holds escapes. `None` when absent.
    pub sender: Option<Cow<'a, str>>,
    /// The top-level `seq` (its last occurrence). `None` when absent.
    pub seq: Option<u64>,
    /// The line can go to the file byte for byte: it names `sender` and `seq` once each,
    /// and it is compact (no whitespace outside strings), as a saved record must be.
    pub as_is: bool,
}

/// Why a line is not a record. The order of the checks is the receiver's: UTF-8, then
/// JSON, then an object, then `seq`, then `sender`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Some bytes are not UTF-8 (anywhere in the line).
    NotUtf8,
    /// UTF-8, but not JSON (or refused by one of serde_json's rules above).
    Syntax,
    /// JSON, but not an object.
    NotObject,
    /// `seq` is not a non-negative integer that fits in 64 bits.
    BadSeq,
    /// `sender` is not a string; `seq` when it could be read.
    BadSender(Option<u64>),
}

/// Checks one line (without its newline) and reads its `sender` and `seq`.
pub fn scan(line: &[u8]) -> Result<Head<'_>, Invalid> {
    let mut s = Scanner {
        b: line,
        i: 0,
        spaced: false,
    };
    match s.document() {
        // The walk stops at the first fault, and a line that is both not JSON and not
        // UTF-8 is "not UTF-8" (the receiver checked UTF-8 first): look at it all.
        Err(Invalid::Syntax) if std::str::from_utf8(line).is_err() => Err(Invalid::NotUtf8),
        r => r,
    }
}

/// Which top-level key a value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Seq,
    Sender,
    Other,
}

/// A top-level field as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field<T> {
    Absent,
    /// Present with the wrong type.
    Bad,
    Good(T),
}

/// A string's place in the line: its content (between the quotes), and whether that
/// holds escapes (then it must be decoded to be read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Str {
    start: usize,
    end: usize,
    escaped: bool,
}

/// The walk: the line and how far it got.
struct Scanner<'a> {
    b: &'a [u8],
    /// The next byte to look at.
    i: usize,
    /// Whitespace was seen outside strings: the line is not compact.
    spaced: bool,
}

impl<'a> Scanner<'a> {
    /// The whole line: one value, whitespace around it, nothing else. Iterative, with
    /// the open containers as a bit stack (1 = object), so no input reaches the stack.
    fn document(&mut self) -> Result<Head<'a>, Invalid> {
        self.ws();
        let top_is_object = self.peek() == Some(b'{');
        let mut top = Top {
            seq: Field::Absent,
            sender: Field::Absent,
            seqs: 0,
            senders: 0,
        };
        let mut objects: u128 = 0;
        let mut depth: u32 = 0;
        let mut key = Key::Other;
        'value: loop {
            // A value starts here (after `[`, `,` or `:`, or at the top).
            self.ws();
            let field = if depth == 1 && top_is_object {
                key
            } else {
                Key::Other
            };
            let mut found_seq = Field::Bad;
            let mut found_sender = Field::Bad;
            match self.peek() {
                Some(open @ (b'{' | b'[')) => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(Invalid::Syntax);
                    }
                    let object = open == b'{';
                    objects = (objects & !(1 << depth)) | (u128::from(object) << depth);
                    self.i += 1;
                    self.ws();
                    let close = if object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.i += 1;
                        depth -= 1;
                    } else {
                        top.note(field, Field::Bad, Field::Bad);
                        if object {
                            key = self.key(depth)?;
                        }
                        continue 'value;
                    }
                }
                Some(b'"') => found_sender = Field::Good(self.string()?),
                Some(b'-' | b'0'..=b'9') => {
                    if let Some(n) = self.number()? {
                        found_seq = Field::Good(n);
                    }
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                _ => return Err(Invalid::Syntax),
            }
            if field != Key::Other {
                top.note(field, found_seq, found_sender);
            }
            // After a value: a comma, the end of containers, or the end of the line.
            loop {
                self.ws();
                if depth == 0 {
                    if self.i != self.b.len() {
                        return Err(Invalid::Syntax);
                    }
                    break 'value;
                }
                let object = objects & (1 << depth) != 0;
                match (self.peek(), object) {
                    (Some(b','), _) => {
                        self.i += 1;
                        if object {
                            self.ws();
                            key = self.key(depth)?;
                        }
                        continue 'value;
                    }
                    (Some(b'}'), true) | (Some(b']'), false) => {
                        self.i += 1;
                        depth -= 1;
                    }
                    _ => return Err(Invalid::Syntax),
                }
            }
        }
        if !top_is_object {
            return Err(Invalid::NotObject);
        }
        let seq = match top.seq {
            Field::Absent => None,
            Field::Bad => return Err(Invalid::BadSeq),
            Field::Good(n) => Some(n),
        };
        let sender = match top.sender {
            Field::Absent => None,
            Field::Bad => return Err(Invalid::BadSender(seq)),
            Field::Good(s) => Some(self.text(s)),
        };
        Ok(Head {
            as_is: top.seqs == 1 && top.senders == 1 && !self.spaced,
            sender,
            seq,
        })
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Skips whitespace (RFC 8259 section 2: space, tab, CR, LF), noting any.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek() {
            self.i += 1;
            self.spaced = true;
        }
    }

    /// An object's key and its colon. Only keys of the top-level object (depth 1) are
    /// told apart; a key with escapes is decoded first (`"s\u0065q"` is `seq`).
    fn key(&mut self, depth: u32) -> Result<Key, Invalid> {
        if self.peek() != Some(b'"') {
            return Err(Invalid::Syntax);
        }
        let s = self.string()?;
        self.ws();
        if self.peek() != Some(b':') {
            return Err(Invalid::Syntax);
        }
        self.i += 1;
        if depth != 1 {
            return Ok(Key::Other);
        }
        let name = if s.escaped {
            Cow::Owned(unescape(&self.b[s.start - 1..s.end + 1]).into_bytes())
        } else {
            Cow::Borrowed(&self.b[s.start..s.end])
        };
        Ok(match &*name {
            b"seq" => Key::Seq,
            b"sender" => Key::Sender,
            _ => Key::Other,
        })
    }

    /// A string, from its opening quote to past its closing one: no raw control
    /// characters, valid escapes, valid UTF-8.
    fn string(&mut self) -> Result<Str, Invalid> {
        let b = self.b;
        let start = self.i + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            // Most string bytes are plain ASCII: skip eight at a time until one is not.
            while let Some(chunk) = b.get(i..).and_then(|rest| rest.first_chunk::<8>()) {
                let special = special_bytes(u64::from_le_bytes(*chunk));
                if special != 0 {
                    i += (special.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            match b.get(i) {
                Some(b'"') => {
                    self.i = i + 1;
                    return Ok(Str {
                        start,
                        end: i,
                        escaped,
                    });
                }
                Some(b'\\') => {
                    escaped = true;
                    i = escape(b, i + 1)?;
                }
                // A raw control character: JSON wants it escaped (section 7).
                Some(0x00..=0x1f) => return Err(Invalid::Syntax),
                Some(0x80..=0xff) => i = utf8(b, i)?,
                Some(_) => i += 1,
                // The line ends inside the string.
                None => return Err(Invalid::Syntax),
            }
        }
    }

    /// A string's text: borrowed when it holds no escapes.
    fn text(&self, s: Str) -> Cow<'a, str> {
        let raw = &self.b[s.start..s.end];
        if s.escaped {
            Cow::Owned(unescape(&self.b[s.start - 1..s.end + 1]))
        } else {
            // Checked by `string` already, so this never falls back; the lossy form (which
            // walks the bytes in chunks: ~2% of the receiver's time) only avoids a panic.
            match std::str::from_utf8(raw) {
                Ok(text) => Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(raw),
            }
        }
    }

    /// A number (section 6). Returns its value when it is a non-negative integer that
    /// fits in a `u64` (what `seq` must be); `None` for any other number.
    fn number(&mut self) -> Result<Option<u64>, Invalid> {
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let negative = b.get(i) == Some(&b'-');
        if negative {
            i += 1;
        }
        let mut value = Some(0u64);
        let int_start = i;
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                // Any 19 digits fit in a u64, so the loop needs no overflow checks (they
                // were a fifth of the scan); only a 20-digit run is redone with them.
                // Eight bytes at a time while eight are left, then byte by byte.
                let mut v = 0u64;
                while let Some(chunk) = b.get(i..).and_then(|rest| rest.first_chunk::<8>()) {
                    let (n, d) = digits8(u64::from_le_bytes(*chunk));
                    v = v.wrapping_mul(POW10[n]).wrapping_add(d);
                    i += n;
                    if n < 8 {
                        break;
                    }
                }
                if b.get(i..).is_some_and(|rest| rest.len() < 8) {
                    while let Some(&d @ b'0'..=b'9') = b.get(i) {
                        v = v.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
                        i += 1;
                    }
                }
                value = match i - int_start {
                    ..=19 => Some(v),
                    20 => b[int_start..i].iter().try_fold(0u64, |v, &d| {
                        v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
                    }),
                    _ => None,
                };
            }
            _ => return Err(Invalid::Syntax),
        }
        // Digits before the point, leading zero excepted: the value is below 10^that.
        let magnitude = if b[int_start] == b'0' {
            0
        } else {
            (i - int_start) as i64
        };
        let mut integer = true;
        if b.get(i) == Some(&b'.') {
            integer = false;
            i = digits(b, i + 1)?;
        }
        let mut exponent: i64 = 0;
        if let Some(b'e' | b'E') = b.get(i) {
            integer = false;
            i += 1;
            let minus = match b.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let first = i;
            i = digits(b, i)?;
            for &d in &b[first..i] {
                // Saturated far beyond any f64 exponent: only "huge" matters.
                exponent = (exponent * 10 + i64::from(d - b'0')).min(1 << 40);
            }
            if minus {
                exponent = -exponent;
            }
        }
        // Below 10^300 a number is a finite f64 however serde_json rounds it. Near
        // f64::MAX (1.8e308) the verdict hangs on its rounding, so ask serde_json itself,
        // on this token alone: rare, and exact by construction.
        if magnitude + exponent > 300
            && serde_json::from_slice::<serde_json::Value>(&b[start..i]).is_err()
        {
            return Err(Invalid::Syntax);
        }
        self.i = i;
        Ok(if integer && !negative { value } else { None })
    }

    /// `true`, `false` or `null`.
    fn literal(&mut self, word: &[u8]) -> Result<(), Invalid> {
        if !self.b[self.i..].starts_with(word) {
            return Err(Invalid::Syntax);
        }
        self.i += word.len();
        Ok(())
    }
}

/// The top-level object's `seq` and `sender` as last seen, and how often each was.
struct Top {
    seq: Field<u64>,
    sender: Field<Str>,
    seqs: u32,
    senders: u32,
}

impl Top {
    /// Notes a top-level value: what it would be as a `seq` and as a `sender`, kept if
    /// its key is one of them (the last occurrence wins, as in serde_json's map).
    fn note(&mut self, key: Key, as_seq: Field<u64>, as_sender: Field<Str>) {
        match key {
            Key::Seq => {
                self.seq = as_seq;
                self.seqs += 1;
            }
            Key::Sender => {
                self.sender = as_sender;
                self.senders += 1;
            }
            Key::Other => {}
        }
    }
}

/// Flags, in the high bit of each byte of an 8-byte word (little-endian), the bytes a
/// string cannot skip: `"`, `\`, control characters (below 0x20) and non-ASCII (0x80
/// and up). The lowest flag is exact (a borrow only runs upward from a true flag),
/// which is all the caller uses: it stops at the first.
fn special_bytes(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero(w ^ (ONES * u64::from(b'"')));
    let backslash = zero(w ^ (ONES * u64::from(b'\\')));
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    quote | backslash | control | (w & HIGH)
}

/// One escape, `i` just past its backslash (section 7); returns the index after it.
/// `\u` must not leave a surrogate unpaired: a high one (D800-DBFF) must be followed at
/// once by a `\u` low one (DC00-DFFF), and a low one never comes first.
fn escape(b: &[u8], i: usize) -> Result<usize, Invalid> {
    match b.get(i) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 1),
        Some(b'u') => {
            let unit = hex4(b, i + 1)?;
            match unit {
                0xDC00..=0xDFFF => Err(Invalid::Syntax),
                0xD800..=0xDBFF => {
                    if b.get(i + 5..i + 7) != Some(&b"\\u"[..]) {
                        return Err(Invalid::Syntax);
                    }
                    match hex4(b, i + 7)? {
                        0xDC00..=0xDFFF => Ok(i + 11),
                        _ => Err(Invalid::Syntax),
                    }
                }
                _ => Ok(i + 5),
            }
        }
        _ => Err(Invalid::Syntax),
    }
}

/// Four hex digits at `i`, as a UTF-16 code unit.
fn hex4(b: &[u8], i: usize) -> Result<u16, Invalid> {
    let digits = b.get(i..i + 4).ok_or(Invalid::Syntax)?;
    let mut unit = 0u16;
    for &d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return Err(Invalid::Syntax),
        };
        unit = unit << 4 | u16::from(v);
    }
    Ok(unit)
}

/// One UTF-8 sequence at `i`, whose first byte is 0x80 or more; returns the index after
/// it. The ranges are the Unicode standard's table 3-7 (well-formed byte sequences): no
/// overlong forms, no surrogates, nothing above U+10FFFF.
fn utf8(b: &[u8], i: usize) -> Result<usize, Invalid> {
    let (len, second) = match b[i] {
        0xC2..=0xDF => (2, 0x80..=0xBF),
        0xE0 => (3, 0xA0..=0xBF),
        0xE1..=0xEC | 0xEE..=0xEF => (3, 0x80..=0xBF),
        0xED => (3, 0x80..=0x9F),
        0xF0 => (4, 0x90..=0xBF),
        0xF1..=0xF3 => (4, 0x80..=0xBF),
        0xF4 => (4, 0x80..=0x8F),
        _ => return Err(Invalid::NotUtf8),
    };
    let seq = b.get(i..i + len).ok_or(Invalid::NotUtf8)?;
    if !second.contains(&seq[1]) || !seq[2..].iter().all(|&c| (0x80..=0xBF).contains(&c)) {
        return Err(Invalid::NotUtf8);
    }
    Ok(i + len)
}

/// 10^n for the eight-digit steps.
const POW10: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// The digits that lead an 8-byte word (little-endian: the first byte is the lowest):
/// how many (0 to 8), and their value. SWAR, all eight bytes at once: the digit loop
/// was the scan's hottest spot (a record has ~18 digits).
fn digits8(w: u64) -> (usize, u64) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Digits become 0 to 9; any other byte something above 9.
    let t = w ^ (ONES * u64::from(b'0'));
    // Above 9, flagged in each byte's high bit, exactly: the low seven bits plus 0x76
    // stay below 0x100, so no carry crosses into the next byte.
    let not_digit = (((t & !HIGH) + ONES * 0x76) | t) & HIGH;
    let n = (not_digit.trailing_zeros() / 8) as usize;
    if n == 0 {
        return (0, 0);
    }
    // The n digits moved to the top bytes, zeros (leading zeros) below; then pairs,
    // quads and octets combined: 1,2 -> 12; 12,34 -> 1234; 1234,5678 -> 12345678.
    let mut v = t << (8 * (8 - n));
    v = (v.wrapping_mul(10) + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    v = (v.wrapping_mul(10_000) + (v >> 32)) & 0xFFFF_FFFF;
    (n, v)
}

/// One or more digits from `i`; returns the index after them.
fn digits(b: &[u8], i: usize) -> Result<usize, Invalid> {
    let n = b.get(i..).map_or(0, |rest| {
        rest.iter().take_while(|d| d.is_ascii_digit()).count()
    });
    if n == 0 {
        return Err(Invalid::Syntax);
    }
    Ok(i + n)
}

/// The text of a string that [`Scanner::string`] accepted, given with its quotes
/// (so every escape is whole and every surrogate paired). Only for the rare string with
/// escapes: serde_json's own unescaping, which the property test holds us equal to.
fn unescape(quoted: &[u8]) -> String {
    serde_json::from_slice(quoted).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `digits8` against a byte-by-byte count and value, over every leading run of
    /// digits followed by each kind of byte, and pseudo-random words.
    #[test]
    fn digits8_agrees_with_a_byte_loop() {
        let naive = |w: &[u8; 8]| {
            let n = w.iter().take_while(|d| d.is_ascii_digit()).count();
            let v = w[..n]
                .iter()
                .fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
            (n, v)
        };
        let mut words: Vec<[u8; 8]> = Vec::new();
        for n in 0..=8 {
            for after in [b'/', b':', b'.', b'e', b',', b'}', 0x00, 0x80, 0xB9, 0xFF] {
                let mut w = [after; 8];
                for (k, d) in w.iter_mut().take(n).enumerate() {
                    *d = b"98765432"[k];
                }
                words.push(w);
            }
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly digits, so long runs come up.
            let w = x
                .to_le_bytes()
                .map(|b| if b < 200 { b'0' + b % 10 } else { b });
            words.push(w);
        }
        for w in words {
            assert_eq!(digits8(u64::from_le_bytes(w)), naive(&w), "{w:?}");
        }
    }
}

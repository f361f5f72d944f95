//! JSON Lines records and their acknowledgements (lab 06): pure functions, no I/O.
//!
//! A record is one JSON object on one line, at most [`MAX_RECORD`] bytes. It names its
//! `sender` (a string) and its `seq` (1, 2, 3 ... per sender); the pair identifies it,
//! so a resend can be recognised. The receiver answers every line with one reply line:
//!
//! ```text
//! ok SEQ              the record SEQ (and every one before it on this connection) is on disk
//! error SEQ REASON    this line was not saved (REASON says why); SEQ when it could be read
//! error - REASON      the same when no seq could be read (not JSON, too long, ...)
//! ```
//!
//! Framing is [`crate::wire::lines`]'s: bytes up to `\n`, capped. Parsing a line here is
//! strict (UTF-8, then JSON, then an object, then the types of `seq` and `sender`), and a
//! record is written back compact, so one record is always exactly one line.

use serde::Deserialize;
use serde_json::{Map, Value};

/// Longest record line, in bytes, without its newline. 64 KiB holds any sensor reading
/// or log event with room to spare, and bounds what one peer makes the receiver hold.
pub const MAX_RECORD: usize = 64 * 1024;

/// Why a line is not a record. Each says what to fix, in a few words (it goes on the
/// wire after `error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// Longer than [`MAX_RECORD`].
    TooLong,
    /// Bytes that are not UTF-8 (JSON text is UTF-8, RFC 8259 section 8.1).
    NotUtf8,
    /// Not JSON at all; the parser's message.
    NotJson(String),
    /// JSON, but not an object (an array, a number, a string ...).
    NotObject,
    /// `seq` present but not a non-negative integer.
    BadSeq,
    /// `sender` present but not a string.
    BadSender,
    /// `sender` given without `seq`: a record that names its sender must be numbered,
    /// or its resend could not be told from a new record (receiver's rule).
    MissingSeq,
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reject::TooLong => write!(f, "line longer than {MAX_RECORD} bytes"),
            Reject::NotUtf8 => write!(f, "not UTF-8"),
            Reject::NotJson(e) => write!(f, "not JSON: {e}"),
            Reject::NotObject => write!(f, "not a JSON object"),
            Reject::BadSeq => write!(f, "seq must be a non-negative integer"),
            Reject::BadSender => write!(f, "sender must be a string"),
            Reject::MissingSeq => write!(f, "a record with a sender needs an integer seq"),
        }
    }
}

/// A line that parsed as a record. `sender` and `seq` are `None` when absent (a plain
/// line from `nc`): the receiver fills them in.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The whole object. Its keys come out sorted (serde_json's default map), which
    /// changes no value: JSON objects are unordered (RFC 8259 section 4).
    pub fields: Map<String, Value>,
    /// The `sender` field, if present.
    pub sender: Option<String>,
    /// The `seq` field, if present.
    pub seq: Option<u64>,
}

/// Parses one line (without its newline) into a record. On failure, also returns the
/// seq if one could be read, for the `error SEQ REASON` reply.
pub fn parse(line: &[u8]) -> Result<Record, (Option<u64>, Reject)> {
    if line.len() > MAX_RECORD {
        return Err((None, Reject::TooLong));
    }
    let text = std::str::from_utf8(line).map_err(|_| (None, Reject::NotUtf8))?;
    let value: Value = serde_json::from_str(text).map_err(|e| (None, not_json(&e)))?;
    let Value::Object(fields) = value else {
        return Err((None, Reject::NotObject));
    };
    let seq = match fields.get("seq") {
        None => None,
        Some(v) => Some(v.as_u64().ok_or((None, Reject::BadSeq))?),
    };
    let sender = match fields.get("sender") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err((seq, Reject::BadSender)),
    };
    Ok(Record {
        fields,
        sender,
        seq,
    })
}

/// The two fields a receiver needs, borrowed from a line that is already a record in
/// its final form: the fast path. Every other field is checked for syntax and skipped,
/// with no allocation.
#[derive(Debug, Deserialize)]
struct Head<'a> {
    /// Borrowed: a sender id with escapes fails here and takes the slow path. (A
    /// `Cow` inside an `Option` would always be copied: serde borrows only bare `Cow`s.)
    #[serde(borrow, default)]
    sender: Option<&'a str>,
    #[serde(default)]
    seq: Option<u64>,
}

/// A line that can be saved exactly as it came: a compact JSON object with a string
/// `sender` and an integer `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready<'a> {
    /// The `sender` field, borrowed from the line.
    pub sender: &'a str,
    /// The `seq` field.
    pub seq: u64,
}

/// The fast path: `Some` when `line` is a compact JSON object with `sender` and `seq`,
/// so it can go to the file byte for byte. `None` says nothing about validity: use
/// [`parse`] for the verdict (and the compact form). Measured on the benchmark's
/// records, this is several times faster than building a `Value` and writing it back.
pub fn ready(line: &[u8]) -> Option<Ready<'_>> {
    // An array would deserialize into the struct too (serde's sequence form): objects only.
    if line.first() != Some(&b'{') || line.len() > MAX_RECORD || !is_compact(line) {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?;
    let head: Head<'_> = serde_json::from_str(text).ok()?;
    Some(Ready {
        sender: head.sender?,
        seq: head.seq?,
    })
}

/// True when no whitespace stands outside strings: the line is already compact JSON.
fn is_compact(line: &[u8]) -> bool {
    // Most records hold no whitespace at all (no space inside their strings either), and
    // a vectorised search proves that several times faster than the walk below, which
    // tracks strings byte by byte. A line with a newline never gets here (it is framing).
    if memchr::memchr3(b' ', b'\t', b'\r', line).is_none() {
        return true;
    }
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
    !in_string
}

/// serde_json's message without its "at line 1 column N" tail when that is all it says.
fn not_json(e: &serde_json::Error) -> Reject {
    Reject::NotJson(format!("{} at column {}", category(e), e.column()))
}

fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "bad value",
        serde_json::error::Category::Io => "read error",
    }
}

impl Record {
    /// Sets `sender` and `seq`.
    pub fn stamp(&mut self, sender: &str, seq: u64) {
        self.fields
            .insert("sender".into(), Value::String(sender.to_string()));
        self.fields.insert("seq".into(), Value::from(seq));
        self.sender = Some(sender.to_string());
        self.seq = Some(seq);
    }

    /// The record as one line of compact JSON, newline included: what goes in the file
    /// and on the wire. Compact JSON has no raw newline (inside strings it is `\n`), so
    /// one record is one line.
    pub fn to_line(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(&self.fields).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// A receiver's reply to one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// `ok SEQ`: saved and durable (or saved before: a resend).
    Ok(u64),
    /// `error SEQ REASON` or `error - REASON`: not saved.
    Error(Option<u64>, String),
}

impl Ack {
    /// The reply line, newline included.
    pub fn to_line(&self) -> String {
        match self {
            Ack::Ok(seq) => format!("ok {seq}\n"),
            Ack::Error(Some(seq), why) => format!("error {seq} {}\n", one_line(why)),
            Ack::Error(None, why) => format!("error - {}\n", one_line(why)),
        }
    }

    /// Reads a reply line (without its newline); `None` if it is neither form.
    pub fn parse(line: &[u8]) -> Option<Ack> {
        let text = std::str::from_utf8(line).ok()?;
        if let Some(rest) = text.strip_prefix("ok ") {
            return rest.trim().parse().ok().map(Ack::Ok);
        }
        let rest = text.strip_prefix("error ")?;
        let (seq, why) = rest.split_once(' ').unwrap_or((rest, ""));
        let seq = match seq {
            "-" => None,
            s => Some(s.parse().ok()?),
        };
        Some(Ack::Error(seq, why.to_string()))
    }
}

/// A reason kept on one line: a newline in it would look like a second reply.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_with_sender_and_seq() {
        let r = parse(br#"{"sender":"a","seq":3,"t":21.5}"#).unwrap();
        assert_eq!(r.sender.as_deref(), Some("a"));
        assert_eq!(r.seq, Some(3));
        assert_eq!(r.to_line(), b"{\"sender\":\"a\",\"seq\":3,\"t\":21.5}\n");
    }

    #[test]
    fn a_plain_object_gets_stamped() {
        let mut r = parse(br#"{ "msg" : "hi" }"#).unwrap();
        assert_eq!((r.sender.clone(), r.seq), (None, None));
        r.stamp("anon-127.0.0.1:5000", 1);
        assert_eq!(
            r.to_line(),
            b"{\"msg\":\"hi\",\"sender\":\"anon-127.0.0.1:5000\",\"seq\":1}\n"
        );
    }

    #[test]
    fn pretty_input_is_written_compact_on_one_line() {
        let r = parse(br#"{"a": {"b": [1, 2, "x\ny"]}, "seq": 1}"#).unwrap();
        let line = r.to_line();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(line, b"{\"a\":{\"b\":[1,2,\"x\\ny\"]},\"seq\":1}\n");
    }

    #[test]
    fn unicode_survives_unchanged() {
        let src = "{\"seq\":1,\"name\":\"caf\u{e9} \u{2713} \u{1f600}\"}";
        let r = parse(src.as_bytes()).unwrap();
        let back: Value = serde_json::from_slice(&r.to_line()).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(src).unwrap());
    }

    #[test]
    fn every_kind_of_bad_line_is_rejected_with_its_reason() {
        let cases: &[(&[u8], Option<u64>, Reject)] = &[
            (b"hello", None, Reject::NotJson(String::new())),
            (b"[1,2]", None, Reject::NotObject),
            (b"42", None, Reject::NotObject),
            (b"\"s\"", None, Reject::NotObject),
            (b"{\"seq\":1,\"x\":\"\xff\"}", None, Reject::NotUtf8),
            (b"{\"seq\":-1}", None, Reject::BadSeq),
            (b"{\"seq\":1.5}", None, Reject::BadSeq),
            (b"{\"seq\":\"7\"}", None, Reject::BadSeq),
            (b"{\"seq\":7,\"sender\":5}", Some(7), Reject::BadSender),
            (
                b"{\"seq\":1} {\"seq\":2}",
                None,
                Reject::NotJson(String::new()),
            ),
            (b"", None, Reject::NotJson(String::new())),
        ];
        for (line, seq, want) in cases {
            let (got_seq, got) = parse(line).unwrap_err();
            assert_eq!(got_seq, *seq, "{}", String::from_utf8_lossy(line));
            match (want, &got) {
                (Reject::NotJson(_), Reject::NotJson(msg)) => assert!(!msg.is_empty()),
                _ => assert_eq!(&got, want, "{}", String::from_utf8_lossy(line)),
            }
        }
        let long = vec![b' '; MAX_RECORD + 1];
        assert_eq!(parse(&long).unwrap_err(), (None, Reject::TooLong));
    }

    #[test]
    fn the_fast_path_takes_only_compact_objects_with_sender_and_seq() {
        let r = ready(br#"{"sender":"a","seq":3,"t":[1,{"x":"y z"}]}"#).unwrap();
        assert_eq!((r.sender, r.seq), ("a", 3));
        for slow in [
            &br#"{"sender":"a\"b","seq":1}"#[..], // an escaped sender id: slow path
            br#"{"sender": "a", "seq": 3}"#,      // spaces: written back compact
            br#"{"seq":3}"#,                      // no sender: stamped
            br#"{"sender":"a"}"#,                 // no seq
            br#"["a",3]"#,                        // an array, not an object
            br#"{"sender":"a","seq":-3}"#,
            br#"{"sender":"a","seq":3,"x":tru}"#,
            b"{\"sender\":\"a\",\"seq\":3,\"x\":\"\xff\"}",
            br#"{"sender":"a","seq":3}{}"#,
        ] {
            assert_eq!(ready(slow), None, "{}", String::from_utf8_lossy(slow));
        }
        // Whatever the fast path takes, the full parser accepts with the same fields.
        let line = br#"{"sender":"s","seq":9,"v":"caf\u00e9 \\ \"q\""}"#;
        let (fast, full) = (ready(line).unwrap(), parse(line).unwrap());
        assert_eq!(
            (Some(fast.sender.to_string()), Some(fast.seq)),
            (full.sender, full.seq)
        );
    }

    #[test]
    fn acks_round_trip() {
        for ack in [
            Ack::Ok(0),
            Ack::Ok(u64::MAX),
            Ack::Error(Some(9), "sender must be a string".into()),
            Ack::Error(None, "not JSON: syntax error at column 1".into()),
        ] {
            let line = ack.to_line();
            assert!(line.ends_with('\n'));
            assert_eq!(Ack::parse(line.trim_end().as_bytes()), Some(ack));
        }
        assert_eq!(
            Ack::Error(None, "a\nb".into()).to_line(),
            "error - a b\n",
            "a reason never spans two lines"
        );
        assert_eq!(Ack::parse(b"ok x"), None);
        assert_eq!(Ack::parse(b"okay"), None);
        assert_eq!(Ack::parse(b"error x y"), None);
    }
}

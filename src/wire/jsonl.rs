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
//! record is written back compact, so one record is always exactly one line. [`parse`]
//! builds serde_json's value (to stamp or rewrite a record); [`read`], the receiver's,
//! checks a line in one pass ([`crate::wire::json_scan`]) and keeps it as it came when
//! it is already a compact record.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::json_scan::{self, Head, Invalid};

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

/// A line that is a record, in the form the receiver saves it in.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed<'a> {
    /// Already a compact record with its `sender` and `seq`: it goes to the file byte
    /// for byte (the common case, and the fast one: no value is built).
    AsIs {
        /// The `sender` field, unescaped; borrowed from the line unless it has escapes.
        sender: Cow<'a, str>,
        /// The `seq` field.
        seq: u64,
    },
    /// Valid, but to be written back compact or stamped: serde_json's value of it.
    Rewrite(Record),
}

/// Reads one line (without its newline) the way the receiver does: one pass of
/// [`json_scan::scan`] checks all of it and finds `sender` and `seq`; serde_json runs
/// only for a line that must be rewritten (whitespace, or no sender or seq: an `nc`
/// line) and for the wording of a syntax error. Same verdicts and reasons as [`parse`].
pub fn read(line: &[u8]) -> Result<Parsed<'_>, (Option<u64>, Reject)> {
    if line.len() > MAX_RECORD {
        return Err((None, Reject::TooLong));
    }
    match json_scan::scan(line) {
        Ok(Head {
            sender: Some(sender),
            seq: Some(seq),
            as_is: true,
        }) => Ok(Parsed::AsIs { sender, seq }),
        Ok(_) => parse(line).map(Parsed::Rewrite),
        Err(Invalid::NotUtf8) => Err((None, Reject::NotUtf8)),
        // serde_json words the error as the receiver always has (what, and where). Were
        // it to accept the line, the scan would be wrong: its tests hold the two equal.
        Err(Invalid::Syntax) => Err(match parse(line) {
            Err(e) => e,
            Ok(_) => (None, Reject::NotJson("refused by the validator".into())),
        }),
        Err(Invalid::NotObject) => Err((None, Reject::NotObject)),
        Err(Invalid::BadSeq) => Err((None, Reject::BadSeq)),
        Err(Invalid::BadSender(seq)) => Err((seq, Reject::BadSender)),
    }
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
    fn read_keeps_only_compact_records_with_sender_and_seq_as_they_came() {
        let line = br#"{"sender":"a","seq":3,"t":[1,{"x":"y z"}]}"#;
        let Ok(Parsed::AsIs { sender, seq }) = read(line) else {
            panic!("not as is")
        };
        assert_eq!((&*sender, seq), ("a", 3));
        // An escaped sender id is still saved as it came, and read unescaped.
        let Ok(Parsed::AsIs { sender, .. }) = read(br#"{"sender":"a\"\u00e9","seq":1}"#) else {
            panic!("not as is")
        };
        assert_eq!(sender, "a\"\u{e9}");
        for rewrite in [
            &br#"{"sender": "a", "seq": 3}"#[..], // spaces: written back compact
            br#"{"seq":3}"#,                      // no sender: stamped
            br#"{"msg":"hi"}"#,                   // neither: stamped
            br#"{"sender":"a","seq":1,"seq":2}"#, // seq twice: written back once
        ] {
            let want = parse(rewrite).unwrap();
            assert_eq!(
                read(rewrite),
                Ok(Parsed::Rewrite(want)),
                "{}",
                String::from_utf8_lossy(rewrite)
            );
        }
        for bad in [
            &br#"{"sender":"a"}"#[..], // no seq: the receiver's MissingSeq
            br#"["a",3]"#,
            br#"{"sender":"a","seq":-3}"#,
            br#"{"sender":"a","seq":3,"x":tru}"#,
            b"{\"sender\":\"a\",\"seq\":3,\"x\":\"\xff\"}",
            br#"{"sender":"a","seq":3}{}"#,
            br#"{"sender":"a","seq":3,"x":1e400}"#,
            br#"{"sender":"\udc00","seq":3}"#,
        ] {
            let full = parse(bad).map(|r| (r.sender, r.seq));
            let ours = read(bad).map(|p| match p {
                Parsed::AsIs { sender, seq } => (Some(sender.into_owned()), Some(seq)),
                Parsed::Rewrite(r) => (r.sender, r.seq),
            });
            assert_eq!(ours, full, "{}", String::from_utf8_lossy(bad));
        }
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

//! Solution 06-json-to-file: a receiver that saves every JSON record exactly once.
//!
//! Started as `json-to-file --port N --out FILE`. One thread per client; one mutex
//! around the file and the set of saved (sender, seq) pairs. Each read is a small group
//! commit: every new record in it is written, then ONE sync_data (fsync), then the acks.
//! The record is saved as the line it came in (already one line of valid JSON).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

fn arg(name: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| {
            eprintln!("usage: json-to-file --port N --out FILE");
            std::process::exit(2)
        })
}

/// The file and what it holds, shared by every client's thread.
struct Saved {
    file: File,
    /// (sender, seq) of every record in the file; the sender is "" when absent.
    keys: HashSet<(String, i64)>,
}

/// The (sender, seq) of a record, or why the line is not one.
fn identify(line: &[u8]) -> Result<(String, i64), String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_string())?;
    let value = json::parse(text).map_err(|e| format!("not JSON: {e}"))?;
    if !matches!(value, json::Value::Object(_)) {
        return Err("not a JSON object".into());
    }
    let seq = value
        .get("seq")
        .and_then(json::Value::as_i64)
        .ok_or("seq must be an integer")?;
    let sender = match value.get("sender") {
        None => String::new(),
        Some(json::Value::Str(s)) => s.clone(),
        Some(_) => return Err("sender must be a string".into()),
    };
    Ok((sender, seq))
}

/// Reads the file back: learns its records and cuts a torn last line.
fn load(path: &str) -> std::io::Result<Saved> {
    let file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
    let mut data = Vec::new();
    (&file).read_to_end(&mut data)?;
    let end = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if end < data.len() {
        // A last line without its newline: a write that never finished, never
        // acknowledged. Its sender will send it again.
        file.set_len(end as u64)?;
    }
    let keys = data[..end]
        .split(|&b| b == b'\n')
        .filter_map(|l| identify(l).ok())
        .collect();
    Ok(Saved { file, keys })
}

fn serve(mut stream: TcpStream, saved: Arc<Mutex<Saved>>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let Some(last) = buf.iter().rposition(|&b| b == b'\n') else {
            continue; // no complete line yet
        };
        let mut replies = String::new();
        let mut fresh = Vec::new();
        {
            let mut s = saved.lock().unwrap_or_else(|p| p.into_inner());
            for line in buf[..last].split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                match identify(line) {
                    Err(why) => replies.push_str(&format!("error - {why}\n")),
                    Ok((sender, seq)) => {
                        if s.keys.insert((sender, seq)) {
                            fresh.extend_from_slice(line);
                            fresh.push(b'\n');
                        }
                        replies.push_str(&format!("ok {seq}\n"));
                    }
                }
            }
            if !fresh.is_empty() {
                // Written, then synced, and only then acknowledged.
                let ok = s.file.write_all(&fresh).and_then(|_| s.file.sync_data());
                if let Err(e) = ok {
                    eprintln!("cannot write: {e}");
                    return; // no acks for records that may not be saved
                }
            }
        }
        buf.drain(..=last);
        if stream.write_all(replies.as_bytes()).is_err() {
            return;
        }
    }
}

fn main() -> std::io::Result<()> {
    let port: u16 = arg("--port").parse().unwrap_or(0);
    let saved = Arc::new(Mutex::new(load(&arg("--out"))?));
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    for stream in listener.incoming() {
        let saved = Arc::clone(&saved);
        // A failed accept (out of descriptors) is that client's problem, not ours.
        let Ok(stream) = stream else { continue };
        std::thread::spawn(move || serve(stream, saved));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// A tiny JSON checker, given (you do not need to change it). The standard library has
// no JSON parser, and writing one is not this lab's lesson. `json::parse` checks that a
// line is exactly one JSON value (RFC 8259) and returns the top-level object's fields
// as text, so you can read `seq` and `sender`; the record itself is saved as it came.
// ---------------------------------------------------------------------------------------
#[allow(dead_code)] // Null, Bool, Array: part of JSON, even if you never look inside
mod json {
    /// A parsed value, kept as the text it was written as (numbers unparsed).
    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        /// A number, as written (`12`, `-3.5e2`).
        Number(String),
        /// A string, escapes decoded.
        Str(String),
        Array(Vec<Value>),
        /// An object's fields, in the order written.
        Object(Vec<(String, Value)>),
    }

    impl Value {
        /// A field of an object.
        pub fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }

        /// The value as an integer, if it is a number without fraction or exponent.
        pub fn as_i64(&self) -> Option<i64> {
            match self {
                Value::Number(n) => n.parse().ok(),
                _ => None,
            }
        }
    }

    /// Parses `text` as exactly one JSON value (whitespace around it allowed).
    pub fn parse(text: &str) -> Result<Value, String> {
        let mut p = Parser { s: text.as_bytes(), i: 0 };
        let v = p.value(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("unexpected text at byte {}", p.i));
        }
        Ok(v)
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.i += 1;
            }
        }

        fn eat(&mut self, word: &str) -> Result<(), String> {
            if self.s[self.i..].starts_with(word.as_bytes()) {
                self.i += word.len();
                Ok(())
            } else {
                Err(format!("expected {word} at byte {}", self.i))
            }
        }

        fn value(&mut self, depth: usize) -> Result<Value, String> {
            if depth > 100 {
                return Err("nested too deeply".into());
            }
            self.ws();
            match self.s.get(self.i) {
                None => Err("unexpected end".into()),
                Some(b'n') => self.eat("null").map(|_| Value::Null),
                Some(b't') => self.eat("true").map(|_| Value::Bool(true)),
                Some(b'f') => self.eat("false").map(|_| Value::Bool(false)),
                Some(b'"') => self.string().map(Value::Str),
                Some(b'[') => {
                    self.i += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b']') {
                        self.i += 1;
                        return Ok(Value::Array(items));
                    }
                    loop {
                        items.push(self.value(depth + 1)?);
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                return Ok(Value::Array(items));
                            }
                            _ => return Err(format!("expected , or ] at byte {}", self.i)),
                        }
                    }
                }
                Some(b'{') => {
                    self.i += 1;
                    let mut fields = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        return Ok(Value::Object(fields));
                    }
                    loop {
                        self.ws();
                        if self.s.get(self.i) != Some(&b'"') {
                            return Err(format!("expected a key at byte {}", self.i));
                        }
                        let key = self.string()?;
                        self.ws();
                        self.eat(":")?;
                        fields.push((key, self.value(depth + 1)?));
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                return Ok(Value::Object(fields));
                            }
                            _ => return Err(format!("expected , or }} at byte {}", self.i)),
                        }
                    }
                }
                Some(_) => self.number(),
            }
        }

        fn number(&mut self) -> Result<Value, String> {
            let start = self.i;
            let digits = |p: &mut Self| {
                let from = p.i;
                while p.s.get(p.i).is_some_and(u8::is_ascii_digit) {
                    p.i += 1;
                }
                p.i > from
            };
            if self.s.get(self.i) == Some(&b'-') {
                self.i += 1;
            }
            if self.s.get(self.i) == Some(&b'0') {
                self.i += 1;
            } else if !digits(self) {
                return Err(format!("not a JSON value at byte {start}"));
            }
            if self.s.get(self.i) == Some(&b'.') {
                self.i += 1;
                if !digits(self) {
                    return Err(format!("expected digits at byte {}", self.i));
                }
            }
            if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
                self.i += 1;
                if matches!(self.s.get(self.i), Some(b'+' | b'-')) {
                    self.i += 1;
                }
                if !digits(self) {
                    return Err(format!("expected digits at byte {}", self.i));
                }
            }
            let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            Ok(Value::Number(text.to_string()))
        }

        fn string(&mut self) -> Result<String, String> {
            self.i += 1; // the opening quote
            let mut out = String::new();
            loop {
                let start = self.i;
                while !matches!(self.s.get(self.i), None | Some(b'"' | b'\\' | 0..=0x1f)) {
                    self.i += 1;
                }
                // The input is a &str, so this slice is whole UTF-8 characters.
                out.push_str(std::str::from_utf8(&self.s[start..self.i]).unwrap_or(""));
                match self.s.get(self.i) {
                    Some(b'"') => {
                        self.i += 1;
                        return Ok(out);
                    }
                    Some(b'\\') => {
                        let c = *self.s.get(self.i + 1).ok_or("unexpected end")?;
                        self.i += 2;
                        match c {
                            b'"' => out.push('"'),
                            b'\\' => out.push('\\'),
                            b'/' => out.push('/'),
                            b'b' => out.push('\u{8}'),
                            b'f' => out.push('\u{c}'),
                            b'n' => out.push('\n'),
                            b'r' => out.push('\r'),
                            b't' => out.push('\t'),
                            b'u' => {
                                let hex = self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?;
                                let hex = std::str::from_utf8(hex).map_err(|_| "bad \\u escape")?;
                                let code = u32::from_str_radix(hex, 16).map_err(|_| "bad \\u escape")?;
                                self.i += 4;
                                // Surrogate pairs (emoji as \ud83d\ude00) are checked loosely.
                                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                            }
                            _ => return Err(format!("bad escape at byte {}", self.i - 1)),
                        }
                    }
                    Some(_) => return Err(format!("control character in a string at byte {}", self.i)),
                    None => return Err("unterminated string".into()),
                }
            }
        }
    }
}

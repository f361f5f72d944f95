//! Exercise 06-json-to-file: a receiver that saves every JSON record exactly once.
//!
//! The contract (what `lab check 06` tests): started as `json-to-file --port N --out
//! FILE`, listen on 127.0.0.1:N and append records to FILE. Each line a client sends is
//! a JSON object with an integer `seq` (and a string `sender`):
//! - save it as ONE line of JSON in FILE, then reply `ok SEQ` and a newline (only after
//!   it is written: a SIGKILL right after the reply must not lose it);
//! - a line that is not a JSON object with an integer seq gets `error ...`, is not
//!   saved, and the connection stays open;
//! - a record whose (sender, seq) is already in FILE (a resend) gets `ok SEQ` again and
//!   is not saved again, also after a restart on the same FILE;
//! - lines arrive split and merged in any way; several clients at once.
//!
//! The standard library has no JSON parser: `json::parse` at the bottom is given. A
//! valid line is already one line of JSON, so save it as it came.
//!
//! Read the lesson: `lab show 06`. Stuck? `lab hint 06`. Check: `lab check 06`.

use std::fs::OpenOptions;
use std::io::Read;
use std::net::{TcpListener, TcpStream};

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

/// Serves one client.
fn serve(mut stream: TcpStream, file: &std::fs::File) {
    let mut chunk = [0u8; 65536];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // TODO: keep a buffer; for each complete line (up to b'\n'):
        //   std::str::from_utf8, then json::parse(text): it must be a json::Value::Object
        //   whose "seq" is an integer (`value.get("seq").and_then(json::Value::as_i64)`),
        //   else reply "error ...\n";
        //   if its (sender, seq) is new: write the line and b"\n" to `file`, then
        //   file.sync_data(), and remember the pair (a HashSet);
        //   then reply "ok SEQ\n".
        let _ = (&chunk[..n], file, json::parse("{}"));
    }
}

fn main() -> std::io::Result<()> {
    let port: u16 = arg("--port").parse().unwrap_or(0);
    // TODO: read the file back first: every (sender, seq) in it is already saved.
    let file = OpenOptions::new().append(true).create(true).open(arg("--out"))?;
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    for stream in listener.incoming() {
        // TODO: several clients at once (a thread per client, sharing the file and the
        // set through Arc<Mutex<...>>).
        serve(stream?, &file);
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

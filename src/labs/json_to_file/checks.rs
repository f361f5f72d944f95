//! Checks for 06-json-to-file's exercise: a receiver started as `PROGRAM --port N --out
//! FILE`. Each line is a JSON object with an integer `seq` and a string `sender`; it is
//! saved as one line of JSON, then acknowledged `ok SEQ`; a bad line gets `error ...`
//! and is not saved; a resend is acknowledged and not saved again, also after a
//! restart. The checks read the file itself and compare parsed values, never text, so
//! any JSON writer (compact, spaced, keys in any order) passes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use serde_json::{json, Value};

use crate::grade::checks::{starts, Check, Suite};
use crate::grade::harness::{idle_cut, Harness, Outcome, Transport, Unmet, IDLE, REPLY_TIMEOUT};
use crate::out::escape_bytes;

/// The checks, in order.
pub const SUITE: Suite = Suite {
    lab: "06-json-to-file",
    transport: Transport::Tcp,
    checks: &[
        Check {
            name: "starts",
            description: "starts with --port N --out FILE and listens on 127.0.0.1:N",
            mistake: "the receiver must take its port from `--port N` and its file from `--out FILE`",
            hint: "Parse the arguments after --port and --out; bind 127.0.0.1 on that port, then listen().",
            run: starts,
            prologue: None,
        },
        Check {
            name: "one_record",
            description: "one record gets `ok SEQ` and is in the file as one line of JSON",
            mistake: "the reply is exactly `ok SEQ` and a newline, and the file holds one record per line (pretty-printed JSON spans several lines)",
            hint: "Write json.dumps(record) + \"\\n\" (no indent), then reply f\"ok {seq}\\n\".",
            run: one_record,
            prologue: None,
        },
        Check {
            name: "many_in_one_write",
            description: "1000 records in one write get 1000 acks, in order, and all are saved",
            mistake: "no framing: one recv() holds many lines; each one is a record",
            hint: "Keep a buffer per connection; while it holds a '\\n', cut one line off the front and handle it.",
            run: many_in_one_write,
            prologue: None,
        },
        Check {
            name: "byte_at_a_time",
            description: "a record sent one byte per write is saved once and acknowledged once",
            mistake: "no framing: each recv() was treated as a whole record, but TCP is a byte stream",
            hint: "Append what recv() returns to the connection's buffer; handle only complete lines (up to '\\n').",
            run: byte_at_a_time,
            prologue: None,
        },
        Check {
            name: "split_and_merged",
            description: "200 records cut at random points across writes are all saved and acknowledged",
            mistake: "the unfinished end of a recv() was dropped instead of kept for the next one",
            hint: "After cutting off complete lines, keep the rest of the buffer: the next recv() completes it.",
            run: split_and_merged,
            prologue: None,
        },
        Check {
            name: "invalid_lines",
            description: "lines that are not JSON, an array, a number, invalid UTF-8, or an object without seq get `error` and are not saved; the connection stays open",
            mistake: "a bad line must get a reply starting with `error`, must not reach the file, and must not end the connection",
            hint: "Parse first (json.loads raises ValueError, UnicodeDecodeError included); check isinstance(obj, dict) and an int seq; only then write.",
            run: invalid_lines,
            prologue: None,
        },
        Check {
            name: "resend",
            description: "a resend of saved records is acknowledged again and not saved twice",
            mistake: "no idempotence: a record whose (sender, seq) was saved is a resend (its ack was lost); save it once",
            hint: "Remember the (sender, seq) pairs you saved (a set, or each sender's highest seq); for a resend reply ok and skip the write.",
            run: resend,
            prologue: None,
        },
        Check {
            name: "kill_restart",
            description: "SIGKILL right after the acks, restart on the same file: every acknowledged record is there once, and resends are not saved again",
            mistake: "acknowledged before the record was in the file (a buffered write not yet flushed), or forgot on restart what the file already holds",
            hint: "Flush (and fsync) before replying ok; on start, read the file back and remember every (sender, seq) in it.",
            run: kill_restart,
            prologue: None,
        },
        Check {
            name: "two_senders",
            description: "two senders at once, each with its own seqs 1, 2, 3 ...: both are saved in full",
            mistake: "one connection at a time, or resends recognised by seq alone: a record is identified by sender AND seq",
            hint: "Serve each connection in a thread (or one event loop); key what you remember by (sender, seq).",
            run: two_senders,
            prologue: None,
        },
        Check {
            name: "unicode_nested",
            description: "unicode text, escapes and nested objects and arrays come back unchanged from the file",
            mistake: "bytes decoded with the wrong encoding, or only some fields saved: save the whole object, UTF-8",
            hint: "Decode as UTF-8 (json.loads on bytes does), and write the whole object: json.dumps(obj, ensure_ascii=False) encoded as UTF-8, or keep the line as it came.",
            run: unicode_nested,
            prologue: None,
        },
        Check {
            name: "idle_sender",
            description: "a sender that saves a record, then sits idle while every other check runs (7 s at least), then sends the next",
            mistake: "a socket timeout on the sender's connection (settimeout(5), set_read_timeout): a sender that pauses between records is cut off",
            hint: "Set no timeout on a sender's socket: a blocking recv() waits as long as the sender needs (or wait in select/poll).",
            run: idle_sender,
            prologue: Some(idle_sender_open),
        },
    ],
};

// ----- helpers ------------------------------------------------------------------------

/// A record of `sender` with a small seeded payload.
fn record(ctx: &mut Harness, sender: &str, seq: u64) -> Value {
    let reading = ctx.rng.range(0, 1024);
    let word = ctx.rng.word(6);
    json!({"sender": sender, "seq": seq, "sensor": "A0", "value": reading, "tag": word})
}

/// Records `from..=to` of `sender`.
fn records(ctx: &mut Harness, sender: &str, from: u64, to: u64) -> Vec<Value> {
    (from..=to).map(|q| record(ctx, sender, q)).collect()
}

/// Records as JSON Lines, compact.
fn lines(recs: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in recs {
        out.extend(serde_json::to_vec(r).unwrap_or_default());
        out.push(b'\n');
    }
    out
}

/// `ok SEQ` lines for these records, in order.
fn acks(recs: &[Value]) -> Vec<u8> {
    let mut out = String::new();
    for r in recs {
        out.push_str(&format!("ok {}\n", r["seq"]));
    }
    out.into_bytes()
}

/// A short id for a sender, seeded.
fn sender_id(ctx: &mut Harness, who: &str) -> String {
    format!("{who}-{}", ctx.rng.word(4))
}

/// Reads one reply line (up to `\n`), at most 4 KiB, within [`REPLY_TIMEOUT`].
fn read_line(s: &mut TcpStream) -> Result<Vec<u8>, (Vec<u8>, String)> {
    let until = Instant::now() + REPLY_TIMEOUT;
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while got.len() < 4096 {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err((
                got,
                format!("nothing more within {} s", REPLY_TIMEOUT.as_secs()),
            ));
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut b) {
            Ok(0) => return Err((got, "the receiver closed the connection".into())),
            Ok(_) if b[0] == b'\n' => return Ok(got),
            Ok(_) => got.push(b[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err((
                    got,
                    match e.kind() {
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                            format!("nothing more within {} s", REPLY_TIMEOUT.as_secs())
                        }
                        _ => format!("the connection failed: {e}"),
                    },
                ))
            }
        }
    }
    Ok(got)
}

/// Expects a reply line starting with `error` (for the bad line `what`).
fn expect_error(ctx: &mut Harness, name: &str, s: &mut TcpStream, what: &str) -> Outcome {
    ctx.step(format!(
        "client {name} expects a line starting with `error` ({what})"
    ));
    match read_line(s) {
        Ok(l) if l.starts_with(b"error") => Ok(()),
        Ok(l) => Err(Unmet::fail(format!(
            "client {name} sent {what} and expected `error ...` but got \"{}\"",
            escape_bytes(&l, 80)
        ))),
        Err((l, why)) => Err(Unmet::fail(format!(
            "client {name} sent {what} and expected `error ...` but got \"{}\" and then {why}",
            escape_bytes(&l, 80)
        ))),
    }
}

/// The file's records, parsed line by line; any line that is not a JSON object fails.
fn read_file(ctx: &mut Harness) -> Outcome<Vec<Value>> {
    let path = ctx.out_path();
    ctx.step(format!("the grader reads {} line by line", path.display()));
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Unmet::fail(format!(
                "there is no file at {}: save records to the file named by `--out`",
                path.display()
            )))
        }
        Err(e) => return Err(Unmet::error(format!("cannot read {}: {e}", path.display()))),
    };
    let mut out = Vec::new();
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(v) if v.is_object() => out.push(v),
            _ => {
                return Err(Unmet::fail(format!(
                    "line {} of the file is not a JSON object: \"{}\" (each record must be ONE line of JSON)",
                    i + 1,
                    escape_bytes(line, 80)
                )))
            }
        }
    }
    Ok(out)
}

/// The file must hold exactly `want`: each (sender, seq) once, with every field sent.
fn expect_file(ctx: &mut Harness, want: &[Value]) -> Outcome {
    let got = read_file(ctx)?;
    ctx.step(format!(
        "the grader expects exactly {} records in the file, each once, each field as sent",
        want.len()
    ));
    let key = |v: &Value| (v["sender"].to_string(), v["seq"].to_string());
    let mut seen = std::collections::HashMap::new();
    for (i, g) in got.iter().enumerate() {
        if let Some(first) = seen.insert(key(g), i) {
            return Err(Unmet::fail(format!(
                "record sender {} seq {} is in the file twice (lines {} and {}): a resend must not be saved again",
                g["sender"],
                g["seq"],
                first + 1,
                i + 1
            )));
        }
    }
    for w in want {
        let Some(&i) = seen.get(&key(w)) else {
            return Err(Unmet::fail(format!(
                "record sender {} seq {} was acknowledged but is not in the file ({} records there)",
                w["sender"],
                w["seq"],
                got.len()
            )));
        };
        let g = &got[i];
        for (k, v) in w.as_object().into_iter().flatten() {
            if g.get(k) != Some(v) {
                return Err(Unmet::fail(format!(
                    "record sender {} seq {}: field \"{k}\" was sent as {} but the file has {}",
                    w["sender"],
                    w["seq"],
                    v,
                    g.get(k).map_or("nothing".to_string(), Value::to_string)
                )));
            }
        }
    }
    if got.len() != want.len() {
        let extra = got
            .iter()
            .find(|g| !want.iter().any(|w| key(w) == key(g)))
            .map(|g| g.to_string())
            .unwrap_or_default();
        return Err(Unmet::fail(format!(
            "the file holds {} records but {} were sent valid; one that should not be there: {}",
            got.len(),
            want.len(),
            crate::out::escape_bytes(extra.as_bytes(), 80)
        )));
    }
    Ok(())
}

/// Sends records in one write and expects their acks.
fn send_and_ack(ctx: &mut Harness, name: &str, s: &mut TcpStream, recs: &[Value]) -> Outcome {
    ctx.send(name, s, &lines(recs))?;
    ctx.expect(name, s, &acks(recs))
}

// ----- the checks -----------------------------------------------------------------------

/// `idle_sender`'s start, right after `starts`: record 1 acked, then the connection is
/// left idle while the other checks run.
fn idle_sender_open(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let id = sender_id(ctx, "I");
    let recs = records(ctx, &id, 1, 1);
    let mut s = ctx.connect("I")?;
    send_and_ack(ctx, "I", &mut s, &recs)?;
    ctx.hold_idle("I", s, &id);
    Ok(())
}

/// `idle_sender`'s end: after 7 s idle at least, record 2 is acked.
fn idle_sender(ctx: &mut Harness) -> Outcome {
    let (mut s, id) = ctx.resume_idle("I")?;
    let recs = records(ctx, &id, 2, 2);
    let idle = IDLE.as_secs_f64();
    ctx.send("I", &mut s, &lines(&recs))
        .map_err(|_| idle_cut("I", "closed or reset the connection", idle))?;
    ctx.expect("I", &mut s, &acks(&recs))
}

fn one_record(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let id = sender_id(ctx, "A");
    let recs = records(ctx, &id, 1, 1);
    let mut a = ctx.connect("A")?;
    send_and_ack(ctx, "A", &mut a, &recs)?;
    expect_file(ctx, &recs)
}

fn many_in_one_write(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let id = sender_id(ctx, "A");
    let recs = records(ctx, &id, 1, 1000);
    let mut a = ctx.connect("A")?;
    send_and_ack(ctx, "A", &mut a, &recs)?;
    expect_file(ctx, &recs)
}

fn byte_at_a_time(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let id = sender_id(ctx, "A");
    let recs = records(ctx, &id, 1, 2);
    let mut a = ctx.connect("A")?;
    let first = lines(&recs[..1]);
    ctx.step(format!(
        "client A sends \"{}\" one byte per write, each once the receiver has read the last",
        escape_bytes(&first, 60)
    ));
    for b in &first {
        a.write_all(std::slice::from_ref(b))
            .map_err(|e| Unmet::fail(format!("client A could not send: {e}")))?;
        ctx.wait_consumed(&a);
    }
    ctx.expect("A", &mut a, &acks(&recs[..1]))?;
    // A receiver that answers every recv() sends extra replies first; this catches them.
    send_and_ack(ctx, "A", &mut a, &recs[1..])?;
    expect_file(ctx, &recs)
}

fn split_and_merged(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let id = sender_id(ctx, "A");
    let recs = records(ctx, &id, 1, 200);
    let data = lines(&recs);
    let mut a = ctx.connect("A")?;
    ctx.step(format!(
        "client A sends {} records ({} bytes) in writes of 1 to 300 bytes cut anywhere, each once the receiver has read the last",
        recs.len(),
        data.len()
    ));
    let mut at = 0;
    while at < data.len() {
        let n = ctx.rng.range(1, 301).min(data.len() - at);
        a.write_all(&data[at..at + n])
            .map_err(|e| Unmet::fail(format!("client A could not send: {e}")))?;
        at += n;
        ctx.wait_consumed(&a);
    }
    ctx.expect("A", &mut a, &acks(&recs))?;
    expect_file(ctx, &recs)
}

fn invalid_lines(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let id = sender_id(ctx, "A");
    let good = records(ctx, &id, 1, 6);
    let mut a = ctx.connect("A")?;
    let bad: [(&[u8], &str); 5] = [
        (b"hello, this is not JSON\n", "a line that is not JSON"),
        (b"[1, 2, 3]\n", "a JSON array"),
        (b"42\n", "a JSON number"),
        (
            b"{\"sender\": \"x\", \"seq\": 99, \"text\": \"\xff\xfe not UTF-8\"}\n",
            "invalid UTF-8",
        ),
        (
            b"{\"sender\": \"x\", \"text\": \"no seq here\"}\n",
            "an object without seq",
        ),
    ];
    let mut saved = Vec::new();
    for (i, (line, what)) in bad.iter().enumerate() {
        send_and_ack(ctx, "A", &mut a, &good[i..i + 1])?;
        saved.push(good[i].clone());
        ctx.send("A", &mut a, line)?;
        expect_error(ctx, "A", &mut a, what)?;
    }
    ctx.step("the same connection must still work");
    send_and_ack(ctx, "A", &mut a, &good[5..])?;
    saved.push(good[5].clone());
    expect_file(ctx, &saved)
}

fn resend(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let id = sender_id(ctx, "A");
    let recs = records(ctx, &id, 1, 6);
    let mut a = ctx.connect("A")?;
    send_and_ack(ctx, "A", &mut a, &recs[..5])?;
    ctx.step("client A resends records 3, 4 and 5 (as if their acks were lost), then sends 6");
    send_and_ack(ctx, "A", &mut a, &recs[2..])?;
    expect_file(ctx, &recs)
}

fn kill_restart(ctx: &mut Harness) -> Outcome {
    let first = ctx.start()?;
    let id = sender_id(ctx, "A");
    let recs = records(ctx, &id, 1, 210);
    let mut a = ctx.connect("A")?;
    send_and_ack(ctx, "A", &mut a, &recs[..200])?;
    ctx.step("the grader kills the receiver with SIGKILL right after the last ack");
    let how = ctx.kill(first);
    ctx.step(format!("the receiver {how}"));
    drop(a);
    expect_file(ctx, &recs[..200])?;
    ctx.step("restart the receiver on the same file");
    ctx.start().map_err(|u| {
        Unmet::fail(format!(
            "the restarted receiver did not come up: {}",
            u.message
        ))
    })?;
    let mut b = ctx.connect("A again")?;
    ctx.step("client A resends records 151 to 200 (their acks could have been lost in the crash) and sends 201 to 210");
    send_and_ack(ctx, "A again", &mut b, &recs[150..])?;
    expect_file(ctx, &recs)
}

fn two_senders(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let (ida, idb) = (sender_id(ctx, "A"), sender_id(ctx, "B"));
    let ra = records(ctx, &ida, 1, 50);
    let rb = records(ctx, &idb, 1, 50);
    let mut a = ctx.connect("A")?;
    send_and_ack(ctx, "A", &mut a, &ra[..1])?;
    ctx.step("while A stays connected, B connects and sends");
    let mut b = ctx.connect("B")?;
    send_and_ack(ctx, "B", &mut b, &rb[..1])?;
    let mut i = 1;
    while i < 50 {
        let n = ctx.rng.range(1, 8).min(50 - i);
        send_and_ack(ctx, "A", &mut a, &ra[i..i + n])?;
        send_and_ack(ctx, "B", &mut b, &rb[i..i + n])?;
        i += n;
    }
    let all: Vec<Value> = ra.into_iter().chain(rb).collect();
    expect_file(ctx, &all)
}

fn unicode_nested(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let id = sender_id(ctx, "A");
    let mut recs = vec![
        json!({"sender": id, "seq": 1, "name": "caf\u{e9} \u{2713} na\u{ef}ve \u{1f600}", "city": "M\u{fc}nchen"}),
        json!({"sender": id, "seq": 2, "nested": {"list": [1, 2.5, null, true, false, {"deep": "x\ny\"z\\"}], "empty": {}, "none": []}}),
        json!({"sender": id, "seq": 3, "text": "tab\there, quote \" backslash \\ and \u{0001}", "big": 9007199254740993u64, "neg": -17, "exp": 1.5e-7}),
    ];
    recs.push(json!({"sender": id, "seq": 4, "\u{65e5}\u{672c}": "\u{8a9e}", "k": {"\u{e9}": ["\u{e8}"]}}));
    let mut a = ctx.connect("A")?;
    // Sent as Python's json.dumps would: non-ASCII as \u escapes in the first, raw
    // UTF-8 in the rest, so both spellings are covered.
    let mut data = serde_json::to_string(&recs[0])
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                let mut b = [0u16; 2];
                c.encode_utf16(&mut b)
                    .iter()
                    .map(|u| format!("\\u{u:04x}"))
                    .collect()
            }
        })
        .collect::<String>()
        .into_bytes();
    data.push(b'\n');
    data.extend(lines(&recs[1..]));
    ctx.send("A", &mut a, &data)?;
    ctx.expect("A", &mut a, &acks(&recs))?;
    expect_file(ctx, &recs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_follow_the_records() {
        let recs = vec![
            json!({"sender": "a", "seq": 1}),
            json!({"sender": "a", "seq": 7}),
        ];
        assert_eq!(acks(&recs), b"ok 1\nok 7\n");
        assert_eq!(
            lines(&recs),
            b"{\"sender\":\"a\",\"seq\":1}\n{\"sender\":\"a\",\"seq\":7}\n"
        );
    }
}

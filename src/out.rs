//! Terminal output: printing that survives a closed pipe, colours only where they
//! belong, progress bars only on a terminal, and Markdown lessons wrapped to the width.
//!
//! Every line a lab prints goes through [`say!`]. `lab list | head -3` closes the pipe
//! early; Rust ignores SIGPIPE, so the next write fails with `BrokenPipe` (a plain
//! `println!` would panic). The rule, as in ripgrep: **the library never exits the
//! process**. A failed write is an error that travels up to `main`, which exits 0
//! quietly when a `BrokenPipe` is anywhere in the chain, as `cat` would. Travelling
//! up, instead of ending the process on the spot, lets every `Drop` on the way run:
//! temporary folders are removed, child processes killed, threads joined.
//!
//! - Code that can return an error writes `say!(..)?`.
//! - Code that cannot (an event-loop callback such as [`Handler::on_data`]) writes
//!   `say!(..).or_stop_later()`: [`say!`] has already remembered that stdout is closed
//!   ([`stdout_closed`]), every later `say!` fails at once without writing, and the
//!   loop, run with [`run_while_stdout_open`], ends at its next check and returns the
//!   error from there. Any other failure (a full disk behind `>`) loses that line only.
//!
//! [`Handler::on_data`]: crate::core::Handler::on_data

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use console::Style;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::core::{EventLoop, Handler};

/// Prints a line to stdout. Evaluates to `io::Result<()>`: the write's error, a closed
/// pipe (`BrokenPipe`) included. Never exits the process (see the module comment).
#[macro_export]
macro_rules! say {
    () => { $crate::out::write_line(format_args!("")) };
    ($($arg:tt)*) => { $crate::out::write_line(format_args!($($arg)*)) };
}

/// Set once a write to stdout failed with `BrokenPipe`: nobody reads our output any
/// more, and nobody will again (a pipe's reading end cannot be reopened). For the whole
/// process, since stdout is.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// A copy of what [`say!`] prints, while `--evidence` records a run (src/evidence/).
/// Bounded: a server left running for hours must not grow it without limit.
static RECORDING: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// The most a recording keeps (4 MiB of text); the rest is counted, not kept.
const RECORDING_MAX: usize = 4 << 20;

/// Starts keeping a copy of everything [`say!`] prints (colours removed).
pub fn record_start() {
    if let Ok(mut r) = RECORDING.lock() {
        *r = Some(String::new());
    }
}

/// Stops recording and returns what was printed since [`record_start`].
pub fn record_take() -> String {
    RECORDING
        .lock()
        .ok()
        .and_then(|mut r| r.take())
        .unwrap_or_default()
}

fn record(args: std::fmt::Arguments<'_>) {
    if let Ok(mut guard) = RECORDING.lock() {
        if let Some(r) = guard.as_mut() {
            if r.len() < RECORDING_MAX {
                r.push_str(&console::strip_ansi_codes(&args.to_string()));
                r.push('\n');
                if r.len() >= RECORDING_MAX {
                    r.push_str("... (the recording stops here: 4 MiB kept)\n");
                }
            }
        }
    }
}

/// The body of [`say!`].
pub fn write_line(args: std::fmt::Arguments<'_>) -> io::Result<()> {
    record(args);
    if stdout_closed() {
        return Err(closed_error());
    }
    let stdout = io::stdout();
    let mut lock = stdout.lock();
    lock.write_fmt(args)
        .and_then(|_| lock.write_all(b"\n"))
        .map_err(|e| {
            if e.kind() == io::ErrorKind::BrokenPipe {
                STDOUT_CLOSED.store(true, Ordering::SeqCst);
            }
            // Same kind, so `main` still recognises a closed pipe; a message that says
            // which write failed.
            io::Error::new(e.kind(), format!("writing to stdout: {e}"))
        })
}

/// True once stdout is known to be closed (see [`say!`]).
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::SeqCst)
}

/// The error a closed stdout is reported with, for code that finds [`stdout_closed`].
pub fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "writing to stdout: nobody reads it any more",
    )
}

/// What code that cannot return an error does with [`say!`]'s result.
pub trait OrStopLater {
    /// Drops the result on purpose: a closed stdout is already remembered, and the loop
    /// running this code ([`run_while_stdout_open`]) stops at its next check and
    /// returns the error. Any other failure loses this one line.
    fn or_stop_later(self);
}

impl OrStopLater for io::Result<()> {
    fn or_stop_later(self) {
        let _ = self;
    }
}

/// Runs `handler` like [`EventLoop::run`] (or [`EventLoop::run_for`] with a `limit`), and
/// also ends once stdout is closed, returning that `BrokenPipe` error: a server whose
/// log nobody reads any more stops, as it would have by dying of SIGPIPE, but through
/// its callers' `?`, so their `Drop`s run.
pub fn run_while_stdout_open<H: Handler>(
    ev: &mut EventLoop,
    handler: &mut H,
    limit: Option<Duration>,
) -> io::Result<()> {
    // How late a closed stdout may be noticed. A callback cannot stop the loop for
    // us (it may have no `Ctx` at hand), so the loop runs in slices this long; an idle
    // loop wakes 10 times a second for it, which costs nothing measurable.
    const CHECK_EVERY: Duration = Duration::from_millis(100);
    let end = limit.map(|l| Instant::now() + l);
    loop {
        let slice = end.map_or(CHECK_EVERY, |e| {
            e.saturating_duration_since(Instant::now()).min(CHECK_EVERY)
        });
        ev.run_for(handler, slice)?;
        if stdout_closed() {
            return Err(closed_error());
        }
        if ev.ctx().is_stopped() || end.is_some_and(|e| Instant::now() >= e) {
            return Ok(());
        }
    }
}

/// Decides once whether to colour output: only on a terminal, never with `NO_COLOR`
/// (https://no-color.org) or `TERM=dumb`.
pub fn init_colors() {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
        || std::env::var("TERM").is_ok_and(|t| t == "dumb");
    if no_color {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
    } else {
        if !io::stdout().is_terminal() {
            console::set_colors_enabled(false);
        }
        if !io::stderr().is_terminal() {
            console::set_colors_enabled_stderr(false);
        }
    }
}

/// Green: something worked.
pub fn good(s: impl std::fmt::Display) -> String {
    Style::new().green().apply_to(s).to_string()
}

/// Red: something failed.
pub fn bad(s: impl std::fmt::Display) -> String {
    Style::new().red().bold().apply_to(s).to_string()
}

/// Yellow: a warning or something to notice.
pub fn warn(s: impl std::fmt::Display) -> String {
    Style::new().yellow().apply_to(s).to_string()
}

/// Dim: secondary detail.
pub fn dim(s: impl std::fmt::Display) -> String {
    Style::new().dim().apply_to(s).to_string()
}

/// Bold: headings and commands to type.
pub fn bold(s: impl std::fmt::Display) -> String {
    Style::new().bold().apply_to(s).to_string()
}

/// Cyan: names of system calls and things the user types.
pub fn code(s: impl std::fmt::Display) -> String {
    Style::new().cyan().apply_to(s).to_string()
}

/// True when stdout is a terminal (progress bars, live redraws).
pub fn interactive() -> bool {
    io::stdout().is_terminal()
}

/// A progress bar on stderr for `len` steps; hidden when stderr is not a terminal, so
/// logs and CI output stay clean.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if !io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// Width to wrap text to: the terminal's, capped at 100 columns for readability; 80
/// when not on a terminal.
pub fn width() -> usize {
    if io::stdout().is_terminal() {
        let (_, cols) = console::Term::stdout().size();
        (cols as usize).clamp(40, 100)
    } else {
        80
    }
}

/// A duration given in microseconds, as every table, live screen and report prints it:
/// below 1000 us in microseconds, from 1000 us on in milliseconds, one decimal either
/// way (`56.3 us`, `142.3 ms`, never `142344.2 us`). The choice is made on the rounded
/// value, so 999.96 us reads `1.0 ms`, not `1000.0 us`. One function, so one rule.
pub fn duration_us(us: f64) -> String {
    if !us.is_finite() {
        return "-".into();
    }
    if (us.abs() * 10.0).round() < 10_000.0 {
        format!("{us:.1} us")
    } else {
        format!("{:.1} ms", us / 1000.0)
    }
}

/// Shows bytes the way a lesson wants to see them: printable ASCII as is, `\n`, `\r`,
/// `\t` escaped, anything else as `\xNN`; cut after `max` bytes with a note.
pub fn escape_bytes(b: &[u8], max: usize) -> String {
    let mut s = String::new();
    for &c in b.iter().take(max) {
        match c {
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    if b.len() > max {
        s.push_str(&format!("... ({} more bytes)", b.len() - max));
    }
    s
}

/// A demo's line of narration: who made which call, and what it returned. The server
/// and client are told apart by colour as well as by name.
pub fn narrate(who: &str, call: &str, result: &str) -> io::Result<()> {
    let who = match who {
        "server" => console::style(format!("{who:>6}")).magenta().to_string(),
        _ => console::style(format!("{who:>6}")).blue().to_string(),
    };
    crate::say!("  {who}  {:<44} {}", code(call), result)
}

/// A numbered step heading in a demo's story.
pub fn step(n: u32, title: &str) -> io::Result<()> {
    crate::say!()?;
    crate::say!("{}", bold(format!("{n}. {title}")))
}

/// A dim explanatory line under a step.
pub fn aside(text: &str) -> io::Result<()> {
    crate::say!("          {}", dim(text))
}

/// Renders the Markdown our lessons use for a terminal: headings, wrapped paragraphs,
/// lists with hanging indents, fenced code indented and never wrapped, tables as is.
pub fn render_markdown(md: &str, width: usize) -> String {
    let mut out = String::new();
    let mut para: Vec<&str> = Vec::new();
    let mut in_code = false;
    let flush = |para: &mut Vec<&str>, out: &mut String| {
        if para.is_empty() {
            return;
        }
        let text = para.join(" ");
        let (first, rest, body) = list_prefix(&text);
        wrap_into(out, body, width, &first, &rest);
        para.clear();
    };
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            flush(&mut para, &mut out);
            in_code = !in_code;
            if !in_code {
                out.push('\n');
            }
            continue;
        }
        if in_code {
            out.push_str("    ");
            out.push_str(&code(line));
            out.push('\n');
            continue;
        }
        let t = line.trim_end();
        if t.is_empty() {
            flush(&mut para, &mut out);
            out.push('\n');
        } else if let Some(h) = heading(t) {
            flush(&mut para, &mut out);
            out.push_str(&bold(h.1));
            out.push('\n');
            if h.0 <= 2 {
                let ch = if h.0 == 1 { "=" } else { "-" };
                out.push_str(&dim(ch.repeat(h.1.chars().count().min(width))));
                out.push('\n');
            }
        } else if t.starts_with('|') || t.starts_with("    ") {
            // Tables and indented blocks keep their layout.
            flush(&mut para, &mut out);
            out.push_str(t);
            out.push('\n');
        } else {
            if !para.is_empty() && is_list_item(t) {
                flush(&mut para, &mut out);
            }
            para.push(t.trim());
        }
    }
    flush(&mut para, &mut out);
    // Collapse runs of blank lines the rules above can produce.
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    out.trim_end().to_string() + "\n"
}

fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.chars().take_while(|&c| c == '#').count();
    if (1..=6).contains(&level) && line[level..].starts_with(' ') {
        Some((level, line[level..].trim()))
    } else {
        None
    }
}

fn is_list_item(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("- ")
        || t.starts_with("* ")
        || t.split_once(". ")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// For a list item, the bullet for the first line, the indent for the others, and the
/// text; for a paragraph, no bullet.
fn list_prefix(text: &str) -> (String, String, &str) {
    let t = text.trim_start();
    if let Some(rest) = t.strip_prefix("- ").or_else(|| t.strip_prefix("* ")) {
        return ("  • ".into(), "    ".into(), rest);
    }
    if let Some((n, rest)) = t.split_once(". ") {
        if !n.is_empty() && n.len() <= 3 && n.chars().all(|c| c.is_ascii_digit()) {
            let first = format!("  {n}. ");
            let indent = " ".repeat(first.chars().count());
            return (first, indent, rest);
        }
    }
    (String::new(), String::new(), t)
}

fn wrap_into(out: &mut String, text: &str, width: usize, first: &str, rest: &str) {
    let mut line = first.to_string();
    let mut len = first.chars().count();
    let mut empty = true;
    // A `code span` or *emphasis* may hold spaces: its state carries across words.
    let mut state = Inline::default();
    for word in text.split_whitespace() {
        let (shown, visible) = inline(word, &mut state);
        if !empty && len + 1 + visible > width {
            out.push_str(&line);
            out.push('\n');
            line = rest.to_string();
            len = rest.chars().count();
            empty = true;
        }
        if !empty {
            line.push(' ');
            len += 1;
        }
        line.push_str(&shown);
        len += visible;
        empty = false;
    }
    out.push_str(&line);
    out.push('\n');
}

/// Styles that stay open across words: a code span, **strong** or *emphasis* text.
#[derive(Default)]
struct Inline {
    code: bool,
    strong: bool,
    emph: bool,
}

/// Inline Markdown in one word, markers removed. Returns the styled word and its
/// visible width.
fn inline(word: &str, st: &mut Inline) -> (String, usize) {
    let mut shown = String::new();
    let mut visible = 0;
    let mut run = String::new();
    let flush = |run: &mut String, shown: &mut String, st: &Inline| {
        if run.is_empty() {
            return;
        }
        let styled = if st.code {
            code(&run)
        } else if st.strong {
            bold(&run)
        } else if st.emph {
            Style::new().underlined().apply_to(&run).to_string()
        } else {
            run.clone()
        };
        shown.push_str(&styled);
        run.clear();
    };
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                flush(&mut run, &mut shown, st);
                st.code = !st.code;
            }
            '*' if !st.code => {
                flush(&mut run, &mut shown, st);
                if chars.peek() == Some(&'*') {
                    chars.next();
                    st.strong = !st.strong;
                } else {
                    st.emph = !st.emph;
                }
            }
            _ => {
                run.push(c);
                visible += 1;
            }
        }
    }
    flush(&mut run, &mut shown, st);
    (shown, visible)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_paragraphs_and_lists() {
        console::set_colors_enabled(false);
        let md = "# Title\n\nThe quick brown fox jumps over the lazy dog again and again.\n\n- a list item that is long enough to wrap around\n- short\n\n```\nlet x = 1;\n```\n";
        let r = render_markdown(md, 30);
        assert!(r.starts_with("Title\n=====\n"), "{r}");
        for line in r.lines() {
            assert!(line.chars().count() <= 30, "too wide: {line:?}");
        }
        assert!(
            r.contains("  • a list item that is long\n    enough"),
            "{r}"
        );
        assert!(r.contains("    let x = 1;"), "{r}");
    }

    #[test]
    fn durations_switch_to_ms_at_1000_us() {
        assert_eq!(duration_us(56.04), "56.0 us");
        assert_eq!(duration_us(999.9), "999.9 us");
        assert_eq!(duration_us(999.96), "1.0 ms");
        assert_eq!(duration_us(1000.0), "1.0 ms");
        assert_eq!(duration_us(142_344.2), "142.3 ms");
        assert_eq!(duration_us(-2500.0), "-2.5 ms");
        assert_eq!(duration_us(f64::NAN), "-");
    }

    #[test]
    fn escapes_bytes() {
        assert_eq!(escape_bytes(b"hi\n\xff", 10), "hi\\n\\xff");
        assert_eq!(escape_bytes(b"abcdef", 3), "abc... (3 more bytes)");
    }
}

//! Lab 05's chat protocol: what a line from a client means, and the exact text of every
//! line the server sends. Pure functions over strings, so the whole protocol is tested
//! here without a socket; framing (finding the lines in the stream) is
//! [`crate::wire::lines`], bounded by [`MAX_LINE`].
//!
//! The protocol is plain text so that `nc HOST PORT` is a usable client:
//!
//! | a client sends | who gets what |
//! |---|---|
//! | `TEXT` | every other client: `<NICK> TEXT` |
//! | `/nick NAME` | the others: `* OLD is now NEW`; a refusal: `! nick NAME is taken` / `! invalid nick` |
//! | `/who` | the sender: `* online: a, b, c` |
//! | `/me ACTION` | every other client: `* NICK ACTION` |
//! | `/msg NICK TEXT` | only NICK: `*FROM* TEXT`; unknown: `! no such nick` |
//! | `/quit [REASON]` | the others: `* NICK left (quit)` or `(quit: REASON)`; the sender is closed |
//! | `/help` | the sender: the list of commands |
//! | `/x` (anything else) | the sender: `! unknown command /x` |
//!
//! Lines from the server start with `* ` (news), `! ` (an error for you), `<` (a
//! message) or `*NICK*` (a private message), so a client script can tell them apart.

use std::borrow::Cow;

/// Longest line a client may send, in bytes, without its newline. 4 KiB is a long
/// paragraph; it also bounds what one client can make the server hold before a newline.
pub const MAX_LINE: usize = 4096;

/// Longest nickname, in bytes (all its characters are ASCII).
pub const MAX_NICK: usize = 32;

/// What the server tells a client whose line was longer than [`MAX_LINE`].
pub const TOO_LONG: &str = "! line too long (limit 4096 bytes)";

/// The reply to a nickname that breaks the rules.
pub const INVALID_NICK: &str = "! invalid nick";

/// The reply to `/msg` for a nickname nobody has.
pub const NO_SUCH_NICK: &str = "! no such nick";

/// The reply to `/help`.
pub const HELP: &str = "* commands: /nick NAME, /who, /me ACTION, /msg NICK TEXT, /quit [REASON], /help; anything else is said to everyone";

/// One line from a client, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// A plain line to say to everyone else.
    Say(&'a str),
    /// `/nick NAME` (NAME not yet checked: see [`valid_nick`]).
    Nick(&'a str),
    /// `/who`.
    Who,
    /// `/me ACTION`.
    Me(&'a str),
    /// `/msg NICK TEXT`.
    Msg {
        /// The receiver's nickname, as typed.
        to: &'a str,
        /// The message.
        text: &'a str,
    },
    /// `/quit [REASON]`.
    Quit(Option<&'a str>),
    /// `/help`.
    Help,
    /// A command with its arguments missing: the reply says how to use it.
    Usage(&'static str),
    /// `/x` for a command we do not know; holds `/x`.
    Unknown(&'a str),
    /// An empty line: nothing to do.
    Empty,
}

/// Turns the bytes of one line into text: invalid UTF-8 becomes U+FFFD, and control
/// characters (other than tab) become U+FFFD too, so nobody can send a terminal escape
/// sequence (ESC [ 2 J clears a screen) or a bare CR that overwrites what others see.
pub fn text(line: &[u8]) -> Cow<'_, str> {
    let s = String::from_utf8_lossy(line);
    if s.chars().any(is_unsafe_control) {
        Cow::Owned(
            s.chars()
                .map(|c| if is_unsafe_control(c) { '\u{fffd}' } else { c })
                .collect(),
        )
    } else {
        s
    }
}

fn is_unsafe_control(c: char) -> bool {
    c.is_control() && c != '\t'
}

/// Parses one line (already decoded with [`text`]).
pub fn parse(line: &str) -> Command<'_> {
    let Some(rest) = line.strip_prefix('/') else {
        return if line.trim().is_empty() {
            Command::Empty
        } else {
            Command::Say(line)
        };
    };
    let (name, args) = match rest.split_once(' ') {
        Some((n, a)) => (n, a.trim()),
        None => (rest, ""),
    };
    match name {
        "nick" if args.is_empty() => Command::Usage("! usage: /nick NAME"),
        "nick" => Command::Nick(args),
        "who" => Command::Who,
        "me" if args.is_empty() => Command::Usage("! usage: /me ACTION"),
        "me" => Command::Me(args),
        "msg" => match args.split_once(' ') {
            Some((to, text)) if !text.trim().is_empty() => Command::Msg {
                to,
                text: text.trim_start(),
            },
            _ => Command::Usage("! usage: /msg NICK TEXT"),
        },
        "quit" => Command::Quit(if args.is_empty() { None } else { Some(args) }),
        "help" => Command::Help,
        _ => Command::Unknown(line.split(' ').next().unwrap_or(line)),
    }
}

/// Nickname rules: 1 to [`MAX_NICK`] characters, each a letter, digit, `_` or `-`.
pub fn valid_nick(nick: &str) -> bool {
    (1..=MAX_NICK).contains(&nick.len())
        && nick
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The key a nickname is unique by: `Alice` and `alice` are the same person.
pub fn nick_key(nick: &str) -> String {
    nick.to_ascii_lowercase()
}

// ----- what the server sends (each without its newline) ---------------------------

/// The first line a client gets.
pub fn welcome(nick: &str) -> String {
    format!("* welcome, you are {nick}; /nick NAME to change, /help for commands")
}

/// A plain line from `nick`, as the others see it.
pub fn said(nick: &str, text: &str) -> String {
    format!("<{nick}> {text}")
}

/// `/me ACTION` from `nick`.
pub fn action(nick: &str, text: &str) -> String {
    format!("* {nick} {text}")
}

/// `/msg` as its receiver sees it.
pub fn private(from: &str, text: &str) -> String {
    format!("*{from}* {text}")
}

/// A nickname change.
pub fn renamed(old: &str, new: &str) -> String {
    format!("* {old} is now {new}")
}

/// The reply to `/who`.
pub fn online<'a>(nicks: impl IntoIterator<Item = &'a str>) -> String {
    let list: Vec<&str> = nicks.into_iter().collect();
    format!("* online: {}", list.join(", "))
}

/// Someone arrived.
pub fn joined(nick: &str) -> String {
    format!("* {nick} joined")
}

/// Someone left; `reason` is `quit`, `timeout`, `too slow`, `reset`, `quit: REASON`.
pub fn left(nick: &str, reason: Option<&str>) -> String {
    match reason {
        Some(r) => format!("* {nick} left ({r})"),
        None => format!("* {nick} left"),
    }
}

/// A refused `/nick`.
pub fn nick_taken(nick: &str) -> String {
    format!("! nick {nick} is taken")
}

/// An unknown command (`cmd` includes its slash).
pub fn unknown_command(cmd: &str) -> String {
    format!("! unknown command {cmd}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_and_empty_lines() {
        assert_eq!(parse("hello there"), Command::Say("hello there"));
        assert_eq!(parse(""), Command::Empty);
        assert_eq!(parse("   "), Command::Empty);
        // A slash inside a line is just text.
        assert_eq!(parse("a/b"), Command::Say("a/b"));
    }

    #[test]
    fn every_command() {
        assert_eq!(parse("/nick bob"), Command::Nick("bob"));
        assert_eq!(parse("/nick  bob "), Command::Nick("bob"));
        assert_eq!(parse("/nick"), Command::Usage("! usage: /nick NAME"));
        assert_eq!(parse("/who"), Command::Who);
        assert_eq!(parse("/me waves"), Command::Me("waves"));
        assert_eq!(parse("/me"), Command::Usage("! usage: /me ACTION"));
        assert_eq!(
            parse("/msg bob hi there"),
            Command::Msg {
                to: "bob",
                text: "hi there"
            }
        );
        assert_eq!(parse("/msg bob"), Command::Usage("! usage: /msg NICK TEXT"));
        assert_eq!(
            parse("/msg bob   "),
            Command::Usage("! usage: /msg NICK TEXT")
        );
        assert_eq!(parse("/quit"), Command::Quit(None));
        assert_eq!(
            parse("/quit gone fishing"),
            Command::Quit(Some("gone fishing"))
        );
        assert_eq!(parse("/help"), Command::Help);
        assert_eq!(parse("/dance now"), Command::Unknown("/dance"));
        assert_eq!(parse("/"), Command::Unknown("/"));
    }

    #[test]
    fn nick_rules() {
        assert!(valid_nick("a"));
        assert!(valid_nick("Alice_99-x"));
        assert!(valid_nick(&"n".repeat(32)));
        assert!(!valid_nick(&"n".repeat(33)));
        assert!(!valid_nick(""));
        assert!(!valid_nick("two words"));
        assert!(!valid_nick("caf\u{e9}"));
        assert!(!valid_nick("<bob>"));
        assert!(!valid_nick("*"));
        assert_eq!(nick_key("Alice"), nick_key("aLICE"));
    }

    #[test]
    fn server_lines_are_exactly_the_protocol() {
        assert_eq!(
            welcome("guest1"),
            "* welcome, you are guest1; /nick NAME to change, /help for commands"
        );
        assert_eq!(said("ann", "hi"), "<ann> hi");
        assert_eq!(action("ann", "waves"), "* ann waves");
        assert_eq!(private("ann", "psst"), "*ann* psst");
        assert_eq!(renamed("guest1", "ann"), "* guest1 is now ann");
        assert_eq!(online(["a", "b", "c"]), "* online: a, b, c");
        assert_eq!(joined("ann"), "* ann joined");
        assert_eq!(left("ann", None), "* ann left");
        assert_eq!(left("ann", Some("too slow")), "* ann left (too slow)");
        assert_eq!(nick_taken("ann"), "! nick ann is taken");
        assert_eq!(unknown_command("/x"), "! unknown command /x");
        assert_eq!(
            TOO_LONG,
            format!("! line too long (limit {MAX_LINE} bytes)")
        );
    }

    #[test]
    fn invalid_utf8_and_control_characters_are_replaced() {
        assert_eq!(text(b"caf\xc3\xa9"), "caf\u{e9}");
        assert_eq!(text(b"bad \xff byte"), "bad \u{fffd} byte");
        assert_eq!(text(b"\x1b[2Jclear"), "\u{fffd}[2Jclear");
        assert_eq!(text(b"tab\tok"), "tab\tok");
        // Borrowed when nothing needed replacing: no copy on the hot path.
        assert!(matches!(text(b"plain"), Cow::Borrowed(_)));
    }
}

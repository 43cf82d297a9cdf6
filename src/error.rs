//! One error type, three exit codes: the s6/execline convention.
//!
//! * `Usage`   → 100 (bad command line, invalid profile name)
//! * `Refused` → 1   (the operation could not be done: not registered, s6 refused, timed out)
//! * `System`  → 111 (a system call failed: EACCES, ENOSPC, EROFS, …)

use std::fmt;
use std::io;
use std::path::Path;

#[derive(Debug)]
pub enum Error {
    Usage(String),
    Refused(String),
    System(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 100,
            Error::Refused(_) => 1,
            Error::System(_) => 111,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Error::Usage(m) | Error::Refused(m) | Error::System(m) => m,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// `unable to <what> <path>: <os error>` — the skarnet wording, always naming the file.
pub fn sys(what: &str, path: &Path, e: io::Error) -> Error {
    Error::System(format!(
        "unable to {} {}: {}",
        what,
        path.display(),
        os_text(&e)
    ))
}

/// The OS error text without Rust's " (os error N)" suffix.
pub fn os_text(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

pub fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(msg.into())
}

pub fn refused(msg: impl Into<String>) -> Error {
    Error::Refused(msg.into())
}

/// A value from a file anybody but root may write (a gateway's state, a
/// directory name), made safe for a line-oriented output read by root or a
/// boot log: every byte outside a small safe set becomes `\xHH`, so a value
/// can neither end the line, forge another `key=value`, nor reach a terminal
/// as an escape sequence. Values made of safe bytes come out unchanged.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    let safe = |b: u8| b.is_ascii_alphanumeric() || b"_.:@+/,-?".contains(&b);
    if s.bytes().all(safe) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if safe(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{:02x}", b));
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Print a warning in the uniform format; warnings never change the exit code.
pub fn warn(msg: impl fmt::Display) {
    eprintln!("hermes-s6: warning: {}", msg);
}

/// Write to stdout without panicking: `println!` panics (and so aborts) on
/// EPIPE or ENOSPC, and a reader that went away must never stop a boot
/// half-way. A lost line is said on stderr, once per call.
pub fn out(text: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(text.as_bytes()).and_then(|_| o.flush()) {
        warn(format_args!("unable to write to stdout: {}", os_text(&e)));
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_keeps_plain_values_and_defuses_forged_lines() {
        assert_eq!(escape("running"), "running");
        assert_eq!(escape("signal:SIG???"), "signal:SIG???");
        assert_eq!(
            escape("/opt/data/profiles/BadName"),
            "/opt/data/profiles/BadName"
        );
        let forged = "running\nprofile=admin slot=registered s6=up pid=1\u{1b}[2J";
        let e = escape(forged);
        assert!(!e.contains('\n') && !e.contains('\u{1b}') && !e.contains(' ') && !e.contains('='));
        assert_eq!(e, "running\\x0aprofile\\x3dadmin\\x20slot\\x3dregistered\\x20s6\\x3dup\\x20pid\\x3d1\\x1b[2J".replace("[", "\\x5b"));
        assert_eq!(escape("é"), "\\xc3\\xa9");
    }
}

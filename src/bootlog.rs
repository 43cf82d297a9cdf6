//! `$HERMES_HOME/logs/container-boot.log`: one line per profile per boot,
//! one shared timestamp (SPEC §3.4), rotated to `.1` at 256 KiB.

use crate::error::{sys, warn, Result};
use crate::fsutil;
use crate::json;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const FILE: &str = "container-boot.log";
pub const ROTATE_AT: u64 = 256 * 1024;

pub fn path(hermes_home: &Path) -> PathBuf {
    hermes_home.join("logs").join(FILE)
}

/// One reconciled profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub profile: String,
    pub prior_state: Option<String>,
    pub started: bool,
    pub prior_exit: &'static str,
}

impl Entry {
    pub fn action(&self) -> &'static str {
        if self.started {
            "started"
        } else {
            "registered"
        }
    }

    /// The prior intent as printed: `None`, or the value, escaped (it comes
    /// from a file the gateway writes).
    pub fn prior(&self) -> std::borrow::Cow<'_, str> {
        crate::error::escape(self.prior_state.as_deref().unwrap_or("None"))
    }

    /// The stdout line of `reconcile`.
    pub fn stdout_line(&self) -> String {
        format!(
            "reconcile: profile={} prior_state={} action={}",
            self.profile,
            self.prior(),
            self.action()
        )
    }

    /// The boot-log line.
    pub fn log_line(&self, ts: &str) -> String {
        format!(
            "{} profile={} prior_state={} action={} prior_exit={}",
            ts,
            self.profile,
            self.prior(),
            self.action(),
            self.prior_exit
        )
    }
}

/// `state/gateway.lifecycle.json` `phase`: exited → clean, running → unclean,
/// anything else (missing, corrupt, not an object) → unknown.
pub fn prior_exit(home: &Path) -> &'static str {
    let p = fsutil::join(home, "state/gateway.lifecycle.json");
    let Ok(Some(bytes)) = fsutil::read_file(&p, 1 << 20) else {
        return "unknown";
    };
    let text = String::from_utf8_lossy(&bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    match json::parse(text)
        .ok()
        .as_ref()
        .and_then(|v| v.get("phase"))
        .and_then(|v| v.as_str())
    {
        Some("exited") => "clean",
        Some("running") => "unclean",
        _ => "unknown",
    }
}

/// Append one block of lines; rotate first when the log is ≥ 256 KiB.
/// Never follows a symlink at the log, its `.1` or `logs/`.
pub fn append(hermes_home: &Path, ts: &str, entries: &[Entry]) -> Result<()> {
    let logs = hermes_home.join("logs");
    fsutil::ensure_dir(&logs, 0o755)?;
    let file = logs.join(FILE);
    if let Ok(m) = std::fs::symlink_metadata(&file) {
        if m.is_file() && m.len() >= ROTATE_AT {
            // rename(2) replaces a symlink at .1 itself, never its target.
            if let Err(e) = std::fs::rename(&file, logs.join(format!("{}.1", FILE))) {
                warn(format_args!("unable to rotate {}: {}", file.display(), e));
            }
        }
    }
    let mut block = String::new();
    for e in entries {
        block.push_str(&e.log_line(ts));
        block.push('\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&file)
        .map_err(|e| sys("open", &file, e))?;
    let m = f.metadata().map_err(|e| sys("stat", &file, e))?;
    if !m.is_file() {
        return Err(crate::error::refused(format!(
            "{} is not a regular file",
            file.display()
        )));
    }
    // One write: concurrent appenders never interleave inside a block.
    f.write_all(block.as_bytes())
        .map_err(|e| sys("write", &file, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(p: &str, s: Option<&str>, started: bool, x: &'static str) -> Entry {
        Entry {
            profile: p.into(),
            prior_state: s.map(Into::into),
            started,
            prior_exit: x,
        }
    }

    #[test]
    fn log_line_matches_the_upstream_format() {
        let ts = "2026-08-01T10:00:00+0000";
        assert_eq!(
            e("default", Some("running"), true, "unclean").log_line(ts),
            "2026-08-01T10:00:00+0000 profile=default prior_state=running action=started prior_exit=unclean"
        );
        assert_eq!(
            e("writer", None, false, "unknown").log_line(ts),
            "2026-08-01T10:00:00+0000 profile=writer prior_state=None action=registered prior_exit=unknown"
        );
    }

    #[test]
    fn stdout_line_has_no_prior_exit() {
        assert_eq!(
            e("coder", Some("stopped"), false, "clean").stdout_line(),
            "reconcile: profile=coder prior_state=stopped action=registered"
        );
    }
}

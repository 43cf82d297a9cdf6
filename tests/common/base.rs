//! What every helper module of the tests needs, written once: `tests/common`
//! (the live-s6 fixture) includes it as `base`, `tests/robust_util` (the
//! robustness suite) by path.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_hermes-s6");

pub fn is_root() -> bool {
    // SAFETY: geteuid has no failure mode.
    unsafe { libc::geteuid() == 0 }
}

/// Poll `cond` every `step` until it is true (true) or `timeout` has passed (false).
pub fn poll_every(timeout: Duration, step: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(step);
    }
}

/// [`poll_every`] 2 ms.
pub fn poll(timeout: Duration, cond: impl FnMut() -> bool) -> bool {
    poll_every(timeout, Duration::from_millis(2), cond)
}

/// A pid that is certainly dead right now (a reaped child of ours).
pub fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

/// An s6 tool from the usual places, if installed.
pub fn s6_tool(name: &str) -> Option<PathBuf> {
    ["/command", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

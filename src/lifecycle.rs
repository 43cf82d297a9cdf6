//! `run` and `finish`: what the slot's scripts call around the gateway.
//!
//! The decision table of SPEC §3.3 lives in [`classify`] and nowhere else; the
//! crash-loop tally in [`Tally`]. `run` writes the run-intent *before* exec so
//! that correctness never depends on `finish` running (at container shutdown
//! finish scripts may be killed).

use crate::clock;
use crate::error::{warn, Error, Result};
use crate::fsutil;
use crate::marker;
use crate::procfs;
use crate::profile::{self, Config};
use crate::state;
use std::path::{Path, PathBuf};

/// finish's exit code that tells s6-supervise "do not restart" (servicedir(7)).
pub const NO_RESTART: i32 = 125;
/// sysexits EX_TEMPFAIL: the gateway asks to be restarted.
pub const EXIT_RESTART: i32 = 75;
/// sysexits EX_CONFIG: fatal configuration, do not respawn.
pub const EXIT_CONFIG: i32 = 78;

/// Crash loop: the 5th death within 60 s, each run having lived < 10 s.
pub const LOOP_DEATHS: usize = 5;
pub const LOOP_WINDOW_SECS: i64 = 60;
pub const LOOP_SHORT_RUN_SECS: i64 = 10;

/// Why the gateway died, as far as finish can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    OperatorStop,
    OperatorRestart,
    /// Killed by a signal with no marker: container stop, OOM kill, `kill`.
    Signal,
    /// Exit code other than 0, 75, 78, no marker.
    Crash,
    /// Exit 75: the gateway asked to be restarted.
    GatewayRestart,
    /// Exit 78: fatal configuration.
    FatalConfig,
    /// Exit 0 with no marker.
    CleanExit,
    /// Exit 0 with no marker under `HERMES_GATEWAY_CLEAN_EXIT=restart`.
    CleanExitRespawn,
    /// Too many short runs in a row.
    CrashLoop,
}

/// What finish persists and returns to s6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub cause: Cause,
    pub gateway_state: &'static str,
    pub exit_reason: &'static str,
    pub exit: i32,
}

impl Cause {
    /// Would s6 respawn the gateway after this death? Only these count
    /// towards the crash-loop tally.
    pub fn respawns(self) -> bool {
        matches!(
            self,
            Cause::Signal | Cause::Crash | Cause::GatewayRestart | Cause::CleanExitRespawn
        )
    }

    pub fn verdict(self) -> Verdict {
        let (gateway_state, exit_reason, exit) = match self {
            Cause::OperatorStop => ("stopped", "operator_stop", 0),
            Cause::OperatorRestart => ("stopped", "operator_restart", 0),
            Cause::Signal => ("running", "signal", 0),
            Cause::Crash => ("running", "crash", 0),
            Cause::GatewayRestart => ("stopped", "restart_requested", 0),
            Cause::FatalConfig => ("startup_failed", "fatal_config", NO_RESTART),
            Cause::CleanExit => ("stopped", "clean_exit", NO_RESTART),
            Cause::CleanExitRespawn => ("running", "clean_exit", 0),
            Cause::CrashLoop => ("startup_failed", "crash_loop", NO_RESTART),
        };
        Verdict {
            cause: self,
            gateway_state,
            exit_reason,
            exit,
        }
    }
}

/// SPEC §3.3, one row per arm. `code` is 256 when the gateway was killed by
/// a signal; `marker_action` is the action of a *matching* marker
/// (`Some(None)` = plain stop); `looping` says the tally reached the limit.
pub fn classify(
    code: i32,
    marker_action: Option<Option<&str>>,
    clean_exit_restarts: bool,
    looping: bool,
) -> Verdict {
    let cause = match marker_action {
        Some(Some("restart")) => Cause::OperatorRestart,
        Some(_) => Cause::OperatorStop,
        None => match code {
            256 => Cause::Signal,
            EXIT_CONFIG => Cause::FatalConfig,
            EXIT_RESTART => Cause::GatewayRestart,
            0 if clean_exit_restarts => Cause::CleanExitRespawn,
            0 => Cause::CleanExit,
            _ => Cause::Crash,
        },
    };
    if looping && cause.respawns() {
        return Cause::CrashLoop.verdict();
    }
    cause.verdict()
}

/// Death tally for the crash-loop rule: `data/deaths` in the slot, one line
/// `DEATH_UNIX` per short-lived death (a long run empties it). The slot is rebuilt at every
/// boot and `start`/`restart` delete the file, which clears the count.
pub struct Tally;

impl Tally {
    pub fn path(slot: &Path) -> PathBuf {
        slot.join("data").join("deaths")
    }

    /// Pure part: given the previous recorded deaths, the time of this death
    /// and how long the run lived, return the new list and whether it loops.
    pub fn next(prev: &[i64], now: i64, lived: Option<i64>) -> (Vec<i64>, bool) {
        match lived {
            // A healthy run breaks the sequence.
            Some(l) if l >= LOOP_SHORT_RUN_SECS => (Vec::new(), false),
            _ => {
                let mut v: Vec<i64> = prev
                    .iter()
                    .copied()
                    .filter(|&t| t <= now && now - t < LOOP_WINDOW_SECS)
                    .collect();
                v.push(now);
                let looping = v.len() >= LOOP_DEATHS;
                (v, looping)
            }
        }
    }

    pub fn parse(text: &str) -> Vec<i64> {
        text.split_ascii_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect()
    }

    /// Record one death; returns whether the gateway is crash-looping.
    /// A tally that cannot be read or written only disables the rule (warn).
    pub fn record(slot: &Path, now: i64, lived: Option<i64>) -> bool {
        let path = Self::path(slot);
        let prev = match fsutil::read_file(&path, 4096) {
            Ok(Some(b)) => Self::parse(&String::from_utf8_lossy(&b)),
            Ok(None) => Vec::new(),
            Err(e) => {
                warn(format_args!("{}", e));
                Vec::new()
            }
        };
        let (list, looping) = Self::next(&prev, now, lived);
        let mut out = String::new();
        for t in &list {
            out.push_str(&t.to_string());
            out.push('\n');
        }
        if let Err(e) = fsutil::write_atomic(&path, out.as_bytes(), 0o644) {
            warn(format_args!("{}", e));
        }
        looping
    }

    pub fn clear(slot: &Path) -> Result<()> {
        fsutil::remove_file(&Self::path(slot)).map(|_| ())
    }
}

/// `hermes-s6 run P [-- CMD…]`: record the run-intent, pid and start time,
/// then exec the gateway so that the pid s6 supervises is the gateway's.
/// Returns only on failure.
pub fn run(cfg: &Config, p: &str, argv: Vec<String>) -> Result<()> {
    profile::validate(p)?;
    profile::drop_privileges(cfg)?;
    let argv = if argv.is_empty() {
        cfg.gateway_argv(p)
    } else {
        argv
    };
    if argv.is_empty() {
        return Err(Error::Usage(format!(
            "empty gateway command for profile '{}'",
            p
        )));
    }
    let home = cfg.home(p);
    let pid = std::process::id();
    let start = procfs::start_time(pid).ok();
    // The intent must be on disk before the gateway exists; a state that
    // cannot be written must not keep the gateway from running, though.
    let rec = state::update(&home, |s| {
        if s.desired_state().is_none() {
            s.set_str("desired_state", "running");
        }
        s.set_str("gateway_state", "running");
        s.set_u64("pid", pid as u64);
        match start {
            Some(t) => s.set_u64("start_time", t),
            None => {
                s.remove("start_time");
            }
        }
        s.remove("exit_reason");
    });
    if let Err(e) = rec {
        warn(format_args!(
            "profile '{}': run-intent not recorded: {}",
            p,
            e.message()
        ));
    }
    let port = profile::port(p).to_string();
    // SPEC §1: HOME is $HERMES_HOME for every profile (as upstream's `export
    // HOME=/opt/data`); the profile is selected by HERMES_PROFILE / `-p`.
    std::env::set_var("HOME", &cfg.hermes_home);
    std::env::set_var("HERMES_PROFILE", p);
    std::env::set_var("HERMES_GATEWAY_PORT", port);
    std::env::set_var("HERMES_S6_SUPERVISED_CHILD", "1");
    std::env::set_var("HERMES_SUPERVISED_CHILD", "1");
    if let Err(e) = std::env::set_current_dir(&home) {
        warn(format_args!(
            "unable to chdir to {}: {}",
            home.display(),
            crate::error::os_text(&e)
        ));
    }
    Err(exec(&argv))
}

/// Seconds a process lived, from its start time in clock ticks since boot
/// (what `run` recorded) and the boot time in /proc/stat.
fn lived_secs(start_ticks: u64, now: i64) -> Option<i64> {
    let stat = fsutil::read_file(Path::new("/proc/stat"), 1 << 20).ok()??;
    let text = String::from_utf8_lossy(&stat);
    let btime: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return None;
    }
    let started = btime + (start_ticks / hz as u64) as i64;
    Some(now - started)
}

/// `hermes-s6 log P`: the slot's logger. s6-log into
/// `$HERMES_HOME/logs/gateways/P` (10 archives of 1 MB, ISO-8601 stamps, and
/// a copy on stdout for `docker logs`), as the hermes user.
pub fn log(cfg: &Config, p: &str) -> Result<()> {
    profile::validate(p)?;
    profile::drop_privileges(cfg)?;
    let logs = cfg.hermes_home.join("logs");
    let dir = logs.join("gateways").join(p);
    fsutil::ensure_dir(&logs, 0o755)?;
    fsutil::ensure_dir(&logs.join("gateways"), 0o755)?;
    fsutil::ensure_dir(&dir, 0o755)?;
    // A stale s6-log lock on a bind mount would keep the logger down (upstream #41712).
    let _ = fsutil::remove_file(&dir.join("lock"));
    let argv: Vec<String> = vec![
        cfg.tool("s6-log").display().to_string(),
        "-b".into(),
        "--".into(),
        "1".into(),
        "n10".into(),
        "s1000000".into(),
        "T".into(),
        dir.display().to_string(),
    ];
    Err(exec(&argv))
}

/// execvp; returns the error (the caller exits 111, a failed system call).
pub fn exec(argv: &[String]) -> Error {
    use std::os::unix::process::CommandExt;
    let e = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
    Error::System(format!(
        "unable to exec {}: {}",
        argv[0],
        crate::error::os_text(&e)
    ))
}

/// The slot finish runs in: its working directory (s6 runs finish in the
/// service directory, which s6-overlay's shutdown may have renamed to a
/// dot-name), else `$SCANDIR/gateway-P`.
fn own_slot(cfg: &Config, p: &str) -> PathBuf {
    let want = format!("{}{}", crate::slot::PREFIX, p);
    match std::env::current_dir() {
        Ok(cwd)
            if cwd.join("data").is_dir()
                && cwd.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n == want
                        || n.ends_with(&format!("-{}", want))
                        || n.starts_with(&format!(".{}", want))
                }) =>
        {
            cwd
        }
        _ => cfg.slot_dir(p),
    }
}

/// `hermes-s6 finish P CODE SIGNAL`: classify, persist, return the exit code.
pub fn finish(cfg: &Config, p: &str, code: i32, _signal: i32) -> Result<i32> {
    profile::validate(p)?;
    profile::drop_privileges(cfg)?;
    let home = cfg.home(p);
    let (now, _) = clock::now();
    // Identity of the dead gateway: what `run` recorded (supervise/status
    // holds finish's own pid by now).
    let st = state::load(&home).unwrap_or_else(|e| {
        warn(format_args!("{}", e));
        None
    });
    let dead_pid = st.as_ref().and_then(|s| s.pid());
    let dead_start = st.as_ref().and_then(|s| s.start_time());
    // The home marker (the gateway may have consumed it already) and the
    // slot's copy (ops::mark); both are always deleted once read.
    let mut m = None;
    let slot = own_slot(cfg, p);
    for dir in [home.clone(), slot.join("data")] {
        match marker::consume(&dir, dead_pid, dead_start, now) {
            Ok(found) => m = m.or(found),
            Err(e) => warn(format_args!("{}", e)),
        }
    }
    let action = m.as_ref().map(|m| m.action.as_deref());
    let clean_restart = std::env::var("HERMES_GATEWAY_CLEAN_EXIT").is_ok_and(|v| v == "restart");
    let first = classify(code, action, clean_restart, false);
    let verdict = if first.cause.respawns() {
        let lived = dead_start.and_then(|t| lived_secs(t, now));
        let looping = Tally::record(&slot, now, lived);
        classify(code, action, clean_restart, looping)
    } else {
        first
    };
    state::update(&home, |s| {
        s.set_str("gateway_state", verdict.gateway_state);
        s.set_str("exit_reason", verdict.exit_reason);
    })?;
    if verdict.exit == NO_RESTART {
        eprintln!(
            "hermes-s6: profile '{}': gateway parked ({}), not restarting",
            p, verdict.exit_reason
        );
    }
    Ok(verdict.exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(code: i32, marker: Option<Option<&str>>) -> (&'static str, i32) {
        let v = classify(code, marker, false, false);
        (v.gateway_state, v.exit)
    }

    #[test]
    fn operator_stop_with_matching_marker_is_stopped_exit_0() {
        assert_eq!(row(256, Some(None)), ("stopped", 0));
        assert_eq!(row(0, Some(None)), ("stopped", 0));
    }

    #[test]
    fn operator_restart_marker_is_stopped_exit_0() {
        assert_eq!(row(256, Some(Some("restart"))), ("stopped", 0));
        assert_eq!(
            classify(256, Some(Some("restart")), false, false).cause,
            Cause::OperatorRestart
        );
    }

    #[test]
    fn signal_death_without_marker_keeps_run_intent() {
        assert_eq!(row(256, None), ("running", 0));
    }

    #[test]
    fn crash_keeps_run_intent_and_respawns() {
        assert_eq!(row(1, None), ("running", 0));
        assert_eq!(row(3, None), ("running", 0));
        assert_eq!(row(255, None), ("running", 0));
    }

    #[test]
    fn exit_75_is_a_gateway_requested_restart() {
        assert_eq!(row(75, None), ("stopped", 0));
    }

    #[test]
    fn exit_78_parks_as_startup_failed() {
        assert_eq!(row(78, None), ("startup_failed", 125));
    }

    #[test]
    fn clean_exit_without_marker_parks_as_stopped() {
        assert_eq!(row(0, None), ("stopped", 125));
    }

    #[test]
    fn clean_exit_respawns_under_clean_exit_restart() {
        let v = classify(0, None, true, false);
        assert_eq!((v.gateway_state, v.exit), ("running", 0));
    }

    #[test]
    fn crash_loop_parks_as_startup_failed() {
        for code in [1, 256, 75] {
            let v = classify(code, None, false, true);
            assert_eq!((v.gateway_state, v.exit), ("startup_failed", 125));
        }
    }

    #[test]
    fn crash_loop_never_overrides_an_operator_stop_or_a_parked_exit() {
        assert_eq!(
            classify(256, Some(None), false, true).cause,
            Cause::OperatorStop
        );
        assert_eq!(classify(78, None, false, true).cause, Cause::FatalConfig);
        assert_eq!(classify(0, None, false, true).cause, Cause::CleanExit);
    }

    #[test]
    fn fifth_short_death_within_60s_is_a_loop() {
        let mut t = Vec::new();
        for i in 0..4 {
            let (n, l) = Tally::next(&t, 1000 + i, Some(1));
            assert!(!l, "death {} must not loop yet", i + 1);
            t = n;
        }
        assert!(Tally::next(&t, 1004, Some(1)).1);
    }

    #[test]
    fn deaths_older_than_the_window_do_not_count() {
        let t = vec![1000, 1001, 1002, 1003];
        assert!(!Tally::next(&t, 1062, Some(1)).1);
        assert!(Tally::next(&t, 1059, Some(1)).1);
    }

    #[test]
    fn a_run_that_lived_10s_clears_the_tally() {
        let t = vec![1000, 1001, 1002, 1003];
        let (n, l) = Tally::next(&t, 1004, Some(10));
        assert!(!l);
        assert!(n.is_empty());
    }

    #[test]
    fn unknown_lifetime_counts_as_short() {
        let t = vec![1000, 1001, 1002, 1003];
        assert!(Tally::next(&t, 1004, None).1);
    }

    #[test]
    fn tally_parse_ignores_garbage() {
        assert_eq!(Tally::parse("1\nx\n2 -3\n"), vec![1, 2, -3]);
    }
}

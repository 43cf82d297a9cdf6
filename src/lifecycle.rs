//! `run` and `finish`: what the slot's scripts call around the gateway.
//!
//! The decision table of SPEC §3.3 lives in [`classify`] and nowhere else; the
//! crash-loop tally in [`Tally`]. `run` writes the run-intent *before* exec so
//! that correctness never depends on `finish` running (at container shutdown
//! finish scripts may be killed).

use crate::clock;
use crate::error::{warn, Error, Result};
use crate::fsutil;
use crate::lease;
use crate::marker;
use crate::procfs;
use crate::profile::{self, Config, Profile};
use crate::ready::{self, Readiness};
use crate::state::{self, State};
use std::path::{Path, PathBuf};

/// The hermes gateway's pid file in its home (never `gateway.lock`, a flock).
pub const PID_FILE: &str = "gateway.pid";

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
    /// Killed by a signal with no marker: OOM kill, `kill`.
    Signal,
    /// Died, no marker, after the supervisor was told to bring it down (container
    /// stop, a raw `s6-svc -d`): not the gateway's decision, so not a crash
    /// and not a deliberate exit either.
    Shutdown,
    /// Exit code other than 0, 75, 78, no marker.
    Crash,
    /// A crash or signal death of a gateway that reports readiness, before it did.
    StartupFailure,
    /// Exit 75: the gateway asked to be restarted.
    GatewayRestart,
    /// Exit 78: fatal configuration.
    FatalConfig,
    /// Exit 0 with no marker.
    CleanExit,
    /// Exit 0 with no marker under `HERMES_GATEWAY_CLEAN_EXIT=restart`.
    CleanExitRespawn,
    /// Too many startup failures (or short runs) in a row.
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
            Cause::Signal
                | Cause::Crash
                | Cause::StartupFailure
                | Cause::GatewayRestart
                | Cause::CleanExitRespawn
        )
    }

    pub fn verdict(self) -> Verdict {
        let (gateway_state, exit_reason, exit) = match self {
            Cause::OperatorStop => ("stopped", "operator_stop", 0),
            Cause::OperatorRestart => ("stopped", "operator_restart", 0),
            Cause::Signal => ("running", "signal", 0),
            Cause::Shutdown => ("running", "shutdown", 0),
            Cause::Crash => ("running", "crash", 0),
            // Still trying: never called running before it said so itself.
            Cause::StartupFailure => ("starting", "startup_failure", 0),
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

/// The facts finish has about one death, besides the exit code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Death<'a> {
    /// The action of a *matching* marker (`Some(None)` = plain stop).
    pub marker_action: Option<Option<&'a str>>,
    /// `HERMES_GATEWAY_CLEAN_EXIT=restart`.
    pub clean_exit_restarts: bool,
    /// s6 wanted the service down when it died (`supervise/status`).
    pub wanted_down: bool,
    /// A gateway that reports readiness died before it did.
    pub never_ready: bool,
    /// The crash-loop tally reached the limit.
    pub looping: bool,
    /// The saved intent is `stopped` now.
    pub intent_stopped: bool,
}

/// SPEC §3.3, one row per arm. `code` is 256 when the gateway was killed by
/// a signal.
pub fn classify(code: i32, d: Death) -> Verdict {
    let cause = match d.marker_action {
        Some(Some("restart")) => Cause::OperatorRestart,
        Some(_) => Cause::OperatorStop,
        // A non-zero exit after s6 was asked down without a marker: it was
        // told to go (the hermes gateway exits 1; SPEC §7). Exit 0 stays a
        // deliberate exit (§3.3's table), its desired_state untouched.
        None if d.wanted_down && code != 0 => Cause::Shutdown,
        // Died before it said it was ready, however: still starting.
        None if d.never_ready && !matches!(code, 0 | EXIT_CONFIG | EXIT_RESTART) => {
            Cause::StartupFailure
        }
        None => match code {
            256 => Cause::Signal,
            EXIT_CONFIG => Cause::FatalConfig,
            EXIT_RESTART => Cause::GatewayRestart,
            0 if d.clean_exit_restarts => Cause::CleanExitRespawn,
            0 => Cause::CleanExit,
            _ => Cause::Crash,
        },
    };
    if d.looping && cause.respawns() {
        return Cause::CrashLoop.verdict();
    }
    // An operator's stop that the supervisor has not heard of yet (asked
    // from another container, or the gateway acted on the marker before the
    // signal) must stay down, not be respawned — unless a start has come
    // since (the intent says running again, s6 wants it up: respawn).
    if cause == Cause::OperatorStop && !d.wanted_down && d.intent_stopped {
        return Verdict {
            exit: NO_RESTART,
            ..cause.verdict()
        };
    }
    cause.verdict()
}

/// What finish knows of the run that ended, for the crash-loop rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// A gateway that reports readiness died before it did: a startup failure.
    NeverReady,
    /// ...or after it did: it worked, the count starts again.
    WasReady,
    /// A gateway that never reports readiness lived this long (None: unknown).
    Lived(Option<i64>),
}

/// Death tally for the crash-loop rule (SPEC §3.3, the one place it is
/// decided): `data/deaths` in the slot, one line `DEATH_UNIX` per counted
/// death. A gateway that reports readiness is parked after LOOP_DEATHS
/// consecutive startup failures, however long each took (the hermes gateway's
/// own respawn-storm breaker sleeps up to 300 s before starting); one that
/// does not, at the LOOP_DEATHS-th death within LOOP_WINDOW_SECS, each run
/// shorter than LOOP_SHORT_RUN_SECS. The slot is rebuilt at every boot and
/// `start`/`restart` delete the file, which clears the count.
pub struct Tally;

impl Tally {
    pub fn path(slot: &Path) -> PathBuf {
        slot.join("data").join("deaths")
    }

    /// Pure part: given the previous recorded deaths, the time of this death
    /// and what is known of the run, return the new list and whether it loops.
    pub fn next(prev: &[i64], now: i64, run: Run) -> (Vec<i64>, bool) {
        let mut v: Vec<i64> = match run {
            // A working run breaks the sequence.
            Run::WasReady => return (Vec::new(), false),
            Run::Lived(Some(l)) if l >= LOOP_SHORT_RUN_SECS => return (Vec::new(), false),
            Run::NeverReady => prev.to_vec(),
            Run::Lived(_) => prev
                .iter()
                .copied()
                .filter(|&t| t <= now && now.saturating_sub(t) < LOOP_WINDOW_SECS)
                .collect(),
        };
        // Only the last few matter: a corrupt or endless file stays bounded.
        let keep = v.len().saturating_sub(LOOP_DEATHS - 1);
        v.drain(..keep);
        v.push(now);
        let looping = v.len() >= LOOP_DEATHS;
        (v, looping)
    }

    pub fn parse(text: &str) -> Vec<i64> {
        text.split_ascii_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect()
    }

    /// Record one death; returns whether the gateway is crash-looping.
    /// A tally that cannot be read or written only disables the rule (warn).
    pub fn record(slot: &Path, now: i64, run: Run) -> bool {
        let path = Self::path(slot);
        let prev = match fsutil::read_file(&path, 4096) {
            Ok(Some(b)) => Self::parse(&String::from_utf8_lossy(&b)),
            Ok(None) => Vec::new(),
            Err(e) => {
                warn(format_args!("{}", e));
                Vec::new()
            }
        };
        let (list, looping) = Self::next(&prev, now, run);
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
pub fn run(cfg: &Config, p: &Profile, argv: Vec<String>) -> Result<()> {
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
    let slot_mode = Readiness::from_env();
    let mode = slot_mode.unwrap_or_else(|| cfg.readiness(argv.first().map(String::as_str)));
    let home = cfg.home(p);
    // A deleted profile's slot must not respawn its gateway forever: say it
    // once; finish parks the slot.
    if !cfg.is_real(p) {
        return Err(cfg.gone(p));
    }
    // One gateway per profile across containers (SPEC §8): while another
    // container's gateway holds the lease, this run stands by, writing
    // nothing into the home.
    let slot = own_slot(cfg, p);
    let mut lease = lease::take_or_stand_by(cfg, p, &slot)?;
    let pid = std::process::id();
    let start = procfs::start_time(pid).ok();
    if let Some(l) = lease.as_mut() {
        if let Err(e) = l.publish(&lease::Holder::me(pid, start)) {
            warn(format_args!("profile '{}': {}", p, e.message()));
        }
    }
    // The intent must be on disk before the gateway exists; a state that
    // cannot be written must not keep the gateway from running, though.
    // A gateway that reports readiness is `starting` until it says otherwise.
    let rec = state::update(&home, |s| {
        if s.desired_state().is_none() {
            s.set_str("desired_state", "running");
        }
        let gs = if mode == Readiness::State {
            "starting"
        } else {
            "running"
        };
        s.set_str("gateway_state", gs);
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
    clear_stale_pidfile(&home, pid);
    gateway_env(cfg, p);
    if let Err(e) = std::env::set_current_dir(&home) {
        warn(format_args!(
            "unable to chdir to {}: {}",
            home.display(),
            crate::error::os_text(&e)
        ));
    }
    // Only a slot built for it hands us the notification fd; every slot's
    // gateway is watched (deletion, another container's stop or restart).
    let watch = ready::Watch {
        cfg,
        profile: p,
        slot: &slot,
        notify: (slot_mode == Some(Readiness::State)).then_some(ready::NOTIFY_FD),
        lease_fd: lease.as_ref().map(lease::Lease::raw_fd),
    };
    if slot_mode.is_some() {
        ready::spawn_watcher(&watch);
    }
    // The gateway itself holds the lease from here on.
    if let Some(l) = lease {
        if let Err(e) = l.hand_to_exec() {
            warn(format_args!("profile '{}': {}", p, e.message()));
        }
    }
    Err(exec(&argv))
}

/// The gateway's environment (SPEC §1, §7), on top of the container's.
fn gateway_env(cfg: &Config, p: &str) {
    let port = profile::port(p).to_string();
    // HOME is $HERMES_HOME for every profile (as upstream's `export
    // HOME=/opt/data`); the profile is selected by HERMES_PROFILE / `-p`.
    std::env::set_var("HOME", &cfg.hermes_home);
    std::env::set_var("HERMES_PROFILE", p);
    std::env::set_var("HERMES_GATEWAY_PORT", &port);
    std::env::set_var("HERMES_S6_SUPERVISED_CHILD", "1");
    std::env::set_var("HERMES_SUPERVISED_CHILD", "1");
    // Every profile's API server would bind upstream's 8642: a named profile
    // gets its own port, which its `.env` still overrides (the gateway loads
    // it over the process environment); a container-wide value is default's.
    if p != profile::DEFAULT {
        std::env::set_var("API_SERVER_PORT", &port);
    }
    // Lines in the log when they happen, not at exit.
    if std::env::var_os("PYTHONUNBUFFERED").is_none() {
        std::env::set_var("PYTHONUNBUFFERED", "1");
    }
}

/// The hermes gateway refuses to start while `gateway.pid` exists and names
/// anything but a live other process ("PID file race lost", forever, after a
/// kill -9, an OOM kill or a timeout-kill: SPEC §7). The file left by a dead
/// gateway, or naming this very process, goes before the exec; one naming a
/// live gateway stays (`--replace` deals with it).
fn clear_stale_pidfile(home: &Path, me: u32) {
    let path = home.join(PID_FILE);
    let bytes = match fsutil::read_file(&path, 64 * 1024) {
        Ok(Some(b)) => b,
        Ok(None) => return,
        Err(e) => return warn(e),
    };
    if pidfile_is_stale(&String::from_utf8_lossy(&bytes), me, |pid| {
        procfs::start_time(pid).ok()
    }) {
        if let Err(e) = fsutil::remove_file(&path) {
            warn(e);
        }
    }
}

/// `gateway.pid` as the gateway writes it: `{"pid":N,"start_time":T,…}`, or
/// a bare pid. Stale unless it names a live process other than `me` (whose
/// start time, when recorded, still matches).
pub fn pidfile_is_stale(text: &str, me: u32, start_of: impl Fn(u32) -> Option<u64>) -> bool {
    let (pid, recorded) = match State::parse(text) {
        Ok(st) => (st.pid(), st.start_time()),
        Err(_) => (text.trim().parse::<u32>().ok(), None),
    };
    let Some(pid) = pid.filter(|&p| p != 0 && p != me) else {
        return true;
    };
    match (start_of(pid), recorded) {
        (None, _) => true,
        (Some(live), Some(rec)) => live != rec,
        (Some(_), None) => false,
    }
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
    let hz = crate::sys::clk_tck()?;
    let started = btime + (start_ticks / hz) as i64;
    Some(now - started)
}

/// `hermes-s6 log P`: the slot's logger. s6-log into
/// `$HERMES_HOME/logs/gateways/P` (10 archives of 1 MB, ISO-8601 stamps, and
/// a copy on stdout for `docker logs`), as the hermes user.
///
/// One writer per log directory (SPEC §8): the logger holds `writer.lock` in
/// the directory for its whole life (the fd goes to s6-log), and a logger
/// that finds it held — another container's, on the same volume — writes
/// `logs/gateways/P@HOST` instead (then `P@HOST-NS` should the host name be
/// shared too). s6-log's own `lock` is never deleted: a flock is never stale,
/// and deleting it is what once let two s6-logs write one directory.
pub fn log(cfg: &Config, p: &Profile) -> Result<()> {
    profile::drop_privileges(cfg)?;
    let logs = cfg.hermes_home.join("logs");
    let gateways = logs.join("gateways");
    fsutil::ensure_dir(&logs, 0o755)?;
    fsutil::ensure_dir(&gateways, 0o755)?;
    let host = log_host();
    let ns = lease::node();
    let ns = ns.rsplit('/').next().unwrap_or("");
    let names = [
        p.to_string(),
        format!("{}@{}", p, host),
        format!("{}@{}-{}", p, host, ns),
    ];
    let mut i = 0;
    let dir = loop {
        let dir = gateways.join(&names[i]);
        fsutil::ensure_dir(&dir, 0o755)?;
        if let Some(f) = fsutil::try_lock(&dir.join(LOG_WRITER_LOCK), true)? {
            fsutil::clear_cloexec(&f)?;
            std::mem::forget(f); // s6-log's from the exec on
            break dir;
        }
        if i + 1 < names.len() {
            i += 1;
        } else {
            std::thread::sleep(lease::POLL);
        }
    };
    if i > 0 {
        eprintln!(
            "hermes-s6: profile '{}': {} has another writer (another container's logger): logging to {}",
            p,
            gateways.join(p.as_str()).display(),
            dir.display()
        );
    }
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

/// The lock a logger holds in its log directory.
pub const LOG_WRITER_LOCK: &str = "writer.lock";

/// The host name as a file-name part: `[A-Za-z0-9._-]`, at most 64 bytes.
fn log_host() -> String {
    let h: String = lease::hostname()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if h.starts_with('.') {
        format!("_{}", h)
    } else {
        h
    }
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

/// The profile `-` stands for in the shared slot scripts (installed once in
/// lib/hermes-s6, linked from every slot): the one whose slot is the working
/// directory — s6 runs `run` and `finish` in the slot (`gateway-P`, or the
/// name s6-overlay's shutdown gives it: `.gateway-P…`, `…-gateway-P`), and
/// `log/run` in its `log/`.
pub fn profile_from_cwd(in_log: bool) -> Result<Profile> {
    let cwd = std::env::current_dir()
        .map_err(|e| crate::error::sys("read the working directory", Path::new("."), e))?;
    let dir = if in_log {
        cwd.parent().unwrap_or(&cwd)
    } else {
        &cwd
    };
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    slot_profile(name).ok_or_else(|| {
        Error::Usage(format!(
            "profile '-': {} is not a gateway slot (gateway-P)",
            crate::error::escape(&dir.display().to_string())
        ))
    })
}

/// The profile in a slot directory's name, whatever s6-overlay renamed it to.
pub fn slot_profile(name: &str) -> Option<Profile> {
    let pre = crate::slot::PREFIX;
    let rest = if let Some(r) = name.strip_prefix(pre) {
        r
    } else if let Some(r) = name.strip_prefix('.').and_then(|n| n.strip_prefix(pre)) {
        r.split('.').next()?
    } else {
        let at = name.find(&format!("-{}", pre))?;
        &name[at + 1 + pre.len()..]
    };
    Profile::parse(rest).ok()
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
pub fn finish(cfg: &Config, p: &Profile, code: i32, _signal: i32) -> Result<i32> {
    profile::drop_privileges(cfg)?;
    let home = cfg.home(p);
    // Deleted under its gateway, or before this start: nothing to persist
    // into, nothing to respawn. `status` says `health=deleted`; the next boot
    // removes the slot.
    if !cfg.is_real(p) {
        let slot = own_slot(cfg, p);
        lease::forget_standby(&slot);
        let _ = Tally::clear(&slot);
        let _ = ready::consume(&slot, None);
        warn(format_args!(
            "profile '{}': deleted ({} has no SOUL.md): gateway parked, not restarting",
            p,
            home.display()
        ));
        return Ok(NO_RESTART);
    }
    let slot = own_slot(cfg, p);
    // A run that stood by never wrote into the home: nothing to classify.
    if lease::forget_standby(&slot) {
        return Ok(0);
    }
    // The dead gateway's record is written under its lease: if another
    // container's gateway holds it already, the record is that one's now.
    let _lease = match lease::take_after_death(&home) {
        Ok(None) => {
            let who =
                lease::recorded(&home).map_or_else(|| "another container".into(), |h| h.label());
            eprintln!(
                "hermes-s6: profile '{}': its gateway now runs on {}: standing by",
                p, who
            );
            let _ = ready::consume(&slot, None);
            return Ok(0);
        }
        Ok(l) => l,
        Err(e) => {
            warn(format_args!("profile '{}': {}", p, e.message()));
            None
        }
    };
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
    for dir in [home.clone(), slot.join("data")] {
        match marker::consume(&dir, dead_pid, dead_start, now) {
            Ok(found) => m = m.or(found),
            Err(e) => warn(format_args!("{}", e)),
        }
    }
    let mut death = Death {
        marker_action: m.as_ref().map(|m| m.action.as_deref()),
        clean_exit_restarts: std::env::var("HERMES_GATEWAY_CLEAN_EXIT")
            .is_ok_and(|v| v == "restart"),
        // Asked down without a marker: a container stop or a raw `s6-svc -d`.
        wanted_down: crate::svstat::read(&slot)
            .ok()
            .flatten()
            .is_some_and(|s| !s.want_up),
        never_ready: false,
        looping: false,
        intent_stopped: st
            .as_ref()
            .is_some_and(|s| s.desired_state() == Some("stopped")),
    };
    // Always consumed, so a stale record never speaks for a later run.
    let was_ready = ready::consume(&slot, dead_pid);
    let run = match Readiness::from_env() {
        Some(Readiness::State) if was_ready => Run::WasReady,
        Some(Readiness::State) => Run::NeverReady,
        _ => Run::Lived(dead_start.and_then(|t| lived_secs(t, now))),
    };
    death.never_ready = run == Run::NeverReady;
    let mut first = classify(code, death);
    let _turn;
    if first.cause == Cause::OperatorStop && !death.wanted_down {
        // A stop s6 has not heard of (yet: its `d` may still sit in the
        // control FIFO, or it came from another container). In P's turn —
        // which `start` and `stop` hold from their intent to their signal —
        // the intent decides, and a park is said to s6 as a `d` in that same
        // turn: the FIFO keeps it before any later start's `u`, where an
        // exit 125 would override a `u` that came while finish was ending.
        // (Bounded: a command holding the turn long must not hang finish.)
        crate::fsutil::LOCK_WAIT_MS.store(2000, std::sync::atomic::Ordering::Relaxed);
        _turn = crate::slot::lock(cfg, p).ok().flatten();
        death.intent_stopped = state::desired_is(&home, "stopped");
        // told: the plain operator-stop row (exit 0, s6 keeps it down);
        // not told (no supervisor to write to): exit 125 parks it
        death.wanted_down = death.intent_stopped && crate::control::svc(&slot, "d").is_ok();
        if death.wanted_down && _turn.is_none() {
            // Without the turn nothing orders that `d` after a start's `u`:
            // a start that saved `running` meanwhile gets its `u` again.
            if state::desired_is(&home, "running") && crate::control::svc(&slot, "u").is_ok() {
                death.wanted_down = false;
                death.intent_stopped = false;
            }
        }
        first = classify(code, death);
    }
    let verdict = if first.cause.respawns() {
        death.looping = Tally::record(&slot, now, run);
        classify(code, death)
    } else {
        first
    };
    // A state that cannot be written is said, and changes nothing about
    // what s6 must do: a 111 here would turn every park into a respawn loop.
    if let Err(e) = state::update(&home, |s| {
        s.set_str("gateway_state", verdict.gateway_state);
        s.set_str("exit_reason", verdict.exit_reason);
    }) {
        warn(format_args!(
            "profile '{}': death not recorded: {}",
            p,
            e.message()
        ));
    }
    if verdict.exit == NO_RESTART {
        // a warning: s6 will not bring it back by itself
        warn(format_args!(
            "profile '{}': gateway parked ({}), not restarting",
            p, verdict.exit_reason
        ));
    }
    Ok(verdict.exit)
}

#[cfg(test)]
mod slot_name_tests {
    use super::slot_profile;

    #[test]
    fn the_profile_of_a_slot_is_read_from_any_name_s6_overlay_gives_it() {
        assert_eq!(slot_profile("gateway-coder").as_deref(), Some("coder"));
        assert_eq!(
            slot_profile("gateway-my-gateway-x").as_deref(),
            Some("my-gateway-x")
        );
        assert_eq!(
            slot_profile(".gateway-coder.412.tmp").as_deref(),
            Some("coder")
        );
        assert_eq!(
            slot_profile(".s6-shutdown-gateway-coder").as_deref(),
            Some("coder")
        );
        assert_eq!(slot_profile("log").as_deref(), None);
        assert_eq!(slot_profile("gateway-Bad").as_deref(), None);
        assert_eq!(slot_profile("gateway-").as_deref(), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(marker_action: Option<Option<&str>>) -> Death<'_> {
        Death {
            marker_action,
            ..Death::default()
        }
    }

    fn row(code: i32, marker: Option<Option<&str>>) -> (&'static str, i32) {
        let v = classify(code, marked(marker));
        (v.gateway_state, v.exit)
    }

    fn looping(marker_action: Option<Option<&str>>) -> Death<'_> {
        Death {
            marker_action,
            looping: true,
            ..Death::default()
        }
    }

    #[test]
    fn operator_stop_with_matching_marker_is_stopped_and_stays_down() {
        let down = |code| {
            let v = classify(
                code,
                Death {
                    wanted_down: true,
                    ..marked(Some(None))
                },
            );
            (v.gateway_state, v.exit)
        };
        assert_eq!(down(256), ("stopped", 0));
        assert_eq!(down(0), ("stopped", 0));
        // s6 not told yet (the stop came from another container): parked
        let unheard = |intent_stopped| {
            classify(
                0,
                Death {
                    intent_stopped,
                    ..marked(Some(None))
                },
            )
            .exit
        };
        assert_eq!(unheard(true), NO_RESTART);
        // ...unless a start came since: s6 wants it up, the intent is running
        assert_eq!(unheard(false), 0);
    }

    #[test]
    fn operator_restart_marker_is_stopped_exit_0() {
        assert_eq!(row(256, Some(Some("restart"))), ("stopped", 0));
        assert_eq!(
            classify(256, marked(Some(Some("restart")))).cause,
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
        let d = Death {
            clean_exit_restarts: true,
            ..Death::default()
        };
        let v = classify(0, d);
        assert_eq!((v.gateway_state, v.exit), ("running", 0));
    }

    #[test]
    fn crash_loop_parks_as_startup_failed() {
        for code in [1, 256, 75] {
            let v = classify(code, looping(None));
            assert_eq!((v.gateway_state, v.exit), ("startup_failed", 125));
        }
    }

    #[test]
    fn crash_loop_never_overrides_an_operator_stop_or_a_parked_exit() {
        assert_eq!(
            classify(256, looping(Some(None))).cause,
            Cause::OperatorStop
        );
        assert_eq!(classify(78, looping(None)).cause, Cause::FatalConfig);
        assert_eq!(classify(0, looping(None)).cause, Cause::CleanExit);
    }

    fn asked_down() -> Death<'static> {
        Death {
            wanted_down: true,
            ..Death::default()
        }
    }

    #[test]
    fn a_non_zero_death_after_an_unmarked_down_is_a_shutdown_not_a_crash() {
        // the hermes gateway exits 1 on a SIGTERM without a marker (SPEC §7)
        for code in [1, 2, 256, 75, 78] {
            let v = classify(code, asked_down());
            assert_eq!(v.cause, Cause::Shutdown, "code {}", code);
            assert_eq!(
                (v.gateway_state, v.exit_reason, v.exit),
                ("running", "shutdown", 0)
            );
            assert!(
                !v.cause.respawns(),
                "a shutdown never feeds the crash count"
            );
        }
    }

    #[test]
    fn exit_0_after_an_unmarked_down_is_a_deliberate_exit() {
        // SPEC §3.3: exit 0 without a marker is `stopped`, 125; §7's shutdown
        // rule is for non-zero exits
        let v = classify(0, asked_down());
        assert_eq!(
            (v.cause, v.gateway_state, v.exit),
            (Cause::CleanExit, "stopped", 125)
        );
        let d = Death {
            clean_exit_restarts: true,
            ..asked_down()
        };
        assert_eq!(classify(0, d).cause, Cause::CleanExitRespawn);
    }

    #[test]
    fn asked_down_with_a_marker_is_still_the_operator() {
        let d = Death {
            marker_action: Some(None),
            ..asked_down()
        };
        assert_eq!(classify(1, d).cause, Cause::OperatorStop);
        assert_eq!(classify(0, Death::default()).cause, Cause::CleanExit);
    }

    #[test]
    fn fifth_short_death_within_60s_is_a_loop() {
        let mut t = Vec::new();
        for i in 0..4 {
            let (n, l) = Tally::next(&t, 1000 + i, Run::Lived(Some(1)));
            assert!(!l, "death {} must not loop yet", i + 1);
            t = n;
        }
        assert!(Tally::next(&t, 1004, Run::Lived(Some(1))).1);
    }

    #[test]
    fn deaths_older_than_the_window_do_not_count() {
        let t = vec![1000, 1001, 1002, 1003];
        assert!(!Tally::next(&t, 1062, Run::Lived(Some(1))).1);
        assert!(Tally::next(&t, 1059, Run::Lived(Some(1))).1);
    }

    #[test]
    fn a_run_that_lived_10s_clears_the_tally() {
        let t = vec![1000, 1001, 1002, 1003];
        let (n, l) = Tally::next(&t, 1004, Run::Lived(Some(10)));
        assert!(!l);
        assert!(n.is_empty());
    }

    #[test]
    fn unknown_lifetime_counts_as_short() {
        let t = vec![1000, 1001, 1002, 1003];
        assert!(Tally::next(&t, 1004, Run::Lived(None)).1);
    }

    #[test]
    fn crash_before_readiness_is_a_startup_failure_never_running() {
        let d = Death {
            never_ready: true,
            ..Death::default()
        };
        let v = classify(1, d);
        assert_eq!(v.cause, Cause::StartupFailure);
        assert_eq!((v.gateway_state, v.exit), ("starting", 0));
        assert!(v.cause.respawns());
        let d = Death { looping: true, ..d };
        assert_eq!(classify(1, d).cause, Cause::CrashLoop);
        // the other rows do not change
        let d = Death {
            never_ready: true,
            ..Death::default()
        };
        assert_eq!(classify(78, d).cause, Cause::FatalConfig);
        assert_eq!(classify(75, d).cause, Cause::GatewayRestart);
        assert_eq!(classify(0, d).cause, Cause::CleanExit);
        // OOM-killed during every start: never shown running either
        assert_eq!(classify(256, d).cause, Cause::StartupFailure);
    }

    #[test]
    fn fifth_startup_failure_parks_whatever_their_duration() {
        // the hermes gateway's own breaker sleeps minutes between starts
        let mut t = Vec::new();
        for i in 0..4 {
            let (n, l) = Tally::next(&t, 1000 + i * 300, Run::NeverReady);
            assert!(!l, "failure {} must not park yet", i + 1);
            t = n;
        }
        assert!(Tally::next(&t, 3000, Run::NeverReady).1);
    }

    #[test]
    fn a_gateway_that_became_ready_resets_the_count() {
        let t = vec![1000, 1001, 1002, 1003];
        let (n, l) = Tally::next(&t, 1004, Run::WasReady);
        assert!(!l);
        assert!(n.is_empty());
        assert!(!Tally::next(&n, 1005, Run::NeverReady).1);
    }

    #[test]
    fn tally_stays_bounded_and_survives_absurd_stamps() {
        let t = vec![i64::MIN, i64::MIN, i64::MIN, i64::MIN, i64::MAX, 995, 996];
        let (n, l) = Tally::next(&t, 1000, Run::Lived(Some(1)));
        assert_eq!(
            n,
            vec![995, 996, 1000],
            "only plausible stamps in the window"
        );
        assert!(!l);
        let (n, _) = Tally::next(&t, 1000, Run::NeverReady);
        assert_eq!(n.len(), LOOP_DEATHS);
    }

    #[test]
    fn pidfile_of_a_dead_or_recycled_or_own_pid_is_stale() {
        let live = |pid: u32| (pid == 50).then_some(700);
        let j = |pid: u32, st: u64| {
            format!(
                r#"{{"pid":{},"kind":"hermes-gateway","start_time":{}}}"#,
                pid, st
            )
        };
        assert!(pidfile_is_stale(&j(51, 700), 9, live), "dead pid");
        assert!(
            pidfile_is_stale(&j(50, 699), 9, live),
            "pid recycled by another process"
        );
        assert!(
            pidfile_is_stale(&j(9, 700), 9, live),
            "names this very process (before exec)"
        );
        assert!(
            !pidfile_is_stale(&j(50, 700), 9, live),
            "a live other gateway: --replace's job"
        );
        assert!(!pidfile_is_stale("50\n", 9, live), "bare pid, alive");
        assert!(pidfile_is_stale("51", 9, live));
        assert!(pidfile_is_stale("garbage", 9, live));
        assert!(pidfile_is_stale(r#"{"pid":0}"#, 9, live));
    }

    #[test]
    fn tally_parse_ignores_garbage() {
        assert_eq!(Tally::parse("1\nx\n2 -3\n"), vec![1, 2, -3]);
    }
}

//! s6 service status, for every s6 that s6-overlay 3.x ships (2.11 → 2.15), without spawning.
//!
//! * [`is_supervised`] replicates `s6_svc_ok()` (identical from 2.11.0.0 to 2.15): open
//!   `supervise/lock` read-only and ask `fcntl(F_GETLK, F_RDLCK)` whether s6-supervise holds it.
//!   (`s6-svc` detects "supervisor not listening" differently — ENXIO on the control FIFO — but
//!   s6-svok and s6-svstat have always used the lock.)
//! * [`decode`] reads the binary `supervise/status`: 35 bytes (≤ 2.12, ≥ 2.14) or 43 bytes
//!   (2.13.x, which adds the pgid), and derives every field exactly as `s6-svstat` prints it.
//! * [`parse_o`] and [`parse_human`] read `s6-svstat -o …` and the human line (tests check them
//!   against verbatim s6 output; [`read`] uses `-o` only when the status file has an unknown size).
//!
//! Stamps are TAI64N. s6 takes them from the wall clock through skalibs' `tai_from_utc`, so the
//! label is `2^62 + UTC + 10 + leap seconds` — TAI = UTC + 37 s since 2017. [`tai_to_unix`] uses
//! today's 37 s for every stamp: stamps are recent, and durations (what `status` shows) compare two
//! TAI values converted the same way, so they are exact either way.

use crate::error::{refused, sys, Error, Result};
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// TAI64 labels are offset by 2^62 (skalibs `TAI_MAGIC`).
pub const TAI_MAGIC: u64 = 1 << 62;
/// TAI − UTC since 2017-01-01 (10 s base + 27 leap seconds); unchanged since.
pub const TAI_UTC_OFFSET: i64 = 37;

/// A TAI64N stamp as s6 stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tai {
    /// The TAI64 label (2^62 + TAI seconds).
    pub secs: u64,
    pub nanos: u32,
}

impl Tai {
    /// Unix seconds (UTC) of this stamp, see [`tai_to_unix`].
    pub fn unix(&self) -> i64 {
        tai_to_unix(self.secs)
    }

    /// `@` + 24 hex digits, as printed by `s6-svstat -o updownsince,readysince`.
    pub fn parse(s: &str) -> Option<Tai> {
        let h = s.strip_prefix('@')?;
        if h.len() != 24 || !h.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        Some(Tai {
            secs: u64::from_str_radix(h.get(..16)?, 16).ok()?,
            nanos: u32::from_str_radix(h.get(16..)?, 16).ok()?,
        })
    }

    fn unpack(b: [u8; 12]) -> Tai {
        let [s0, s1, s2, s3, s4, s5, s6, s7, n0, n1, n2, n3] = b;
        Tai {
            secs: u64::from_be_bytes([s0, s1, s2, s3, s4, s5, s6, s7]),
            nanos: u32::from_be_bytes([n0, n1, n2, n3]),
        }
    }
}

/// TAI64 label → Unix seconds: subtract 2^62 and TAI−UTC (37 s). Saturates on absurd labels.
pub fn tai_to_unix(secs_label: u64) -> i64 {
    let v = secs_label as i128 - TAI_MAGIC as i128 - TAI_UTC_OFFSET as i128;
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// The state of one supervised service, with `s6-svstat` semantics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// `run` is alive (s6: pid ≠ 0 and not finishing). Down while `finish` runs.
    pub up: bool,
    /// Pid of `run` when up, else 0 (s6-svstat prints -1). Never the pid of `finish`.
    pub pid: u64,
    /// Process group recorded by s6 2.13.x (43-byte status file) when > 0; None otherwise.
    pub pgid: Option<u64>,
    /// Raw `waitpid` status of the last `run` (None when read through `s6-svstat -o`).
    pub wstat: Option<u16>,
    /// Exit code of the last `run`; -1 when up, not started, or killed by a signal.
    pub exitcode: i32,
    /// Signal that killed the last `run`; -1 when up, not started, or it exited.
    pub signal: i32,
    /// s6 wants it up (restarts it when it dies).
    pub want_up: bool,
    /// `s6-svstat -o ready`: supervised process alive and readiness notified. Always false when
    /// down (s6's code, not its doc); a down line's ", ready N seconds" is not this.
    pub ready: bool,
    /// Stopped with `s6-svc -p` (only ever true while up, as in s6 ≥ 2.13).
    pub paused: bool,
    /// `run` is dead and `./finish` is running (not visible through `-o`: always false there).
    pub finishing: bool,
    /// s6 ≥ 2.13.2 "down (not started yet)": the supervisor never started `run`.
    pub not_started: bool,
    /// When it last went up or down.
    pub stamp: Option<Tai>,
    /// When it last became ready (or, when down, ready to be started again).
    pub ready_stamp: Option<Tai>,
    /// No `./down` file in the service directory: from `s6-svstat`'s answer in
    /// the fallback, else None ([`normally_up`] asks the directory).
    pub normally_up: Option<bool>,
}

impl Status {
    /// Seconds since the last up/down transition, as s6-svstat counts them:
    /// the difference of the two stamps, nanoseconds included, truncated (so
    /// 10.9 s is 10, where whole seconds minus whole seconds would say 11).
    /// `now` is `clock::now()`. A stamp in the future counts as 0, as in s6.
    pub fn seconds_in_state(&self, now: (i64, u32)) -> Option<i64> {
        self.stamp.map(|t| {
            let ns = |s: i64, n: u32| s as i128 * 1_000_000_000 + n as i128;
            let d = ns(now.0, now.1) - ns(t.unix(), t.nanos.min(999_999_999));
            (d.max(0) / 1_000_000_000).min(i64::MAX as i128) as i64
        })
    }
}

/// WIFEXITED / WEXITSTATUS / WIFSIGNALED / WTERMSIG on s6's 16-bit wstat.
fn wait_decode(w: u16) -> (i32, i32) {
    let low = (w & 0x7f) as i32;
    if low == 0 {
        (((w >> 8) & 0xff) as i32, -1)
    } else if low != 0x7f {
        (-1, low)
    } else {
        (-1, -1) // stopped: never a final status
    }
}

fn arr<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Decode a `supervise/status` file. None for any size other than 35 or 43 bytes.
pub fn decode(bytes: &[u8]) -> Option<Status> {
    let (wat, pgid) = match bytes.len() {
        35 => (32, None),
        43 => (40, Some(u64::from_be_bytes(arr(bytes, 32)?))),
        _ => return None,
    };
    let raw_pid = u64::from_be_bytes(arr(bytes, 24)?);
    let wstat = u16::from_be_bytes(arr(bytes, wat)?);
    let flags = *bytes.get(wat + 2)?;
    let paused_flag = flags & 1 != 0;
    let finishing = flags & 2 != 0;
    let want_up = flags & 4 != 0;
    let ready_flag = flags & 8 != 0;
    // Same predicates as s6-svstat.c (isup, notstartedyet).
    let up = raw_pid != 0 && !finishing;
    let not_started = raw_pid == 0 && !finishing && paused_flag;
    let (exitcode, signal) = if up || not_started {
        (-1, -1)
    } else {
        wait_decode(wstat)
    };
    Some(Status {
        up,
        pid: if up { raw_pid } else { 0 },
        pgid: pgid.filter(|&g| g > 0),
        wstat: Some(wstat),
        exitcode,
        signal,
        want_up,
        ready: raw_pid != 0 && ready_flag,
        paused: paused_flag && raw_pid != 0,
        finishing,
        not_started,
        stamp: Some(Tai::unpack(arr(bytes, 0)?)),
        ready_stamp: Some(Tai::unpack(arr(bytes, 12)?)),
        normally_up: None,
    })
}

/// Signal names s6 prints (skalibs `sig_name`, Linux), aliases included.
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
    // Aliases: skalibs' table lets the later name win, so s6 may print these.
    ("IOT", libc::SIGABRT),
    ("CLD", libc::SIGCHLD),
    ("POLL", libc::SIGIO),
    ("UNUSED", libc::SIGSYS),
];

/// `SIGTERM` (or `TERM`) → 15. `SIG???` (s6's unnamed signal) → 0. Unknown → None.
pub fn signal_number(name: &str) -> Option<i32> {
    let n = name.strip_prefix("SIG").unwrap_or(name);
    if n == "???" {
        return Some(0);
    }
    SIGNALS.iter().find(|(s, _)| *s == n).map(|&(_, v)| v)
}

/// 15 → `TERM` (the conventional name, without `SIG`).
pub fn signal_name(signum: i32) -> Option<&'static str> {
    SIGNALS.iter().find(|(_, v)| *v == signum).map(|&(s, _)| s)
}

/// A parsed `s6-svstat -o f1,f2,…` line; a field is None when it was not asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OStatus {
    pub up: Option<bool>,
    pub wantedup: Option<bool>,
    pub normallyup: Option<bool>,
    pub ready: Option<bool>,
    pub paused: Option<bool>,
    /// -1 when not up.
    pub pid: Option<i64>,
    /// s6 ≥ 2.13 only; -1 when not up (2.14+) or unknown (2.13).
    pub pgid: Option<i64>,
    pub exitcode: Option<i32>,
    /// From the `signal` field: -1 for `NA`, 0 for `SIG???`, else the number.
    pub signal: Option<i32>,
    pub signum: Option<i32>,
    pub updownsince: Option<Tai>,
    pub readysince: Option<Tai>,
    pub updownfor: Option<u64>,
    pub readyfor: Option<u64>,
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Parse the output of `s6-svstat -o` for the given field names, in the order given.
/// None when the value count differs, a field name is unknown, or a value does not parse.
pub fn parse_o(fields: &[&str], line: &str) -> Option<OStatus> {
    let mut o = OStatus::default();
    let mut values = line.split_ascii_whitespace();
    for &f in fields {
        let v = values.next()?;
        match f {
            "up" => o.up = Some(parse_bool(v)?),
            "wantedup" => o.wantedup = Some(parse_bool(v)?),
            "normallyup" => o.normallyup = Some(parse_bool(v)?),
            "ready" => o.ready = Some(parse_bool(v)?),
            "paused" => o.paused = Some(parse_bool(v)?),
            "pid" => o.pid = Some(v.parse().ok()?),
            "pgid" => o.pgid = Some(v.parse().ok()?),
            "exitcode" => o.exitcode = Some(v.parse().ok()?),
            "signal" => {
                o.signal = Some(if v == "NA" {
                    -1
                } else {
                    signal_number(v.strip_prefix("SIG")?)?
                })
            }
            "signum" => o.signum = Some(v.parse().ok()?),
            "updownsince" => o.updownsince = Some(Tai::parse(v)?),
            "readysince" => o.readysince = Some(Tai::parse(v)?),
            "updownfor" => o.updownfor = Some(v.parse().ok()?),
            "readyfor" => o.readyfor = Some(v.parse().ok()?),
            _ => return None,
        }
    }
    if values.next().is_some() {
        return None;
    }
    Some(o)
}

impl OStatus {
    /// The same facts as a [`Status`]. Unasked fields read as false / -1 / None; `finishing`
    /// is invisible through `-o` (false); "not started yet" is down with neither exit code nor
    /// signal (only s6 ≥ 2.13.2 reports it that way).
    pub fn to_status(&self) -> Status {
        let up = self.up.unwrap_or(false);
        let exitcode = self.exitcode.unwrap_or(-1);
        let signal = self.signum.or(self.signal).unwrap_or(-1);
        Status {
            up,
            pid: self.pid.filter(|&p| up && p > 0).unwrap_or(0) as u64,
            pgid: self.pgid.filter(|&g| g > 0).map(|g| g as u64),
            wstat: None,
            exitcode,
            signal,
            want_up: self.wantedup.unwrap_or(false),
            ready: self.ready.unwrap_or(false),
            paused: self.paused.unwrap_or(false) && up,
            finishing: false,
            not_started: !up && exitcode == -1 && signal == -1,
            stamp: self.updownsince,
            ready_stamp: self.readysince,
            normally_up: self.normallyup,
        }
    }
}

/// A parsed human-readable `s6-svstat` line (with or without `-n`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Human {
    pub up: bool,
    /// Pid of `run` when up, else 0.
    pub pid: u64,
    /// `up (pid N pgid M)` (s6 ≥ 2.13).
    pub pgid: Option<u64>,
    /// -1 when up, killed by a signal, or not started.
    pub exitcode: i32,
    /// Number (names are mapped; `SIG???` is 0); -1 when up, exited, or not started.
    pub signal: i32,
    /// `down (not started yet)` (s6 ≥ 2.13.2).
    pub not_started: bool,
    /// `N seconds` in the current state; None when not started.
    pub seconds: Option<u64>,
    /// Up: no `, normally down`; down: `, normally up`.
    pub normally_up: bool,
    /// Up: no `, want down`; down: `, want up`.
    pub want_up: bool,
    pub paused: bool,
    /// `, ready N seconds`.
    pub ready_seconds: Option<u64>,
    /// Down, started once, and no `, ready …`: `./finish` is still running.
    pub finishing: bool,
}

fn parse_seconds(s: &str) -> Option<u64> {
    let n = s.strip_suffix(" seconds")?;
    if n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

fn parse_pid(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parse a human-readable `s6-svstat` line, any s6 from 2.11 to 2.15. Strict: unknown words
/// make it None rather than a guess.
pub fn parse_human(line: &str) -> Option<Human> {
    let line = line.trim_end_matches(['\n', '\r', ' ']);
    let (up, rest) = if let Some(r) = line.strip_prefix("up (") {
        (true, r)
    } else {
        (false, line.strip_prefix("down (")?)
    };
    let close = rest.find(')')?;
    let inner = rest.get(..close)?;
    let after = rest.get(close + 1..)?;
    let mut h = Human {
        up,
        pid: 0,
        pgid: None,
        exitcode: -1,
        signal: -1,
        not_started: false,
        seconds: None,
        normally_up: false,
        want_up: false,
        paused: false,
        ready_seconds: None,
        finishing: false,
    };
    if up {
        let mut w = inner.split(' ');
        if w.next()? != "pid" {
            return None;
        }
        h.pid = parse_pid(w.next()?)?;
        match (w.next(), w.next()) {
            (None, _) => {}
            (Some("pgid"), Some(g)) => h.pgid = Some(parse_pid(g)?),
            _ => return None,
        }
        if w.next().is_some() || h.pid == 0 {
            return None;
        }
    } else if inner == "not started yet" {
        h.not_started = true;
    } else if let Some(c) = inner.strip_prefix("exitcode ") {
        h.exitcode = c.parse().ok().filter(|c| (0..=255).contains(c))?;
    } else if let Some(s) = inner.strip_prefix("signal ") {
        h.signal = match s.strip_prefix("SIG") {
            Some(name) => signal_number(name)?,
            None => s.parse().ok().filter(|&n| n > 0)?,
        };
    } else {
        return None;
    }
    // Then "N seconds" (absent when not started), then ", suffix" items in s6's order.
    let mut parts = after.split(',');
    let first = parts.next()?.trim();
    if h.not_started {
        if !first.is_empty() {
            return None;
        }
    } else {
        h.seconds = Some(parse_seconds(first)?);
    }
    let (mut normally_down, mut normally_up, mut want_up, mut want_down) =
        (false, false, false, false);
    for p in parts {
        let p = p.strip_prefix(' ')?;
        match p {
            "normally down" if up => normally_down = true,
            "normally up" if !up => normally_up = true,
            "paused" if up => h.paused = true,
            "want up" if !up => want_up = true,
            "want down" if up => want_down = true,
            _ => h.ready_seconds = Some(parse_seconds(p.strip_prefix("ready ")?)?),
        }
    }
    h.normally_up = if up { !normally_down } else { normally_up };
    h.want_up = if up { !want_down } else { want_up };
    h.finishing = !up && !h.not_started && h.ready_seconds.is_none();
    Some(h)
}

impl Human {
    /// The same facts as a [`Status`], the stamps worked back from the
    /// seconds at `now` (unix seconds). `ready` is s6's flag: up and ready.
    pub fn to_status(&self, now: i64) -> Status {
        let ago = |n: u64| Tai {
            secs: (now.saturating_sub(n.min(i64::MAX as u64) as i64) as i128
                + TAI_MAGIC as i128
                + TAI_UTC_OFFSET as i128)
                .clamp(0, u64::MAX as i128) as u64,
            nanos: 0,
        };
        Status {
            up: self.up,
            pid: if self.up { self.pid } else { 0 },
            pgid: self.pgid,
            wstat: None,
            exitcode: self.exitcode,
            signal: self.signal,
            want_up: self.want_up,
            ready: self.up && self.ready_seconds.is_some(),
            paused: self.paused && self.up,
            finishing: self.finishing,
            not_started: self.not_started,
            stamp: self.seconds.map(ago),
            ready_stamp: self.ready_seconds.map(ago),
            normally_up: Some(self.normally_up),
        }
    }
}

/// Is an s6-supervise running on `svc_dir`? Exactly `s6_svc_ok()`: no `supervise/lock` →
/// false; lock held → true; any other failure (EACCES…) → System error naming the lock file.
pub fn is_supervised(svc_dir: &Path) -> Result<bool> {
    let lock = svc_dir.join("supervise/lock");
    // Non-blocking like s6's own open_read: a FIFO planted there must not hang us.
    let f = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&lock)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(sys("check", &lock, e)),
    };
    crate::sys::read_locked_elsewhere(f.as_fd()).map_err(|e| sys("check", &lock, e))
}

/// `svc_dir/down` absent (s6 uses access(F_OK): a dangling symlink counts as
/// absent); None when that cannot be told (EACCES…). Only `status` asks: a
/// read of the status itself costs no stat for it and cannot fail on it.
pub fn normally_up(svc_dir: &Path) -> Option<bool> {
    match fs::metadata(svc_dir.join("down")) {
        Ok(_) => Some(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some(true),
        Err(_) => None,
    }
}

/// Fields asked of `s6-svstat` when the status file cannot be decoded (valid on 2.11 → 2.15).
pub const FALLBACK_FIELDS: &str =
    "up,wantedup,ready,paused,pid,exitcode,signum,updownsince,readysince";

/// The status of `svc_dir`, or None when no s6-supervise runs on it. Spawns nothing unless
/// `supervise/status` has a size no known s6 writes; then it asks `s6-svstat` (found through
/// `HERMES_S6_SHEBANGDIR` / PATH).
pub fn read(svc_dir: &Path) -> Result<Option<Status>> {
    // The tool is looked up only on the fallback path (an unknown layout):
    // `status` reads a thousand slots without a thousand PATH lookups.
    read_impl(svc_dir, || {
        crate::profile::Config::from_env().tool("s6-svstat")
    })
}

/// [`read`] with an explicit `s6-svstat` for the fallback.
pub fn read_with(svc_dir: &Path, svstat_tool: &Path) -> Result<Option<Status>> {
    read_impl(svc_dir, || svstat_tool.to_path_buf())
}

fn read_impl(
    svc_dir: &Path,
    svstat_tool: impl FnOnce() -> std::path::PathBuf,
) -> Result<Option<Status>> {
    if !is_supervised(svc_dir)? {
        return Ok(None);
    }
    let path = svc_dir.join("supervise/status");
    // No-follow, non-blocking, bounded: the slot belongs to the hermes user.
    let st = match crate::fsutil::read_file(&path, 4096)? {
        Some(bytes) => match decode(&bytes) {
            Some(st) => st,
            None => match read_via_svstat(svc_dir, &svstat_tool())? {
                Some(st) => st,
                None => return Ok(None),
            },
        },
        // s6-supervise takes its lock just before writing its first status: in that instant
        // the service exists but was never started.
        None => OStatus::default().to_status(),
    };
    Ok(Some(st))
}

/// Ask `s6-svstat`: `-o FALLBACK_FIELDS` (every s6 that s6-overlay 3.x
/// ships), else — an s6-svstat that refuses `-o` (exit 100) or prints a line
/// that does not parse — its human line, both formats (`up (pid N)` and
/// `up (pid N pgid N)`, `down (not started yet)`).
fn read_via_svstat(svc_dir: &Path, tool: &Path) -> Result<Option<Status>> {
    match svstat_o(svc_dir, tool)? {
        Svstat::Got(st) => Ok(Some(st)),
        Svstat::NotSupervised => Ok(None),
        Svstat::Unreadable(why) => {
            let out = spawn_svstat(tool, &[], svc_dir)?;
            match out.status.code() {
                Some(0) => {}
                Some(1) => return Ok(None),
                _ => return Err(refused(why)),
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text.lines().next().unwrap_or("");
            match parse_human(line) {
                Some(h) => Ok(Some(h.to_status(crate::clock::now_secs()))),
                None => Err(refused(format!(
                    "{}; its human line '{}' neither",
                    why,
                    crate::error::escape(line.trim())
                ))),
            }
        }
    }
}

enum Svstat {
    Got(Status),
    NotSupervised,
    /// Why `-o` gave nothing usable.
    Unreadable(String),
}

fn spawn_svstat(tool: &Path, args: &[&str], svc_dir: &Path) -> Result<std::process::Output> {
    Command::new(tool)
        .args(args)
        .arg(svc_dir)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| sys("spawn", tool, e))
}

fn svstat_o(svc_dir: &Path, tool: &Path) -> Result<Svstat> {
    let out = spawn_svstat(tool, &["-o", FALLBACK_FIELDS], svc_dir)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(1) => return Ok(Svstat::NotSupervised), // "s6-supervise not running"
        Some(111) => return Err(Error::System(err.trim().to_string())),
        _ => {
            return Ok(Svstat::Unreadable(format!(
                "unable to read status for {}: {}",
                svc_dir.display(),
                crate::error::escape(err.trim())
            )))
        }
    }
    let fields: Vec<&str> = FALLBACK_FIELDS.split(',').collect();
    match parse_o(&fields, text.lines().next().unwrap_or("")) {
        Some(o) => Ok(Svstat::Got(o.to_status())),
        None => Ok(Svstat::Unreadable(format!(
            "unable to read status for {}: unexpected s6-svstat -o output '{}'",
            svc_dir.display(),
            crate::error::escape(text.trim())
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: &str = include_str!("../tests/fixtures/svstat-samples.txt");

    /// One `$ command` of the fixture file with its output and exit status.
    struct Sample<'a> {
        section: &'a str,
        cmd: &'a str,
        out: Vec<&'a str>,
        rc: Option<i32>,
    }

    fn samples() -> Vec<Sample<'static>> {
        let mut v: Vec<Sample> = Vec::new();
        let mut section = "";
        let mut open = false;
        for line in SAMPLES.lines() {
            if let Some(s) = line.strip_prefix("### ") {
                section = s;
                open = false;
            } else if let Some(c) = line.strip_prefix("$ ") {
                v.push(Sample {
                    section,
                    cmd: c,
                    out: Vec::new(),
                    rc: None,
                });
                open = true;
            } else if let Some(rc) = line.strip_prefix("[rc=") {
                if let Some(s) = v.last_mut().filter(|_| open) {
                    s.rc = Some(rc.trim_end_matches(']').parse().unwrap());
                }
                open = false;
            } else if line.starts_with('#') {
                open = false;
            } else if open {
                if let Some(s) = v.last_mut() {
                    s.out.push(line);
                }
            }
        }
        v
    }

    /// What a sample's s6-svstat invocation asks for.
    enum Ask {
        Human,
        Fields(Vec<&'static str>),
    }

    /// `s6-svstat [opts] DIR` → (what, dir); None when the command is not s6-svstat.
    fn svstat_args(cmd: &'static str) -> Option<(Ask, &'static str)> {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let i = words.iter().position(|w| *w == "s6-svstat")?;
        let args = &words[i + 1..];
        let dir = *args.last()?;
        let ask = match args.first().copied() {
            Some("-o") => Ask::Fields(args[1].split(',').collect()),
            Some("-n") => Ask::Human,
            Some(opts) if opts.starts_with('-') && args.len() == 2 => Ask::Fields(
                opts[1..]
                    .chars()
                    .map(|c| match c {
                        'u' => "up",
                        'w' => "wantedup",
                        'N' => "normallyup",
                        'r' => "ready",
                        'p' => "pid",
                        'g' => "pgid",
                        'e' => "exitcode",
                        's' => "signal",
                        't' => "updownfor",
                        _ => panic!("short option {}", c),
                    })
                    .collect(),
            ),
            _ => Ask::Human,
        };
        Some((ask, dir))
    }

    fn check_against_human(o: &OStatus, h: &Human, what: &str) {
        assert_eq!(o.up.unwrap_or(h.up), h.up, "up: {}", what);
        assert_eq!(
            o.wantedup.unwrap_or(h.want_up),
            h.want_up,
            "wantedup: {}",
            what
        );
        assert_eq!(
            o.normallyup.unwrap_or(h.normally_up),
            h.normally_up,
            "normallyup: {}",
            what
        );
        let ready = h.up && h.ready_seconds.is_some();
        assert_eq!(o.ready.unwrap_or(ready), ready, "ready: {}", what);
        assert_eq!(o.paused.unwrap_or(h.paused), h.paused, "paused: {}", what);
        let pid = if h.up { h.pid as i64 } else { -1 };
        assert_eq!(o.pid.unwrap_or(pid), pid, "pid: {}", what);
        assert_eq!(
            o.exitcode.unwrap_or(h.exitcode),
            h.exitcode,
            "exitcode: {}",
            what
        );
        assert_eq!(o.signal.unwrap_or(h.signal), h.signal, "signal: {}", what);
        assert_eq!(o.signum.unwrap_or(h.signal), h.signal, "signum: {}", what);
        if let Some(s) = h.seconds {
            assert_eq!(o.updownfor.unwrap_or(s), s, "updownfor: {}", what);
        }
        if let Some(s) = h.ready_seconds {
            assert_eq!(o.readyfor.unwrap_or(s), s, "readyfor: {}", what);
        }
        // The -o view of the same service agrees with the human view once converted.
        let st = o.to_status();
        assert_eq!(st.up, h.up, "to_status: {}", what);
        if o.pid.is_some() {
            assert_eq!(st.pid, h.pid, "to_status pid: {}", what);
        }
    }

    #[test]
    fn every_fixture_sample_parses_and_agrees_with_its_human_line() {
        let all = samples();
        let (mut humans, mut os, mut failures) = (0, 0, 0);
        let mut last_human: Option<(&str, &str, Human)> = None;
        for s in &all {
            let Some((ask, dir)) = svstat_args(s.cmd) else {
                continue;
            };
            let what = format!("[{}] $ {} -> {:?}", s.section, s.cmd, s.out);
            if s.rc.is_some_and(|rc| rc != 0) {
                assert!(s.out.iter().any(|l| l.contains("fatal")), "{}", what);
                failures += 1;
                continue;
            }
            assert_eq!(s.out.len(), 1, "{}", what);
            let line = s.out[0];
            match ask {
                Ask::Human => {
                    let h = parse_human(line).unwrap_or_else(|| panic!("human: {}", what));
                    // -n and plain lines of the same situation describe the same state.
                    if let Some((sec, d, prev)) = &last_human {
                        if *sec == s.section && *d == dir && prev.up == h.up {
                            assert_eq!(prev.signal, h.signal, "{}", what);
                            assert_eq!(prev.exitcode, h.exitcode, "{}", what);
                        }
                    }
                    last_human = Some((s.section, dir, h));
                    humans += 1;
                }
                Ask::Fields(f) => {
                    let o = parse_o(&f, line).unwrap_or_else(|| panic!("-o: {}", what));
                    if let Some((sec, d, h)) = &last_human {
                        if *sec == s.section && *d == dir {
                            check_against_human(&o, h, &what);
                        }
                    }
                    os += 1;
                }
            }
        }
        // Guard against a fixture reader that silently skips everything.
        assert_eq!(
            (humans, os, failures),
            (34, 31, 16),
            "every s6-svstat sample seen"
        );
    }

    fn human_of(section: &str, plain: bool) -> Human {
        let s = samples()
            .into_iter()
            .find(|s| {
                s.section == section
                    && s.cmd.starts_with("s6-svstat /")
                    && (plain || s.cmd.starts_with("s6-svstat -n"))
            })
            .unwrap_or_else(|| panic!("no sample for {}", section));
        parse_human(s.out[0]).unwrap()
    }

    #[test]
    fn fixture_states_mean_what_they_say() {
        let h = human_of("running service (no down file)", true);
        assert!(h.up && h.pid == 55 && h.normally_up && h.want_up && !h.finishing);
        assert_eq!((h.exitcode, h.signal, h.seconds), (-1, -1, Some(1)));

        let h = human_of("down file present, never started", true);
        assert!(!h.up && !h.normally_up && !h.want_up && !h.finishing && !h.not_started);
        assert_eq!((h.exitcode, h.ready_seconds), (0, Some(1)));

        let h = human_of("killed by SIGKILL (s6-svc -k after s6-svc -o)", true);
        assert_eq!((h.up, h.exitcode, h.signal), (false, -1, 9));

        let h = human_of(
            "'finishing' state: run exited 3, ./finish still running (sleep 3)",
            true,
        );
        assert!(h.finishing && h.want_up && h.normally_up && !h.up);
        assert_eq!(h.exitcode, 3);

        let h = human_of("paused (s6-svc -p, SIGSTOP)", true);
        assert!(h.up && h.paused && h.pid == 49);

        let h = human_of(
            "want down but still up (run ignores SIGTERM, after s6-svc -d)",
            true,
        );
        assert!(h.up && !h.want_up);

        let h = human_of(
            "up but normally down (down file, started with s6-svc -u)",
            true,
        );
        assert!(h.up && !h.normally_up && h.want_up);
    }

    #[test]
    fn fixture_numeric_signal_lines_parse() {
        let h = parse_human("down (signal 15) 0 seconds, normally up, ready 0 seconds").unwrap();
        assert_eq!((h.signal, h.exitcode, h.up), (15, -1, false));
        assert!(h.normally_up && !h.want_up && !h.finishing);
    }

    #[test]
    fn fixture_tai_stamps_and_short_options_parse() {
        let o = parse_o(
            &["updownsince", "readysince"],
            "@400000006b080bfa14f5000c @400000006b080bfa14f58180",
        )
        .unwrap();
        let t = o.updownsince.unwrap();
        assert_eq!(t.secs, 0x400000006b080bfa);
        assert_eq!(t.nanos, 0x14f5000c);
        assert_eq!(t.unix(), 0x6b080bfa - 37);
        assert_eq!(o.readysince.unwrap().nanos, 0x14f58180);
        let f = [
            "up",
            "wantedup",
            "normallyup",
            "ready",
            "pid",
            "exitcode",
            "signal",
            "updownfor",
        ];
        let o = parse_o(&f, "true true true true 40 -1 NA 5").unwrap();
        assert_eq!(o.pid, Some(40));
        assert_eq!(o.signal, Some(-1));
        assert_eq!(o.updownfor, Some(5));
        assert_eq!(o.ready, Some(true));
    }

    #[test]
    fn up_line_with_pgid_from_s6_2_13() {
        let h = parse_human("up (pid 55 pgid 55) 1 seconds").unwrap();
        assert_eq!(
            (h.up, h.pid, h.pgid, h.seconds),
            (true, 55, Some(55), Some(1))
        );
        let h = parse_human(
            "up (pid 1234 pgid 1200) 42 seconds, normally down, paused, want down, ready 3 seconds\n",
        )
        .unwrap();
        assert_eq!((h.pid, h.pgid), (1234, Some(1200)));
        assert!(h.paused && !h.normally_up && !h.want_up);
        assert_eq!(h.ready_seconds, Some(3));
    }

    #[test]
    fn not_started_yet_from_s6_2_13_2() {
        // s6 prints "down (" "not started yet" ") " and no seconds: note the trailing space.
        let h = parse_human("down (not started yet) ").unwrap();
        assert!(h.not_started && !h.up && !h.finishing && !h.normally_up && !h.want_up);
        assert_eq!((h.seconds, h.exitcode, h.signal), (None, -1, -1));
        // Without a down file the suffixes follow that space.
        let h = parse_human("down (not started yet) , normally up, want up").unwrap();
        assert!(h.not_started && h.normally_up && h.want_up);
        let f = [
            "up",
            "wantedup",
            "normallyup",
            "ready",
            "paused",
            "pid",
            "pgid",
            "exitcode",
            "signal",
            "signum",
        ];
        let o = parse_o(&f, "false false false false false -1 -1 -1 NA -1").unwrap();
        let st = o.to_status();
        assert!(st.not_started && !st.up);
        assert_eq!((st.pid, st.pgid), (0, None));
    }

    #[test]
    fn human_garbage_is_rejected() {
        for l in [
            "",
            "up",
            "up (pid) 1 seconds",
            "up (pid 0) 1 seconds",
            "up (pid x) 1 seconds",
            "up (pid 5 pgid) 1 seconds",
            "up (pid 5 6) 1 seconds",
            "up (pid 5) seconds",
            "up (pid 5) 1 second",
            "up (pid 5)",
            "up (pid 5) 1 seconds, normally up",
            "down (exitcode 3) 1 seconds, normally down",
            "down (exitcode 3) 1 seconds, paused",
            "down (exitcode 300) 1 seconds",
            "down (signal SIGNOPE) 1 seconds",
            "down (signal 0) 1 seconds",
            "down (signal TERM) 1 seconds",
            "down (whatever) 1 seconds",
            "down (not started yet) 3 seconds",
            "sideways (pid 5) 1 seconds",
            "up (pid 5) 1 seconds,, ready 1 seconds",
        ] {
            assert_eq!(parse_human(l), None, "{:?}", l);
        }
    }

    #[test]
    fn o_fields_in_any_order_and_bad_values() {
        let a = parse_o(&["pid", "up"], "12 true").unwrap();
        let b = parse_o(&["up", "pid"], "true 12").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.pid, Some(12));
        assert!(parse_o(&["up"], "").is_none());
        assert!(parse_o(&["up"], "true true").is_none());
        assert!(parse_o(&["up", "pid"], "true").is_none());
        assert!(parse_o(&["up"], "yes").is_none());
        assert!(parse_o(&["nope"], "1").is_none());
        assert!(parse_o(&["signal"], "TERM").is_none());
        assert!(parse_o(&["signal"], "SIGBOGUS").is_none());
        assert_eq!(parse_o(&["signal"], "SIG???").unwrap().signal, Some(0));
        assert_eq!(parse_o(&["signal"], "SIGIOT").unwrap().signal, Some(6));
        assert!(parse_o(&["updownsince"], "@4000").is_none());
        assert!(parse_o(&["updownsince"], "400000006b080bfa14f5000c").is_none());
        assert!(parse_o(&["pid"], "-1\n").unwrap().pid == Some(-1));
    }

    #[test]
    fn signal_names_round_trip() {
        assert_eq!(signal_number("SIGTERM"), Some(15));
        assert_eq!(signal_number("KILL"), Some(9));
        assert_eq!(signal_name(15), Some("TERM"));
        assert_eq!(signal_name(6), Some("ABRT"));
        assert_eq!(signal_name(0), None);
        for &(n, v) in SIGNALS {
            assert_eq!(signal_number(n), Some(v));
            assert!(signal_name(v).is_some());
        }
    }

    /// A status file as s6 writes it (`s6_svstatus_pack`), 35 or 43 bytes.
    fn pack(pid: u64, pgid: Option<u64>, wstat: u16, flags: u8) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(TAI_MAGIC + 1_800_000_037).to_be_bytes());
        b.extend_from_slice(&123u32.to_be_bytes());
        b.extend_from_slice(&(TAI_MAGIC + 1_800_000_040).to_be_bytes());
        b.extend_from_slice(&456u32.to_be_bytes());
        b.extend_from_slice(&pid.to_be_bytes());
        if let Some(g) = pgid {
            b.extend_from_slice(&g.to_be_bytes());
        }
        b.extend_from_slice(&wstat.to_be_bytes());
        b.push(flags);
        b
    }

    const PAUSED: u8 = 1;
    const FINISHING: u8 = 2;
    const WANTUP: u8 = 4;
    const READY: u8 = 8;

    #[test]
    fn decode_35_byte_up_and_ready() {
        let b = pack(412, None, 0, WANTUP | READY);
        assert_eq!(b.len(), 35);
        let st = decode(&b).unwrap();
        assert!(st.up && st.want_up && st.ready && !st.paused && !st.finishing);
        assert_eq!(
            (st.pid, st.pgid, st.exitcode, st.signal),
            (412, None, -1, -1)
        );
        assert_eq!(
            st.stamp,
            Some(Tai {
                secs: TAI_MAGIC + 1_800_000_037,
                nanos: 123
            })
        );
        assert_eq!(st.stamp.unwrap().unix(), 1_800_000_000);
        assert_eq!(st.ready_stamp.unwrap().nanos, 456);
        assert_eq!(
            st.seconds_in_state((1_800_000_010, 0)),
            Some(9),
            "10 s minus 123 ns"
        );
        assert_eq!(st.seconds_in_state((1_800_000_010, 123)), Some(10));
        assert_eq!(st.seconds_in_state((1_800_000_000, 999_999_999)), Some(0));
        // s6 shows a stamp in the future as 0 seconds
        assert_eq!(st.seconds_in_state((1_700_000_000, 0)), Some(0));
        assert_eq!(st.normally_up, None);
    }

    #[test]
    fn decode_43_byte_s6_2_13_with_pgid() {
        let b = pack(412, Some(400), 0, WANTUP);
        assert_eq!(b.len(), 43);
        let st = decode(&b).unwrap();
        assert!(st.up && st.want_up && !st.ready);
        assert_eq!((st.pid, st.pgid), (412, Some(400)));
        // exit status 3 after run died, 43-byte layout puts wstat at [40..42)
        let st = decode(&pack(0, Some(400), 3 << 8, READY)).unwrap();
        assert!(!st.up && !st.ready && !st.finishing);
        assert_eq!(
            (st.pid, st.exitcode, st.signal, st.wstat),
            (0, 3, -1, Some(0x300))
        );
        assert_eq!(decode(&pack(0, Some(0), 0, 0)).unwrap().pgid, None);
    }

    #[test]
    fn decode_down_by_signal_and_by_exit() {
        let st = decode(&pack(0, None, 15, READY)).unwrap();
        assert_eq!((st.up, st.exitcode, st.signal), (false, -1, 15));
        assert!(!st.ready, "-o ready is false whenever down");
        let st = decode(&pack(0, None, 9 | 0x80, 0)).unwrap(); // core dumped
        assert_eq!((st.exitcode, st.signal), (-1, 9));
        let st = decode(&pack(0, None, 0, WANTUP | READY)).unwrap();
        assert_eq!((st.exitcode, st.signal, st.want_up), (0, -1, true));
    }

    #[test]
    fn decode_finishing_hides_finish_pid() {
        // While ./finish runs, pid is finish's pid: down, not that pid, exit code visible.
        let st = decode(&pack(777, None, 1 << 8, FINISHING | WANTUP)).unwrap();
        assert!(!st.up && st.finishing && st.want_up);
        assert_eq!((st.pid, st.exitcode), (0, 1));
    }

    #[test]
    fn decode_not_started_yet_and_paused() {
        // supervisor start: paused=1, pid=0
        let st = decode(&pack(0, None, 0, PAUSED)).unwrap();
        assert!(st.not_started && !st.up && !st.paused);
        assert_eq!((st.exitcode, st.signal), (-1, -1));
        let st = decode(&pack(49, None, 0, PAUSED | WANTUP)).unwrap();
        assert!(st.up && st.paused && !st.not_started);
    }

    #[test]
    fn decode_rejects_other_sizes_and_never_panics_on_garbage() {
        for n in [0, 1, 12, 34, 36, 42, 44, 100] {
            assert_eq!(decode(&vec![0xff; n]), None, "{} bytes", n);
        }
        let mut b = pack(1, None, 0, 0);
        b.pop();
        assert_eq!(decode(&b), None, "truncated");
        // every byte value at every position: decodes, never panics
        for len in [35usize, 43] {
            for i in 0..len {
                for v in [0u8, 0x7f, 0x80, 0xff] {
                    let mut b = vec![0xa5u8; len];
                    b[i] = v;
                    let st = decode(&b).unwrap();
                    assert!(st.exitcode <= 255 && st.signal <= 127);
                    let _ = st.seconds_in_state((i64::MAX, u32::MAX));
                    let _ = st.seconds_in_state((i64::MIN, 0));
                }
            }
        }
        assert_eq!(tai_to_unix(0), -(TAI_MAGIC as i64) - 37);
        assert_eq!(tai_to_unix(u64::MAX), i64::MAX, "saturates");
    }

    #[test]
    fn tai_parse_rejects_bad_text() {
        assert!(Tai::parse("@400000006b080bfa14f5000c").is_some());
        for s in [
            "",
            "@",
            "@400000006b080bfa14f5000",
            "@400000006b080bfa14f5000cc",
            "@40000000 b080bfa14f5000c",
            "@+00000006b080bfa14f5000c",
        ] {
            assert_eq!(Tai::parse(s), None, "{:?}", s);
        }
    }

    #[test]
    fn unsupervised_dirs_read_as_none() {
        let d = std::env::temp_dir().join(format!("hermes-s6-svstat-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("svc/supervise")).unwrap();
        assert!(!is_supervised(&d.join("nope")).unwrap());
        assert!(!is_supervised(&d.join("svc")).unwrap());
        // lock file present but nobody holds it (supervisor gone, files left behind)
        fs::write(d.join("svc/supervise/lock"), "").unwrap();
        fs::write(d.join("svc/supervise/status"), pack(5, None, 0, WANTUP)).unwrap();
        assert!(!is_supervised(&d.join("svc")).unwrap());
        assert_eq!(
            read_with(&d.join("svc"), Path::new("/nonexistent")).unwrap(),
            None
        );
        // supervise/ that is a file: an error naming the path, like s6-svok's 111
        fs::create_dir_all(d.join("bad")).unwrap();
        fs::write(d.join("bad/supervise"), "").unwrap();
        match is_supervised(&d.join("bad")) {
            Err(Error::System(m)) => assert!(m.contains("bad/supervise/lock"), "{}", m),
            other => panic!("{:?}", other),
        }
        // EACCES (the classic unprivileged failure): only observable when not root.
        if unsafe { libc::geteuid() } != 0 {
            use std::os::unix::fs::PermissionsExt;
            fs::create_dir_all(d.join("locked/supervise")).unwrap();
            fs::set_permissions(
                d.join("locked/supervise"),
                fs::Permissions::from_mode(0o000),
            )
            .unwrap();
            match is_supervised(&d.join("locked")) {
                Err(Error::System(m)) => assert!(m.contains("Permission denied"), "{}", m),
                other => panic!("{:?}", other),
            }
            fs::set_permissions(
                d.join("locked/supervise"),
                fs::Permissions::from_mode(0o700),
            )
            .unwrap();
        }
        let _ = fs::remove_dir_all(&d);
    }
}

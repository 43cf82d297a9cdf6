//! The lease (SPEC §8): one gateway per profile, however many containers
//! share the volume.
//!
//! `gateway.lease` in the profile's home carries an exclusive flock taken by
//! `run` before it execs the gateway and kept across the exec, so the gateway
//! process itself holds it and the kernel lets go the instant it dies,
//! whatever kills it (no heartbeat, no timeout to tune). Nothing else ever
//! holds it for longer than a read: `finish` takes it for the moment it
//! writes the dead gateway's record (so that record is never written over
//! the next holder's), probes (`status`, `health`, `--wait`) take it and let
//! go at once. Over NFSv4 and other filesystems whose flock reaches the
//! server, the same holds across hosts (docs/scaling.md).
//!
//! A `run` that finds the lease held stands by: it writes nothing into the
//! home, records `data/standby` (its pid) in its own slot, and tries again
//! every [`POLL`] until the lease is free — then runs the gateway, unless
//! the profile's intent has meanwhile become `stopped` (an operator's stop on
//! the holder must not fail over).
//!
//! The file's content says who holds it (written after the lock is taken,
//! by the holder only): `{"host":…,"node":…,"pid":…,"start_time":…,"since":…}`.
//! `node` tells containers apart (boot id + PID namespace: hostnames may be
//! equal); `pid` and `start_time` are the gateway's, in its own namespace.

use crate::clock;
use crate::error::{warn, Result};
use crate::fsutil;
use crate::json::{self, Value};
use crate::state;
use std::fs::{self, File};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const FILE: &str = "gateway.lease";
/// How often a standby tries the lease. A blocking flock would wake at once
/// on a local filesystem, but NFS clients retry blocked locks with a backoff
/// of up to 30 s; 5 tries a second keep a failover well under 2 s anywhere.
pub const POLL: Duration = Duration::from_millis(200);
/// `data/standby` in the slot: the pid of the `run` that stands by.
pub const STANDBY: &str = "standby";
const MAX_LEN: usize = 4096;

/// Who holds a lease, as its holder wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub node: String,
    pub pid: u32,
    pub start_time: Option<u64>,
    pub since: i64,
}

impl Holder {
    /// This process, about to become the gateway.
    pub fn me(pid: u32, start_time: Option<u64>) -> Holder {
        Holder {
            host: hostname(),
            node: node(),
            pid,
            start_time,
            since: clock::now_secs(),
        }
    }

    pub fn to_json(&self) -> String {
        Value::Object(vec![
            ("host".into(), Value::string(&self.host)),
            ("node".into(), Value::string(&self.node)),
            ("pid".into(), Value::from_u64(self.pid.into())),
            (
                "start_time".into(),
                self.start_time.map_or(Value::Null, Value::from_u64),
            ),
            ("since".into(), Value::Str(clock::iso_utc(self.since))),
        ])
        .to_json()
    }

    /// None when the text is not a holder record (written by someone else,
    /// or torn).
    pub fn parse(text: &str) -> Option<Holder> {
        let v = json::parse(text).ok()?;
        Some(Holder {
            host: v.get("host")?.as_str()?.to_string(),
            node: v.get("node")?.as_str()?.to_string(),
            pid: v
                .get("pid")?
                .as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .filter(|&p| p > 0)?,
            start_time: v.get("start_time").and_then(Value::as_u64),
            since: v.get("since").and_then(state::stamp_secs).unwrap_or(0),
        })
    }

    /// In this container (and so the pid means something here).
    pub fn is_here(&self) -> bool {
        self.node == node()
    }

    /// `host/pid`, escaped (the hermes user writes this file).
    pub fn label(&self) -> String {
        format!("{}/{}", crate::error::escape(&self.host), self.pid)
    }
}

/// The lease, held: dropping it lets go (unless it went to the gateway).
pub struct Lease(File);

pub fn path(home: &Path) -> PathBuf {
    fsutil::join(home, FILE)
}

/// Take P's lease if nobody holds it (creating the file). A probe holds it
/// for microseconds: a few tries over [`PATIENCE`] tell it from a holder.
pub fn try_take(home: &Path) -> Result<Option<Lease>> {
    let until = std::time::Instant::now() + PATIENCE;
    loop {
        if let Some(f) = fsutil::try_lock(&path(home), true)? {
            return Ok(Some(Lease(f)));
        }
        if std::time::Instant::now() >= until {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How long [`try_take`] insists.
pub const PATIENCE: Duration = Duration::from_millis(50);

impl Lease {
    /// Say who holds it now (in place: the file is the lock).
    pub fn publish(&mut self, h: &Holder) -> Result<()> {
        let f = &mut self.0;
        let p = || PathBuf::from(FILE);
        f.set_len(0)
            .and_then(|_| f.rewind())
            .and_then(|_| f.write_all(h.to_json().as_bytes()))
            .map_err(|e| crate::error::sys("write", &p(), e))
    }

    pub fn raw_fd(&self) -> i32 {
        use std::os::unix::io::AsRawFd;
        self.0.as_raw_fd()
    }

    /// Keep it across the exec: from then on the gateway holds it, and the
    /// kernel lets go when the gateway dies.
    pub fn hand_to_exec(self) -> Result<()> {
        use std::os::unix::io::IntoRawFd;
        fsutil::clear_cloexec(&self.0)?;
        let _gateways = self.0.into_raw_fd();
        Ok(())
    }
}

/// `finish`: take the lease of a gateway that just died here. What it left
/// behind may still hold it: children that inherited the fd (a shell's
/// background job, a forked worker) and outlived it. Those — processes of
/// this container with an fd on the lease file and in the dead gateway's
/// process group (s6-supervise makes every run a session leader) — get
/// SIGKILL, and the lease is free within moments. Nothing else is touched: a
/// `status` probing the lease is in no such group, and a process that left
/// the group is left alone (said: the lease then stays held).
pub fn take_after_death(home: &Path) -> Result<Option<Lease>> {
    if let Some(l) = try_take(home)? {
        return Ok(Some(l));
    }
    let Some(h) = recorded(home).filter(|h| h.is_here() && h.pid > 1) else {
        return Ok(None);
    };
    if crate::procfs::start_time(h.pid).is_ok_and(|t| h.start_time.map_or(true, |s| s == t)) {
        return Ok(None); // its holder lives
    }
    let left = leftovers(&path(home), h.pid);
    if left.is_empty() {
        warn(format_args!(
            "{}: still held after its gateway (pid {}) died, by no process of its group",
            path(home).display(),
            h.pid
        ));
        return Ok(None);
    }
    warn(format_args!(
        "{}: still held by what the dead gateway (pid {}) left behind: killing pid {:?}",
        path(home).display(),
        h.pid,
        left
    ));
    for pid in &left {
        // one process, > 1, found holding our own lease
        let _ = crate::sys::kill(*pid, libc::SIGKILL);
    }
    let until = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(l) = try_take(home)? {
            return Ok(Some(l));
        }
        if std::time::Instant::now() >= until {
            return Ok(None);
        }
    }
}

/// Processes of process group `pgid` with an fd on `lease` (by device and
/// inode), from /proc: only this user's are readable, which are the only
/// ones that could hold it.
fn leftovers(lease: &Path, pgid: u32) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = fs::symlink_metadata(lease) else {
        return Vec::new();
    };
    let (dev, ino) = (m.dev(), m.ino());
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid <= 1 || crate::procfs::pgid(pid) != Some(pgid) {
            continue;
        }
        let holds = fs::read_dir(p.path().join("fd")).is_ok_and(|fds| {
            fds.flatten()
                .any(|fd| fs::metadata(fd.path()).is_ok_and(|t| t.dev() == dev && t.ino() == ino))
        });
        if holds {
            out.push(pid);
        }
    }
    out
}

/// What the lease file says (whether or not anybody holds it now).
pub fn recorded(home: &Path) -> Option<Holder> {
    let b = fsutil::read_file(&path(home), MAX_LEN).ok()??;
    Holder::parse(std::str::from_utf8(&b).ok()?)
}

/// Is the lease held right now? A probe: it takes the lease when free and
/// lets go at once. A missing file is a free lease; an unusable one (EACCES,
/// a directory…) is not known to be held.
pub fn held(home: &Path) -> bool {
    fsutil::lock_held(&path(home))
}

/// The holder of P's lease, when it is held by a gateway in another container.
pub fn elsewhere(home: &Path) -> Option<Holder> {
    if !held(home) {
        return None;
    }
    // the holder writes its record right after taking the lease: a reader
    // in between sees none yet
    for _ in 0..5 {
        if let Some(h) = recorded(home) {
            return (!h.is_here()).then_some(h);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// `run`: take the lease, standing by while another gateway holds it.
/// Returns None when the lease cannot be used at all (said once: the gateway
/// then runs without one, as before leases existed). Err only when the
/// profile is gone meanwhile.
pub fn take_or_stand_by(
    cfg: &crate::profile::Config,
    p: &str,
    slot: &Path,
) -> Result<Option<Lease>> {
    let home = cfg.home(p);
    let mut waited = false;
    loop {
        // A standby takes over only a profile meant to run: after an
        // operator's stop on the holder it does not even touch the lease
        // (the holder's finish writes its record under it).
        if waited && !cfg.is_real(p) {
            return Err(cfg.gone(p));
        }
        if waited && !intent_running(&home) {
            std::thread::sleep(POLL);
            continue;
        }
        match try_take(&home) {
            // (the intent again: a stop may have landed since it was read)
            Ok(Some(l)) if waited && !intent_running(&home) => drop(l),
            Ok(Some(l)) => {
                // (always: a record left by an earlier standby must never
                // make finish take this gateway's death for a standby's)
                let _ = fsutil::remove_file(&slot.join("data").join(STANDBY));
                if waited {
                    eprintln!("hermes-s6: profile '{}': the lease is free: taking over", p);
                }
                return Ok(Some(l));
            }
            Ok(None) if !waited => {
                waited = true;
                let me = std::process::id().to_string();
                if let Err(e) =
                    fsutil::write_atomic(&slot.join("data").join(STANDBY), me.as_bytes(), 0o644)
                {
                    warn(e);
                }
                let who = recorded(&home).map_or_else(|| "another container".into(), |h| h.label());
                eprintln!(
                    "hermes-s6: profile '{}': standing by, its gateway runs on {} (lease {})",
                    p,
                    who,
                    path(&home).display()
                );
            }
            Ok(None) => {}
            Err(e) => {
                if !cfg.is_real(p) {
                    return Err(cfg.gone(p));
                }
                // A lease that exists but cannot be taken (another
                // container's uid, a directory planted there) may guard a
                // running gateway: stand by. Only a home where no lease can
                // be made at all runs without one, as before leases existed.
                if !waited && fs::symlink_metadata(path(&home)).is_err() {
                    warn(format_args!(
                        "profile '{}': running without a lease: {}",
                        p,
                        e.message()
                    ));
                    return Ok(None);
                }
                if !waited {
                    waited = true;
                    warn(format_args!(
                        "profile '{}': standing by: {}",
                        p,
                        e.message()
                    ));
                }
            }
        }
        std::thread::sleep(POLL);
    }
}

/// Only an explicit `stopped` keeps a standby from taking over (a missing or
/// unreadable state is no operator's stop).
fn intent_running(home: &Path) -> bool {
    !state::desired_is(home, "stopped")
}

/// Is the slot's up process (pid) a `run` standing by?
pub fn standing_by(slot: &Path, pid: u64) -> bool {
    fsutil::read_file(&slot.join("data").join(STANDBY), 64)
        .ok()
        .flatten()
        .is_some_and(|b| b == pid.to_string().as_bytes())
}

/// `finish` of a `run` that never got the lease: its record goes; true when
/// there was one.
pub fn forget_standby(slot: &Path) -> bool {
    matches!(
        fsutil::remove_file(&slot.join("data").join(STANDBY)),
        Ok(true)
    )
}

/// This machine's host name (Docker: the container id, unless set).
pub fn hostname() -> String {
    let b = fsutil::read_file(Path::new("/proc/sys/kernel/hostname"), 256)
        .ok()
        .flatten()
        .unwrap_or_default();
    let h = String::from_utf8_lossy(&b).trim().to_string();
    if h.is_empty() {
        "unknown".into()
    } else {
        h
    }
}

/// This container, told apart from every other one sharing the volume: the
/// kernel's boot id (one per host and boot) and the PID namespace's inode
/// (one per container on that host).
pub fn node() -> String {
    let boot = fsutil::read_file(Path::new("/proc/sys/kernel/random/boot_id"), 64)
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let ns = std::fs::read_link("/proc/self/ns/pid")
        .map(|l| {
            l.to_string_lossy()
                .trim_start_matches("pid:[")
                .trim_end_matches(']')
                .to_string()
        })
        .unwrap_or_default();
    format!("{}/{}", boot.get(..8).unwrap_or(&boot), ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::tests::TempDir;

    #[test]
    fn holder_record_round_trips_and_rejects_what_is_not_one() {
        let h = Holder {
            host: "gw-a".into(),
            node: "0b1c2d3e/4026532000".into(),
            pid: 412,
            start_time: Some(18734),
            since: 1_785_578_700,
        };
        assert_eq!(Holder::parse(&h.to_json()), Some(h.clone()));
        assert_eq!(Holder::parse("{}"), None);
        assert_eq!(Holder::parse(r#"{"host":"a","node":"b","pid":0}"#), None);
        assert_eq!(Holder::parse("garbage"), None);
        let evil = Holder {
            host: "a\nprofile=x".into(),
            ..h
        };
        assert!(!evil.label().contains('\n'), "escaped: {}", evil.label());
    }

    #[test]
    fn a_held_lease_is_seen_held_and_is_free_once_dropped() {
        let t = TempDir::new("lease");
        assert!(!held(&t.0), "no file: free");
        let mut l = try_take(&t.0).unwrap().expect("free lease");
        l.publish(&Holder::me(std::process::id(), None)).unwrap();
        assert!(held(&t.0));
        assert!(try_take(&t.0).unwrap().is_none(), "exclusive");
        let r = recorded(&t.0).unwrap();
        assert!(r.is_here() && r.pid == std::process::id());
        assert_eq!(elsewhere(&t.0), None, "held here, not elsewhere");
        drop(l);
        assert!(!held(&t.0), "released with its fd");
        assert!(recorded(&t.0).is_some(), "the record stays, the lock goes");
    }

    #[test]
    fn node_tells_this_container_and_is_stable() {
        let n = node();
        assert_eq!(n, node());
        assert!(n.contains('/') && n.len() > 9, "{}", n);
    }
}

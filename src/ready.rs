//! Readiness (SPEC §7). The hermes gateway tells nobody but systemd that it is
//! ready; what it does write is `gateway_state=running` with its own pid into
//! its state file, 1.5–5 s after it starts. So `run`, just before it execs the
//! gateway, leaves a watcher behind that turns that write into s6's readiness
//! notification (`notification-fd`: s6-supervise sets the ready flag, so
//! `s6-svwait -U`, `status` and `--wait` all agree) and into `data/ready`, the
//! record `finish` reads to tell a startup failure from the death of a gateway
//! that had been working (the crash-loop rule).
//!
//! The same watcher keeps a named profile's gateway from outliving its
//! profile (SPEC §8): when the home or its `SOUL.md` goes (`rm -rf`,
//! upstream's `profile delete`, a volume unmounted), it takes the slot down
//! — the hermes gateway itself runs on and even recreates `state/` — and
//! `finish` parks it.
//!
//! It also carries out what another container asks of this gateway (SPEC
//! §8): a planned-stop marker in the home that targets this gateway and
//! names another container as its origin (`stop`/`restart` run where the
//! lease is not) is copied into the slot for `finish` and turned into this
//! container's `s6-svc -d` or `-du`: only this container's supervisor can.
//!
//! The watcher sleeps in poll(2) on inotify of the home directory (the state
//! file is replaced by a rename, IN_MOVED_TO; the home or SOUL.md going is
//! IN_DELETE_SELF/IN_MOVE_SELF/IN_DELETE/IN_MOVED_FROM) with a 1 s tick to
//! notice the gateway's death; it ends when the gateway is dead.

use crate::control;
use crate::fsutil;
use crate::procfs;
use crate::profile::{Config, DEFAULT};
use crate::state::{self, State};
use crate::sys;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// How `--wait`, s6's ready flag and the crash-loop rule learn that a gateway
/// is ready. Chosen when the slot is built (`Config::readiness`) and recorded
/// in its `data/env` as `HERMES_S6_READY`, which `run` and `finish` read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// The gateway writes `gateway_state=running` with its own pid into its
    /// state file (the hermes gateway): `run` leaves a watcher for it.
    State,
    /// Up is ready (a daemon that never reports anything).
    Up,
    /// The gateway writes to `HERMES_GATEWAY_NOTIFICATION_FD` itself.
    Fd,
}

pub const ENV: &str = "HERMES_S6_READY";

impl Readiness {
    pub fn as_str(self) -> &'static str {
        match self {
            Readiness::State => "state",
            Readiness::Up => "up",
            Readiness::Fd => "fd",
        }
    }

    pub fn parse(s: &str) -> Option<Readiness> {
        [Readiness::State, Readiness::Up, Readiness::Fd]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    /// What the slot's `data/env` says, None outside a slot.
    pub fn from_env() -> Option<Readiness> {
        std::env::var(ENV).ok().and_then(|v| Readiness::parse(&v))
    }
}

/// The fd s6-supervise hands `run` for the notification (`notification-fd`).
pub const NOTIFY_FD: i32 = 3;
/// `data/ready` in the slot: the pid of the run that became ready.
pub const FILE: &str = "ready";

/// Is this state the gateway's own claim to be running, for this very process?
/// `run` itself records the pid with `gateway_state=starting`, so only the
/// gateway's write can satisfy it. The pid alone: the watcher checks, with the
/// kernel's start time, that the pid is still its gateway, and the start time
/// the gateway writes is its own reading of `/proc/self/stat`, which qemu-user
/// (an emulated image) makes up.
pub fn claims_ready(st: &State, pid: u32) -> bool {
    st.gateway_state() == Some("running") && st.pid() == Some(pid)
}

fn path(slot: &Path) -> PathBuf {
    slot.join("data").join(FILE)
}

fn line(pid: u32) -> String {
    format!("{}\n", pid)
}

/// Did the run of `pid` become ready? Reads and always deletes `data/ready`,
/// like the marker: a record never outlives the death it was for (and the
/// watcher writes one only while its gateway lives), so the pid is enough.
pub fn consume(slot: &Path, pid: Option<u32>) -> bool {
    let p = path(slot);
    let rec = fsutil::read_file(&p, 64).ok().flatten();
    if rec.is_some() {
        let _ = fsutil::remove_file(&p);
    }
    match (rec, pid) {
        (Some(b), Some(pid)) => b == line(pid).as_bytes(),
        _ => false,
    }
}

/// The gateway (pid, start) is still the same living process.
fn alive(pid: u32, start: Option<u64>) -> bool {
    match procfs::start_time(pid) {
        Ok(t) => start.map_or(true, |s| s == t),
        Err(_) => false,
    }
}

fn ready_now(home: &Path, pid: u32) -> bool {
    match fsutil::read_file(&home.join(state::FILE), state::MAX_LEN) {
        Ok(Some(b)) => std::str::from_utf8(&b)
            .ok()
            .and_then(|t| State::parse(t).ok())
            .is_some_and(|st| claims_ready(&st, pid)),
        _ => false,
    }
}

/// What the watcher watches for.
pub struct Watch<'a> {
    pub cfg: &'a Config,
    pub profile: &'a str,
    pub slot: &'a Path,
    /// The notification fd, when the gateway reports readiness in its state file.
    pub notify: Option<i32>,
    /// The lease's fd: the gateway's to hold, never the watcher's.
    pub lease_fd: Option<i32>,
}

/// Leave a watcher for the calling process (about to exec the gateway) and
/// give up the notification fd here, so the gateway does not hold the pipe.
pub fn spawn_watcher(w: &Watch) {
    let pid = std::process::id();
    let start = procfs::start_time(pid).ok();
    // SAFETY: `run` has one thread; in the watcher, the copy of the lease's
    // fd is closed while the `Lease` owning it in the copied memory is never
    // dropped (the watcher only ever _exits).
    let spawned = unsafe {
        sys::detach(|| {
            if let Some(fd) = w.lease_fd {
                // the gateway's to hold, not ours
                sys::close_inherited(fd);
            }
            watch(w, pid, start);
        })
    };
    if !spawned {
        crate::error::warn(format_args!(
            "no readiness watcher (fork failed): s6 will not see the gateway ready"
        ));
    }
    if let Some(fd) = w.notify {
        // SAFETY: s6's notification fd, owned by no value: the watcher's
        // from here on, not the gateway's.
        unsafe { sys::close_inherited(fd) };
    }
}

/// The watcher's life: returns only to `_exit`.
fn watch(w: &Watch, pid: u32, start: Option<u64>) {
    let home = w.cfg.home(w.profile);
    let mut notify = w.notify;
    let mut asked = false;
    // stderr stays: the watcher's few lines belong in the gateway's log
    sys::to_dev_null(&[0, 1]);
    let mut ino = Inotify::new(&home);
    loop {
        // First: a dead gateway's pid in the state file (finish leaves it
        // there) must never be taken for this one being ready.
        if !alive(pid, start) {
            return;
        }
        if let Some(fd) = notify.filter(|_| ready_now(&home, pid)) {
            // data/ready first: once s6 says ready, finish must know it.
            if let Err(e) = fsutil::write_atomic(&path(w.slot), line(pid).as_bytes(), 0o644) {
                crate::error::warn(e);
            }
            // SAFETY: the watcher's copy of s6's notification fd, owned by
            // no value: one byte to the pipe, then our end of it closed.
            unsafe {
                let _ = sys::write_inherited(fd, b"\n");
                sys::close_inherited(fd);
            }
            notify = None;
        }
        if !asked {
            if let Some(m) = asked_from_elsewhere(&home, pid, start) {
                // done once it worked (a lock wait that timed out, a
                // supervisor not there yet: tried again at the next wake-up)
                asked = carry_out(w, &m);
            }
        }
        // A moment without SOUL.md (an editor saving by rename, a sync) is
        // not a deletion: it must still be gone a second later.
        if w.profile != DEFAULT && !w.cfg.is_real(w.profile) {
            std::thread::sleep(std::time::Duration::from_secs(1));
            if !w.cfg.is_real(w.profile) {
                if alive(pid, start) {
                    gone(w);
                }
                return;
            }
            // back: watching goes on (readiness, another container's asks)
        }
        if !ino.ok() || ino.home_gone {
            // a new home (recreated by the gateway) is watched afresh
            ino = Inotify::new(&home);
        }
        ino.wait(if ino.ok() { 1000 } else { 200 });
    }
}

/// The profile was deleted under its running gateway: take the slot down
/// (no marker: `finish` sees the profile gone and parks it).
fn gone(w: &Watch) {
    crate::error::warn(format_args!(
        "profile '{}': {} is gone (no SOUL.md): taking its gateway down",
        w.profile,
        w.cfg.home(w.profile).display()
    ));
    let r = crate::slot::lock(w.cfg, w.profile).and_then(|_turn| {
        crate::slot::set_autostart(w.slot, false).and_then(|_| control::svc(w.slot, "d"))
    });
    if let Err(e) = r {
        crate::error::warn(e);
    }
}

/// A planned-stop marker for this gateway (pid, start time) written by
/// another container.
fn asked_from_elsewhere(
    home: &Path,
    pid: u32,
    start: Option<u64>,
) -> Option<crate::marker::Marker> {
    let m = crate::marker::read(home).ok()??;
    let here = crate::lease::node();
    (m.origin.as_ref().is_some_and(|o| *o != here)
        && m.is_fresh(crate::clock::now_secs())
        && m.targets(Some(pid), start))
    .then_some(m)
}

/// Another container asked this gateway to stop or restart: what its own
/// `stop`/`restart` would have done here (the marker copy first, for
/// finish). True when done.
fn carry_out(w: &Watch, m: &crate::marker::Marker) -> bool {
    let restart = m.is_restart();
    eprintln!(
        "hermes-s6: profile '{}': {} asked from another container",
        w.profile,
        if restart { "restart" } else { "stop" }
    );
    let r = crate::slot::lock(w.cfg, w.profile).and_then(|_turn| {
        crate::marker::write_marker(&w.slot.join("data"), m)
            .and_then(|_| crate::slot::set_autostart(w.slot, restart))
            .and_then(|_| control::svc(w.slot, if restart { "du" } else { "d" }))
    });
    match r {
        Ok(()) => true,
        Err(e) => {
            crate::error::warn(e);
            false
        }
    }
}

/// inotify on the home directory: the rename that publishes the state file,
/// SOUL.md or the directory itself going away.
struct Inotify {
    /// None when inotify could not be had: the watcher then ticks.
    fd: Option<OwnedFd>,
    /// The watched directory itself was deleted or moved.
    home_gone: bool,
}

impl Inotify {
    fn new(dir: &Path) -> Inotify {
        let mask = libc::IN_MOVED_TO
            | libc::IN_DELETE
            | libc::IN_MOVED_FROM
            | libc::IN_DELETE_SELF
            | libc::IN_MOVE_SELF
            | libc::IN_ONLYDIR
            | libc::IN_DONT_FOLLOW;
        Inotify {
            fd: sys::cpath(dir)
                .and_then(|c| sys::inotify_watch(&c, mask))
                .ok(),
            home_gone: false,
        }
    }

    fn ok(&self) -> bool {
        self.fd.is_some()
    }

    /// Sleep until an event or `ms`, then drain the queue (the caller re-reads).
    fn wait(&mut self, ms: i32) {
        let Some(fd) = self.fd.as_ref().map(|f| f.as_fd()) else {
            std::thread::sleep(std::time::Duration::from_millis(ms as u64));
            return;
        };
        sys::poll_in(fd, ms);
        let mut buf = [0u8; 4096];
        let hdr = std::mem::size_of::<libc::inotify_event>();
        while let Ok(n @ 1..) = sys::read(fd, &mut buf) {
            let mut off = 0usize;
            while off + hdr <= n {
                // the fixed part of one event; its name (len bytes) follows
                let word = |at: usize| {
                    let b = &buf[off + at..off + at + 4];
                    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
                };
                let (mask, len) = (word(4), word(12));
                if mask & (libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_IGNORED) != 0 {
                    self.home_gone = true;
                }
                off += hdr + len as usize;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(t: &str) -> State {
        State::parse(t).unwrap()
    }

    #[test]
    fn only_the_gateways_own_running_with_its_pid_is_ready() {
        let s = st(r#"{"gateway_state":"running","pid":41,"start_time":7}"#);
        assert!(claims_ready(&s, 41));
        assert!(!claims_ready(&s, 42), "another pid");
        let s = st(r#"{"gateway_state":"starting","pid":41}"#);
        assert!(!claims_ready(&s, 41), "what run itself records");
        let s = st(r#"{"gateway_state":"running"}"#);
        assert!(!claims_ready(&s, 41), "no pid");
    }

    #[test]
    fn ready_record_is_consumed_and_matches_only_its_run() {
        let t = std::env::temp_dir().join(format!("hs6-ready-{}", std::process::id()));
        std::fs::create_dir_all(t.join("data")).unwrap();
        std::fs::write(path(&t), line(41)).unwrap();
        assert!(consume(&t, Some(41)));
        assert!(!path(&t).exists(), "always deleted");
        std::fs::write(path(&t), line(41)).unwrap();
        assert!(!consume(&t, Some(42)), "another run's record");
        assert!(!path(&t).exists(), "deleted all the same");
        assert!(!consume(&t, Some(41)), "no record: never became ready");
        std::fs::remove_dir_all(&t).unwrap();
    }
}

//! Operator commands: register, unregister, start, stop, restart.
//!
//! The order of every step is the point (SPEC §2, §3.3):
//! * intent is persisted *before* s6 is told anything, so a container stop
//!   in between never loses it;
//! * a stop's marker goes into the **target** profile's home, before the
//!   signal (upstream #103772);
//! * when s6 refuses, the previous `desired_state` is restored and the marker
//!   deleted: a failed command leaves every file as it was.

use crate::control;
use crate::error::{refused, warn, Error, Result};
use crate::fsutil;
use crate::lease::{self, Holder};
use crate::lifecycle::Tally;
use crate::marker;
use crate::profile::{Config, Profile, Reality};
use crate::slot::{self, Spec};
use crate::state::{self, State};
use crate::svstat::{self, Status};
use std::path::Path;
use std::time::Duration;

pub const DEFAULT_WAIT_MS: u64 = 10_000;

/// `--wait [--timeout MS]`.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    pub wait: bool,
    pub timeout: Duration,
}

impl Default for Wait {
    fn default() -> Self {
        Wait {
            wait: false,
            timeout: Duration::from_millis(DEFAULT_WAIT_MS),
        }
    }
}

/// How long to wait for a freshly published slot to be supervised.
const SUPERVISE_WAIT: Duration = Duration::from_millis(5000);

fn no_such(cfg: &Config, p: &str) -> Error {
    refused(format!(
        "no such gateway '{}': no slot in {} and {} has no SOUL.md",
        p,
        cfg.scandir.display(),
        cfg.home(p).display()
    ))
}

/// The state file as it was before a command touched it, and what the command wrote.
pub struct Snapshot {
    /// The file's bytes (None: no file), kept only when they are what the locked update
    /// read (another writer may have come in between the read and the lock).
    before: Option<Option<Vec<u8>>>,
    /// `desired_state` as the locked update read it.
    prev: Option<String>,
    written: String,
}

/// Set `desired_state`, keeping a byte-exact snapshot for a rollback.
fn set_desired(home: &Path, v: &str) -> Result<Snapshot> {
    let path = home.join(state::FILE);
    let raw = fsutil::read_file(&path, state::MAX_LEN)?;
    let was = raw
        .as_deref()
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|t| State::parse(t).ok())
        .unwrap_or_default();
    let (mut prev, mut same) = (None, false);
    let st = state::update(home, |s| {
        prev = s.desired_state().map(str::to_string);
        same = *s == was;
        s.set_str("desired_state", v);
    })?;
    Ok(Snapshot {
        before: same.then_some(raw),
        prev,
        written: st.to_json(),
    })
}

/// Put the state file back as it was (SPEC §2: a failed command leaves
/// every file as it was), or remove it if there was none — when nobody else
/// wrote it meanwhile (checked under the lock). Otherwise put back only
/// `desired_state`: concurrent writers never lose each other's update (§3.1).
fn restore_desired(home: &Path, snap: Snapshot) {
    let path = home.join(state::FILE);
    if let Some(before) = &snap.before {
        let exact = fsutil::lock_exclusive(&home.join(state::LOCK_FILE)).and_then(|_lock| {
            let now = fsutil::read_file(&path, state::MAX_LEN)?;
            if now.as_deref() != Some(snap.written.as_bytes()) {
                return Ok(false);
            }
            match before {
                Some(bytes) => fsutil::write_atomic(&path, bytes, 0o644)?,
                None => {
                    fsutil::remove_file(&path)?;
                }
            }
            Ok(true)
        });
        match exact {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => warn(format_args!("could not restore {}: {}", path.display(), e)),
        }
    }
    let r = state::update(home, |s| match &snap.prev {
        Some(v) => s.set_str("desired_state", v),
        None => {
            s.remove("desired_state");
        }
    });
    if let Err(e) = r {
        warn(format_args!("could not restore {}: {}", path.display(), e));
    }
}

/// `register P [--start]`.
pub fn register(cfg: &Config, p: &Profile, start: bool) -> Result<()> {
    let _turn = slot::lock(cfg, p)?;
    if !cfg.is_real(p) {
        return Err(no_such(cfg, p));
    }
    if slot::is_registered(cfg, p) {
        return Err(refused(format!(
            "the s6 gateway slot for profile '{}' is already registered ({})",
            p,
            cfg.slot_dir(p).display()
        )));
    }
    let room = crate::scanner::claim_room(cfg, p)?;
    let prev = if start {
        Some(set_desired(&cfg.home(p), "running")?)
    } else {
        None
    };
    let published = slot::publish(cfg, &Spec::new(cfg, p, start));
    drop(room);
    if let Err(e) = published {
        if let Some(prev) = prev {
            restore_desired(&cfg.home(p), prev);
        }
        return Err(e);
    }
    // The slot is published: a scanner that cannot be told now picks it up
    // at its next scan, so this is a warning, not a failure of register.
    match slot::rescan(cfg) {
        Ok(true) => {}
        Ok(false) => warn(format_args!(
            "no s6-svscan listens on {}: gateway-{} is picked up at its next scan",
            cfg.scandir.display(),
            p
        )),
        Err(e) => warn(e),
    }
    Ok(())
}

/// `unregister P`: not registered → no-op.
pub fn unregister(cfg: &Config, p: &Profile, w: Wait) -> Result<()> {
    let _turn = slot::lock(cfg, p)?;
    let dir = cfg.slot_dir(p);
    if slot::is_registered(cfg, p) {
        // A planned stop, so a hermes gateway exits cleanly; the intent is
        // left alone (the profile's files are untouched).
        if let Some(pid) = up_pid(&dir)? {
            if let Err(e) = marker::write(&cfg.home(p), pid, None) {
                warn(e);
            }
        }
    }
    slot::unpublish(cfg, p, w.timeout)?;
    Ok(())
}

/// Write the planned-stop marker into P's home (for the gateway) and a copy
/// into the slot's `data/` (for finish): a hermes gateway deletes the marker
/// it consumes and exits 0, and finish must still tell that from a
/// deliberate exit, or a restart would be parked (finish 125).
/// A marker that cannot be written (the gateway died meanwhile, so its
/// /proc/PID/stat is gone; EACCES…) is a warning, never a reason not to stop:
/// the intent is already on disk and wins at the next boot (as upstream).
fn mark(home: &Path, dir: &Path, pid: u32, action: Option<&str>) -> bool {
    if let Err(e) = marker::write(home, pid, action) {
        warn(format_args!(
            "profile home {}: no planned-stop marker: {}",
            home.display(),
            e
        ));
        return false;
    }
    if let Err(e) = marker::write(&dir.join("data"), pid, action) {
        warn(e);
    }
    true
}

/// The marker for a gateway that runs in another container: that
/// container's watcher carries it out (SPEC §8).
fn mark_remote(home: &Path, h: &Holder, action: Option<&str>) -> bool {
    match marker::write_remote(home, h, action) {
        Ok(()) => true,
        Err(e) => {
            warn(format_args!(
                "profile home {}: no planned-stop marker for the gateway on {}: {}",
                home.display(),
                h.label(),
                e
            ));
            false
        }
    }
}

/// The gateway of this profile is ready in another container (not `not`,
/// the one a restart replaces): its lease is held there and its own record
/// says running, with its pid.
fn ready_elsewhere(home: &Path, not: Option<&Holder>) -> Option<Holder> {
    let h = lease::elsewhere(home)?;
    if not.is_some_and(|n| n.node == h.node && n.pid == h.pid) {
        return None;
    }
    let st = state::load(home).ok()??;
    (st.gateway_state() == Some("running") && st.pid() == Some(h.pid)).then_some(h)
}

/// `--wait` on start/restart: ready here, or in another container (said).
fn wait_ready(
    p: &str,
    what: &str,
    w: Wait,
    dir: &Path,
    home: &Path,
    not_pid: u64,
    not_holder: Option<&Holder>,
) -> Result<()> {
    let mut there = None;
    wait_for(
        p,
        what,
        w,
        |s| {
            if is_up(s, dir, not_pid, home) {
                return true;
            }
            there = ready_elsewhere(home, not_holder);
            there.is_some()
        },
        dir,
    )?;
    if let Some(h) = there {
        eprintln!(
            "hermes-s6: profile '{}': ready on {} (another container; this one stands by)",
            p,
            h.label()
        );
    }
    Ok(())
}

/// A step of a rollback (or a clean-up after success) that failed: the
/// command's outcome stands, but a file may not be as it was — said, never
/// swallowed.
fn undone<T>(r: Result<T>) {
    if let Err(e) = r {
        warn(e);
    }
}

fn unmark(home: &Path, dir: &Path) {
    undone(marker::remove(home));
    undone(marker::remove(&dir.join("data")));
}

/// The pid s6 says is up. `supervise/status` carries 64 bits; a value no
/// kernel gives a process (a forged or corrupt file) is no pid at all, never
/// a truncated one that would name another process.
fn up_pid(dir: &Path) -> Result<Option<u32>> {
    Ok(svstat::read(dir)?
        .filter(|s| s.up && s.pid > 0)
        .and_then(|s| u32::try_from(s.pid).ok())
        .filter(|&p| p <= i32::MAX as u32))
}

/// Make sure P has a slot that a supervisor runs; registers a missing slot of
/// a real profile (down, the caller brings it up).
fn ensure_slot(cfg: &Config, p: &str) -> Result<()> {
    let mut registered = false;
    if !slot::is_registered(cfg, p) {
        if !cfg.is_real(p) {
            return Err(no_such(cfg, p));
        }
        let room = crate::scanner::claim_room(cfg, p)?;
        slot::publish(cfg, &Spec::new(cfg, p, false))?;
        drop(room);
        registered = true;
        eprintln!(
            "hermes-s6: registered the s6 gateway slot for profile '{}'",
            p
        );
        if let Err(e) = slot::rescan(cfg) {
            warn(e);
        }
    }
    let dir = cfg.slot_dir(p);
    if !slot::wait_supervised(&dir, SUPERVISE_WAIT)? {
        // A failed command leaves every file as it was: the slot we just
        // published goes again (no supervisor runs on it).
        if registered && slot::unpublish(cfg, p, Duration::from_millis(DEFAULT_WAIT_MS)).is_ok() {
            eprintln!(
                "hermes-s6: removed the s6 gateway slot for profile '{}' again",
                p
            );
        }
        return Err(refused(format!(
            "profile '{}': {} is not supervised (is s6-svscan running on {}?)",
            p,
            dir.display(),
            cfg.scandir.display()
        )));
    }
    Ok(())
}

/// Up for `--wait`: s6 says up (and ready, when the slot asks for
/// readiness), with a pid other than the old one, and `hermes-s6 run` has
/// recorded that pid — so a `stop` right after `start --wait` finds the
/// gateway's identity on disk and its marker is recognised.
fn is_up(st: &Status, dir: &Path, not_pid: u64, home: &Path) -> bool {
    st.up
        && st.pid != not_pid
        && slot::is_ready(st, dir)
        && state::load(home)
            .ok()
            .flatten()
            .and_then(|s| s.pid())
            .is_some_and(|pid| pid as u64 == st.pid)
}

fn wait_for(
    p: &str,
    what: &str,
    w: Wait,
    mut cond: impl FnMut(&Status) -> bool,
    dir: &Path,
) -> Result<()> {
    if !w.wait {
        return Ok(());
    }
    let ok = control::wait_until(w.timeout, || {
        Ok(svstat::read(dir)?.is_some_and(|s| cond(&s)))
    })?;
    if ok {
        Ok(())
    } else {
        Err(refused(format!(
            "profile '{}': timed out after {} ms waiting for the gateway to be {}",
            p,
            w.timeout.as_millis(),
            what
        )))
    }
}

/// The first steps of `start` and `restart`: P's turn (intent and signal in
/// one turn: a concurrent stop cannot land between them), a gateway that
/// exists, `desired_state=running` persisted (the snapshot for a rollback).
fn begin_running(
    cfg: &Config,
    p: &Profile,
) -> Result<(Option<slot::Turn>, std::path::PathBuf, Snapshot)> {
    let turn = slot::lock(cfg, p)?;
    let home = cfg.home(p);
    match (cfg.reality(p), slot::is_registered(cfg, p)) {
        (Reality::Real, _) => {}
        (Reality::Gone, true) => return Err(cfg.gone(p)),
        // unreadable: the state write below says what is wrong
        (Reality::Unknown(_), true) => {}
        (_, false) => return Err(no_such(cfg, p)),
    }
    let prev = set_desired(&home, "running")?;
    Ok((turn, home, prev))
}

/// `start P`.
pub fn start(cfg: &Config, p: &Profile, w: Wait) -> Result<()> {
    let (turn, home, prev) = begin_running(cfg, p)?;
    let dir = cfg.slot_dir(p);
    let mut had_down = None;
    // A gateway still up while s6 wants it down is on its way out (a stop
    // just sent): `--wait` must wait for the next one, not take it for ready.
    let mut leaving = 0;
    let sent = ensure_slot(cfg, p).and_then(|_| {
        had_down = Some(dir.join("down").exists());
        if let Ok(Some(st)) = svstat::read(&dir) {
            if st.up && !st.want_up {
                leaving = st.pid;
            }
        }
        slot::set_autostart(&dir, true)?;
        control::svc(&dir, "u")
    });
    if let Err(e) = sent {
        if let Some(d) = had_down {
            undone(slot::set_autostart(&dir, !d));
        }
        restore_desired(&home, prev);
        return Err(e);
    }
    // A start clears the crash-loop count (SPEC §3.3), once it happened.
    undone(Tally::clear(&dir));
    drop(turn);
    wait_ready(p, "up", w, &dir, &home, leaving, None)
}

/// `stop P`.
pub fn stop(cfg: &Config, p: &Profile, w: Wait) -> Result<()> {
    let turn = slot::lock(cfg, p)?;
    let home = cfg.home(p);
    let dir = cfg.slot_dir(p);
    // Its gateway may run in another container, which carries the stop out.
    let away = lease::elsewhere(&home);
    if !slot::is_registered(cfg, p) {
        if !cfg.is_real(p) {
            return Err(no_such(cfg, p));
        }
        // Nothing runs here; the intent still has to survive the next boot.
        set_desired(&home, "stopped")?;
        if let Some(h) = &away {
            mark_remote(&home, h, None);
            drop(turn);
            return wait_lease_free(p, w, &home);
        }
        return Ok(());
    }
    if !cfg.is_real(p) {
        // Its home is gone: no intent to keep, no marker to leave; just down.
        warn(format_args!(
            "profile '{}' is deleted ({} has no SOUL.md): taking its slot down",
            p,
            home.display()
        ));
        let had_down = dir.join("down").exists();
        slot::set_autostart(&dir, false)?;
        if let Err(e) = control::svc(&dir, "d") {
            undone(slot::set_autostart(&dir, !had_down));
            return Err(e);
        }
        drop(turn);
        return wait_for(p, "down", w, |s| !s.up && !s.finishing, &dir);
    }
    let pid = up_pid(&dir)?;
    let prev = set_desired(&home, "stopped")?;
    let marked = match &away {
        Some(h) => mark_remote(&home, h, None),
        None => pid.is_some_and(|pid| mark(&home, &dir, pid, None)),
    };
    let had_down = dir.join("down").exists();
    let sent = slot::set_autostart(&dir, false).and_then(|_| control::svc(&dir, "d"));
    if let Some(h) = &away {
        // The stop is the other container's to carry out (its watcher may
        // have done it already): this side's own slot only stands by, and
        // a supervisor missing here fails nothing.
        if let Err(e) = sent {
            warn(format_args!(
                "profile '{}': the gateway on {} is being stopped; this container's slot: {}",
                p,
                h.label(),
                e
            ));
        }
        drop(turn);
        return wait_lease_free(p, w, &home);
    }
    if let Err(e) = sent {
        undone(slot::set_autostart(&dir, !had_down));
        restore_desired(&home, prev);
        if marked {
            unmark(&home, &dir);
        }
        return Err(e);
    }
    drop(turn);
    wait_for(p, "down", w, |s| !s.up && !s.finishing, &dir)
}

/// `stop --wait` of a gateway in another container: down means its lease is free.
fn wait_lease_free(p: &str, w: Wait, home: &Path) -> Result<()> {
    if !w.wait {
        return Ok(());
    }
    if control::wait_until(w.timeout, || Ok(!lease::held(home)))? {
        return Ok(());
    }
    Err(refused(format!(
        "profile '{}': timed out after {} ms waiting for the gateway in another container to be down",
        p,
        w.timeout.as_millis()
    )))
}

/// `restart P`: comes back with a new pid even if it was stopped before.
pub fn restart(cfg: &Config, p: &Profile, w: Wait) -> Result<()> {
    let (turn, home, prev) = begin_running(cfg, p)?;
    let dir = cfg.slot_dir(p);
    if let Err(e) = ensure_slot(cfg, p) {
        restore_desired(&home, prev);
        return Err(e);
    }
    let had_down = dir.join("down").exists();
    // every failure from here on puts the `down` file back too
    let undo = |prev| {
        undone(slot::set_autostart(&dir, !had_down));
        restore_desired(&home, prev);
    };
    if let Err(e) = slot::set_autostart(&dir, true) {
        undo(prev);
        return Err(e);
    }
    let old = match up_pid(&dir) {
        Ok(v) => v,
        Err(e) => {
            undo(prev);
            return Err(e);
        }
    };
    // A gateway in another container is restarted there (its watcher does
    // it); this side only makes sure its own slot is up (standing by).
    let away = lease::elsewhere(&home);
    let marked = match &away {
        Some(h) => mark_remote(&home, h, Some("restart")),
        None => old.is_some_and(|pid| mark(&home, &dir, pid, Some("restart"))),
    };
    // `d` then `u`: restarts an up gateway and starts a down one. Not `r`:
    // it only sends the signal, so timeout-kill never fires and a gateway
    // that ignores SIGTERM would never come back (s6-supervise's killr).
    let how = if away.is_some() { "u" } else { "du" };
    if let Err(e) = control::svc(&dir, how) {
        undo(prev);
        if marked {
            unmark(&home, &dir);
        }
        return Err(e);
    }
    // A restart clears the crash-loop count (SPEC §3.3), once it happened.
    undone(Tally::clear(&dir));
    let old = if away.is_some() {
        0
    } else {
        old.map_or(0, u64::from)
    };
    drop(turn);
    wait_ready(p, "up again", w, &dir, &home, old, away.as_ref())
}

/// Targets of `--all`: `start` takes every registered or real profile (so a
/// new profile comes up too); `stop`/`restart` every registered slot. What
/// comes up (`up`: start, restart) skips, with a warning, the slots of
/// deleted profiles: nothing can bring them up.
pub fn all(cfg: &Config, include_real: bool, up: bool) -> Result<Vec<Profile>> {
    let mut v = slot::list(cfg)?;
    if up {
        v.retain(|p| {
            let deleted = matches!(cfg.reality(p), Reality::Gone);
            if deleted {
                warn(format_args!("skipping {}", cfg.gone(p).message()));
            }
            !deleted
        });
    }
    if include_real {
        for p in crate::reconcile::real_profiles(cfg, true)? {
            if !v.contains(&p) {
                v.push(p);
            }
        }
        v.sort_unstable();
    }
    // default first, as at boot
    if let Some(i) = v.iter().position(|p| p == "default") {
        let d = v.remove(i);
        v.insert(0, d);
    }
    Ok(v)
}

//! Boot reconciliation (SPEC §5) and the one root step before it
//! (`init-scandir`, SPEC §4).

use crate::bootlog::{self, Entry};
use crate::clock;
use crate::error::{refused, sys, warn, Result};
use crate::fsutil;
use crate::profile::{self, Config, Profile};
use crate::slot::{self, Spec};
use crate::state;
use crate::svstat;
use std::fs::{self, File};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

/// The root scandir of s6-overlay: the compatibility layout.
pub const ROOT_SCANDIR: &str = "/run/service";

/// `default`, then every real profile in name order. Bad entries are skipped
/// (with a warning when `warnings`: reconcile and `start --all` say it,
/// `status` does not repeat it at every call); one bad profile never stops
/// the others.
pub fn real_profiles(cfg: &Config, warnings: bool) -> Result<Vec<Profile>> {
    let warn = |m: std::fmt::Arguments| {
        if warnings {
            warn(m)
        }
    };
    let mut out = vec![Profile::default_profile()];
    let dir = cfg.hermes_home.join("profiles");
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            warn(format_args!(
                "unable to read {}: {}; only the default profile",
                dir.display(),
                crate::error::os_text(&e)
            ));
            return Ok(out);
        }
    };
    let mut names = Vec::new();
    for ent in rd.flatten() {
        let path = ent.path();
        // Symlinked profile dirs are not followed (file_type is lstat's);
        // one that leads to a directory is said, since upstream followed it
        // and an operator who linked a profile in expects it to run.
        let Ok(ft) = ent.file_type() else { continue };
        if ft.is_symlink() && fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            warn(format_args!(
                "skipping {}: a symbolic link (profile directories are not followed)",
                crate::error::escape(&path.display().to_string())
            ));
            continue;
        }
        if !ft.is_dir() {
            continue;
        }
        let Some(name) = ent.file_name().to_str().map(str::to_string) else {
            warn(format_args!(
                "skipping {}: name is not UTF-8",
                crate::error::escape(&path.display().to_string())
            ));
            continue;
        };
        // (a directory, not a link: the entry's own type said so)
        match profile::soul_reality(&path) {
            profile::Reality::Real => {}
            profile::Reality::Gone => continue,
            profile::Reality::Unknown(e) => {
                warn(format_args!(
                    "skipping profile directory {}: {}",
                    crate::error::escape(&path.display().to_string()),
                    crate::error::os_text(&e)
                ));
                continue;
            }
        }
        if name == profile::DEFAULT {
            warn(format_args!(
                "skipping {}: 'default' is the root profile ($HERMES_HOME itself)",
                crate::error::escape(&path.display().to_string())
            ));
            continue;
        }
        match Profile::parse(&name) {
            Ok(p) => names.push(p),
            Err(e) => warn(format_args!(
                "skipping {}: {}",
                crate::error::escape(&path.display().to_string()),
                e
            )),
        }
    }
    names.sort_unstable();
    out.extend(names);
    Ok(out)
}

/// Upstream's legacy seed (#34339): a profile without a state file, in a
/// container whose main command is the pre-s6 `gateway run`, gets
/// `desired_state=running` (upstream's own record, `migrated_from` included).
/// `HERMES_GATEWAY_NO_SUPERVISE=1|true|yes` turns it off. Returns whether it
/// seeded.
pub fn seed_legacy(cfg: &Config, p: &str) -> Result<bool> {
    if profile::no_supervise(std::env::var("HERMES_GATEWAY_NO_SUPERVISE").ok().as_deref()) {
        return Ok(false);
    }
    let home = cfg.home(p);
    // Only a state file that is not there at all: one that cannot be read
    // (EACCES, a FIFO, too big) is someone's state, never overwritten.
    let _lock = fsutil::lock_exclusive(&home.join(state::LOCK_FILE))?;
    if fsutil::read_file(&home.join(state::FILE), state::MAX_LEN)?.is_some() {
        return Ok(false);
    }
    let seed = format!(
        "{{\"gateway_state\": \"running\", \"desired_state\": \"running\", \"timestamp\": {}, \"migrated_from\": \"legacy-container-cmd\"}}\n",
        clock::now_secs()
    );
    fsutil::write_atomic(&home.join(state::FILE), seed.as_bytes(), 0o644)?;
    Ok(true)
}

/// `GATEWAY_MULTIPLEX_PROFILES=1|true|yes`: one gateway serves every profile,
/// so the named profiles' slots are registered but never autostarted.
pub fn multiplexed() -> bool {
    profile::env_truthy("GATEWAY_MULTIPLEX_PROFILES")
}

/// Reconcile one profile; returns its boot-log entry.
fn one(cfg: &Config, b: Option<&slot::Builder>, p: &Profile, multiplex: bool) -> Result<Entry> {
    let home = cfg.home(p);
    let st = state::load(&home).unwrap_or_else(|e| {
        warn(format_args!(
            "profile '{}': {}; treating as no prior state",
            p, e
        ));
        None
    });
    let prior = state::resolve_intent(st.as_ref()).map(str::to_string);
    let started = state::autostarts(prior.as_deref()) && !(multiplex && p != profile::DEFAULT);
    let entry = Entry {
        profile: p.to_string(),
        prior_state: prior,
        started,
        prior_exit: bootlog::prior_exit(&home),
    };
    let Some(b) = b else {
        return Ok(entry); // --dry-run
    };
    // Runtime leftovers of the previous container; gateway.lock is the
    // gateway's own business. Not leftovers while another container's
    // gateway holds the profile's lease: they are that gateway's.
    if !crate::lease::held(&home) {
        for f in [crate::lifecycle::PID_FILE, "processes.json"] {
            fsutil::remove_file(&fsutil::join(&home, f))?;
        }
    }
    let spec = Spec::new(cfg, p, started);
    if b.publish_new(&spec)? {
        return Ok(entry);
    }
    // Registered already. A slot a running scanner has not picked up yet
    // (just published by a register) is not a leftover: only with no
    // scanner listening is an unsupervised slot one, rebuilt from scratch.
    let dir = cfg.slot_dir(p);
    let is_dir = fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir());
    if is_dir && (b.scanner_listens || svstat::is_supervised(&dir)?) {
        slot::set_autostart(&dir, started)?;
        return Ok(entry);
    }
    // an unsupervised leftover, or something planted in its place
    slot::remove_tree(&dir)?;
    b.publish(&spec)?;
    Ok(entry)
}

/// `hermes-s6 reconcile [--dry-run]`.
pub fn reconcile(cfg: &Config, dry_run: bool) -> Result<Vec<Entry>> {
    let role = crate::role::detect();
    if !dry_run {
        clear_retired(cfg);
        if let Err(e) = crate::role::record(&cfg.scandir, role) {
            warn(e);
        }
    }
    if role == crate::role::Role::Dashboard {
        crate::error::out(
            "reconcile: skipping (dashboard container — does not need per-profile gateways)\n",
        );
        return Ok(Vec::new());
    }
    if role == crate::role::Role::LegacyGatewayRun && !dry_run {
        match seed_legacy(cfg, profile::DEFAULT) {
            Ok(true) => crate::error::out(
                "reconcile: seeded desired_state=running for the default profile (the container runs `gateway run`)\n",
            ),
            Ok(false) => {}
            Err(e) => warn(e),
        }
    }
    let multiplex = multiplexed();
    if multiplex {
        crate::error::out(
            "reconcile: GATEWAY_MULTIPLEX_PROFILES is set: named profiles are registered, never started\n",
        );
    }
    let (profiles, left_out) = within_limit(cfg, real_profiles(cfg, true)?);
    // every profile's turn: commands on single profiles wait (bounded)
    let mut turn = None;
    if !dry_run {
        fsutil::ensure_dir(&cfg.scandir, 0o755)?;
        turn = Some(slot::lock_all(cfg)?);
        slot::sweep_tmp(cfg, turn.as_ref().expect("just taken"))?;
        for p in slot::list(cfg)? {
            // profiles = default, then the rest sorted
            let drop = if left_out.binary_search(&p).is_ok() {
                true
            } else {
                p != profile::DEFAULT && profiles[1..].binary_search(&p).is_err() && gone(cfg, &p)
            };
            if drop {
                if let Err(e) = slot::unpublish(cfg, &p, Duration::from_millis(10_000)) {
                    warn(e);
                }
            }
        }
    }
    // One Builder for the whole boot: what every slot shares is worked out once.
    let builder = if dry_run {
        None
    } else {
        Some(slot::Builder::for_boot(cfg)?)
    };
    let results = each_profile(&profiles, |p| one(cfg, builder.as_ref(), p, multiplex));
    let mut entries = Vec::with_capacity(profiles.len());
    let mut failed = 0;
    // stdout in blocks: one write per 64 profiles, not one per profile
    let mut lines = String::new();
    for (p, r) in profiles.iter().zip(results) {
        if lines.len() > 4096 {
            crate::error::out(&std::mem::take(&mut lines));
        }
        match r {
            Ok(e) => {
                lines.push_str(&e.stdout_line());
                lines.push('\n');
                entries.push(e);
            }
            Err(e) => {
                crate::error::out(&std::mem::take(&mut lines));
                warn(format_args!("profile '{}' skipped: {}", p, e));
                failed += 1;
            }
        }
    }
    crate::error::out(&lines);
    if !dry_run {
        let ts = clock::boot_log_stamp(clock::now().0);
        if let Err(e) = bootlog::append(&cfg.hermes_home, &ts, &entries) {
            warn(e);
        }
        // cont-init.d runs before the nested scanner starts: it scans at
        // start, so "not listening" is normal here.
        if let Err(e) = slot::rescan(cfg) {
            warn(e);
        }
    }
    drop(turn);
    if failed > 0 {
        // Every other profile was done; exit 1 says the boot is incomplete
        // (111 stays for a reconcile that could not run at all).
        return Err(crate::error::Error::Refused(format!(
            "{} of {} profiles could not be reconciled (see the warnings above)",
            failed,
            profiles.len()
        )));
    }
    Ok(entries)
}

/// `f` for every profile, results in the profiles' order. Profiles are
/// independent (own home, own slot, own lock), so a large boot spreads them
/// over a few threads: most of the cost is the kernel creating inodes, and
/// two cores create them nearly twice as fast.
fn each_profile<T: Send>(profiles: &[Profile], f: impl Fn(&Profile) -> T + Sync) -> Vec<T> {
    const PER_THREAD_MIN: usize = 64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(4).min(profiles.len() / PER_THREAD_MIN).max(1);
    if threads == 1 {
        return profiles.iter().map(&f).collect();
    }
    let chunk = profiles.len().div_ceil(threads);
    std::thread::scope(|sc| {
        let handles: Vec<_> = profiles
            .chunks(chunk)
            .map(|part| {
                let f = &f;
                sc.spawn(move || part.iter().map(f).collect::<Vec<T>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// At most `cfg.max_profiles` profiles get a slot (the scanner is sized for
/// that many; past its limit s6-svscan would supervise none): `default`
/// first, then the profiles meant to run, then the others, each in name
/// order. Returns the kept ones (default first, then sorted, as before) and
/// the left-out ones (sorted), said in one warning — never silently.
fn within_limit(cfg: &Config, profiles: Vec<Profile>) -> (Vec<Profile>, Vec<Profile>) {
    if profiles.len() <= cfg.max_profiles {
        return (profiles, Vec::new());
    }
    let runs = |p: &Profile| {
        state::autostarts(state::resolve_intent(
            state::load(&cfg.home(p)).ok().flatten().as_ref(),
        ))
    };
    let (default, rest) = profiles.split_at(1);
    let (mut running, others): (Vec<Profile>, Vec<Profile>) = rest.iter().cloned().partition(runs);
    let mut order: Vec<Profile> = default.to_vec();
    order.append(&mut running);
    order.extend(others);
    let mut left_out = order.split_off(cfg.max_profiles);
    let mut kept = order;
    kept[1..].sort_unstable();
    left_out.sort_unstable();
    let shown: Vec<String> = left_out
        .iter()
        .take(10)
        .map(|p| crate::error::escape(p).into_owned())
        .collect();
    warn(format_args!(
        "{} profiles, but the scanner supervises at most {} gateways (HERMES_S6_MAX_PROFILES): not registered: {}{}",
        profiles.len(),
        cfg.max_profiles,
        shown.join(", "),
        if left_out.len() > shown.len() {
            format!(" and {} more", left_out.len() - shown.len())
        } else {
            String::new()
        }
    ));
    (kept, left_out)
}

/// A slot's profile is known to be gone (the one rule, `profile::home_reality`).
/// A home that cannot be read is *not* gone: its slot stays (a re-run must
/// not take a live gateway down because of a permission problem).
fn gone(cfg: &Config, p: &str) -> bool {
    matches!(cfg.reality(p), profile::Reality::Gone)
}

/// Open `path` without following a symlink or blocking on a FIFO.
fn open_nofollow(path: &Path, flags: i32) -> Result<File> {
    fsutil::open_raw(path, flags | libc::O_NOFOLLOW | libc::O_NONBLOCK, 0)
        .map_err(|e| sys("open", path, e))
}

/// fchown + fchmod on what was opened (never the path, which could change).
fn own(f: &File, path: &Path, uid: u32, gid: u32, mode: u32) -> Result<()> {
    std::os::unix::fs::fchown(f, Some(uid), Some(gid))
        .and_then(|_| f.set_permissions(fs::Permissions::from_mode(mode)))
        .map_err(|e| sys("chown/chmod", path, e))
}

/// Where init-scandir moves old scan directories: `PARENT/.old`, root's,
/// 0755 (the hermes user lists it and empties what it owns there, but
/// cannot add or rename anything).
pub const RETIRED: &str = ".old";
/// Empty leftovers root removes per boot (rmdir only: it never walks).
const RETIRED_RMDIR_MAX: usize = 64;

/// Move the old scan directory to `PARENT/.old/service.SECS.PID`: one
/// rename, whatever the hermes user built inside. Retired directories that
/// the hermes user has emptied since are removed (rmdir, bounded).
fn retire(parent: &Path, scandir: &Path) -> Result<()> {
    let old = parent.join(RETIRED);
    match fs::symlink_metadata(&old) {
        Ok(m) if m.is_dir() => {}
        // only root writes PARENT (checked): whatever this is, it is root's
        Ok(_) => fs::remove_file(&old).map_err(|e| sys("remove", &old, e))?,
        Err(_) => {}
    }
    if fs::symlink_metadata(&old).is_err() {
        fs::create_dir(&old).map_err(|e| sys("mkdir", &old, e))?;
    }
    let d = open_nofollow(&old, libc::O_RDONLY | libc::O_DIRECTORY)?;
    own(&d, &old, 0, 0, 0o755)?;
    if let Ok(rd) = fs::read_dir(&old) {
        for e in rd.flatten().take(RETIRED_RMDIR_MAX) {
            let _ = fs::remove_dir(e.path()); // ENOTEMPTY: the hermes user is not done yet
        }
    }
    let base = format!(
        "{}.{}.{}",
        scandir
            .file_name()
            .map_or("service".into(), |n| n.to_string_lossy()),
        crate::clock::now_secs(),
        std::process::id()
    );
    for n in 0..100 {
        let to = old.join(if n == 0 {
            base.clone()
        } else {
            format!("{}.{}", base, n)
        });
        if fs::symlink_metadata(&to).is_ok() {
            continue;
        }
        return fs::rename(scandir, &to).map_err(|e| sys("move aside", scandir, e));
    }
    Err(refused(format!(
        "no free name in {} to move {} to",
        old.display(),
        scandir.display()
    )))
}

/// The hermes user's part of `init-scandir`: empty the retired scan
/// directories (iteratively, one fd at a time, bounded), in a process of its
/// own so the boot never waits for it or fails on it. Best-effort: what is
/// left is tried again at the next boot.
pub fn clear_retired(cfg: &Config) {
    if cfg.scandir == Path::new(ROOT_SCANDIR) {
        return;
    }
    let Some(old) = cfg.scandir.parent().map(|p| p.join(RETIRED)) else {
        return;
    };
    let Ok(rd) = fs::read_dir(&old) else {
        return;
    };
    let me = crate::sys::getuid();
    let mine: Vec<std::path::PathBuf> = rd
        .flatten()
        .filter(|e| {
            e.file_type().is_ok_and(|t| t.is_dir()) && e.metadata().is_ok_and(|m| m.uid() == me)
        })
        .map(|e| e.path())
        .collect();
    if mine.is_empty() {
        return;
    }
    // SAFETY: reconcile has one thread here (its workers start later).
    unsafe {
        crate::sys::detach(|| {
            crate::sys::to_dev_null(&[0, 1, 2]);
            for dir in &mine {
                // best-effort: what is left is tried again at the next boot
                let _ = fsutil::clear_dir(dir, std::time::Duration::from_secs(60));
            }
        })
    };
}

/// `hermes-s6 init-scandir` (cont-init.d, root). Nested layout: create the
/// scandir empty, on every boot, owned by the hermes user, under a parent
/// only root can write. Root-scandir layout: open the scandir (sticky, so
/// hermes cannot touch root's own services) and its scanner's control FIFO
/// to the hermes group.
pub fn init_scandir(cfg: &Config) -> Result<()> {
    let (uid, gid) = profile::resolve_user(&cfg.user, Path::new("/etc"))?;
    let scandir = &cfg.scandir;
    if scandir == Path::new(ROOT_SCANDIR) {
        let dir = open_nofollow(scandir, libc::O_RDONLY | libc::O_DIRECTORY)?;
        own(&dir, scandir, 0, gid, 0o1775)?;
        let ctl = scandir.join(".s6-svscan");
        if fs::symlink_metadata(&ctl).is_ok() {
            let d = open_nofollow(&ctl, libc::O_RDONLY | libc::O_DIRECTORY)?;
            own(&d, &ctl, 0, gid, 0o710)?;
            let fifo = ctl.join("control");
            let f = open_nofollow(&fifo, libc::O_RDONLY)?;
            // Check what was opened (fstat), not the path.
            if !f.metadata().is_ok_and(|m| m.file_type().is_fifo()) {
                return Err(crate::error::Error::System(format!(
                    "refusing to open {} to the hermes group: not a FIFO",
                    fifo.display()
                )));
            }
            own(&f, &fifo, 0, gid, 0o660)?;
        }
        return Ok(());
    }
    let parent = scandir
        .parent()
        .ok_or_else(|| refused(format!("bad scan directory {}", scandir.display())))?;
    fs::create_dir_all(parent).map_err(|e| sys("mkdir", parent, e))?;
    let pm = fs::symlink_metadata(parent).map_err(|e| sys("stat", parent, e))?;
    if !pm.is_dir() || pm.uid() != 0 || pm.mode() & 0o022 != 0 {
        return Err(refused(format!(
            "refusing to prepare {}: its parent must be a root-owned directory that only root can write",
            scandir.display()
        )));
    }
    if let Ok(m) = fs::symlink_metadata(scandir) {
        if m.is_dir() {
            // Docker keeps /run across `docker restart`: a deleted profile's
            // slot must not come back. The old tree is the hermes user's:
            // root never walks it (a chain of thousands of directories would
            // exhaust root's fds and stop the boot, every boot); it moves
            // aside in O(1), and reconcile clears it as the hermes user.
            retire(parent, scandir)?;
        } else {
            fs::remove_file(scandir).map_err(|e| sys("remove", scandir, e))?;
        }
    }
    fs::create_dir(scandir).map_err(|e| sys("mkdir", scandir, e))?;
    let dir = open_nofollow(scandir, libc::O_RDONLY | libc::O_DIRECTORY)?;
    own(&dir, scandir, uid, gid, 0o755)
}

//! Gateway slots: the s6 service directories `$SCANDIR/gateway-P/`.
//!
//! A slot is built complete under the dot-name `.gateway-P.PID.tmp`
//! (s6-svscan skips dot-names; one per builder) and published with one
//! `rename(2)`; removal goes the other way (down and finished, renamed to a
//! dot-name, pruned by the scanner, then deleted). Everything that checks,
//! builds, publishes, removes or signals P's slot holds P's lock,
//! `.gateway-P.lock` in the scan directory ([`lock`]): concurrent commands on
//! one profile take turns, and the sweep never removes a build in progress.
//! The scripts are the templates in `execline/`, filled in here.

use crate::control;
use crate::error::{refused, sys, warn, Error, Result};
use crate::profile::{Config, Profile};
use crate::ready::{self, Readiness};
use crate::svstat;
use crate::sys::{self, At};
use std::ffi::CStr;
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const PREFIX: &str = "gateway-";

const RUN: &str = include_str!("../execline/gateway-run");
const FINISH: &str = include_str!("../execline/gateway-finish");
const LOG_RUN: &str = include_str!("../execline/gateway-log-run");

/// The shared files of one builder: `.hermes-s6-template.PID` (a dot-name:
/// s6-svscan skips it; removed when the builder is done, the slots' links
/// keep the files).
const TEMPLATE: &str = ".hermes-s6-template.";

/// Milliseconds s6-supervise waits after SIGTERM before SIGKILL: a gateway
/// that ignores SIGTERM must not hang `stop --wait`, unregister or shutdown.
pub const DEFAULT_TIMEOUT_KILL_MS: u64 = 5000;

/// The profile a scandir entry belongs to, if it is a slot name.
pub fn profile_of(entry: &str) -> Option<Profile> {
    Profile::parse(entry.strip_prefix(PREFIX)?).ok()
}

/// A registered slot hermes-s6 did not build (no `data/env`): upstream's own
/// hook made it.
pub fn is_foreign(cfg: &Config, p: &str) -> bool {
    let dir = cfg.slot_dir(p);
    is_registered(cfg, p) && !fs::symlink_metadata(dir.join("data/env")).is_ok_and(|m| m.is_file())
}

/// Is P's slot published (a real directory, not a symlink)?
pub fn is_registered(cfg: &Config, p: &str) -> bool {
    fs::symlink_metadata(cfg.slot_dir(p)).is_ok_and(|m| m.is_dir())
}

/// Profiles with a published slot, sorted. Entries that are not `gateway-*`
/// directories (`.s6-svscan`, dot-dirs, other services, symlinks) are ignored.
pub fn list(cfg: &Config) -> Result<Vec<Profile>> {
    let rd = match fs::read_dir(&cfg.scandir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(sys("read", &cfg.scandir, e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| sys("read", &cfg.scandir, e))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(p) = profile_of(name) else { continue };
        // file_type() does not follow symlinks.
        if ent.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(p);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// P's turn: held by whoever checks, builds, publishes, removes or signals
/// P's slot, for as long as that takes (bounded by the command's timeout):
/// the scan directory's lock shared, then P's lock exclusive. None when there
/// is no scan directory (nothing to race over).
pub fn lock(cfg: &Config, p: &str) -> Result<Option<Turn>> {
    let all = match crate::fsutil::lock_shared(&cfg.scandir.join(ALL_LOCK)) {
        Ok(l) => l,
        // No scan directory, or one this user cannot write: it cannot build,
        // publish or remove a slot there either, so there is nothing to take
        // turns for (and the command's own error is the one to say).
        Err(_) if !writable(&cfg.scandir) => return Ok(None),
        Err(e) => return Err(e),
    };
    let one = crate::fsutil::lock_exclusive(&lock_path(cfg, p))?;
    Ok(Some(Turn {
        _one: Some(one),
        _all: all,
    }))
}

/// Every profile's turn at once (reconcile): the scan directory's lock
/// exclusive, so no per-profile lock (nor its file) is needed while it
/// works through a thousand of them.
pub fn lock_all(cfg: &Config) -> Result<Turn> {
    Ok(Turn {
        _one: None,
        _all: crate::fsutil::lock_exclusive(&cfg.scandir.join(ALL_LOCK))?,
    })
}

fn writable(dir: &Path) -> bool {
    sys::cpath(dir).is_ok_and(|c| sys::access(&c, libc::W_OK | libc::X_OK))
}

/// A held turn (see [`lock`], [`lock_all`]); dropping it lets go.
pub struct Turn {
    _one: Option<crate::fsutil::Lock>,
    _all: crate::fsutil::Lock,
}

/// The right to add a slot, one adder at a time: the scanner's limit is a
/// count over every slot, so counting them and publishing one more must be
/// one step (see [`crate::scanner::claim_room`]). Taken inside P's turn;
/// reconcile's turn ([`lock_all`]) keeps every adder out anyway. None where
/// [`lock`] takes no turn either.
pub fn room_lock(cfg: &Config) -> Result<Option<crate::fsutil::Lock>> {
    match crate::fsutil::lock_exclusive(&cfg.scandir.join(ROOM_LOCK)) {
        Ok(l) => Ok(Some(l)),
        Err(_) if !writable(&cfg.scandir) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The scan directory's own locks (dot-names: s6-svscan skips them).
const ALL_LOCK: &str = ".hermes-s6.lock";
const ROOM_LOCK: &str = ".hermes-s6.room.lock";

fn lock_path(cfg: &Config, p: &str) -> PathBuf {
    cfg.scandir.join(format!(".{}{}.lock", PREFIX, p))
}

/// The profile of a leftover `.gateway-P[.PID].tmp` or `.gateway-P.del.N`.
fn leftover_of(name: &str) -> Option<Profile> {
    let rest = name.strip_prefix('.')?.strip_prefix(PREFIX)?;
    let p = match rest.strip_suffix(".tmp") {
        Some(r) => r.split_once('.').map_or(r, |(p, _pid)| p),
        None => rest.split_once(".del")?.0,
    };
    Profile::parse(p).ok()
}

/// Remove leftover build (`.gateway-P.PID.tmp`) and removal
/// (`.gateway-P.del.N`) directories. The caller holds every profile's turn
/// ([`lock_all`]): no build is in progress, so what is there is left over —
/// except a removal whose supervisor still runs (its unregister is still
/// waiting). A supervision check that fails keeps the directory (said): a
/// supervisor may still run there.
pub fn sweep_tmp(cfg: &Config, _all: &Turn) -> Result<usize> {
    let rd = match fs::read_dir(&cfg.scandir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(sys("read", &cfg.scandir, e)),
    };
    let mut n = 0;
    for ent in rd.flatten() {
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        // a builder's template, left by a process that died before its end
        if let Some(pid) = name
            .strip_prefix(TEMPLATE)
            .and_then(|p| p.parse::<u32>().ok())
        {
            if pid != std::process::id() && crate::procfs::start_time(pid).is_err() {
                remove_tree(&ent.path())?;
                n += 1;
            }
            continue;
        }
        if leftover_of(name).is_none() {
            continue;
        }
        let path = ent.path();
        // anything but a real directory (a link, a FIFO, a file) has no
        // supervisor and is never walked through: it goes
        let real_dir = ent.file_type().is_ok_and(|t| t.is_dir());
        match if real_dir {
            svstat::is_supervised(&path)
        } else {
            Ok(false)
        } {
            Ok(false) => {}
            Ok(true) => continue, // left to its unregister
            Err(e) => {
                warn(format_args!("{} kept: {}", path.display(), e));
                continue;
            }
        }
        remove_tree(&path)?;
        n += 1;
    }
    Ok(n)
}

/// Keep the slot's `down` file in line with the intent (like `s6-svc -U` /
/// `-D`), so a supervisor that restarts (the nested scanner crashed, say)
/// brings the gateway back in the state the operator last asked for.
pub fn set_autostart(dir: &Path, autostart: bool) -> Result<()> {
    let down = dir.join("down");
    if autostart {
        crate::fsutil::remove_file(&down).map(|_| ())
    } else if fs::symlink_metadata(&down).is_err() {
        write_new(&down, b"", 0o644)
    } else {
        Ok(())
    }
}

/// Is the slot's gateway ready? s6 sets its ready flag only for a slot with
/// a `notification-fd`; for the others, up is ready — unless what is up is a
/// `run` standing by for the lease (SPEC §8). (The stats are made only when
/// the flag alone cannot tell.)
pub fn is_ready(st: &svstat::Status, dir: &Path) -> bool {
    st.ready
        || (st.up
            && !dir.join("notification-fd").exists()
            && !crate::lease::standing_by(dir, st.pid))
}

/// Everything a slot is made of, for one profile.
pub struct Spec<'a> {
    pub profile: &'a str,
    /// No `down` file: s6-supervise starts it as soon as it sees it.
    pub autostart: bool,
    pub readiness: Readiness,
}

impl<'a> Spec<'a> {
    pub fn new(cfg: &Config, p: &'a str, autostart: bool) -> Self {
        Spec {
            profile: p,
            autostart,
            readiness: cfg.readiness(cfg.gateway_program(p).as_deref()),
        }
    }
}

/// Quote one word for execlineb: double quotes, `\` and `"` escaped.
pub fn quote(word: &str) -> String {
    let mut s = String::with_capacity(word.len() + 2);
    s.push('"');
    for c in word.chars() {
        match c {
            '"' | '\\' => {
                s.push('\\');
                s.push(c);
            }
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            _ => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Where this very binary lives: the slot scripts call it by absolute path.
pub fn self_exe() -> Result<PathBuf> {
    fs::read_link("/proc/self/exe").map_err(|e| sys("readlink", Path::new("/proc/self/exe"), e))
}

/// Fill a template from `execline/`. `exe` is the quoted path of this
/// binary, `with_contenv` the with-contenv line (or nothing).
pub fn render(tpl: &str, cfg: &Config, exe: &str, with_contenv: &str) -> String {
    tpl.replace("@SHEBANGDIR@", &cfg.shebangdir.display().to_string())
        .replace("@WITH_CONTENV@", with_contenv)
        .replace("@HERMES_S6@", exe)
}

/// The process umask, read once (umask(2) can only be read by setting it).
fn umask() -> u32 {
    static M: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *M.get_or_init(sys::umask)
}

/// A directory being built, held open: its entries are created with the
/// `*at` calls relative to it (shorter path walks, and no extra fcntl that
/// musl's open(2) adds for O_CLOEXEC), and never through a symlink.
struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

fn cname(path: &Path, name: &str) -> Result<sys::CPath> {
    sys::CPath::new(name.as_bytes())
        .map_err(|_| Error::Usage(format!("bad name in {}", path.display())))
}

impl Dir {
    /// [`Dir::create`], None when `path` exists already.
    fn create_new(path: &Path, mode: u32) -> Result<Option<Dir>> {
        let c = crate::fsutil::c_path(path)?;
        match sys::mkdirat(At::Cwd, &c, mode) {
            Ok(()) => Dir::open_at(At::Cwd, &c, path.to_path_buf(), mode).map(Some),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(None),
            Err(e) => Err(sys("mkdir", path, e)),
        }
    }

    /// mkdir `path` with `mode` and open it.
    fn create(path: &Path, mode: u32) -> Result<Dir> {
        Dir::create_new(path, mode)?.ok_or_else(|| {
            sys(
                "mkdir",
                path,
                std::io::Error::from_raw_os_error(libc::EEXIST),
            )
        })
    }

    fn open_at(at: At, c: &CStr, path: PathBuf, mode: u32) -> Result<Dir> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        let fd = sys::openat(at, c, flags, 0).map_err(|e| sys("open", &path, e))?;
        let d = Dir { fd, path };
        d.fix_mode(mode, true)?;
        Ok(d)
    }

    fn at(&self) -> At<'_> {
        At::Dir(self.fd.as_fd())
    }

    /// mkdir(2) drops the umask's bits and, on Linux, setgid/sticky: put
    /// them back only when that happened (a chmod per entry was a sixth of
    /// reconcile's syscalls).
    fn fix_mode(&self, mode: u32, dir: bool) -> Result<()> {
        if mode & umask() != 0 || (dir && mode & 0o7000 != 0) {
            sys::fchmod(self.fd.as_fd(), mode).map_err(|e| sys("chmod", &self.path, e))?;
        }
        Ok(())
    }

    /// mkdir `name` inside, without opening it (its entries are made with
    /// `name/entry` paths relative to this directory).
    fn mkdir(&self, name: &str, mode: u32) -> Result<()> {
        let c = cname(&self.path, name)?;
        let path = || self.path.join(name);
        sys::mkdirat(self.at(), &c, mode).map_err(|e| sys("mkdir", &path(), e))?;
        if mode & umask() != 0 || mode & 0o7000 != 0 {
            // we just made it: no link can be there
            sys::fchmodat(self.at(), &c, mode).map_err(|e| sys("chmod", &path(), e))?;
        }
        Ok(())
    }

    /// Open the subdirectory `name` made with [`Dir::mkdir`].
    fn open_sub(&self, name: &str) -> Result<Dir> {
        let c = cname(&self.path, name)?;
        Dir::open_at(self.at(), &c, self.path.join(name), 0o755)
    }

    /// `name` inside: a hard link to the file `src` of the directory `from`
    /// (same filesystem: the template lives in the scan directory too).
    fn hardlink(&self, name: &str, from: &Dir, src: &str) -> Result<()> {
        let c = cname(&self.path, name)?;
        let sc = cname(&from.path, src)?;
        sys::linkat(from.at(), &sc, self.at(), &c)
            .map_err(|e| sys("link", &self.path.join(name), e))
    }

    fn subdir(&self, name: &str, mode: u32) -> Result<Dir> {
        let c = cname(&self.path, name)?;
        let path = self.path.join(name);
        sys::mkdirat(self.at(), &c, mode).map_err(|e| sys("mkdir", &path, e))?;
        Dir::open_at(self.at(), &c, path, mode)
    }

    /// Create `name` (it must not exist) holding `data`.
    fn file(&self, name: &str, data: &[u8], mode: u32) -> Result<()> {
        let c = cname(&self.path, name)?;
        let path = self.path.join(name);
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        let fd = sys::openat(self.at(), &c, flags, mode).map_err(|e| sys("create", &path, e))?;
        let mut file = fs::File::from(fd);
        file.write_all(data).map_err(|e| sys("write", &path, e))?;
        let f = Dir {
            fd: OwnedFd::from(file),
            path,
        };
        f.fix_mode(mode, false)
    }

    fn fifo(&self, name: &str, mode: u32) -> Result<()> {
        let c = cname(&self.path, name)?;
        let path = self.path.join(name);
        sys::mkfifoat(self.at(), &c, mode).map_err(|e| sys("mkfifo", &path, e))?;
        if mode & umask() != 0 {
            // we just made it: no link can be there
            sys::fchmodat(self.at(), &c, mode).map_err(|e| sys("chmod", &path, e))?;
        }
        Ok(())
    }
}

/// Create `path` (it must not exist) holding `data`.
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::Usage(format!("bad path {}", path.display())))?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY;
    let fd = sys::openat(At::Cwd, &crate::fsutil::c_path(parent)?, flags, 0)
        .map_err(|e| sys("open", parent, e))?;
    Dir {
        fd,
        path: parent.to_path_buf(),
    }
    .file(name, data, mode)
}

/// Compatibility layout: the scanner belongs to someone else (root), so
/// s6-supervise would create root-only control files. Pre-create them as
/// ourselves; s6-supervise reuses existing ones without chown/chmod.
pub fn needs_seeding(cfg: &Config) -> bool {
    let me = sys::geteuid();
    fs::metadata(&cfg.scandir).is_ok_and(|m| m.uid() != me)
}

fn seed_supervise(dir: &Dir) -> Result<()> {
    dir.subdir("supervise", 0o755)?.fifo("control", 0o660)?;
    dir.subdir("event", 0o3730).map(|_| ())
}

/// One `KEY="value"` line of `data/env` for execline's `envfile`: the value
/// double-quoted, `\` and `"` escaped, control characters as three-digit
/// octal escapes. Unquoted, envfile parsed a gateway command holding a
/// backslash or a quote (`--name="x y"`) itself: a syntax error in every
/// run, finish and log script of the slot, or other words than configured.
fn envfile_line(key: &str, value: &str) -> String {
    let mut s = String::with_capacity(key.len() + value.len() + 6);
    s.push_str(key);
    s.push_str("=\"");
    for c in value.chars() {
        match c {
            '\\' | '"' => {
                s.push('\\');
                s.push(c);
            }
            c if c.is_ascii_control() => s.push_str(&format!("\\{:03o}", c as u32)),
            c => s.push(c),
        }
    }
    s.push_str("\"\n");
    s
}

/// The template's `data/env` for each readiness mode.
fn env_file(r: Readiness) -> &'static str {
    match r {
        Readiness::State => "env-state",
        Readiness::Up => "env-up",
        Readiness::Fd => "env-fd",
    }
}

/// What every slot of one process has in common, worked out once (the
/// binary's path, with-contenv, the environment parameters, seeding): a
/// boot reconciles every profile with one `Builder`.
pub struct Builder<'a> {
    cfg: &'a Config,
    exe: String,
    with_contenv: String,
    timeout_kill: String,
    notification_fd: Option<String>,
    env: String,
    seed: bool,
    /// A scanner listens on the scan directory (checked once).
    pub scanner_listens: bool,
    /// The boot's builder ([`Builder::for_boot`]): slots may be built in
    /// place while no scanner listens.
    in_place: bool,
    /// The files every slot of this builder shares, made once (lazily) in
    /// `.hermes-s6-template.PID` in the scan directory and hard-linked into
    /// each slot: no inode per file per slot, one link(2) each.
    template: std::sync::OnceLock<std::result::Result<Dir, String>>,
    /// This process's pid, for the build directory's name.
    pid: u32,
}

impl<'a> Builder<'a> {
    pub fn new(cfg: &'a Config) -> Result<Self> {
        let _ = umask(); // read once, before any worker thread creates files
        let wc = cfg.shebangdir.join("with-contenv");
        let tk = std::env::var("HERMES_S6_TIMEOUT_KILL")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(DEFAULT_TIMEOUT_KILL_MS);
        let exe_path = self_exe()?;
        Ok(Builder {
            cfg,
            exe: quote(&exe_path.display().to_string()),
            with_contenv: if wc.exists() {
                format!("{}\n", wc.display())
            } else {
                String::new()
            },
            timeout_kill: format!("{}\n", tk),
            // A gateway that writes a newline to this fd itself (opt-in);
            // else the readiness watcher of `run` uses ready::NOTIFY_FD.
            notification_fd: std::env::var("HERMES_GATEWAY_NOTIFICATION_FD")
                .ok()
                .and_then(|v| v.trim().parse::<u32>().ok())
                .filter(|&fd| fd > 2)
                .map(|fd| format!("{}\n", fd)),
            // One `data/env` file read by execline's `envfile`, rather
            // than an env/ directory of four: 4 inodes fewer per slot, and
            // file creation is what a boot of many profiles pays for.
            // Not HERMES_S6_USER: the account a root-run slot (the root
            // layout) drops to comes from the container environment only,
            // never from a file its builder — the hermes user — writes.
            // The gateway command as it was when the slot was built (SPEC
            // §1), for the shared run script: words joined by one space,
            // which is how HERMES_GATEWAY_CMD is read (split on whitespace).
            // Always written: empty (upstream's command lines) still wins
            // over a value the container gets later.
            env: [
                envfile_line("HERMES_HOME", &cfg.hermes_home.display().to_string()),
                envfile_line("HERMES_S6_SCANDIR", &cfg.scandir.display().to_string()),
                envfile_line(
                    "HERMES_S6_SHEBANGDIR",
                    &cfg.shebangdir.display().to_string(),
                ),
                envfile_line(
                    "HERMES_GATEWAY_CMD",
                    &cfg.gateway_cmd
                        .as_deref()
                        .unwrap_or("")
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            ]
            .concat(),
            seed: needs_seeding(cfg),
            // (a probe that fails — EACCES… — counts as a scanner listening:
            // never build in place unless certainly nobody can see it)
            scanner_listens: !matches!(control::svscanctl(&cfg.scandir, ""), Ok(false)),
            in_place: false,
            template: std::sync::OnceLock::new(),
            pid: std::process::id(),
        })
    }

    /// The builder of a boot's `reconcile`: cont-init.d runs before the
    /// nested scanner, so slots are built in place while none listens (a
    /// reconcile that fails stops the boot; the next one rebuilds what is
    /// left). Single commands keep the build-then-rename.
    pub fn for_boot(cfg: &'a Config) -> Result<Self> {
        let mut b = Builder::new(cfg)?;
        b.in_place = true;
        Ok(b)
    }

    fn render(&self, tpl: &str) -> String {
        render(tpl, self.cfg, &self.exe, &self.with_contenv)
    }

    /// Write the complete slot into `path` (which must not exist).
    pub fn build_into(&self, spec: &Spec, path: &Path) -> Result<()> {
        self.fill(&Dir::create(path, 0o755)?, spec)
    }

    /// The shared files, made on first use: `run`, `finish` and `log-run`
    /// for the profile `-` (the slot's own name: `hermes-s6 run -` reads it
    /// from its working directory, the gateway command from `data/env`),
    /// `timeout-kill`, `notification-fd`, an empty `down`, and `env-MODE`
    /// for each readiness mode. Nothing in them depends on the profile.
    fn template(&self) -> Result<&Dir> {
        let made = self.template.get_or_init(|| {
            let path = self.cfg.scandir.join(format!("{}{}", TEMPLATE, self.pid));
            if fs::symlink_metadata(&path).is_ok() {
                let _ = remove_tree(&path); // a dead process's, which had our pid
            }
            let make = || -> Result<Dir> {
                let t = Dir::create(&path, 0o755)?;
                t.file("run", self.render(RUN).as_bytes(), 0o755)?;
                t.file("finish", self.render(FINISH).as_bytes(), 0o755)?;
                t.file("log-run", self.render(LOG_RUN).as_bytes(), 0o755)?;
                t.file("timeout-kill", self.timeout_kill.as_bytes(), 0o644)?;
                let fd = self
                    .notification_fd
                    .clone()
                    .unwrap_or_else(|| format!("{}\n", ready::NOTIFY_FD));
                t.file("notification-fd", fd.as_bytes(), 0o644)?;
                t.file("down", b"", 0o644)?;
                for r in [Readiness::State, Readiness::Up, Readiness::Fd] {
                    let env = format!("{}{}", self.env, envfile_line(ready::ENV, r.as_str()));
                    t.file(env_file(r), env.as_bytes(), 0o644)?;
                }
                Ok(t)
            };
            match make() {
                Ok(t) => Ok(t),
                Err(e) => {
                    let _ = remove_tree(&path);
                    Err(e.message().to_string())
                }
            }
        });
        match made {
            Ok(p) => Ok(p),
            Err(m) => Err(Error::System(m.clone())),
        }
    }

    /// Everything inside the slot directory `dir`: links to the template,
    /// and three directories of its own.
    fn fill(&self, dir: &Dir, spec: &Spec) -> Result<()> {
        let t = self.template()?;
        dir.hardlink("run", t, "run")?;
        dir.hardlink("finish", t, "finish")?;
        dir.hardlink("timeout-kill", t, "timeout-kill")?;
        if !spec.autostart {
            dir.hardlink("down", t, "down")?;
        }
        let readiness = match (&self.notification_fd, spec.readiness) {
            (Some(_), _) => Readiness::Fd,
            (None, r) => r,
        };
        if readiness != Readiness::Up {
            dir.hardlink("notification-fd", t, "notification-fd")?;
        }
        // Parameters under data/ (one of the two subdirectories s6 promises
        // not to touch): `env` for the scripts' `envfile`; later the
        // crash-loop tally, the readiness record and finish's copy of the marker.
        dir.mkdir("data", 0o755)?;
        dir.hardlink("data/env", t, env_file(readiness))?;
        dir.mkdir("log", 0o755)?;
        dir.hardlink("log/run", t, "log-run")?;
        if self.seed {
            seed_supervise(dir)?;
            seed_supervise(&dir.open_sub("log")?)?;
        }
        Ok(())
    }

    /// Build P's slot and publish it. Already registered → exit 1.
    /// Nothing is left behind on failure.
    pub fn publish(&self, spec: &Spec) -> Result<()> {
        if self.publish_new(spec)? {
            return Ok(());
        }
        Err(refused(format!(
            "the s6 gateway slot for profile '{}' is already registered ({})",
            spec.profile,
            self.cfg.slot_dir(spec.profile).display()
        )))
    }

    /// Build and publish P's slot unless it exists (false). While a scanner
    /// listens, the slot is built complete under `.gateway-P.PID.tmp` (a
    /// dot-name s6-svscan skips) and published with one rename; with none
    /// listening (a boot: cont-init.d runs before the nested scanner), it is
    /// built in place — nobody can see it half built, P's lock keeps other
    /// commands out, and a build that fails is removed — which spares a
    /// rename and two lookups per profile.
    pub fn publish_new(&self, spec: &Spec) -> Result<bool> {
        let cfg = self.cfg;
        let p = spec.profile;
        let dst = cfg.slot_dir(p);
        if self.in_place && !self.scanner_listens {
            let dir = match Dir::create_new(&dst, 0o755)? {
                Some(d) => d,
                None => return Ok(false), // EEXIST: registered already
            };
            return match self.fill(&dir, spec) {
                Ok(()) => Ok(true),
                Err(e) => {
                    drop(dir);
                    let _ = remove_tree(&dst);
                    Err(e)
                }
            };
        }
        if fs::symlink_metadata(&dst).is_ok() {
            return Ok(false);
        }
        let tmp = cfg
            .scandir
            .join(format!(".{}{}.{}.tmp", PREFIX, p, self.pid));
        if fs::symlink_metadata(&tmp).is_ok() {
            remove_tree(&tmp)?; // a dead process's, which had our pid
        }
        let built = self.build_into(spec, &tmp).and_then(|_| {
            // rename(2) onto an existing non-empty dir fails: a racing register loses cleanly.
            match fs::rename(&tmp, &dst) {
                Ok(()) => Ok(true),
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) =>
                {
                    Ok(false)
                }
                Err(e) => Err(sys("rename to", &dst, e)),
            }
        });
        if !matches!(built, Ok(true)) && fs::symlink_metadata(&tmp).is_ok() {
            let _ = remove_tree(&tmp);
        }
        built
    }
}

impl Drop for Builder<'_> {
    fn drop(&mut self) {
        if let Some(Ok(t)) = self.template.get() {
            let _ = remove_tree(&t.path);
        }
    }
}

/// Build and publish one slot (see [`Builder::publish`]).
pub fn publish(cfg: &Config, spec: &Spec) -> Result<()> {
    Builder::new(cfg)?.publish(spec)
}

/// Tell the scanner to rescan; a missing scanner is not an error (the slot
/// is picked up when it starts), but it is said.
pub fn rescan(cfg: &Config) -> Result<bool> {
    let listening = control::svscanctl(&cfg.scandir, "a")?;
    Ok(listening)
}

/// Wait until s6-supervise runs on the slot *and* reads its control FIFO: it
/// takes `supervise/lock` before it opens the FIFO, and a command sent in that
/// window is refused as "not listening". An empty write only probes.
pub fn wait_supervised(dir: &Path, timeout: Duration) -> Result<bool> {
    let fifo = dir.join("supervise").join("control");
    control::wait_until(timeout, || {
        Ok(svstat::is_supervised(dir)? && control::write_fifo(&fifo, "")? == control::Sent::Done)
    })
}

/// `rm -rf` without following symlinks (std's remove_dir_all is safe
/// against symlink races since Rust 1.58). A file, FIFO or symlink at `path`
/// is unlinked (remove_dir_all fails with ENOTDIR on those).
pub fn remove_tree(path: &Path) -> Result<()> {
    if fs::symlink_metadata(path).is_ok_and(|m| !m.is_dir()) {
        return crate::fsutil::remove_file(path).map(|_| ());
    }
    // An s6-supervise that has just let go of the directory may still be
    // writing its last status into it: a few more tries, then the error.
    let mut tries = 0;
    loop {
        match fs::remove_dir_all(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(sys("remove", path, e)),
        }
    }
}

/// Unregister: down and finished first, then out of the scandir, then the
/// scanner prunes its supervisor, then the directory goes. Never removes a
/// directory whose supervisor still runs.
pub fn unpublish(cfg: &Config, p: &str, timeout: Duration) -> Result<bool> {
    let dir = cfg.slot_dir(p);
    if !is_registered(cfg, p) {
        return Ok(false);
    }
    let mut supervised = svstat::is_supervised(&dir)?;
    if !supervised && control::svscanctl(&cfg.scandir, "a")? {
        // A listening scanner about to pick the slot up (a register a moment
        // ago) must not have it moved from under it mid-spawn: that leaves a
        // logger's supervisor running in a deleted directory. Let it finish
        // (bounded) and take the supervised path.
        supervised = wait_supervised(&dir, Duration::from_millis(2000))?;
    }
    if supervised {
        // a supervisor just started takes its lock before it opens its
        // control FIFO: wait for that (bounded) rather than fail in between
        wait_supervised(&dir, timeout)?;
        control::svc(&dir, "d")?;
        let down = control::wait_until(timeout, || {
            Ok(match svstat::read(&dir)? {
                Some(st) => !st.up && !st.finishing,
                None => true,
            })
        })?;
        if !down {
            return Err(refused(format!(
                "profile '{}': the gateway did not go down within {} ms; slot kept",
                p,
                timeout.as_millis()
            )));
        }
    }
    let del = cfg
        .scandir
        .join(format!(".{}{}.del.{}", PREFIX, p, std::process::id()));
    fs::rename(&dir, &del).map_err(|e| sys("rename", &dir, e))?;
    if supervised {
        // -an: rescan, and prune the supervisors of vanished entries (service
        // already down, so nothing is killed that has not finished).
        match control::svscanctl(&cfg.scandir, "an") {
            Ok(true) => {}
            Ok(false) => warn(format_args!(
                "no s6-svscan listens on {}; supervisor of {} left running",
                cfg.scandir.display(),
                del.display()
            )),
            Err(e) => warn(e),
        }
        let log = del.join("log");
        // Asked again now and then: a scanner busy with an earlier scan (a
        // register's, a moment ago) may have taken the first ask before it
        // saw the directory go.
        let mut asked = std::time::Instant::now();
        let gone = control::wait_until(timeout, || {
            if asked.elapsed() >= Duration::from_millis(250) {
                let _ = control::svscanctl(&cfg.scandir, "an");
                asked = std::time::Instant::now();
            }
            Ok(!svstat::is_supervised(&del)? && !svstat::is_supervised(&log)?)
        })?;
        if !gone {
            return Err(refused(format!(
                "profile '{}': s6-supervise of {} did not exit within {} ms; left in place",
                p,
                del.display(),
                timeout.as_millis()
            )));
        }
    }
    remove_tree(&del)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_of_accepts_only_valid_gateway_names() {
        assert_eq!(profile_of("gateway-coder").as_deref(), Some("coder"));
        assert_eq!(profile_of("gateway-default").as_deref(), Some("default"));
        assert_eq!(profile_of("gateway-").as_deref(), None);
        assert_eq!(profile_of("gateway-Bad").as_deref(), None);
        assert_eq!(profile_of(".gateway-x.tmp").as_deref(), None);
        assert_eq!(profile_of(".gateway-x.lock").as_deref(), None);
    }

    #[test]
    fn leftovers_name_their_profile() {
        assert_eq!(
            leftover_of(".gateway-coder.412.tmp").as_deref(),
            Some("coder")
        );
        assert_eq!(leftover_of(".gateway-coder.tmp").as_deref(), Some("coder"));
        assert_eq!(
            leftover_of(".gateway-coder.del.99").as_deref(),
            Some("coder")
        );
        assert_eq!(leftover_of(".gateway-coder.lock").as_deref(), None);
        assert_eq!(leftover_of(".gateway-Bad.tmp").as_deref(), None);
        assert_eq!(leftover_of("gateway-coder").as_deref(), None);
        assert_eq!(profile_of("s6-linux-init-shutdownd").as_deref(), None);
    }

    #[test]
    fn envfile_lines_quote_what_envfile_would_otherwise_parse() {
        assert_eq!(envfile_line("K", ""), "K=\"\"\n");
        assert_eq!(envfile_line("K", "gw plain"), "K=\"gw plain\"\n");
        assert_eq!(
            envfile_line("K", r#"--name="x y" a\b"#),
            r#"K="--name=\"x y\" a\\b""#.to_string() + "\n"
        );
        assert_eq!(envfile_line("K", "c\u{1}d\u{7f}é"), "K=\"c\\001d\\177é\"\n");
    }

    #[test]
    fn quote_escapes_quotes_and_backslashes() {
        assert_eq!(quote("a"), "\"a\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("$HOME {x}"), "\"$HOME {x}\"");
    }
}

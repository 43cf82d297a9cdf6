//! Gateway slots: the s6 service directories `$SCANDIR/gateway-P/`.
//!
//! A slot is built complete under the dot-name `.gateway-P.tmp` (s6-svscan
//! skips dot-names) and published with one `rename(2)`; removal goes the
//! other way (down and finished, renamed to a dot-name, pruned by the
//! scanner, then deleted). The scripts are the templates in `execline/`,
//! filled in here.

use crate::control;
use crate::error::{refused, sys, warn, Error, Result};
use crate::profile::{self, Config};
use crate::svstat;
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const PREFIX: &str = "gateway-";

const RUN: &str = include_str!("../execline/gateway-run");
const FINISH: &str = include_str!("../execline/gateway-finish");
const LOG_RUN: &str = include_str!("../execline/gateway-log-run");

/// Milliseconds s6-supervise waits after SIGTERM before SIGKILL: a gateway
/// that ignores SIGTERM must not hang `stop --wait`, unregister or shutdown.
pub const DEFAULT_TIMEOUT_KILL_MS: u64 = 5000;

/// The profile a scandir entry belongs to, if it is a slot name.
pub fn profile_of(entry: &str) -> Option<&str> {
    let p = entry.strip_prefix(PREFIX)?;
    profile::validate(p).ok().map(|_| p)
}

/// Is P's slot published (a real directory, not a symlink)?
pub fn is_registered(cfg: &Config, p: &str) -> bool {
    fs::symlink_metadata(cfg.slot_dir(p)).is_ok_and(|m| m.is_dir())
}

/// Profiles with a published slot, sorted. Entries that are not `gateway-*`
/// directories (`.s6-svscan`, dot-dirs, other services, symlinks) are ignored.
pub fn list(cfg: &Config) -> Result<Vec<String>> {
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
            out.push(p.to_string());
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Remove leftover `.gateway-*.tmp` (and `.gateway-*.del.*`) build dirs.
pub fn sweep_tmp(cfg: &Config) -> Result<usize> {
    let rd = match fs::read_dir(&cfg.scandir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(sys("read", &cfg.scandir, e)),
    };
    let mut n = 0;
    for ent in rd.flatten() {
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale =
            name.starts_with(".gateway-") && (name.ends_with(".tmp") || name.contains(".del"));
        if !stale {
            continue;
        }
        let path = ent.path();
        // A `.del` dir whose supervisor still runs is left to its unregister.
        if svstat::is_supervised(&path).unwrap_or(false) {
            continue;
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

/// Everything a slot is made of, for one profile.
pub struct Spec<'a> {
    pub profile: &'a str,
    /// No `down` file: s6-supervise starts it as soon as it sees it.
    pub autostart: bool,
    pub gateway_argv: Vec<String>,
}

impl<'a> Spec<'a> {
    pub fn new(cfg: &Config, p: &'a str, autostart: bool) -> Self {
        Spec {
            profile: p,
            autostart,
            gateway_argv: cfg.gateway_argv(p),
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

/// Fill a template from `execline/`.
pub fn render(tpl: &str, cfg: &Config, p: &str, exe: &Path, argv: &[String]) -> String {
    let sb = cfg.shebangdir.display().to_string();
    let wc = cfg.shebangdir.join("with-contenv");
    let with_contenv = if wc.exists() {
        format!("{}\n", wc.display())
    } else {
        String::new()
    };
    let cmd: Vec<String> = argv.iter().map(|w| quote(w)).collect();
    tpl.replace("@SHEBANGDIR@", &sb)
        .replace("@WITH_CONTENV@", &with_contenv)
        .replace("@HERMES_S6@", &quote(&exe.display().to_string()))
        .replace("@GATEWAY_CMD@", &cmd.join(" "))
        .replace("@PROFILE@", p)
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| sys("create", path, e))?;
    f.write_all(data).map_err(|e| sys("write", path, e))?;
    // create_new honours the umask; the scripts must be executable anyway.
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| sys("chmod", path, e))
}

fn mkdir(path: &Path, mode: u32) -> Result<()> {
    fs::create_dir(path).map_err(|e| sys("mkdir", path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| sys("chmod", path, e))
}

fn mkfifo(path: &Path, mode: u32) -> Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Usage(format!("bad path {}", path.display())))?;
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), mode) } != 0 {
        return Err(sys("mkfifo", path, std::io::Error::last_os_error()));
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| sys("chmod", path, e))
}

/// Compatibility layout: the scanner belongs to someone else (root), so
/// s6-supervise would create root-only control files. Pre-create them as
/// ourselves; s6-supervise reuses existing ones without chown/chmod.
pub fn needs_seeding(cfg: &Config) -> bool {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    fs::metadata(&cfg.scandir).is_ok_and(|m| m.uid() != me)
}

fn seed_supervise(dir: &Path) -> Result<()> {
    mkdir(&dir.join("supervise"), 0o755)?;
    mkfifo(&dir.join("supervise").join("control"), 0o660)?;
    mkdir(&dir.join("event"), 0o3730)
}

/// Write the complete slot into `dir` (which must not exist).
pub fn build_into(cfg: &Config, spec: &Spec, dir: &Path) -> Result<()> {
    let p = spec.profile;
    let exe = self_exe()?;
    mkdir(dir, 0o755)?;
    write_new(
        &dir.join("run"),
        render(RUN, cfg, p, &exe, &spec.gateway_argv).as_bytes(),
        0o755,
    )?;
    write_new(
        &dir.join("finish"),
        render(FINISH, cfg, p, &exe, &[]).as_bytes(),
        0o755,
    )?;
    let tk = std::env::var("HERMES_S6_TIMEOUT_KILL")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_TIMEOUT_KILL_MS);
    write_new(
        &dir.join("timeout-kill"),
        format!("{}\n", tk).as_bytes(),
        0o644,
    )?;
    if !spec.autostart {
        write_new(&dir.join("down"), b"", 0o644)?;
    }
    // Readiness is opt-in: only a gateway that writes a newline to this fd
    // may declare one, else `--wait` would wait for a ready that never comes.
    if let Some(fd) = std::env::var("HERMES_GATEWAY_NOTIFICATION_FD")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|&fd| fd > 2)
    {
        write_new(
            &dir.join("notification-fd"),
            format!("{}\n", fd).as_bytes(),
            0o644,
        )?;
    }
    // Parameters: env/ (read by s6-envdir in the scripts) and data/ (ours).
    let env = dir.join("env");
    mkdir(&env, 0o755)?;
    let vars = [
        ("HERMES_HOME", cfg.hermes_home.display().to_string()),
        ("HERMES_S6_SCANDIR", cfg.scandir.display().to_string()),
        ("HERMES_S6_USER", cfg.user.clone()),
        ("HERMES_S6_SHEBANGDIR", cfg.shebangdir.display().to_string()),
    ];
    for (k, v) in vars {
        write_new(&env.join(k), format!("{}\n", v).as_bytes(), 0o644)?;
    }
    let data = dir.join("data");
    mkdir(&data, 0o755)?;
    write_new(&data.join("profile"), format!("{}\n", p).as_bytes(), 0o644)?;
    let log = dir.join("log");
    mkdir(&log, 0o755)?;
    write_new(
        &log.join("run"),
        render(LOG_RUN, cfg, p, &exe, &[]).as_bytes(),
        0o755,
    )?;
    if needs_seeding(cfg) {
        seed_supervise(dir)?;
        seed_supervise(&log)?;
    }
    Ok(())
}

fn tmp_dir(cfg: &Config, p: &str) -> PathBuf {
    cfg.scandir.join(format!(".{}{}.tmp", PREFIX, p))
}

/// Build P's slot under `.gateway-P.tmp` and publish it with one rename.
/// Already registered → exit 1. Nothing is left behind on failure.
pub fn publish(cfg: &Config, spec: &Spec) -> Result<()> {
    let p = spec.profile;
    let dst = cfg.slot_dir(p);
    if fs::symlink_metadata(&dst).is_ok() {
        return Err(refused(format!(
            "the s6 gateway slot for profile '{}' is already registered ({})",
            p,
            dst.display()
        )));
    }
    let tmp = tmp_dir(cfg, p);
    if fs::symlink_metadata(&tmp).is_ok() {
        remove_tree(&tmp)?;
    }
    let built = build_into(cfg, spec, &tmp).and_then(|_| {
        // rename(2) onto an existing non-empty dir fails: a racing register loses cleanly.
        fs::rename(&tmp, &dst).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOTEMPTY) | Some(libc::EEXIST) => refused(format!(
                "the s6 gateway slot for profile '{}' is already registered ({})",
                p,
                dst.display()
            )),
            _ => sys("rename to", &dst, e),
        })
    });
    if built.is_err() && fs::symlink_metadata(&tmp).is_ok() {
        let _ = remove_tree(&tmp);
    }
    built
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
/// against symlink races since Rust 1.58).
pub fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(sys("remove", path, e)),
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
    let supervised = svstat::is_supervised(&dir)?;
    if supervised {
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
        let gone = control::wait_until(timeout, || {
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
        assert_eq!(profile_of("gateway-coder"), Some("coder"));
        assert_eq!(profile_of("gateway-default"), Some("default"));
        assert_eq!(profile_of("gateway-"), None);
        assert_eq!(profile_of("gateway-Bad"), None);
        assert_eq!(profile_of(".gateway-x.tmp"), None);
        assert_eq!(profile_of("s6-linux-init-shutdownd"), None);
    }

    #[test]
    fn quote_escapes_quotes_and_backslashes() {
        assert_eq!(quote("a"), "\"a\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("$HOME {x}"), "\"$HOME {x}\"");
    }
}

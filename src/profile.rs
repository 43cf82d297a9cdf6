//! Profiles: name rules, homes, ports, and the run-time environment (SPEC §1).
//!
//! Also resolves the unprivileged account by parsing `/etc/passwd` ourselves: the binary is
//! musl-static (no NSS), and tests point the lookup at a fake `etc` directory.

use crate::error::{refused, sys, usage, Error, Result};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The root profile: its home is `$HERMES_HOME` itself.
pub const DEFAULT: &str = "default";

/// A profile name that follows the rule `^[a-z0-9][a-z0-9_-]{0,63}$`. Made
/// only by [`Profile::parse`] — from an argument, a directory entry, a slot's
/// name — so whatever takes one checks nothing again: a name is validated
/// where it enters, once.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Profile(String);

impl Profile {
    /// `name` if it follows the rule; else a usage error (exit 100) naming it.
    pub fn parse(name: &str) -> Result<Profile> {
        validate(name).map(|_| Profile(name.to_string()))
    }

    /// The root profile, `default`.
    pub fn default_profile() -> Profile {
        Profile(DEFAULT.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Profile {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Profile {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Profile {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Profile {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// The rule itself (exit 100 otherwise, naming the name).
fn validate(name: &str) -> Result<()> {
    let b = name.as_bytes();
    let why = match b.first() {
        None => Some("it is empty"),
        Some(_) if b.len() > 64 => Some("it is longer than 64 characters"),
        Some(c) if !(c.is_ascii_lowercase() || c.is_ascii_digit()) => {
            Some("it must start with a lowercase letter or a digit")
        }
        _ => b[1..]
            .iter()
            .any(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-'))
            .then_some("only a-z, 0-9, '_' and '-' are allowed"),
    };
    match why {
        None => Ok(()),
        Some(why) => Err(usage(format!(
            "invalid profile name '{}': {} (expected ^[a-z0-9][a-z0-9_-]{{0,63}}$)",
            crate::error::escape(name),
            why
        ))),
    }
}

/// The profile's gateway port: `9200 + (first 4 bytes of SHA-256(name), big-endian) mod 600`.
pub fn port(name: &str) -> u16 {
    let d = crate::sha256::digest(name.as_bytes());
    let n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    9200 + (n % 600) as u16
}

/// Compile-time default for the tools' directory (`make SHEBANGDIR=…` exports it to cargo).
const BUILD_SHEBANGDIR: &str = match option_env!("HERMES_S6_SHEBANGDIR") {
    Some(d) => d,
    None => "/command",
};

/// Upstream's yes for a flag variable (`is_truthy_value`, utils.py): `1`,
/// `true`, `yes` or `on`, any case, surrounding whitespace ignored.
pub fn truthy(v: Option<&str>) -> bool {
    v.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// `HERMES_GATEWAY_NO_SUPERVISE` as upstream itself tests it
/// (container_boot.py, gateway.py): `1`, `true` or `yes`, any case, as is —
/// narrower than [`truthy`], and the same trigger is the point.
pub fn no_supervise(v: Option<&str>) -> bool {
    v.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// [`truthy`] of an environment variable.
pub fn env_truthy(name: &str) -> bool {
    truthy(std::env::var(name).ok().as_deref())
}

/// Upstream's API server port, for every profile that sets none (SPEC §7).
pub const UPSTREAM_API_PORT: u16 = 8642;

/// The value of `key` in a dotenv file's text, as the gateway's loader reads
/// it: `KEY=value` or `export KEY=value`, optional quotes, the last line wins.
pub fn dotenv_value(text: &str, key: &str) -> Option<String> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.trim() != key {
            continue;
        }
        let v = v.trim();
        let v = match v.chars().next() {
            Some(q @ ('"' | '\'')) => v[1..].split(q).next().unwrap_or(""),
            _ => v.split(" #").next().unwrap_or("").trim(),
        };
        found = Some(v.to_string());
    }
    found
}

/// The environment hermes-s6 runs in (SPEC §1), read once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub hermes_home: PathBuf,
    pub scandir: PathBuf,
    pub user: String,
    /// `HERMES_GATEWAY_CMD`; None = upstream's own command lines (SPEC §7).
    pub gateway_cmd: Option<String>,
    /// `HERMES_GATEWAY_READY` (`state` or `up`); None = by the command.
    pub ready: Option<String>,
    pub shebangdir: PathBuf,
    /// `HERMES_S6_MAX_PROFILES`: how many gateway slots the nested scanner is
    /// sized for (`scanner::services_max`), and so how many may be registered.
    pub max_profiles: usize,
}

/// `HERMES_S6_MAX_PROFILES` when unset or not a number in range.
pub const DEFAULT_MAX_PROFILES: usize = 1000;
/// The largest accepted: s6-svscan allocates its tables for the limit.
pub const MAX_MAX_PROFILES: usize = 100_000;

/// A variable's value, or None when unset or empty (an empty override means "default").
fn env_var(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

impl Config {
    pub fn from_env() -> Config {
        Config::from_os_lookup(env_var)
    }

    /// `from_env` with the variables taken from `var` (tests must not mutate the process env).
    #[cfg(test)]
    fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Config {
        Config::from_os_lookup(|k| var(k).map(OsString::from))
    }

    /// Paths keep their bytes (a non-UTF-8 directory name is still that directory, not its
    /// lossy spelling); the user and the command line are text.
    fn from_os_lookup(var: impl Fn(&str) -> Option<OsString>) -> Config {
        let path = |k: &str, default: &str| var(k).map_or_else(|| default.into(), PathBuf::from);
        let text = |k: &str| var(k).map(|v| v.to_string_lossy().into_owned());
        let scandir = if var("HERMES_S6_SCANDIR").is_some() {
            "HERMES_S6_SCANDIR"
        } else {
            "S6_PROFILE_GATEWAY_SCANDIR"
        };
        Config {
            hermes_home: path("HERMES_HOME", "/opt/data"),
            scandir: path(scandir, "/run/hermes/service"),
            user: text("HERMES_S6_USER").unwrap_or_else(|| "hermes".into()),
            gateway_cmd: text("HERMES_GATEWAY_CMD"),
            ready: text("HERMES_GATEWAY_READY"),
            shebangdir: path("HERMES_S6_SHEBANGDIR", BUILD_SHEBANGDIR),
            max_profiles: text("HERMES_S6_MAX_PROFILES")
                .and_then(|v| v.trim().parse().ok())
                .filter(|n| (1..=MAX_MAX_PROFILES).contains(n))
                .unwrap_or(DEFAULT_MAX_PROFILES),
        }
    }

    /// Home of profile `p`: `$HERMES_HOME` for `default`, else `$HERMES_HOME/profiles/p`.
    pub fn home(&self, p: &str) -> PathBuf {
        if p == DEFAULT {
            self.hermes_home.clone()
        } else {
            let len = self.hermes_home.as_os_str().len() + "/profiles/".len() + p.len();
            let mut h = PathBuf::with_capacity(len);
            h.push(&self.hermes_home);
            h.push("profiles");
            h.push(p);
            h
        }
    }

    /// The refusal for a slot whose profile was deleted (not real any more):
    /// nothing brings its gateway up — `run`, its standby, `start`.
    pub fn gone(&self, p: &str) -> Error {
        refused(format!(
            "profile '{}' no longer exists ({} has no SOUL.md): not starting its gateway (`hermes-s6 unregister {}` removes its slot)",
            p,
            self.home(p).display(),
            p
        ))
    }

    /// Is P a real profile? (SPEC §1; the rule is [`home_reality`].)
    pub fn is_real(&self, p: &str) -> bool {
        matches!(self.reality(p), Reality::Real)
    }

    /// What P's home is: `default` is always real; an invalid name never is.
    pub fn reality(&self, p: &str) -> Reality {
        if p == DEFAULT {
            return Reality::Real;
        }
        if validate(p).is_err() {
            return Reality::Gone;
        }
        home_reality(&self.home(p))
    }

    /// The slot of profile `p`: `$scandir/gateway-p`.
    pub fn slot_dir(&self, p: &str) -> PathBuf {
        let len = self.scandir.as_os_str().len() + "/gateway-".len() + p.len();
        let mut s = PathBuf::with_capacity(len);
        s.push(&self.scandir);
        s.push("gateway-");
        s.as_mut_os_string().push(p);
        s
    }

    /// `HERMES_GATEWAY_CMD` split on ASCII whitespace, `{profile}` replaced by `p` in every
    /// word. Unset: upstream's own command lines — `default` without `-p`, since the
    /// gateway's liveness check rejects ` -p ` for the root profile (SPEC §7).
    pub fn gateway_argv(&self, p: &str) -> Vec<String> {
        self.command_line(p)
            .split_ascii_whitespace()
            .map(|w| w.replace("{profile}", p))
            .collect()
    }

    /// The program of P's gateway command: [`Config::gateway_argv`]'s first
    /// word, without building the others.
    pub fn gateway_program(&self, p: &str) -> Option<std::borrow::Cow<'_, str>> {
        let w = self.command_line(p).split_ascii_whitespace().next()?;
        Some(if w.contains("{profile}") {
            w.replace("{profile}", p).into()
        } else {
            w.into()
        })
    }

    /// P's gateway command line, before it is split.
    fn command_line(&self, p: &str) -> &str {
        match &self.gateway_cmd {
            Some(c) => c.as_str(),
            None if p == DEFAULT => "hermes gateway run --replace",
            None => "hermes -p {profile} gateway run --replace",
        }
    }

    /// `HERMES_GATEWAY_READY=state|up` when set; else `State` for upstream's `hermes`
    /// command (the default, or any command whose program is named `hermes`) and `Up`
    /// for any other daemon, which cannot be expected to write the state file.
    pub fn readiness(&self, program: Option<&str>) -> crate::ready::Readiness {
        use crate::ready::Readiness;
        match self.ready.as_deref() {
            Some("state") => return Readiness::State,
            Some("up") => return Readiness::Up,
            _ => {}
        }
        let prog = program.map(|w| w.rsplit('/').next().unwrap_or(w));
        if prog == Some("hermes") {
            Readiness::State
        } else {
            Readiness::Up
        }
    }

    /// The port P's API server really binds (SPEC §7): its `.env`'s
    /// `API_SERVER_PORT`, which the gateway loads over the process
    /// environment; else what `run` gives it — P's own port for a named
    /// profile, the container's `API_SERVER_PORT` or upstream's 8642 for
    /// `default`. The `.env` is read without following links, 64 KiB at most.
    pub fn api_port(&self, p: &str) -> u16 {
        let from_file = crate::fsutil::read_file(&self.home(p).join(".env"), 64 * 1024)
            .ok()
            .flatten()
            .and_then(|b| dotenv_value(&String::from_utf8_lossy(&b), "API_SERVER_PORT"))
            .and_then(|v| v.parse().ok());
        from_file.unwrap_or_else(|| {
            if p == DEFAULT {
                std::env::var("API_SERVER_PORT")
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(UPSTREAM_API_PORT)
            } else {
                port(p)
            }
        })
    }

    /// Where an s6/execline tool lives: `$shebangdir/name` if present, else the first match
    /// on `$PATH`, else `$shebangdir/name` (so the error message names the expected place).
    pub fn tool(&self, name: &str) -> PathBuf {
        let preferred = self.shebangdir.join(name);
        if preferred.exists() {
            return preferred;
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                let cand = dir.join(name);
                if dir.is_absolute() && cand.is_file() {
                    return cand;
                }
            }
        }
        preferred
    }
}

/// What a profile home is.
#[derive(Debug)]
pub enum Reality {
    /// A directory (not a symlink) holding a `SOUL.md` that is a regular file
    /// or a link to one (only its existence is read).
    Real,
    /// Known not to be a profile: missing, not a directory, a symlink, no
    /// `SOUL.md` (or one that is not a file).
    Gone,
    /// Cannot be told (EACCES, EIO…): neither run nor removed.
    Unknown(std::io::Error),
}

/// The one rule for what makes a directory a real profile's home (SPEC §1),
/// used by every command: `status`, `start`, the watcher, `reconcile`'s
/// listing and its removal of the slots of profiles that are gone. A
/// symlinked home could point anywhere: it is never followed.
pub fn home_reality(home: &Path) -> Reality {
    match fs::symlink_metadata(home) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Reality::Gone,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Reality::Gone,
        Err(e) => return Reality::Unknown(e),
    }
    soul_reality(home)
}

/// [`home_reality`] for a home already known to be a real directory (a
/// listing's entry typed as one): the `SOUL.md` half of the rule.
pub fn soul_reality(home: &Path) -> Reality {
    match fs::metadata(crate::fsutil::join(home, "SOUL.md")) {
        Ok(m) if m.is_file() => Reality::Real,
        Ok(_) => Reality::Gone,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound) => Reality::Gone,
        Err(e)
            if e.raw_os_error() == Some(libc::ENOTDIR) || e.raw_os_error() == Some(libc::ELOOP) =>
        {
            Reality::Gone
        }
        Err(e) => Reality::Unknown(e),
    }
}

/// One `/etc/passwd` line → (name, uid, gid); None for comments, short or malformed lines.
fn parse_passwd_line(line: &str) -> Option<(&str, u32, u32)> {
    if line.starts_with('#') {
        return None;
    }
    let mut f = line.split(':');
    let name = f.next()?;
    let _pw = f.next()?;
    let uid = f.next()?.trim().parse().ok()?;
    let gid = f.next()?.trim().parse().ok()?;
    if name.is_empty() {
        return None;
    }
    Some((name, uid, gid))
}

/// Resolve `HERMES_S6_USER`: `uid:gid` (numeric), or a name (or a bare uid) looked up in
/// `etc/passwd`. Unknown → Refused, naming the user.
pub fn resolve_user(spec: &str, etc: &Path) -> Result<(u32, u32)> {
    if let Some((u, g)) = spec.split_once(':') {
        return match (u.parse(), g.parse()) {
            (Ok(u), Ok(g)) => Ok((u, g)),
            _ => Err(usage(format!(
                "invalid user '{}': expected a name or uid:gid",
                spec
            ))),
        };
    }
    let passwd = etc.join("passwd");
    let text = match fs::read(&passwd) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(sys("read", &passwd, e)),
    };
    let text = String::from_utf8_lossy(&text);
    // A name only: a bare uid would work here but not for the scripts'
    // s6-setuidgid, which would then fail at boot (SPEC: a name or uid:gid).
    for (name, uid, gid) in text.lines().filter_map(parse_passwd_line) {
        if name == spec {
            return Ok((uid, gid));
        }
    }
    Err(refused(format!(
        "unknown user '{}': not in {} (a numeric account is given as uid:gid)",
        spec,
        passwd.display()
    )))
}

/// When running as root, become the hermes user (groups, gid, then uid) and check it stuck.
/// A no-op when not root, or when the target user is root itself.
pub fn drop_privileges(cfg: &Config) -> Result<()> {
    if crate::sys::geteuid() != 0 {
        return Ok(());
    }
    let (uid, gid) = resolve_user(&cfg.user, Path::new("/etc"))?;
    if uid == 0 {
        return Ok(());
    }
    // A partial drop must never go unnoticed (sys::become_user checks it stuck).
    crate::sys::become_user(uid, gid).map_err(Error::System)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static N: AtomicUsize = AtomicUsize::new(0);

    struct TempDir(PathBuf);
    impl TempDir {
        fn new() -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "hermes-s6-profile-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn cfg(home: &Path) -> Config {
        Config {
            hermes_home: home.to_path_buf(),
            scandir: "/run/hermes/service".into(),
            user: "hermes".into(),
            gateway_cmd: None,
            ready: None,
            shebangdir: "/command".into(),
            max_profiles: DEFAULT_MAX_PROFILES,
        }
    }

    fn rejected(name: &str) {
        match Profile::parse(name) {
            Err(Error::Usage(m)) => assert!(
                m.contains(&format!(
                    "invalid profile name '{}'",
                    crate::error::escape(name)
                )),
                "{}",
                m
            ),
            other => panic!("{:?} accepted: {:?}", name, other),
        }
    }

    #[test]
    fn flags_are_read_as_upstream_reads_them() {
        for yes in ["1", "true", "YES", "on", " On\n", "\ttrue "] {
            assert!(truthy(Some(yes)), "{:?}", yes);
        }
        for no in ["", "0", "no", "off", "y", "2", "true!"] {
            assert!(!truthy(Some(no)), "{:?}", no);
        }
        assert!(!truthy(None));
        // HERMES_GATEWAY_NO_SUPERVISE: upstream's own narrower test
        assert!(no_supervise(Some("Yes")) && no_supervise(Some("1")));
        assert!(!no_supervise(Some("on")) && !no_supervise(Some(" 1")) && !no_supervise(None));
    }

    #[test]
    fn invalid_names_are_usage_errors_naming_the_name() {
        for n in [
            "Coder", "../x", ".x", "a b", "-x", "_x", "a/b", "a.b", "é", "",
        ] {
            rejected(n);
        }
        rejected(&"a".repeat(65));
    }

    #[test]
    fn valid_names_pass() {
        for n in [
            "default",
            "coder",
            "a",
            "0",
            "0abc",
            "my-profile",
            "assistant_v2",
        ] {
            assert_eq!(Profile::parse(n).unwrap().as_str(), n);
        }
        Profile::parse(&"a".repeat(64)).unwrap();
    }

    #[test]
    fn config_defaults_and_scandir_alias() {
        let c = Config::from_lookup(|_| None);
        assert_eq!(c.hermes_home, Path::new("/opt/data"));
        assert_eq!(c.scandir, Path::new("/run/hermes/service"));
        assert_eq!(c.user, "hermes");
        assert_eq!(c.gateway_cmd, None);
        assert_eq!(c.shebangdir, Path::new(BUILD_SHEBANGDIR));
        let alias = Config::from_lookup(|k| {
            (k == "S6_PROFILE_GATEWAY_SCANDIR").then(|| "/run/service".to_string())
        });
        assert_eq!(alias.scandir, Path::new("/run/service"));
        let both = Config::from_lookup(|k| match k {
            "S6_PROFILE_GATEWAY_SCANDIR" => Some("/run/service".into()),
            "HERMES_S6_SCANDIR" => Some("/x".into()),
            "HERMES_S6_SHEBANGDIR" => Some("/usr/bin".into()),
            "HERMES_HOME" => Some("/h".into()),
            "HERMES_S6_USER" => Some("10000:10000".into()),
            _ => None,
        });
        assert_eq!(both.scandir, Path::new("/x"));
        assert_eq!(both.shebangdir, Path::new("/usr/bin"));
        assert_eq!(both.hermes_home, Path::new("/h"));
        assert_eq!(both.user, "10000:10000");
    }

    #[test]
    fn dotenv_value_reads_like_the_gateway() {
        let t = "# c\nAPI_SERVER_PORT=1\nexport API_SERVER_PORT = \"2\"\nX=3\n";
        assert_eq!(dotenv_value(t, "API_SERVER_PORT").as_deref(), Some("2"));
        assert_eq!(
            dotenv_value("API_SERVER_PORT='7' # x", "API_SERVER_PORT").as_deref(),
            Some("7")
        );
        assert_eq!(
            dotenv_value("API_SERVER_PORT=8 # x", "API_SERVER_PORT").as_deref(),
            Some("8")
        );
        assert_eq!(
            dotenv_value("API_SERVER_PORTX=1\n", "API_SERVER_PORT"),
            None
        );
    }

    #[test]
    fn api_port_of_a_named_profile_is_its_own_unless_its_env_says() {
        let t = TempDir::new();
        let c = cfg(&t.0);
        assert_eq!(c.api_port("coder"), 9570);
        fs::create_dir_all(t.0.join("profiles/coder")).unwrap();
        fs::write(t.0.join("profiles/coder/.env"), "API_SERVER_PORT=8700\n").unwrap();
        assert_eq!(c.api_port("coder"), 8700);
        fs::write(t.0.join(".env"), "API_SERVER_PORT=8701\n").unwrap();
        assert_eq!(c.api_port("default"), 8701);
    }

    #[test]
    fn port_vectors() {
        assert_eq!(port("coder"), 9570);
        assert_eq!(port("writer"), 9543);
        assert_eq!(port("default"), 9449);
        assert_eq!(port("a"), 9610);
        assert_eq!(port("work"), 9687);
    }

    #[test]
    fn home_of_default_is_hermes_home() {
        let c = cfg(Path::new("/opt/data"));
        assert_eq!(c.home("default"), Path::new("/opt/data"));
        assert_eq!(c.home("coder"), Path::new("/opt/data/profiles/coder"));
        assert_eq!(
            c.slot_dir("coder"),
            Path::new("/run/hermes/service/gateway-coder")
        );
    }

    #[test]
    fn gateway_argv_replaces_profile_in_every_word() {
        let mut c = cfg(Path::new("/opt/data"));
        c.gateway_cmd = Some("  run\t--name={profile}-{profile}  x{profile}y \n".into());
        assert_eq!(c.gateway_argv("a"), ["run", "--name=a-a", "xay"]);
        assert_eq!(
            c.gateway_argv("default"),
            ["run", "--name=default-default", "xdefaulty"]
        );
    }

    #[test]
    fn default_command_runs_the_root_profile_without_p_as_upstream() {
        let c = cfg(Path::new("/opt/data"));
        assert_eq!(
            c.gateway_argv("coder"),
            ["hermes", "-p", "coder", "gateway", "run", "--replace"]
        );
        assert_eq!(
            c.gateway_argv("default"),
            ["hermes", "gateway", "run", "--replace"]
        );
    }

    #[test]
    fn readiness_follows_the_state_file_for_hermes_and_up_for_other_daemons() {
        use crate::ready::Readiness;
        let mut c = cfg(Path::new("/opt/data"));
        let of = |c: &Config, p: &str| c.readiness(c.gateway_program(p).as_deref());
        assert_eq!(of(&c, "x"), Readiness::State);
        assert_eq!(
            c.readiness(Some("/opt/hermes/.venv/bin/hermes")),
            Readiness::State
        );
        assert_eq!(c.readiness(Some("/usr/local/lib/gw")), Readiness::Up);
        assert_eq!(c.readiness(None), Readiness::Up);
        c.gateway_cmd = Some("/opt/{profile}/bin/hermes gateway run".into());
        assert_eq!(c.gateway_program("a").as_deref(), Some("/opt/a/bin/hermes"));
        assert_eq!(of(&c, "a"), Readiness::State);
        c.gateway_cmd = Some("  \t".into());
        assert_eq!(c.gateway_program("a"), None);
        c.ready = Some("state".into());
        assert_eq!(c.readiness(Some("/usr/local/lib/gw")), Readiness::State);
        c.ready = Some("up".into());
        c.gateway_cmd = None;
        assert_eq!(of(&c, "x"), Readiness::Up);
    }

    #[test]
    fn real_profile_needs_soul_md_in_a_real_directory() {
        let t = TempDir::new();
        let c = cfg(&t.0);
        assert!(c.is_real("default"));
        let p = t.0.join("profiles");
        fs::create_dir_all(p.join("coder")).unwrap();
        assert!(!c.is_real("coder"), "no SOUL.md yet");
        fs::write(p.join("coder/SOUL.md"), "x").unwrap();
        assert!(c.is_real("coder"));
        // SOUL.md that is a directory does not count
        fs::create_dir_all(p.join("dirsoul/SOUL.md")).unwrap();
        assert!(!c.is_real("dirsoul"));
        assert!(!c.is_real("missing"));
        assert!(!c.is_real("../profiles/coder"));
    }

    #[test]
    fn symlinked_profile_dir_is_not_real() {
        let t = TempDir::new();
        let c = cfg(&t.0);
        fs::create_dir_all(t.0.join("profiles")).unwrap();
        fs::create_dir_all(t.0.join("elsewhere")).unwrap();
        fs::write(t.0.join("elsewhere/SOUL.md"), "x").unwrap();
        std::os::unix::fs::symlink(t.0.join("elsewhere"), t.0.join("profiles/link")).unwrap();
        assert!(!c.is_real("link"));
    }

    #[test]
    fn tool_prefers_shebangdir_then_path_then_shebangdir() {
        let t = TempDir::new();
        let mut c = cfg(&t.0);
        c.shebangdir = t.0.clone();
        fs::write(t.0.join("mytool"), "").unwrap();
        assert_eq!(c.tool("mytool"), t.0.join("mytool"));
        // `sh` is on PATH everywhere this runs
        let sh = c.tool("sh");
        assert!(
            sh.is_absolute() && sh.ends_with("sh") && sh.is_file(),
            "{:?}",
            sh
        );
        assert_eq!(c.tool("no-such-tool-xyz"), t.0.join("no-such-tool-xyz"));
    }

    #[test]
    fn passwd_lines_skip_comments_short_and_malformed() {
        assert_eq!(
            parse_passwd_line("hermes:x:10000:10000:Hermes:/opt/data:/bin/sh"),
            Some(("hermes", 10000, 10000))
        );
        assert_eq!(parse_passwd_line("# hermes:x:1:1::/:/bin/sh"), None);
        assert_eq!(parse_passwd_line("hermes:x:10000"), None);
        assert_eq!(parse_passwd_line(""), None);
        assert_eq!(parse_passwd_line("hermes:x:abc:1::/:"), None);
        assert_eq!(parse_passwd_line(":x:1:1::/:"), None);
        assert_eq!(
            parse_passwd_line("big:x:4294967294:4294967294::/:"),
            Some(("big", 4294967294, 4294967294))
        );
        assert_eq!(parse_passwd_line("toobig:x:4294967296:1::/:"), None);
        // minimal 4-field line is enough
        assert_eq!(parse_passwd_line("m:x:5:6"), Some(("m", 5, 6)));
    }

    #[test]
    fn resolve_user_by_name_or_uid_pair_never_bare_uid() {
        let t = TempDir::new();
        fs::write(
            t.0.join("passwd"),
            "root:x:0:0:root:/root:/bin/sh\n# comment\nshort:x\nhermes:x:10000:10001::/opt/data:/bin/sh\nbig:x:4000000000:4000000001::/:\n",
        )
        .unwrap();
        assert_eq!(resolve_user("hermes", &t.0).unwrap(), (10000, 10001));
        assert_eq!(resolve_user("big", &t.0).unwrap(), (4000000000, 4000000001));
        // s6-setuidgid in the boot scripts takes a name or uid:gid only
        assert!(matches!(
            resolve_user("10000", &t.0),
            Err(Error::Refused(_))
        ));
        assert_eq!(resolve_user("123:456", &t.0).unwrap(), (123, 456));
        assert!(matches!(resolve_user("1:x", &t.0), Err(Error::Usage(_))));
    }

    #[test]
    fn unknown_user_is_refused_naming_it() {
        let t = TempDir::new();
        fs::write(t.0.join("passwd"), "root:x:0:0::/:\n").unwrap();
        match resolve_user("hermes", &t.0) {
            Err(Error::Refused(m)) => assert!(m.contains("'hermes'"), "{}", m),
            other => panic!("{:?}", other),
        }
        // no passwd file at all: same answer
        let empty = TempDir::new();
        assert!(matches!(
            resolve_user("hermes", &empty.0),
            Err(Error::Refused(_))
        ));
        assert!(matches!(resolve_user("4242", &t.0), Err(Error::Refused(_))));
    }

    #[test]
    fn drop_privileges_to_root_is_a_no_op() {
        // Dropping for real would demote the whole test runner; the live path is covered by
        // the integration tests. Here: a root target (or a non-root caller) changes nothing.
        let mut c = cfg(Path::new("/opt/data"));
        c.user = "0:0".into();
        let before = unsafe { (libc::geteuid(), libc::getegid()) };
        drop_privileges(&c).unwrap();
        assert_eq!(before, unsafe { (libc::geteuid(), libc::getegid()) });
    }
}

//! `hermes`: the front of upstream's CLI (SPEC §8). Installed as a link named
//! `hermes` to this binary, ahead of upstream's on PATH. The few invocations
//! that upstream would send to its own s6 backend (which hard-codes
//! `/run/service`) go through hermes-s6; everything else chain-loads the real
//! CLI (`HERMES_S6_HERMES`, default upstream's `/opt/hermes/.venv/bin/hermes`)
//! with the same arguments, stdin/stdout/stderr and exit status.
//!
//! | invocation | what happens |
//! |---|---|
//! | `hermes [-p P] gateway start\|stop\|restart [--all] [--wait] [--timeout MS]` | `hermes-s6 start\|stop\|restart P\|--all` |
//! | `hermes [-p P] gateway status [--all]` | `hermes-s6 status [P]` |
//! | `hermes [-p P] gateway run …` not under supervision | seed P's intent like upstream's boot, then stay alive (a container's main command) |
//! | `hermes profile create P …` | upstream's, then `register P` (down) |
//! | `hermes profile delete P …` | `unregister P`, upstream's, and the slot back if P survived |
//! | anything else, and `gateway run` under supervision | upstream's CLI, exec'd |

use crate::error::{usage, warn, Error, Result};
use crate::ops::{self, Wait};
use crate::profile::{self, Config, Profile, DEFAULT};
use crate::{reconcile, slot, state, status};
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

/// Where upstream's image keeps its CLI.
pub const DEFAULT_REAL: &str = "/opt/hermes/.venv/bin/hermes";

/// What one `hermes` invocation is.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// `gateway start|stop|restart`: the verb, P or every profile, `--wait`.
    Lifecycle {
        verb: String,
        profile: Option<Profile>,
        wait: bool,
        timeout: Option<u64>,
    },
    /// `gateway status`: one profile or (None) all.
    Status(Option<Profile>),
    /// `gateway run` that is not the supervised gateway itself.
    RunInForeground(Profile),
    ProfileCreate(Profile),
    ProfileDelete(Profile),
    /// Upstream's CLI, untouched.
    Upstream,
}

/// The first positional word of a subcommand's arguments, skipping the
/// values of the options named in `with_value`.
fn first_positional<'a>(args: &'a [String], with_value: &[&str]) -> Option<&'a str> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if with_value.contains(&a.as_str()) {
            it.next();
        } else if !a.starts_with('-') {
            return Some(a);
        }
    }
    None
}

/// Decide what `hermes ARGS` is. `env` reads the environment (tests pass
/// their own). Names that are not valid profile names go to upstream, which
/// says what is wrong with them in its own words.
pub fn route(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Route> {
    let mut i = 0;
    let mut p: Option<String> = None;
    while i < args.len() {
        let a = &args[i];
        if a == "-p" || a == "--profile" {
            p = args.get(i + 1).cloned();
            i += 2;
        } else if let Some(v) = a.strip_prefix("--profile=") {
            p = Some(v.to_string());
            i += 1;
        } else {
            break;
        }
    }
    let rest = &args[i.min(args.len())..];
    // (None: not a valid name, which upstream then reports)
    let target = Profile::parse(p.as_deref().unwrap_or(DEFAULT)).ok();
    match (
        rest.first().map(String::as_str),
        rest.get(1).map(String::as_str),
        target,
    ) {
        (Some("gateway"), Some(verb @ ("start" | "stop" | "restart")), Some(target)) => {
            let mut all = false;
            let mut wait = false;
            let mut timeout = None;
            let mut it = rest[2..].iter();
            while let Some(o) = it.next() {
                match o.as_str() {
                    "--all" => all = true,
                    "--wait" => wait = true,
                    "--timeout" => timeout = it.next().map(String::as_str).map(ms).transpose()?,
                    o if o.starts_with("--timeout=") => timeout = Some(ms(&o[10..])?),
                    o => {
                        return Err(usage(format!(
                            "gateway {}: '{}' is not supported under hermes-s6 (--all, --wait, --timeout MS)",
                            verb, o
                        )))
                    }
                }
            }
            Ok(Route::Lifecycle {
                verb: verb.to_string(),
                profile: (!all).then_some(target),
                wait,
                timeout,
            })
        }
        (Some("gateway"), Some("status"), Some(target)) => {
            let all = rest[2..].iter().any(|a| a == "--all");
            Ok(Route::Status((!all && p.is_some()).then_some(target)))
        }
        (Some("gateway"), Some("run"), Some(target)) => {
            let supervised = env("HERMES_S6_SUPERVISED_CHILD").as_deref() == Some("1");
            if supervised
                || rest[2..].iter().any(|a| a == "--no-supervise")
                || profile::no_supervise(env("HERMES_GATEWAY_NO_SUPERVISE").as_deref())
            {
                Ok(Route::Upstream)
            } else {
                Ok(Route::RunInForeground(target))
            }
        }
        (Some("profile"), Some(verb @ ("create" | "delete")), _) => {
            let opts: &[&str] = if verb == "create" {
                &["--clone-from", "--description"]
            } else {
                &[]
            };
            match first_positional(&rest[2..], opts) {
                Some(n) if n != DEFAULT => match Profile::parse(n) {
                    Ok(n) if verb == "create" => Ok(Route::ProfileCreate(n)),
                    Ok(n) => Ok(Route::ProfileDelete(n)),
                    Err(_) => Ok(Route::Upstream),
                },
                _ => Ok(Route::Upstream),
            }
        }
        _ => Ok(Route::Upstream),
    }
}

fn ms(v: &str) -> Result<u64> {
    v.parse()
        .map_err(|_| usage(format!("--timeout wants milliseconds, got '{}'", v)))
}

/// Upstream's CLI: `HERMES_S6_HERMES`, else upstream's venv. Never this
/// binary itself (a link loop would exec forever).
pub fn real_cli() -> Result<PathBuf> {
    let path = std::env::var_os("HERMES_S6_HERMES")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_REAL), PathBuf::from);
    let same = match (
        std::fs::metadata(&path),
        std::fs::metadata("/proc/self/exe"),
    ) {
        (Ok(a), Ok(b)) => {
            use std::os::unix::fs::MetadataExt;
            a.dev() == b.dev() && a.ino() == b.ino()
        }
        (Err(e), _) => {
            return Err(Error::System(format!(
                "upstream's hermes CLI {}: {} (set HERMES_S6_HERMES)",
                path.display(),
                crate::error::os_text(&e)
            )))
        }
        _ => false,
    };
    if same {
        return Err(usage(format!(
            "HERMES_S6_HERMES={} is this front itself, not upstream's CLI",
            path.display()
        )));
    }
    Ok(path)
}

fn upstream(args: &[OsString]) -> Command {
    match real_cli() {
        Ok(p) => {
            let mut c = Command::new(p);
            c.args(args);
            c
        }
        Err(e) => Command::failed(e),
    }
}

/// A command to run, or the reason it cannot be.
enum Command {
    Ready(std::process::Command),
    Failed(Error),
}

impl Command {
    fn new(p: PathBuf) -> Command {
        Command::Ready(std::process::Command::new(p))
    }
    fn failed(e: Error) -> Command {
        Command::Failed(e)
    }
    fn args(&mut self, a: &[OsString]) {
        if let Command::Ready(c) = self {
            c.args(a);
        }
    }
    /// Become upstream's CLI. Returns only on failure.
    fn exec(self) -> Error {
        match self {
            Command::Ready(mut c) => {
                let e = c.exec();
                Error::System(format!(
                    "unable to exec {:?}: {}",
                    c.get_program(),
                    crate::error::os_text(&e)
                ))
            }
            Command::Failed(e) => e,
        }
    }
    /// Run it as a child with our stdin/stdout/stderr; its exit status.
    fn status(self) -> Result<i32> {
        match self {
            Command::Ready(mut c) => {
                let st = c.status().map_err(|e| {
                    Error::System(format!(
                        "unable to run {:?}: {}",
                        c.get_program(),
                        crate::error::os_text(&e)
                    ))
                })?;
                use std::os::unix::process::ExitStatusExt;
                Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)))
            }
            Command::Failed(e) => Err(e),
        }
    }
}

/// `hermes ARGS`: returns the exit status (or the error to report).
/// `args` go to upstream byte for byte; the routing reads a lossy copy.
pub fn main(args: Vec<OsString>) -> Result<i32> {
    let cfg = Config::from_env();
    let words: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let route = route(&words, |k| std::env::var(k).ok())?;
    // Upstream's image shim runs its CLI as the hermes user unless told
    // otherwise; so does this front, and hermes-s6's own work never needs root.
    let as_root = profile::env_truthy("HERMES_DOCKER_EXEC_AS_ROOT");
    if route != Route::Upstream || !as_root {
        profile::drop_privileges(&cfg)?;
    }
    match route {
        Route::Upstream => Err(upstream(&args).exec()),
        Route::Lifecycle {
            verb,
            profile,
            wait,
            timeout,
        } => {
            let f = match verb.as_str() {
                "start" => ops::start,
                "stop" => ops::stop,
                _ => ops::restart,
            };
            let w = Wait {
                wait,
                timeout: timeout.map_or(Wait::default().timeout, Duration::from_millis),
            };
            let targets = match profile {
                Some(p) => vec![p],
                None => ops::all(&cfg, verb == "start", verb != "stop")?,
            };
            let mut worst = 0;
            for p in targets {
                match f(&cfg, &p, w) {
                    Ok(()) => println!("✓ gateway '{}': {} (s6)", p, done(&verb)),
                    Err(e) => {
                        eprintln!("✗ gateway '{}': {}", p, e.message());
                        worst = worst.max(e.exit_code());
                    }
                }
            }
            Ok(worst)
        }
        Route::Status(p) => status::status(&cfg, p.as_ref(), false),
        Route::RunInForeground(p) => run_in_foreground(&cfg, &p),
        Route::ProfileCreate(p) => {
            let rc = upstream(&args).status()?;
            if rc == 0 && cfg.is_real(&p) && !slot::is_registered(&cfg, &p) {
                ops::register(&cfg, &p, false)?;
                eprintln!(
                    "hermes-s6: registered the s6 gateway slot for profile '{}' (down)",
                    p
                );
            }
            Ok(rc)
        }
        Route::ProfileDelete(p) => {
            let was = slot::is_registered(&cfg, &p);
            let intent = state::load(&cfg.home(&p))
                .ok()
                .flatten()
                .and_then(|s| state::resolve_intent(Some(&s)).map(String::from));
            if was {
                ops::unregister(&cfg, &p, Wait::default())?;
            }
            let rc = upstream(&args).status()?;
            // Declined or failed: the profile is still there, so is its slot.
            if was && cfg.is_real(&p) {
                let start = state::autostarts(intent.as_deref());
                if let Err(e) = ops::register(&cfg, &p, start) {
                    warn(e);
                }
            }
            Ok(rc)
        }
    }
}

fn done(verb: &str) -> &'static str {
    match verb {
        "start" => "started",
        "stop" => "stopped",
        _ => "restarted",
    }
}

/// `hermes gateway run` as a container's main command (or typed in `docker
/// exec`): the gateway itself runs under s6, so do what upstream's boot does
/// for it — seed the profile's run-intent when it has none, and start it
/// then — and stay alive as long as the container, like upstream's redirect
/// (`sleep infinity`). Exiting would stop the container, and with
/// `restart: unless-stopped` loop it.
fn run_in_foreground(cfg: &Config, p: &Profile) -> Result<i32> {
    match reconcile::seed_legacy(cfg, p) {
        Ok(true) => {
            if let Err(e) = ops::start(cfg, p, Wait::default()) {
                warn(e);
            }
        }
        Ok(false) => {}
        Err(e) => warn(e),
    }
    eprintln!(
        "→ the '{}' gateway runs under s6 supervision (hermes-s6 status {}); this process only keeps the container alive. Use --no-supervise (or HERMES_GATEWAY_NO_SUPERVISE=1) to run it in the foreground instead.",
        p, p
    );
    crate::sys::pause_forever()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(line: &str) -> Route {
        r_env(line, &[])
    }

    fn r_env(line: &str, env: &[(&str, &str)]) -> Route {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        route(&args, |k| {
            env.iter()
                .find(|(a, _)| *a == k)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    }

    fn pr(p: &str) -> Profile {
        Profile::parse(p).unwrap()
    }

    fn lc(verb: &str, p: Option<&str>, wait: bool) -> Route {
        Route::Lifecycle {
            verb: verb.into(),
            profile: p.map(pr),
            wait,
            timeout: None,
        }
    }

    #[test]
    fn gateway_verbs_go_through_hermes_s6() {
        assert_eq!(r("-p coder gateway stop"), lc("stop", Some("coder"), false));
        assert_eq!(r("gateway start"), lc("start", Some("default"), false));
        assert_eq!(
            r("--profile=coder gateway restart --wait"),
            lc("restart", Some("coder"), true)
        );
        assert_eq!(r("gateway stop --all"), lc("stop", None, false));
        assert_eq!(
            r("-p a gateway start --wait --timeout 5"),
            Route::Lifecycle {
                verb: "start".into(),
                profile: Some(pr("a")),
                wait: true,
                timeout: Some(5)
            }
        );
        assert_eq!(r("gateway status"), Route::Status(None));
        assert_eq!(
            r("-p coder gateway status"),
            Route::Status(Some(pr("coder")))
        );
        assert_eq!(r("-p coder gateway status --all"), Route::Status(None));
    }

    #[test]
    fn unknown_options_of_the_verbs_are_bad_usage_not_silently_dropped() {
        let args: Vec<String> = ["gateway", "stop", "--system"].map(String::from).into();
        assert_eq!(route(&args, |_| None).unwrap_err().exit_code(), 100);
    }

    #[test]
    fn gateway_run_is_upstreams_only_under_supervision_or_when_asked() {
        assert_eq!(r("gateway run"), Route::RunInForeground(pr("default")));
        assert_eq!(
            r("-p coder gateway run --replace"),
            Route::RunInForeground(pr("coder"))
        );
        assert_eq!(
            r_env(
                "gateway run --replace",
                &[("HERMES_S6_SUPERVISED_CHILD", "1")]
            ),
            Route::Upstream
        );
        assert_eq!(r("gateway run --no-supervise"), Route::Upstream);
        assert_eq!(
            r_env("gateway run", &[("HERMES_GATEWAY_NO_SUPERVISE", "yes")]),
            Route::Upstream
        );
    }

    #[test]
    fn profile_create_and_delete_are_seen_everything_else_is_upstreams() {
        assert_eq!(r("profile create coder"), Route::ProfileCreate(pr("coder")));
        assert_eq!(
            r("profile create --clone-from x --description y coder"),
            Route::ProfileCreate(pr("coder"))
        );
        assert_eq!(
            r("profile delete coder -y"),
            Route::ProfileDelete(pr("coder"))
        );
        assert_eq!(
            r("profile delete Coder"),
            Route::Upstream,
            "upstream names the error"
        );
        assert_eq!(r("profile delete default"), Route::Upstream);
        for l in [
            "",
            "--version",
            "chat",
            "gateway",
            "gateway install",
            "profile list",
            "-p Bad gateway stop",
        ] {
            assert_eq!(r(l), Route::Upstream, "{:?}", l);
        }
    }
}

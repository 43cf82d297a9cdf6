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
//! | `hermes [-p P] gateway [run …]` not under supervision | seed P's intent like upstream's boot, then stay alive (a container's main command) |
//! | `hermes profile create P …` | upstream's, then `register P` (down) |
//! | `hermes profile delete P …` | `unregister P`, upstream's, and the slot back if P survived |
//! | anything else, and `gateway run` under supervision | upstream's CLI, exec'd |
//!
//! P is found as upstream finds it: `-p`/`--profile` anywhere before `--`,
//! else the sticky `active_profile`, else `default`.

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

/// `-p P`, `--profile P` or `--profile=P` anywhere before `--`, as
/// upstream's `_apply_profile_override` finds it ("historically this worked
/// even after the subcommand"): the name, and the words without it.
fn take_profile(args: &[String]) -> (Option<String>, Vec<String>) {
    let mut rest = Vec::with_capacity(args.len());
    let mut name = None;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            rest.extend_from_slice(&args[i..]);
            break;
        }
        if name.is_none() && (a == "-p" || a == "--profile") && i + 1 < args.len() {
            name = Some(args[i + 1].clone());
            i += 2;
            continue;
        }
        if let Some(v) = a.strip_prefix("--profile=").filter(|_| name.is_none()) {
            name = Some(v.to_string());
        } else {
            rest.push(a.clone());
        }
        i += 1;
    }
    (name, rest)
}

/// Decide what `hermes ARGS` is. `env` reads the environment, `active` the
/// sticky profile of `hermes profile use` (tests pass their own). Names that
/// are not valid profile names go to upstream, which says what is wrong
/// with them in its own words.
pub fn route(
    args: &[String],
    env: impl Fn(&str) -> Option<String>,
    active: impl FnOnce() -> Option<String>,
) -> Result<Route> {
    let (explicit, rest) = take_profile(args);
    match rest.first().map(String::as_str) {
        Some("gateway") => {
            let supervised = env("HERMES_S6_SUPERVISED_CHILD").is_some_and(|v| !v.is_empty());
            // No flag: upstream's sticky profile (`active_profile`), except
            // in the supervised gateway itself, whose slot fixes its profile.
            let named = explicit.or_else(|| if supervised { None } else { active() });
            // (not a valid name: upstream reports it in its own words)
            match Profile::parse(named.as_deref().unwrap_or(DEFAULT)) {
                Ok(target) => gateway(&rest[1..], target, named.is_some(), supervised, &env),
                Err(_) => Ok(Route::Upstream),
            }
        }
        Some("profile") => {
            let verb = rest.get(1).map(String::as_str);
            let opts: &[&str] = if verb == Some("create") {
                &["--clone-from", "--description"]
            } else {
                &[]
            };
            let name = first_positional(rest.get(2..).unwrap_or_default(), opts);
            match (verb, name.map(Profile::parse)) {
                (Some("create"), Some(Ok(n))) if n != DEFAULT => Ok(Route::ProfileCreate(n)),
                (Some("delete"), Some(Ok(n))) if n != DEFAULT => Ok(Route::ProfileDelete(n)),
                _ => Ok(Route::Upstream),
            }
        }
        _ => Ok(Route::Upstream),
    }
}

/// `hermes gateway …` (after the profile flag): upstream's parser takes
/// `--accept-hooks` before the verb, and no verb means `run`.
fn gateway(
    args: &[String],
    target: Profile,
    named: bool,
    supervised: bool,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Route> {
    let at = args.iter().take_while(|a| *a == "--accept-hooks").count();
    let verb = args.get(at).map_or("run", String::as_str);
    let opts = args.get(at + 1..).unwrap_or_default();
    match verb {
        "start" | "stop" | "restart" => {
            let mut all = false;
            let mut wait = false;
            let mut timeout = None;
            let mut it = opts.iter();
            while let Some(o) = it.next() {
                match o.as_str() {
                    "--all" => all = true,
                    "--wait" => wait = true,
                    "--timeout" => timeout = it.next().map(String::as_str).map(ms).transpose()?,
                    o if o.starts_with("--timeout=") => timeout = Some(ms(&o[10..])?),
                    // upstream's: one supervisor here, whatever scope is asked
                    "--system" => {}
                    // upstream's hidden compatibility flag, ignored there too
                    "--platform" if verb != "stop" => {
                        it.next();
                    }
                    o if verb != "stop" && o.starts_with("--platform=") => {}
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
        "status" => {
            // (--deep, --full, --system, --platform: upstream's display and
            // scope options; every profile's line says it all here)
            let all = opts.iter().any(|a| a == "--all");
            Ok(Route::Status((!all && named).then_some(target)))
        }
        "run" => {
            if supervised
                || opts.iter().any(|a| a == "--no-supervise")
                || profile::no_supervise(env("HERMES_GATEWAY_NO_SUPERVISE").as_deref())
            {
                Ok(Route::Upstream)
            } else {
                Ok(Route::RunInForeground(target))
            }
        }
        _ => Ok(Route::Upstream),
    }
}

/// The sticky profile `hermes profile use P` left in `$HERMES_HOME/active_profile`
/// (None for none, empty or `default`), read as upstream reads it — never
/// through a link, 4 KiB at most.
fn active_profile(cfg: &Config) -> Option<String> {
    let bytes = crate::fsutil::read_file(&cfg.hermes_home.join("active_profile"), 4096)
        .ok()
        .flatten()?;
    let name = String::from_utf8(bytes).ok()?.trim().to_string();
    (!name.is_empty() && name != DEFAULT).then_some(name)
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
    // Upstream's image shim runs its CLI as the hermes user unless told
    // otherwise; so does this front, and hermes-s6's own work never needs
    // root. Dropped before the sticky profile is read: that file is hermes'.
    let as_root = profile::env_truthy("HERMES_DOCKER_EXEC_AS_ROOT");
    if !as_root {
        profile::drop_privileges(&cfg)?;
    }
    let route = route(&words, |k| std::env::var(k).ok(), || active_profile(&cfg))?;
    if as_root && route != Route::Upstream {
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
            // Upstream's own create hook publishes its slot where it can (a
            // root layout's /run/service is writable by hermes): none of
            // run/finish would be hermes-s6's. Replaced by ours.
            if rc == 0 && cfg.is_real(&p) {
                if slot::is_foreign(&cfg, &p) {
                    warn(format_args!(
                        "profile '{}': replacing the s6 slot upstream's hook made with hermes-s6's",
                        p
                    ));
                    ops::unregister(&cfg, &p, Wait::default())?;
                }
                if !slot::is_registered(&cfg, &p) {
                    ops::register(&cfg, &p, false)?;
                    eprintln!(
                        "hermes-s6: registered the s6 gateway slot for profile '{}' (down)",
                        p
                    );
                }
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
        r_full(line, env, None)
    }

    /// With `active`: the sticky profile of `hermes profile use`.
    fn r_full(line: &str, env: &[(&str, &str)], active: Option<&str>) -> Route {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        route(
            &args,
            |k| {
                env.iter()
                    .find(|(a, _)| *a == k)
                    .map(|(_, v)| v.to_string())
            },
            || active.map(String::from),
        )
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
        for line in ["gateway stop --bogus", "gateway stop --platform telegram"] {
            let args: Vec<String> = line.split(' ').map(String::from).collect();
            let e = route(&args, |_| None, || None).unwrap_err();
            assert_eq!(e.exit_code(), 100, "{}", line);
        }
    }

    #[test]
    fn upstreams_own_options_and_spellings_are_understood() {
        let cases = [
            // -p after the verb, as upstream finds it anywhere
            (
                "gateway start -p writer",
                lc("start", Some("writer"), false),
            ),
            (
                "gateway stop --profile writer --wait",
                lc("stop", Some("writer"), true),
            ),
            (
                "gateway restart --profile=writer",
                lc("restart", Some("writer"), false),
            ),
            // --system (one supervisor here), --platform X (upstream's hidden, ignored flag)
            ("gateway stop --system", lc("stop", Some("default"), false)),
            (
                "gateway restart --platform telegram --wait",
                lc("restart", Some("default"), true),
            ),
            (
                "gateway start --platform=discord",
                lc("start", Some("default"), false),
            ),
            (
                "-p coder gateway status --deep -l --platform x",
                Route::Status(Some(pr("coder"))),
            ),
            // no verb means run; --accept-hooks goes before the verb
            ("gateway", Route::RunInForeground(pr("default"))),
            (
                "gateway --accept-hooks",
                Route::RunInForeground(pr("default")),
            ),
            (
                "-p coder gateway --accept-hooks run --replace",
                Route::RunInForeground(pr("coder")),
            ),
            // after `--`, a -p is somebody else's
            ("gateway -- -p coder", Route::Upstream),
        ];
        for (line, want) in cases {
            assert_eq!(r(line), want, "{}", line);
        }
    }

    #[test]
    fn the_sticky_profile_of_profile_use_is_the_target_unless_one_is_named() {
        let a = |line: &str| r_full(line, &[], Some("writer"));
        assert_eq!(a("gateway stop"), lc("stop", Some("writer"), false));
        assert_eq!(a("gateway status"), Route::Status(Some(pr("writer"))));
        assert_eq!(a("gateway run"), Route::RunInForeground(pr("writer")));
        assert_eq!(a("-p coder gateway stop"), lc("stop", Some("coder"), false));
        assert_eq!(a("gateway stop --all"), lc("stop", None, false));
        // the supervised gateway's slot fixes its profile (upstream's exception)
        assert_eq!(
            r_full(
                "gateway run",
                &[("HERMES_S6_SUPERVISED_CHILD", "1")],
                Some("writer")
            ),
            Route::Upstream
        );
        // a name upstream would refuse: upstream says so
        assert_eq!(r_full("gateway stop", &[], Some("Bad")), Route::Upstream);
        assert_eq!(
            r_full("profile create x", &[], Some("Bad")),
            Route::ProfileCreate(pr("x"))
        );
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
            "gateway install",
            "gateway -h",
            "profile list",
            "-p Bad gateway stop",
        ] {
            assert_eq!(r(l), Route::Upstream, "{:?}", l);
        }
    }
}

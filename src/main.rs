//! `hermes-s6`: parse the command line, dispatch, map errors to exit codes.
//! All logic lives in the library (`hermes_s6::*`).

use hermes_s6::command::{self, Command, Id};
use hermes_s6::error::{out, usage, Error, Result};
use hermes_s6::ops::{self, Wait};
use hermes_s6::profile::{self, Config, Profile};
use hermes_s6::{detect, lifecycle, reconcile, status};
use lexopt::prelude::*;
use std::time::Duration;

const PROG: &str = "hermes-s6";

/// Parsed arguments shared by the commands.
#[derive(Default)]
struct Args {
    positional: Vec<String>,
    /// The positional words as profile names (commands that take only those).
    profiles: Vec<Profile>,
    all: bool,
    wait: bool,
    timeout: Option<u64>,
    json: bool,
    dry_run: bool,
    start: bool,
    rest: Vec<String>,
}

fn parse(c: &Command, mut p: lexopt::Parser) -> Result<Option<Args>> {
    let cmd = c.name;
    let mut a = Args::default();
    let ok = c.options;
    let bad = |e: lexopt::Error| usage(format!("{}: {}", cmd, e));
    while let Some(arg) = p.next().map_err(bad)? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long(o) if ok.contains(&o) => match o {
                "all" => a.all = true,
                "wait" => a.wait = true,
                "json" => a.json = true,
                "dry-run" => a.dry_run = true,
                "start" => a.start = true,
                "timeout" => {
                    let v = p.value().map_err(bad)?;
                    let v = v.string().map_err(bad)?;
                    a.timeout = Some(v.parse().map_err(|_| {
                        usage(format!(
                            "{}: --timeout wants milliseconds, got '{}'",
                            cmd, v
                        ))
                    })?);
                }
                // (the table names only options handled here)
                other => return Err(usage(format!("{}: unknown option --{}", cmd, other))),
            },
            Value(v) => a.positional.push(v.string().map_err(bad)?),
            // `run P -- CMD…`: everything after `--` is the gateway command.
            // lexopt hands us the words after `--` as plain values.
            _ => return Err(usage(format!("{}: {}", cmd, arg.unexpected()))),
        }
    }
    Ok(Some(a))
}

/// The one profile a command takes.
fn the_profile<'a>(a: &'a Args, cmd: &str) -> Result<&'a Profile> {
    want(a, cmd, 1)?;
    Ok(&a.profiles[0])
}

fn want(a: &Args, cmd: &str, n: usize) -> Result<()> {
    if a.positional.len() != n {
        return Err(usage(format!(
            "{}: expected {} argument{}, got {} (see hermes-s6 {} --help)",
            cmd,
            n,
            if n == 1 { "" } else { "s" },
            a.positional.len(),
            cmd
        )));
    }
    Ok(())
}

fn wait_opt(a: &Args) -> Wait {
    Wait {
        wait: a.wait,
        timeout: a
            .timeout
            .map_or(Wait::default().timeout, Duration::from_millis),
    }
}

/// start/stop/restart, on one profile or `--all` (every one attempted; the
/// worst exit wins).
fn lifecycle_cmd(cfg: &Config, c: &Command, a: &Args) -> Result<i32> {
    let cmd = c.name;
    let f = match c.id {
        Id::Start => ops::start,
        Id::Stop => ops::stop,
        _ => ops::restart,
    };
    let w = wait_opt(a);
    if a.all {
        if !a.positional.is_empty() {
            return Err(usage(format!("{}: --all takes no profile", cmd)));
        }
        let mut worst = 0;
        for p in ops::all(cfg, c.id == Id::Start, c.id != Id::Stop)? {
            if let Err(e) = f(cfg, &p, w) {
                report(&e);
                worst = worst.max(e.exit_code());
            }
        }
        return Ok(worst);
    }
    f(cfg, the_profile(a, cmd)?, w)?;
    Ok(0)
}

/// `run`/`finish`/`log`'s P: `-` in the shared slot scripts stands for the
/// slot the command runs in.
fn profile_arg(p: &str, in_log: bool) -> Result<Profile> {
    if p == "-" {
        lifecycle::profile_from_cwd(in_log)
    } else {
        Profile::parse(p)
    }
}

fn int_arg(cmd: &str, what: &str, v: &str) -> Result<i32> {
    v.parse()
        .map_err(|_| usage(format!("{}: {} must be an integer, got '{}'", cmd, what, v)))
}

fn dispatch(c: &Command, mut a: Args) -> Result<i32> {
    let cmd = c.name;
    let cfg = Config::from_env();
    // Every lock wait obeys the command's own --timeout.
    if let Some(t) = a.timeout {
        hermes_s6::fsutil::LOCK_WAIT_MS.store(t, std::sync::atomic::Ordering::Relaxed);
    }
    if c.as_hermes {
        // Bad usage is 100 whoever runs it: check the names before the
        // account they would run as.
        a.profiles = a
            .positional
            .iter()
            .map(|p| Profile::parse(p))
            .collect::<Result<_>>()?;
        profile::drop_privileges(&cfg)?;
    }
    match c.id {
        Id::Detect => {
            want(&a, cmd, 0)?;
            let s6 = detect::detect();
            out(if s6 { "s6\n" } else { "none\n" });
            Ok(if s6 { 0 } else { 1 })
        }
        Id::Reconcile => {
            want(&a, cmd, 0)?;
            reconcile::reconcile(&cfg, a.dry_run)?;
            Ok(0)
        }
        Id::Register => {
            ops::register(&cfg, the_profile(&a, cmd)?, a.start)?;
            Ok(0)
        }
        Id::Unregister => {
            ops::unregister(&cfg, the_profile(&a, cmd)?, wait_opt(&a))?;
            Ok(0)
        }
        Id::Start | Id::Stop | Id::Restart => lifecycle_cmd(&cfg, c, &a),
        Id::Status => {
            if a.positional.len() > 1 {
                want(&a, cmd, 1)?;
            }
            status::status(&cfg, a.profiles.first(), a.json)
        }
        Id::Health => {
            want(&a, cmd, 0)?;
            status::health(&cfg)
        }
        Id::List => {
            want(&a, cmd, 0)?;
            status::list(&cfg)
        }
        Id::Pid => status::pid(&cfg, the_profile(&a, cmd)?),
        Id::Port => {
            want(&a, cmd, 1)?;
            let p = Profile::parse(&a.positional[0])?;
            out(&format!("{}\n", profile::port(&p)));
            Ok(0)
        }
        Id::Run => {
            want(&a, cmd, 1)?;
            lifecycle::run(&cfg, &profile_arg(&a.positional[0], false)?, a.rest)?;
            Ok(111)
        }
        Id::Finish => {
            // s6 also passes the service name (and, from 2.13, the pgid): ignored.
            if a.positional.len() < 3 {
                want(&a, cmd, 3)?;
            }
            let code = int_arg(cmd, "CODE", &a.positional[1])?;
            let sig = int_arg(cmd, "SIGNAL", &a.positional[2])?;
            lifecycle::finish(&cfg, &profile_arg(&a.positional[0], false)?, code, sig)
        }
        Id::Log => {
            want(&a, cmd, 1)?;
            lifecycle::log(&cfg, &profile_arg(&a.positional[0], true)?)?;
            Ok(111)
        }
        Id::InitScandir => {
            want(&a, cmd, 0)?;
            reconcile::init_scandir(&cfg)?;
            Ok(0)
        }
        Id::Svscan => {
            want(&a, cmd, 1)?;
            Err(hermes_s6::scanner::exec_svscan(
                &cfg,
                std::path::Path::new(&a.positional[0]),
            ))
        }
    }
}

fn report(e: &Error) {
    eprintln!("{}: fatal: {}", PROG, e.message());
}

fn real_main() -> Result<i32> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let Some(first) = args.first().cloned() else {
        eprintln!("{}", command::usage());
        return Err(usage("no command given"));
    };
    let first = first.to_string_lossy().into_owned();
    match first.as_str() {
        "-h" | "--help" | "help" => {
            out(&format!("{}\n", command::usage()));
            return Ok(0);
        }
        "-V" | "--version" => {
            out(&format!("{} {}\n", PROG, env!("CARGO_PKG_VERSION")));
            return Ok(0);
        }
        _ => {}
    }
    let Some(c) = command::find(&first) else {
        return Err(usage(format!(
            "unknown command '{}' (see hermes-s6 --help)",
            first
        )));
    };
    args.remove(0);
    // `run P -- CMD…`: split off the gateway command before option parsing,
    // so its own options (`--replace`) are never taken for ours.
    let mut rest = Vec::new();
    if c.id == Id::Run {
        if let Some(i) = args.iter().position(|a| a == "--") {
            rest = args
                .split_off(i)
                .into_iter()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
        }
    }
    // finish's arguments come from s6 verbatim (a signal could read like an
    // option): positional only.
    if c.id == Id::Finish && !args.iter().any(|a| a == "-h" || a == "--help") {
        let a = Args {
            positional: args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            ..Args::default()
        };
        return dispatch(c, a);
    }
    let parser = lexopt::Parser::from_args(args);
    match parse(c, parser)? {
        None => {
            out(&format!("{}\n", c.help_text()));
            Ok(0)
        }
        Some(mut a) => {
            a.rest = rest;
            dispatch(c, a)
        }
    }
}

/// Called as `hermes` (a link to this binary): the front of upstream's CLI.
fn called_as_hermes() -> bool {
    std::env::args_os()
        .next()
        .is_some_and(|a| std::path::Path::new(&a).file_name() == Some("hermes".as_ref()))
}

fn main() {
    let (prog, result) = if called_as_hermes() {
        let args = std::env::args_os().skip(1).collect();
        ("hermes", hermes_s6::front::main(args))
    } else {
        (PROG, real_main())
    };
    let code = match result {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: fatal: {}", prog, e.message());
            e.exit_code()
        }
    };
    std::process::exit(code);
}

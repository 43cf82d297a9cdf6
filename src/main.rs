//! `hermes-s6`: parse the command line, dispatch, map errors to exit codes.
//! All logic lives in the library (`hermes_s6::*`).

use hermes_s6::error::{out, usage, Error, Result};
use hermes_s6::ops::{self, Wait};
use hermes_s6::profile::{self, Config};
use hermes_s6::{detect, lifecycle, reconcile, status};
use lexopt::prelude::*;
use std::time::Duration;

const PROG: &str = "hermes-s6";

const USAGE: &str = "\
usage: hermes-s6 COMMAND [ARGS]

commands:
  detect                          print `s6` (exit 0) when PID 1 is s6, else `none` (exit 1)
  reconcile [--dry-run]           container-boot reconciliation of every profile's slot
  register P [--start]            create P's gateway slot (down unless --start)
  unregister P [--timeout MS]     take P's gateway down and remove its slot
  start   P|--all [--wait [--timeout MS]]   persist desired_state=running, bring it up
  stop    P|--all [--wait [--timeout MS]]   persist desired_state=stopped, bring it down
  restart P|--all [--wait [--timeout MS]]   restart with a new pid, even if stopped
  status [P] [--json]             s6 and intent state of every (or one) profile
  health                          exit 0 when every gateway meant to run is ready (here or elsewhere)
  list                            profiles that have a slot, sorted
  pid P                           pid of P's running gateway (exit 1 when down)
  port P                          P's port
  run P [-- CMD ARGS...]          (slot run script) take the lease, record the run-intent, exec the gateway
  finish P CODE SIGNAL            (slot finish script) classify the death, persist it
  log P                           (slot log/run script) exec s6-log into P's log directory
                                  (run/finish/log: P `-` = the slot of the working directory)
  init-scandir                    (cont-init.d, root) prepare the scan directory
  svscan SCANDIR                  (the nested tree's service) exec s6-svscan sized for the profiles

exit: 0 done, 1 refused/not possible, 100 bad usage, 111 system error
Run `hermes-s6 COMMAND --help` for one command.";

fn help_for(cmd: &str) -> &'static str {
    match cmd {
        "detect" => "usage: hermes-s6 detect\n\nexit 0 and print `s6` when /proc/1/comm is s6-svscan and /run/s6/basedir is a directory; else exit 1 and print `none`.",
        "reconcile" => "usage: hermes-s6 reconcile [--dry-run]\n\nSweep leftover slots, then publish one slot per real profile (default first), down unless its intent is `running`; log to $HERMES_HOME/logs/container-boot.log. --dry-run changes nothing and prints the same lines.",
        "register" => "usage: hermes-s6 register P [--start]\n\nCreate P's gateway slot, down unless --start, and tell the scanner. Already registered: exit 1.",
        "unregister" => "usage: hermes-s6 unregister P [--timeout MS]\n\nTake P's gateway down (waiting for its finish), remove the slot, let the scanner drop its supervisor. Not registered: exit 0.",
        "start" => "usage: hermes-s6 start P|--all [--wait [--timeout MS]]\n\nPersist desired_state=running, then bring the gateway up; a real profile without a slot is registered first.",
        "stop" => "usage: hermes-s6 stop P|--all [--wait [--timeout MS]]\n\nPersist desired_state=stopped, write the planned-stop marker into P's home, then bring the gateway down. If s6 refuses, the previous state is restored and the exit is 1.",
        "restart" => "usage: hermes-s6 restart P|--all [--wait [--timeout MS]]\n\nPersist desired_state=running, write a restart marker, and restart: the gateway comes back with a new pid even if it was stopped.",
        "status" => "usage: hermes-s6 status [P] [--json]\n\nOne line per registered or real profile (after a `Manager:` line), or one JSON document.",
        "health" => "usage: hermes-s6 health\n\nExit 0 when every real profile whose intent is `running` is ready here or held by a live gateway in another container (its lease), else 1 with one line per problem. For HEALTHCHECK and liveness/readiness probes: spawns nothing.",
        "list" => "usage: hermes-s6 list\n\nThe profiles that have a slot, one per line, sorted.",
        "pid" => "usage: hermes-s6 pid P\n\nPrint the pid of P's running gateway; exit 1 when it is not up.",
        "port" => "usage: hermes-s6 port P\n\nPrint P's port: 9200 + (first 4 bytes of SHA-256(P)) mod 600.",
        "run" => "usage: hermes-s6 run P [-- CMD ARGS...]\n\nUsed by the slot's run script: record the run-intent, pid and start time in P's state, then exec the gateway (CMD, else $HERMES_GATEWAY_CMD).",
        "finish" => "usage: hermes-s6 finish P CODE SIGNAL\n\nUsed by the slot's finish script: classify the gateway's death, persist it, exit 125 when s6 must not restart it.",
        "log" => "usage: hermes-s6 log P\n\nUsed by the slot's log/run script: exec s6-log into $HERMES_HOME/logs/gateways/P.",
        "svscan" => "usage: hermes-s6 svscan SCANDIR\n\nUsed by the nested tree's service: exec s6-svscan on SCANDIR with room for $HERMES_S6_MAX_PROFILES gateway slots (default 1000), with -C or -c as this s6 wants.",
        "init-scandir" => "usage: hermes-s6 init-scandir\n\nUsed by cont-init.d as root: create the nested scan directory empty and owned by $HERMES_S6_USER (or, in the root-scandir layout, open it and its scanner to that user).",
        _ => USAGE,
    }
}

/// Parsed arguments shared by the commands.
#[derive(Default)]
struct Args {
    positional: Vec<String>,
    all: bool,
    wait: bool,
    timeout: Option<u64>,
    json: bool,
    dry_run: bool,
    start: bool,
    rest: Vec<String>,
}

/// The options each command accepts; anything else is bad usage.
fn allowed(cmd: &str) -> &'static [&'static str] {
    match cmd {
        "start" | "stop" | "restart" => &["all", "wait", "timeout"],
        "unregister" => &["timeout"],
        "status" => &["json"],
        "reconcile" => &["dry-run"],
        "register" => &["start"],
        _ => &[],
    }
}

fn parse(cmd: &str, mut p: lexopt::Parser) -> Result<Option<Args>> {
    let mut a = Args::default();
    let ok = allowed(cmd);
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
                _ => unreachable!(),
            },
            Value(v) => a.positional.push(v.string().map_err(bad)?),
            // `run P -- CMD…`: everything after `--` is the gateway command.
            // lexopt hands us the words after `--` as plain values.
            _ => return Err(usage(format!("{}: {}", cmd, arg.unexpected()))),
        }
    }
    Ok(Some(a))
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
fn lifecycle_cmd(cfg: &Config, cmd: &str, a: &Args) -> Result<i32> {
    let f = match cmd {
        "start" => ops::start,
        "stop" => ops::stop,
        _ => ops::restart,
    };
    let w = wait_opt(a);
    if a.all {
        if !a.positional.is_empty() {
            return Err(usage(format!("{}: --all takes no profile", cmd)));
        }
        let mut worst = 0;
        for p in ops::all(cfg, cmd == "start")? {
            if let Err(e) = f(cfg, &p, w) {
                report(&e);
                worst = worst.max(e.exit_code());
            }
        }
        return Ok(worst);
    }
    want(a, cmd, 1)?;
    f(cfg, &a.positional[0], w)?;
    Ok(0)
}

/// `run`/`finish`/`log`'s P: `-` in the shared slot scripts stands for the
/// slot the command runs in.
fn slot_profile(p: &str, in_log: bool) -> Result<String> {
    if p == "-" {
        lifecycle::profile_from_cwd(in_log)
    } else {
        Ok(p.to_string())
    }
}

fn int_arg(cmd: &str, what: &str, v: &str) -> Result<i32> {
    v.parse()
        .map_err(|_| usage(format!("{}: {} must be an integer, got '{}'", cmd, what, v)))
}

/// Commands that act as the hermes user when run as root. The writers: a
/// root-owned slot in the hermes-owned tree would be unusable by its
/// supervisor, and root has no business writing hermes' files. The readers
/// too: everything they read (homes, state files, slots) is the hermes
/// user's, and a link planted there must not let root read for hermes what
/// hermes may not read.
const AS_HERMES: &[&str] = &[
    "reconcile",
    "register",
    "unregister",
    "start",
    "stop",
    "restart",
    "status",
    "health",
    "list",
    "pid",
];

fn dispatch(cmd: &str, a: Args) -> Result<i32> {
    let cfg = Config::from_env();
    // Every lock wait obeys the command's own --timeout.
    if let Some(t) = a.timeout {
        hermes_s6::fsutil::LOCK_WAIT_MS.store(t, std::sync::atomic::Ordering::Relaxed);
    }
    if AS_HERMES.contains(&cmd) {
        // Bad usage is 100 whoever runs it: check the names before the
        // account they would run as.
        for p in &a.positional {
            profile::validate(p)?;
        }
        profile::drop_privileges(&cfg)?;
    }
    match cmd {
        "detect" => {
            want(&a, cmd, 0)?;
            let s6 = detect::detect();
            out(if s6 { "s6\n" } else { "none\n" });
            Ok(if s6 { 0 } else { 1 })
        }
        "reconcile" => {
            want(&a, cmd, 0)?;
            reconcile::reconcile(&cfg, a.dry_run)?;
            Ok(0)
        }
        "register" => {
            want(&a, cmd, 1)?;
            ops::register(&cfg, &a.positional[0], a.start)?;
            Ok(0)
        }
        "unregister" => {
            want(&a, cmd, 1)?;
            ops::unregister(&cfg, &a.positional[0], wait_opt(&a))?;
            Ok(0)
        }
        "start" | "stop" | "restart" => lifecycle_cmd(&cfg, cmd, &a),
        "status" => {
            if a.positional.len() > 1 {
                want(&a, cmd, 1)?;
            }
            status::status(&cfg, a.positional.first().map(String::as_str), a.json)
        }
        "health" => {
            want(&a, cmd, 0)?;
            status::health(&cfg)
        }
        "list" => {
            want(&a, cmd, 0)?;
            status::list(&cfg)
        }
        "pid" => {
            want(&a, cmd, 1)?;
            status::pid(&cfg, &a.positional[0])
        }
        "port" => {
            want(&a, cmd, 1)?;
            let p = &a.positional[0];
            profile::validate(p)?;
            out(&format!("{}\n", profile::port(p)));
            Ok(0)
        }
        "run" => {
            want(&a, cmd, 1)?;
            lifecycle::run(&cfg, &slot_profile(&a.positional[0], false)?, a.rest)?;
            Ok(111)
        }
        "finish" => {
            // s6 also passes the service name (and, from 2.13, the pgid): ignored.
            if a.positional.len() < 3 {
                want(&a, cmd, 3)?;
            }
            let code = int_arg(cmd, "CODE", &a.positional[1])?;
            let sig = int_arg(cmd, "SIGNAL", &a.positional[2])?;
            lifecycle::finish(&cfg, &slot_profile(&a.positional[0], false)?, code, sig)
        }
        "log" => {
            want(&a, cmd, 1)?;
            lifecycle::log(&cfg, &slot_profile(&a.positional[0], true)?)?;
            Ok(111)
        }
        "init-scandir" => {
            want(&a, cmd, 0)?;
            reconcile::init_scandir(&cfg)?;
            Ok(0)
        }
        "svscan" => {
            want(&a, cmd, 1)?;
            Err(hermes_s6::scanner::exec_svscan(
                &cfg,
                std::path::Path::new(&a.positional[0]),
            ))
        }
        _ => unreachable!(),
    }
}

const COMMANDS: &[&str] = &[
    "detect",
    "reconcile",
    "register",
    "unregister",
    "start",
    "stop",
    "restart",
    "status",
    "health",
    "list",
    "pid",
    "port",
    "run",
    "finish",
    "log",
    "init-scandir",
    "svscan",
];

fn report(e: &Error) {
    eprintln!("{}: fatal: {}", PROG, e.message());
}

fn real_main() -> Result<i32> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let Some(first) = args.first().cloned() else {
        eprintln!("{}", USAGE);
        return Err(usage("no command given"));
    };
    let first = first.to_string_lossy().into_owned();
    match first.as_str() {
        "-h" | "--help" | "help" => {
            out(&format!("{}\n", USAGE));
            return Ok(0);
        }
        "-V" | "--version" => {
            out(&format!("{} {}\n", PROG, env!("CARGO_PKG_VERSION")));
            return Ok(0);
        }
        _ => {}
    }
    if !COMMANDS.contains(&first.as_str()) {
        return Err(usage(format!(
            "unknown command '{}' (see hermes-s6 --help)",
            first
        )));
    }
    args.remove(0);
    // `run P -- CMD…`: split off the gateway command before option parsing,
    // so its own options (`--replace`) are never taken for ours.
    let mut rest = Vec::new();
    if first == "run" {
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
    if first == "finish" && !args.iter().any(|a| a == "-h" || a == "--help") {
        let a = Args {
            positional: args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            ..Args::default()
        };
        return dispatch(&first, a);
    }
    let parser = lexopt::Parser::from_args(args);
    match parse(&first, parser)? {
        None => {
            out(&format!("{}\n", help_for(&first)));
            Ok(0)
        }
        Some(mut a) => {
            a.rest = rest;
            dispatch(&first, a)
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

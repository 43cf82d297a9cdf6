//! The command line (SPEC §2): help, usage errors, profile names, port, detect, status and
//! list output. None of these needs a running scanner.

mod common;

use common::{Scandir, BIN};
use std::fs;
use std::os::unix::fs::symlink;

#[test]
fn every_command_answers_help_with_exit_0() {
    let f = Scandir::new("cli-help");
    for cmd in hermes_s6::command::COMMANDS.iter().map(|c| c.name) {
        for h in ["--help", "-h"] {
            let o = f.hs(&[cmd, h]).ok();
            assert!(
                o.stdout.starts_with(&format!("usage: hermes-s6 {}", cmd)),
                "{} {}: {:?}",
                cmd,
                h,
                o
            );
            assert_eq!(o.stderr, "");
        }
    }
    // Help wins even after arguments, and changes nothing.
    let o = f.hs(&["finish", "coder", "0", "0", "--help"]).ok();
    assert!(o.stdout.starts_with("usage: hermes-s6 finish"));
    let o = f.hs(&["stop", "coder", "--help"]).ok();
    assert!(o.stdout.starts_with("usage: hermes-s6 stop"));
    for top in [&["--help"][..], &["-h"], &["help"]] {
        let o = f.hs(top).ok();
        assert!(o.stdout.starts_with("usage: hermes-s6 COMMAND"), "{:?}", o);
    }
    let o = f.hs(&["--version"]).ok();
    assert!(o.stdout.starts_with("hermes-s6 "), "{:?}", o);
    assert_eq!(fs::read_dir(&f.scandir).unwrap().count(), 0);
}

#[test]
fn unknown_command_or_option_is_usage_100() {
    let f = Scandir::new("cli-usage");
    let cases: &[&[&str]] = &[
        &[],
        &["frobnicate"],
        &["START", "coder"],
        &["start", "coder", "--bogus"],
        &["stop", "coder", "-x"],
        &["status", "--all"],
        &["list", "extra"],
        &["register", "coder", "--wait"],
        &["reconcile", "--json"],
        &["port"],
        &["port", "a", "b"],
        &["start"],
        &["start", "--all", "coder"],
        &["detect", "x"],
        &["finish", "coder", "0"],
    ];
    for args in cases {
        let o = f.hs(args);
        assert_eq!(o.code, 100, "{:?}: {:?}", args, o);
        assert!(
            o.stderr.contains("hermes-s6: fatal: "),
            "{:?}: {:?}",
            args,
            o
        );
    }
}

#[test]
fn invalid_profile_names_are_usage_100() {
    let f = Scandir::new("cli-names");
    let long = "a".repeat(65);
    let bad = [
        "Coder",
        "../x",
        ".x",
        "a b",
        "-x",
        "_x",
        "a.b",
        "a/b",
        "",
        long.as_str(),
    ];
    let cmds: &[&[&str]] = &[
        &["register"],
        &["unregister"],
        &["start"],
        &["stop"],
        &["restart"],
        &["status"],
        &["pid"],
        &["port"],
        &["run"],
        &["log"],
    ];
    for name in bad {
        for cmd in cmds {
            let mut args: Vec<&str> = cmd.to_vec();
            args.push(name);
            let o = f.hs(&args);
            assert_eq!(o.code, 100, "{:?}: {:?}", args, o);
            assert!(
                o.stderr.starts_with("hermes-s6: fatal: "),
                "{:?}: {:?}",
                args,
                o
            );
        }
        let o = f.hs(&["finish", name, "0", "0"]);
        assert_eq!(o.code, 100, "finish {:?}: {:?}", name, o);
    }
    // Nothing was created by any of it.
    assert_eq!(fs::read_dir(&f.scandir).unwrap().count(), 0);
    assert!(!f.home.join("profiles").exists());
    // The longest valid name is fine.
    let ok = "a".repeat(64);
    f.hs(&["port", &ok]).ok();
}

#[test]
fn port_matches_the_vectors() {
    let f = Scandir::new("cli-port");
    for (p, port) in [
        ("coder", "9570"),
        ("writer", "9543"),
        ("default", "9449"),
        ("a", "9610"),
        ("work", "9687"),
    ] {
        let o = f.hs(&["port", p]).ok();
        assert_eq!(o.stdout, format!("{}\n", port), "{}", p);
    }
}

#[test]
fn detect_prints_none_and_exits_1_on_the_host() {
    // The host's PID 1 is not s6-svscan (or there is no /run/s6/basedir).
    let s6 = fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "s6-svscan")
        && std::path::Path::new("/run/s6/basedir").is_dir();
    if s6 {
        eprintln!("skipped: this host runs s6-overlay");
        return;
    }
    let o = Scandir::new("cli-detect").hs(&["detect"]).code(1);
    assert_eq!(o.stdout, "none\n");
    assert_eq!(o.stderr, "");
}

#[test]
fn finish_rejects_non_integer_codes_with_100() {
    let f = Scandir::new("cli-finish");
    f.profile("coder");
    for args in [
        ["finish", "coder", "x", "0"],
        ["finish", "coder", "0", "x"],
        ["finish", "coder", "", "0"],
        ["finish", "coder", "1.5", "0"],
    ] {
        let o = f.hs(&args);
        assert_eq!(o.code, 100, "{:?}: {:?}", args, o);
        assert!(o.stderr.starts_with("hermes-s6: fatal: "));
    }
    assert!(f.state("coder").is_none(), "a refused finish wrote state");
}

#[test]
fn status_says_manager_none_and_one_line_per_profile() {
    let f = Scandir::new("cli-status");
    f.profile("coder");
    f.write_state(
        "coder",
        r#"{"desired_state":"stopped","gateway_state":"stopped"}"#,
    );
    f.hs(&["register", "coder"]).ok();
    let o = f.hs(&["status"]).ok();
    let lines = o.lines();
    assert_eq!(lines[0], "Manager: none");
    assert_eq!(lines.len(), 3, "{:?}", o);
    assert!(
        lines[1].starts_with("profile=default slot=none s6=none "),
        "{}",
        lines[1]
    );
    // the port its API server really binds: upstream's 8642 for default (SPEC §7)
    assert!(lines[1].ends_with(" port=8642"), "{}", lines[1]);
    assert!(
        lines[2].starts_with("profile=coder slot=registered s6=unsupervised "),
        "{}",
        lines[2]
    );
    assert!(lines[2].contains(" desired_state=stopped gateway_state=stopped "));
    let o = f.hs(&["status", "coder"]).ok();
    assert_eq!(o.lines().len(), 2);
    f.hs(&["status", "nosuch"]).code(1);
}

#[test]
fn status_does_not_repeat_reconciles_warnings_about_bad_profile_dirs() {
    let f = Scandir::new("cli-status-quiet");
    let bad = f.home.join("profiles/BadName");
    fs::create_dir_all(&bad).unwrap();
    fs::write(bad.join("SOUL.md"), "x").unwrap();
    let o = f.hs(&["status"]).ok();
    assert_eq!(o.stderr, "", "status must stay quiet");
    assert!(!o.stdout.contains("BadName"));
    let o = f.hs(&["reconcile", "--dry-run"]).ok();
    assert!(
        o.stderr.contains("skipping") && o.stderr.contains("BadName"),
        "{:?}",
        o
    );
}

#[test]
fn status_json_parses_and_has_the_stable_keys() {
    let f = Scandir::new("cli-json");
    f.profile("coder");
    f.write_state(
        "coder",
        r#"{"desired_state":"running","gateway_state":"running"}"#,
    );
    let o = f.hs(&["status", "--json"]).ok();
    let v = hermes_s6::json::parse(o.stdout.trim()).expect("status --json is JSON");
    assert_eq!(v.get("manager").unwrap().as_str(), Some("none"));
    assert_eq!(
        v.get("scandir").unwrap().as_str(),
        Some(f.scandir.to_str().unwrap())
    );
    let rows = v.get("profiles").unwrap().as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let keys = [
        "profile",
        "registered",
        "s6",
        "up",
        "pid",
        "seconds",
        "want_up",
        "ready",
        "desired_state",
        "gateway_state",
        "last_exit",
        "exit_reason",
        "port",
        "health",
        "paused",
        "normally_up",
        "holder",
    ];
    for r in rows {
        let got: Vec<&str> = r
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(got, keys);
    }
    assert_eq!(rows[1].get("profile").unwrap().as_str(), Some("coder"));
    assert_eq!(
        rows[1].get("desired_state").unwrap().as_str(),
        Some("running")
    );
    assert_eq!(rows[1].get("port").unwrap().as_u64(), Some(9570));
    assert_eq!(rows[1].get("up").unwrap().as_bool(), Some(false));
    assert!(rows[1].get("pid").unwrap().is_null());
    // An independent parser agrees, when there is one.
    if let Ok(out) = std::process::Command::new("python3")
        .args([
            "-c",
            "import json,sys; d=json.load(sys.stdin); print(len(d['profiles']))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(o.stdout.as_bytes())?;
            c.wait_with_output()
        })
    {
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2");
        }
    }
}

#[test]
fn list_is_sorted_and_ignores_everything_but_gateway_dirs() {
    let f = Scandir::new("cli-list");
    for d in [
        "gateway-zed",
        "gateway-alpha",
        "gateway-m1",
        ".s6-svscan",
        ".gateway-tmp.tmp",
        ".hidden",
        "other-service",
        "gateway-Bad",
        "gateway-",
    ] {
        fs::create_dir_all(f.scandir.join(d)).unwrap();
    }
    fs::write(f.scandir.join("gateway-file"), "").unwrap();
    fs::create_dir_all(f.root.join("target")).unwrap();
    symlink(f.root.join("target"), f.scandir.join("gateway-link")).unwrap();
    let o = f.hs(&["list"]).ok();
    assert_eq!(o.stdout, "alpha\nm1\nzed\n");
    // Without a scandir at all: nothing, no error.
    fs::remove_dir_all(&f.scandir).unwrap();
    assert_eq!(f.hs(&["list"]).ok().stdout, "");
}

#[test]
fn pid_of_unregistered_or_down_gateway_exits_1() {
    let f = Scandir::new("cli-pid");
    f.profile("coder");
    f.hs(&["pid", "coder"]).code(1);
    f.hs(&["register", "coder"]).ok();
    let o = f.hs(&["pid", "coder"]).code(1);
    assert_eq!(o.stdout, "");
}

#[test]
fn register_twice_is_already_registered_exit_1() {
    let f = Scandir::new("cli-register");
    f.profile("coder");
    let o = f.hs(&["register", "coder"]).ok();
    assert!(
        o.stderr
            .contains("hermes-s6: warning: no s6-svscan listens"),
        "{:?}",
        o
    );
    let before = common::listing(&f.scandir, &[]);
    let o = f.hs(&["register", "coder", "--start"]).code(1);
    assert!(o.stderr.contains("already registered"), "{:?}", o);
    assert_eq!(common::listing(&f.scandir, &[]), before);
    assert!(f.state("coder").is_none(), "a refused register wrote state");
}

#[test]
fn binary_path_is_what_slots_call() {
    // The slot scripts call hermes-s6 by the absolute path of the binary that wrote them.
    let f = Scandir::new("cli-exe");
    f.profile("coder");
    f.hs(&["register", "coder"]).ok();
    let run = fs::read_to_string(f.slot("coder").join("run")).unwrap();
    let exe = fs::canonicalize(BIN).unwrap();
    assert!(
        run.contains(&format!("\"{}\" run -\n", exe.display())),
        "{}",
        run
    );
}

#[test]
fn status_and_reconcile_never_print_a_gateways_forged_line_or_escape_sequence() {
    let f = Scandir::new("cli-forged");
    f.profile("coder");
    f.write_state(
        "coder",
        "{\"desired_state\":\"running\\nprofile=admin slot=registered s6=up pid=1\\u001b[2J\",\"gateway_state\":\"x y=z\",\"exit_reason\":\"\\u001b]0;pwned\\u0007\"}",
    );
    let o = f.hs(&["reconcile", "--dry-run"]).ok();
    assert!(
        !o.stdout.contains('\u{1b}') && !o.stdout.contains("profile=admin"),
        "{:?}",
        o
    );
    assert_eq!(o.lines().len(), 2, "one line per profile: {:?}", o);
    let o = f.hs(&["status"]).ok();
    assert!(
        !o.stdout.contains('\u{1b}') && !o.stdout.contains('\u{7}'),
        "{:?}",
        o
    );
    assert_eq!(o.lines().len(), 3, "{:?}", o);
    let coder = o.lines()[2].to_string();
    assert!(coder.contains(" gateway_state=x\\x20y\\x3dz "), "{}", coder);
    assert!(!coder.contains(" profile=admin"), "{}", coder);
}

#[test]
fn a_held_state_lock_times_out_with_the_commands_timeout_naming_the_holder() {
    let f = Scandir::new("cli-lockwait");
    let home = f.profile("coder");
    let lock = home.join(".gateway_state.lock");
    fs::write(&lock, "").unwrap();
    // somebody (a hermes process) holds the lock and never lets go
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .expect("flock(1)");
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(5)
        && !fs::read_to_string("/proc/locks")
            .unwrap_or_default()
            .contains(&format!(":{} ", {
                use std::os::unix::fs::MetadataExt;
                fs::metadata(&lock).unwrap().ino()
            }))
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let t0 = std::time::Instant::now();
    let o = f.hs(&["stop", "coder", "--timeout", "500"]).code(1);
    let took = t0.elapsed();
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(took < std::time::Duration::from_secs(3), "{:?}", took);
    assert!(
        o.stderr
            .contains("timed out after 500 ms waiting for the lock"),
        "{:?}",
        o
    );
    assert!(o.stderr.contains("held by pid "), "{:?}", o);
    assert!(!home.join("gateway_state.json").exists(), "nothing written");
}

#[test]
fn root_status_reads_a_planted_profile_link_as_the_hermes_user() {
    let f = Scandir::new("cli-rootlink");
    // a root-only directory with a secret state file
    let secret = f.home.parent().unwrap().join("root-only");
    fs::create_dir_all(&secret).unwrap();
    fs::write(
        secret.join("gateway_state.json"),
        r#"{"desired_state":"ROOT-ONLY-SECRET-42"}"#,
    )
    .unwrap();
    fs::write(secret.join("SOUL.md"), "x").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o700)).unwrap();
    // the hermes user plants a link as a profile, and a slot for it
    fs::create_dir_all(f.home.join("profiles")).unwrap();
    std::os::unix::fs::symlink(&secret, f.home.join("profiles/leak")).unwrap();
    fs::create_dir_all(f.scandir.join("gateway-leak")).unwrap();
    let o = f.hs_env(&[("HERMES_S6_USER", "10000:10000")], &["status", "leak"]);
    assert!(!o.stdout.contains("ROOT-ONLY-SECRET-42"), "{:?}", o);
    assert!(!o.stderr.contains("ROOT-ONLY-SECRET-42"), "{:?}", o);
}

#[test]
fn health_names_each_profile_meant_to_run_that_runs_nowhere_and_is_0_once_its_lease_is_held() {
    let f = Scandir::new("cli-health");
    f.profile("coder");
    f.profile("writer");
    f.write_state("default", r#"{"desired_state":"stopped"}"#);
    f.write_state("writer", r#"{"desired_state":"stopped"}"#);
    // nothing meant to run: healthy
    let o = f.hs(&["health"]).ok();
    assert!(
        o.stdout.starts_with("healthy: 0 gateways ready here"),
        "{}",
        o.stdout
    );
    // coder meant to run, no slot, no holder: one line naming it, exit 1
    f.write_state("coder", r#"{"desired_state":"running"}"#);
    let o = f.hs(&["health"]).code(1);
    assert_eq!(o.stdout.lines().count(), 1, "{}", o.stdout);
    assert!(
        o.stdout.starts_with("profile=coder health=- "),
        "{}",
        o.stdout
    );
    // its lease held by a gateway of another container: healthy, and status names it
    let home = f.home_of("coder");
    let lease = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(home.join("gateway.lease"))
        .unwrap();
    std::fs::write(
        home.join("gateway.lease"),
        r#"{"host":"gw-b","node":"00000000/1","pid":412,"start_time":7,"since":"2026-12-01T09:00:00Z"}"#,
    )
    .unwrap();
    // SAFETY: flock on an fd this test owns.
    assert_eq!(
        unsafe { libc::flock(std::os::unix::io::AsRawFd::as_raw_fd(&lease), libc::LOCK_EX,) },
        0
    );
    let o = f.hs(&["health"]).ok();
    assert!(
        o.stdout
            .contains("0 gateways ready here, 1 in another container"),
        "{}",
        o.stdout
    );
    let o = f.hs(&["status", "coder"]).ok();
    assert!(o.stdout.contains(" holder=gw-b/412 port="), "{}", o.stdout);
    drop(lease);
    // (a child another test forks may hold a copy of the fd until its exec)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while f.hs(&["health"]).code != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "health stays 0 with the lease free"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn past_the_scanners_size_default_and_the_profiles_meant_to_run_come_first_and_the_rest_is_said() {
    let f = Scandir::new("cli-limit");
    for p in ["aa", "bb", "cc", "dd"] {
        f.profile(p);
    }
    f.write_state("dd", r#"{"desired_state":"running"}"#);
    f.write_state("cc", r#"{"desired_state":"running"}"#);
    let env = [("HERMES_S6_MAX_PROFILES", "3")];
    let o = f.hs_env(&env, &["reconcile"]).ok();
    assert!(
        o.stderr.contains("5 profiles, but the scanner supervises at most 3 gateways (HERMES_S6_MAX_PROFILES): not registered: aa, bb"),
        "{}",
        o.stderr
    );
    assert_eq!(f.hs(&["list"]).ok().stdout, "cc\ndd\ndefault\n");
    // one more: refused, exit 1, nothing published
    let o = f.hs_env(&env, &["register", "aa"]).code(1);
    assert!(o.stderr.contains("at most 3 gateways"), "{}", o.stderr);
    let o = f.hs_env(&env, &["start", "bb"]).code(1);
    assert!(o.stderr.contains("at most 3 gateways"), "{}", o.stderr);
    assert_eq!(f.hs(&["list"]).ok().stdout, "cc\ndd\ndefault\n");
    // a larger limit: every profile
    f.hs_env(&[("HERMES_S6_MAX_PROFILES", "5")], &["reconcile"])
        .ok();
    assert_eq!(f.hs(&["list"]).ok().stdout, "aa\nbb\ncc\ndd\ndefault\n");
    // a smaller one again: the slots past it go (with the warning)
    let o = f.hs_env(&env, &["reconcile"]).ok();
    assert!(o.stderr.contains("not registered: aa, bb"), "{}", o.stderr);
    assert_eq!(f.hs(&["list"]).ok().stdout, "cc\ndd\ndefault\n");
}

/// `hermes …` through the front: a link named `hermes` to this binary, as
/// installed (an argv[0] alone does not survive qemu-user), with `cli`
/// standing in for upstream's CLI.
fn front(f: &Scandir, cli: &std::path::Path, args: &[&str]) -> common::Out {
    let link = f.root.join("bin/hermes");
    if !link.exists() {
        fs::create_dir_all(f.root.join("bin")).unwrap();
        symlink(BIN, &link).unwrap();
    }
    let mut c = f.command_of(&link, args);
    c.env("HERMES_S6_HERMES", cli);
    Scandir::run_cmd(c)
}

#[test]
fn profile_create_replaces_a_slot_upstreams_own_hook_published() {
    use std::os::unix::fs::PermissionsExt;
    let f = Scandir::new("front-create");
    // upstream's CLI makes the profile, then its hook publishes its own slot
    // (as it can where the scan directory is /run/service)
    let cli = f.root.join("upstream-hermes");
    fs::write(
        &cli,
        format!(
            "#!/bin/sh\n[ \"$1 $2\" = 'profile create' ] || exit 3\n\
             mkdir -p {h}/profiles/$3 && echo soul > {h}/profiles/$3/SOUL.md\n\
             mkdir {s}/gateway-$3 && printf '#!/bin/sh\\nexec sleep 1000\\n' > {s}/gateway-$3/run\n",
            h = f.home.display(),
            s = f.scandir.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&cli, fs::Permissions::from_mode(0o755)).unwrap();
    let o = front(&f, &cli, &["profile", "create", "coder"]);
    assert_eq!(o.code, 0, "{:?}", o);
    assert!(
        o.stderr
            .contains("replacing the s6 slot upstream's hook made"),
        "{:?}",
        o
    );
    let slot = f.scandir.join("gateway-coder");
    assert!(slot.join("data/env").is_file(), "hermes-s6's slot");
    assert!(fs::read_to_string(slot.join("run"))
        .unwrap()
        .contains(" run -"));
    assert!(slot.join("down").is_file(), "registered down");
    // a slot of ours is kept as it is
    let before = fs::metadata(slot.join("run")).unwrap();
    fs::remove_dir_all(f.home_of("coder")).unwrap();
    fs::write(&cli, "#!/bin/sh\nexit 0\n").unwrap();
    fs::create_dir_all(f.home_of("coder")).unwrap();
    fs::write(f.home_of("coder").join("SOUL.md"), "x").unwrap();
    let o = front(&f, &cli, &["profile", "create", "coder"]);
    assert_eq!(o.code, 0, "{:?}", o);
    assert!(!o.stderr.contains("replacing"), "{:?}", o);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(slot.join("run")).unwrap().ino(), before.ino());
}

#[test]
fn the_front_acts_on_the_sticky_profile_and_finds_p_after_the_verb() {
    let f = Scandir::new("front-sticky");
    f.profile("writer");
    f.profile("coder");
    let cli = std::path::Path::new("/bin/false"); // never reached
    let shown = |args: &[&str]| {
        let o = front(&f, cli, args);
        assert_eq!(o.code, 0, "{:?}", o);
        o.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("profile="))
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        shown(&["gateway", "status"]),
        ["default", "coder", "writer"]
    );
    fs::write(f.home.join("active_profile"), "writer\n").unwrap();
    assert_eq!(shown(&["gateway", "status"]), ["writer"]);
    assert_eq!(
        shown(&["gateway", "status", "-p", "coder", "--platform", "x"]),
        ["coder"]
    );
    fs::write(f.home.join("active_profile"), "default\n").unwrap();
    assert_eq!(
        shown(&["gateway", "status"]),
        ["default", "coder", "writer"]
    );
}

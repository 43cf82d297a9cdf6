//! The operator commands against a real s6-svscan: register, start, stop, restart,
//! unregister, `run`'s exec and environment, the order "intent on disk before the signal",
//! refusals and timeouts.

mod common;

use common::{alive, have_s6, poll, procs_with_cwd_under, Scandir, TIMEOUT_KILL_MS};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

fn coder(tag: &str) -> Scandir {
    let f = Scandir::started(tag);
    f.profile("coder");
    f
}

#[test]
fn register_start_stop_restart_follow_s6() {
    if !have_s6() {
        return;
    }
    let f = coder("lifecycle");
    f.hs(&["register", "coder"]).ok();
    // Registered down: supervised, not started.
    let s = f.wait_s6("coder", "supervised, down", |s| !s.up);
    assert!(!s.wantedup && !s.normallyup, "{:?}", s);
    assert!(f.slot("coder").join("down").exists());

    // start: up, and `hermes-s6 pid` agrees with s6-svstat.
    f.hs(&["start", "coder", "--wait"]).ok();
    let pid = f.wait_gateway("coder", 0);
    let out = f.hs(&["pid", "coder"]).ok();
    assert_eq!(out.stdout.trim(), pid.to_string());
    assert_eq!(f.s6("coder").unwrap().pid, pid);
    assert_eq!(
        f.state_str("coder", "desired_state").as_deref(),
        Some("running")
    );
    assert_eq!(
        f.state_str("coder", "gateway_state").as_deref(),
        Some("running")
    );

    // status agrees, in both forms.
    let line = f.status_line("coder");
    assert!(
        line.contains(&format!(" s6=up pid={} ", pid))
            && line.contains(" desired_state=running gateway_state=running "),
        "{}",
        line
    );
    let o = f.hs(&["status", "coder", "--json"]).ok();
    let v = hermes_s6::json::parse(o.stdout.trim()).unwrap();
    let row = &v.get("profiles").unwrap().as_array().unwrap()[0];
    assert_eq!(row.get("up").unwrap().as_bool(), Some(true));
    assert_eq!(row.get("want_up").unwrap().as_bool(), Some(true));
    assert_eq!(row.get("pid").unwrap().as_u64(), Some(pid as u64));
    assert!(row
        .get("seconds")
        .unwrap()
        .as_i64()
        .is_some_and(|s| (0..60).contains(&s)));

    // stop: down, intent stopped, marker consumed, classified as an operator stop.
    f.hs(&["stop", "coder", "--wait"]).ok();
    let s = f.wait_down("coder");
    assert!(!s.wantedup, "{:?}", s);
    assert!(!alive(pid), "old gateway {} still alive", pid);
    assert_eq!(
        f.state_str("coder", "desired_state").as_deref(),
        Some("stopped")
    );
    assert_eq!(
        f.state_str("coder", "gateway_state").as_deref(),
        Some("stopped")
    );
    assert_eq!(
        f.state_str("coder", "exit_reason").as_deref(),
        Some("operator_stop")
    );
    assert!(!f.marker("coder").exists(), "marker left behind");
    f.hs(&["pid", "coder"]).code(1);

    // restart of a STOPPED gateway brings it back with a new pid.
    f.hs(&["restart", "coder", "--wait"]).ok();
    let pid2 = f.wait_gateway("coder", pid);
    assert_ne!(pid2, pid);
    assert_eq!(
        f.state_str("coder", "desired_state").as_deref(),
        Some("running")
    );

    // restart of a running gateway: new pid again, old one gone.
    f.hs(&["restart", "coder", "--wait"]).ok();
    let pid3 = f.wait_gateway("coder", pid2);
    assert_ne!(pid3, pid2);
    assert!(!alive(pid2));
    assert!(f.s6("coder").unwrap().wantedup);
    assert_eq!(
        f.state_str("coder", "desired_state").as_deref(),
        Some("running")
    );
    assert!(!f.marker("coder").exists(), "restart marker left behind");
}

#[test]
fn sigterm_without_marker_keeps_run_intent_and_s6_respawns() {
    if !have_s6() {
        return;
    }
    let f = coder("sigterm");
    f.hs(&["register", "coder", "--start"]).ok();
    let pid = f.wait_gateway("coder", 0);
    // SAFETY: kill(2) of the gateway our own s6 tree started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let pid2 = f.wait_gateway("coder", pid);
    assert_ne!(pid, pid2);
    assert_eq!(
        f.state_str("coder", "gateway_state").as_deref(),
        Some("running")
    );
    assert_eq!(
        f.state_str("coder", "desired_state").as_deref(),
        Some("running")
    );
    assert!(f.s6("coder").unwrap().wantedup);
}

#[test]
fn unregister_leaves_no_supervisor_and_removes_the_slot() {
    if !have_s6() {
        return;
    }
    let f = coder("unregister");
    f.hs(&["register", "coder", "--start"]).ok();
    let pid = f.wait_gateway("coder", 0);
    f.hs(&["unregister", "coder"]).ok();
    assert!(!f.slot("coder").exists(), "slot still there");
    assert!(!alive(pid), "gateway {} survived unregister", pid);
    // Nothing but s6-svscan itself runs in the scandir any more.
    let svscan = f.svscan_pid().unwrap();
    let left: Vec<i32> = procs_with_cwd_under(&f.scandir)
        .into_iter()
        .filter(|&p| p != svscan)
        .collect();
    assert!(left.is_empty(), "supervisors left: {:?}", left);
    // (the locks stay: removing a lock file others may wait on would let
    // two of them hold "it")
    let names: Vec<String> = fs::read_dir(&f.scandir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert_eq!(
        names,
        vec![".s6-svscan".to_string()],
        "scandir: {:?}",
        names
    );
    // The profile's files are untouched.
    assert!(f.home_of("coder").join("SOUL.md").exists());
    assert!(f.home_of("coder").join("gateway_state.json").exists());
    assert_eq!(f.hs(&["list"]).ok().stdout, "");
}

#[test]
fn unregister_of_an_unregistered_profile_is_a_no_op() {
    if !have_s6() {
        return;
    }
    let f = coder("unregister-none");
    let o = f.hs(&["unregister", "coder"]).ok();
    assert_eq!(o.stderr, "");
    f.hs(&["unregister", "nosuch"]).ok();
}

#[test]
fn run_execs_so_s6_pid_is_the_recorded_pid_and_env_is_set() {
    if !have_s6() {
        return;
    }
    let f = coder("runenv");
    for p in ["coder", "default"] {
        f.hs(&["register", p, "--start"]).ok();
        let pid = f.wait_gateway(p, 0);
        assert_eq!(f.state_u64(p, "pid"), Some(pid as u64));
        // The supervised pid is the gateway itself, not a wrapper: the script execs sleep
        // in that very pid (just after it recorded itself).
        f.wait(&format!("pid {} to exec sleep", pid), || {
            fs::read_to_string(format!("/proc/{}/cmdline", pid))
                .is_ok_and(|c| c.starts_with("sleep\0"))
        });
        assert_eq!(f.s6(p).unwrap().pid, pid);
        let st = f.state_u64(p, "start_time").expect("start_time recorded");
        assert_eq!(st, hermes_s6::procfs::start_time(pid as u32).unwrap());
        let env = f.gw_env(p);
        let get = |k: &str| {
            env.iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("{} not in the gateway env of {}: {:?}", k, p, env))
        };
        assert_eq!(get("HOME"), f.home.display().to_string(), "HOME of {}", p);
        assert_eq!(get("HERMES_HOME"), f.home.display().to_string());
        assert_eq!(get("HERMES_PROFILE"), p);
        assert_eq!(
            get("HERMES_GATEWAY_PORT"),
            if p == "coder" { "9570" } else { "9449" }
        );
        assert_eq!(get("HERMES_S6_SUPERVISED_CHILD"), "1");
        assert_eq!(get("HERMES_SUPERVISED_CHILD"), "1");
    }
}

#[test]
fn a_gateway_command_with_quotes_and_backslashes_runs_with_exactly_its_words() {
    if !have_s6() {
        return;
    }
    let mut f = Scandir::started("cmd-words");
    // a gateway that writes down its arguments, one per line
    let gw = f.root.join("argv-gw");
    let out = f.root.join("argv");
    fs::write(
        &gw,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {0}.tmp && mv {0}.tmp {0}\nexec sleep 100000\n",
            out.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&gw, fs::Permissions::from_mode(0o755)).unwrap();
    let words = [r#"--name="x y""#, r"a\b", "'q'", "c\u{1}d", "{profile}"];
    f.set_env(
        "HERMES_GATEWAY_CMD",
        &format!("{} {}", gw.display(), words.join(" ")),
    );
    f.hs(&["register", "default", "--start"]).ok();
    assert!(
        poll(Duration::from_secs(10), || out.is_file()),
        "the gateway never ran: {}",
        f.hs(&["status", "default"]).stdout
    );
    let got = fs::read_to_string(&out).unwrap();
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        [r#"--name="x"#, r#"y""#, r"a\b", "'q'", "c\u{1}d", "default"],
        "split on whitespace only, every other byte as configured"
    );
}

#[test]
fn run_writes_desired_running_only_when_absent() {
    if !have_s6() {
        return;
    }
    let f = Scandir::new("run-desired");
    f.profile("coder");
    f.profile("writer");
    f.write_state(
        "coder",
        r#"{"desired_state":"stopped","gateway_state":"stopped","extra":{"n":1.50,"s":"é"}}"#,
    );
    f.hs(&["run", "coder", "--", "/bin/true"]).ok();
    f.hs(&["run", "writer", "--", "/bin/true"]).ok();
    assert_eq!(
        f.state_str("coder", "desired_state").as_deref(),
        Some("stopped")
    );
    assert_eq!(
        f.state_str("coder", "gateway_state").as_deref(),
        Some("running")
    );
    assert!(f.state_u64("coder", "pid").is_some());
    let text = fs::read_to_string(f.home_of("coder").join("gateway_state.json")).unwrap();
    assert!(text.contains(r#""extra":{"n":1.50,"s":"é"}"#), "{}", text);
    assert_eq!(
        f.state_str("writer", "desired_state").as_deref(),
        Some("running")
    );
    // exec failure: 127/126-style system error, not a hang.
    let o = f.hs(&["run", "writer", "--", "/nonexistent/gateway"]);
    assert_eq!(o.code, 111, "{:?}", o);
    assert!(o.stderr.contains("/nonexistent/gateway"), "{:?}", o);
}

#[test]
fn run_alone_makes_the_next_boot_start_it_even_without_finish() {
    if !have_s6() {
        return;
    }
    let mut f = coder("nofinish");
    f.hs(&["register", "coder"]).ok();
    f.wait_s6("coder", "supervised", |s| !s.up);
    assert_eq!(f.state("coder"), None);
    // Bring it up behind hermes-s6's back: only `run` records anything.
    let st = std::process::Command::new("/usr/bin/s6-svc")
        .arg("-u")
        .arg(f.slot("coder"))
        .status()
        .unwrap();
    assert!(st.success());
    f.wait_gateway("coder", 0);
    // The container dies: no finish runs.
    f.kill_tree();
    assert_eq!(
        f.state_str("coder", "gateway_state").as_deref(),
        Some("running")
    );
    let o = f.hs(&["reconcile", "--dry-run"]).ok();
    assert!(
        o.stdout
            .contains("reconcile: profile=coder prior_state=running action=started"),
        "{:?}",
        o
    );
}

#[test]
fn stop_intent_is_on_disk_before_the_signal() {
    if !have_s6() {
        return;
    }
    let mut f = coder("stop-nofinish");
    f.hs(&["register", "coder", "--start"]).ok();
    f.wait_gateway("coder", 0);
    f.hs(&["stop", "coder"]).ok();
    // Whatever s6 and finish got done by now, the container dies here.
    f.kill_tree();
    let o = f.hs(&["reconcile", "--dry-run"]).ok();
    assert!(
        o.stdout
            .contains("reconcile: profile=coder prior_state=stopped action=registered"),
        "{:?}",
        o
    );
}

#[test]
fn mimic_gateway_consuming_the_marker_stays_down_on_stop() {
    if !have_s6() {
        return;
    }
    let mut f = coder("mimic-stop");
    f.set_gateway("mimic");
    f.hs(&["register", "coder", "--start"]).ok();
    let pid = f.wait_gateway("coder", 0);
    f.hs(&["stop", "coder", "--wait"]).ok();
    let s = f.wait_down("coder");
    assert!(!s.wantedup);
    assert_eq!(
        s.exitcode, 0,
        "mimic must exit 0 on a planned stop: {:?}",
        s
    );
    let log = fs::read_to_string(f.home_of("coder").join("gw.log")).unwrap();
    assert_eq!(log, format!("{} planned\n", pid));
    assert!(!f.marker("coder").exists());
    assert_eq!(
        f.state_str("coder", "gateway_state").as_deref(),
        Some("stopped")
    );
    assert_eq!(
        f.state_str("coder", "desired_state").as_deref(),
        Some("stopped")
    );
    // finish still knew it was the operator: the slot kept its own copy of the marker.
    assert_eq!(
        f.state_str("coder", "exit_reason").as_deref(),
        Some("operator_stop")
    );
    assert!(!f
        .slot("coder")
        .join("data/.gateway-planned-stop.json")
        .exists());
    // And it stays down.
    assert!(!f.wait_for(Duration::from_millis(1500), || f
        .s6("coder")
        .is_some_and(|s| s.up)));
}

#[test]
fn mimic_gateway_consuming_the_marker_comes_back_on_restart() {
    if !have_s6() {
        return;
    }
    let mut f = coder("mimic-restart");
    f.set_gateway("mimic");
    f.hs(&["register", "coder", "--start"]).ok();
    let pid = f.wait_gateway("coder", 0);
    f.hs(&["restart", "coder", "--wait"]).ok();
    let pid2 = f.wait_gateway("coder", pid);
    assert_ne!(pid, pid2);
    let log = fs::read_to_string(f.home_of("coder").join("gw.log")).unwrap();
    assert_eq!(log, format!("{} planned\n", pid));
    assert!(f.s6("coder").unwrap().wantedup);
    assert_eq!(
        f.state_str("coder", "desired_state").as_deref(),
        Some("running")
    );
    // Still up a moment later (not parked by finish).
    assert!(!f.wait_for(Duration::from_millis(1500), || !f
        .s6("coder")
        .is_some_and(|s| s.up && s.pid == pid2)));
}

#[test]
fn mimic_gateway_unmarked_sigterm_is_respawned() {
    if !have_s6() {
        return;
    }
    let mut f = coder("mimic-term");
    f.set_gateway("mimic");
    f.hs(&["register", "coder", "--start"]).ok();
    let pid = f.wait_gateway("coder", 0);
    // SAFETY: kill(2) of the gateway our own s6 tree started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let pid2 = f.wait_gateway("coder", pid);
    assert_ne!(pid, pid2);
    let log = fs::read_to_string(f.home_of("coder").join("gw.log")).unwrap();
    assert_eq!(log, format!("{} unexpected\n", pid));
    assert_eq!(
        f.state_str("coder", "gateway_state").as_deref(),
        Some("running")
    );
}

#[test]
fn stop_wait_of_a_gateway_ignoring_sigterm_returns_after_timeout_kill() {
    if !have_s6() {
        return;
    }
    let mut f = coder("ignore-term");
    f.set_gateway("ignore-term");
    f.hs(&["register", "coder", "--start"]).ok();
    let pid = f.wait_gateway("coder", 0);
    let t = Instant::now();
    f.hs(&["stop", "coder", "--wait"]).ok();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(TIMEOUT_KILL_MS - 100),
        "returned after {:?}: before the SIGKILL",
        took
    );
    assert!(
        took < Duration::from_millis(TIMEOUT_KILL_MS + 3000),
        "took {:?}",
        took
    );
    let s = f.s6("coder").unwrap();
    assert!(!s.up && !s.wantedup && s.signal == "SIGKILL", "{:?}", s);
    assert!(!alive(pid));
    assert_eq!(
        f.state_str("coder", "gateway_state").as_deref(),
        Some("stopped")
    );
    assert_eq!(
        f.state_str("coder", "exit_reason").as_deref(),
        Some("operator_stop")
    );
}

#[test]
fn unregister_of_a_gateway_ignoring_sigterm_returns_after_timeout_kill() {
    if !have_s6() {
        return;
    }
    let mut f = coder("ignore-term-unreg");
    f.set_gateway("ignore-term");
    f.hs(&["register", "coder", "--start"]).ok();
    let pid = f.wait_gateway("coder", 0);
    let t = Instant::now();
    f.hs(&["unregister", "coder"]).ok();
    let took = t.elapsed();
    assert!(
        took < Duration::from_millis(TIMEOUT_KILL_MS + 3000),
        "took {:?}",
        took
    );
    assert!(!alive(pid));
    assert!(!f.slot("coder").exists());
}

#[test]
fn stop_refused_by_s6_restores_desired_state_and_leaves_no_marker() {
    if !have_s6() {
        return;
    }
    // A slot no supervisor runs (no scanner at all).
    let f = Scandir::new("stop-refused");
    f.profile("coder");
    let o = f.hs(&["register", "coder"]).ok();
    assert!(o.stderr.contains("hermes-s6: warning:"), "{:?}", o);
    f.write_state("coder", r#"{"desired_state":"running","keep":true}"#);
    let o = f.hs(&["stop", "coder"]).code(1);
    assert!(o.stderr.starts_with("hermes-s6: fatal: "), "{:?}", o);
    assert!(o.stderr.contains("not supervised"), "{:?}", o);
    assert_eq!(
        f.state_str("coder", "desired_state").as_deref(),
        Some("running")
    );
    assert!(f.state("coder").unwrap().get("keep").is_some());
    assert!(!f.marker("coder").exists());

    // No previous desired_state: it is removed again.
    f.write_state("coder", r#"{"gateway_state":"running"}"#);
    f.hs(&["stop", "coder"]).code(1);
    assert_eq!(f.state_str("coder", "desired_state"), None);
    assert_eq!(
        f.state_str("coder", "gateway_state").as_deref(),
        Some("running")
    );
    assert!(!f.marker("coder").exists());
    assert!(!f.marker("coder").exists());
    let leftovers: Vec<_> = fs::read_dir(f.home_of("coder"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp") || n.contains("planned"))
        .collect();
    assert!(leftovers.is_empty(), "{:?}", leftovers);
}

#[test]
fn start_and_restart_of_an_unsupervised_slot_are_refused_and_restore_desired_state() {
    if !have_s6() {
        return;
    }
    let f = Scandir::new("start-refused");
    f.profile("coder");
    f.hs(&["register", "coder"]).ok();
    f.write_state("coder", r#"{"desired_state":"stopped"}"#);
    // (each waits up to 5 s for a supervisor to appear before giving up)
    let o = f.hs(&["start", "coder"]).code(1);
    assert!(o.stderr.contains("is not supervised"), "{:?}", o);
    assert_eq!(
        f.state_str("coder", "desired_state").as_deref(),
        Some("stopped")
    );
    f.hs(&["restart", "coder"]).code(1);
    assert_eq!(
        f.state_str("coder", "desired_state").as_deref(),
        Some("stopped")
    );
    assert!(!f.marker("coder").exists());
}

#[test]
fn stop_with_an_unwritable_marker_still_stops() {
    if !have_s6() {
        return;
    }
    let f = coder("marker-unwritable");
    f.hs(&["register", "coder", "--start"]).ok();
    let pid = f.wait_gateway("coder", 0);
    // Nothing can be renamed over a directory: the marker write fails.
    fs::create_dir(f.marker("coder")).unwrap();
    let o = f.hs(&["stop", "coder", "--wait"]).ok();
    assert!(o.stderr.contains("hermes-s6: warning: "), "{:?}", o);
    let s = f.wait_down("coder");
    assert!(!s.wantedup);
    assert!(!alive(pid));
    assert_eq!(
        f.state_str("coder", "desired_state").as_deref(),
        Some("stopped")
    );
    // No marker reached finish: a SIGTERM after s6 was asked down, a shutdown.
    assert_eq!(
        f.state_str("coder", "exit_reason").as_deref(),
        Some("shutdown")
    );
    assert!(f.marker("coder").is_dir());
    fs::remove_dir(f.marker("coder")).unwrap();
}

#[test]
fn stop_after_the_scanner_died_is_refused_and_restores_desired_state() {
    if !have_s6() {
        return;
    }
    let mut f = coder("stop-noscanner");
    f.hs(&["register", "coder", "--start"]).ok();
    f.wait_gateway("coder", 0);
    f.kill_tree();
    f.hs(&["stop", "coder", "--wait"]).code(1);
    assert_eq!(
        f.state_str("coder", "desired_state").as_deref(),
        Some("running")
    );
    assert!(!f.marker("coder").exists());
}

#[test]
fn start_of_a_deleted_profiles_slot_is_refused_and_start_all_skips_it() {
    if !have_s6() {
        return;
    }
    let f = coder("start-deleted");
    f.hs(&["register", "coder"]).ok();
    fs::remove_dir_all(f.home_of("coder")).unwrap();
    for verb in ["start", "restart"] {
        let o = f.hs(&[verb, "coder"]).code(1);
        assert!(
            o.stderr.contains("profile 'coder' no longer exists") && !o.stderr.contains("unable"),
            "{}: {}",
            verb,
            o.stderr
        );
    }
    assert!(
        !f.home_of("coder").exists(),
        "nothing written for a deleted profile"
    );
    // --all: every other profile comes up, the deleted one is said and skipped
    for verb in ["start", "restart"] {
        let o = f.hs(&[verb, "--all", "--wait"]).ok();
        assert!(
            o.stderr
                .contains("warning: skipping profile 'coder' no longer exists"),
            "{}: {}",
            verb,
            o.stderr
        );
        assert!(f.s6("default").unwrap().up, "{}", verb);
    }
    assert!(!f.home_of("coder").exists());
}

#[test]
fn start_of_a_real_profile_without_slot_registers_it() {
    if !have_s6() {
        return;
    }
    let f = coder("autoregister");
    let o = f.hs(&["start", "coder", "--wait"]).ok();
    assert!(
        o.stderr
            .contains("hermes-s6: registered the s6 gateway slot for profile 'coder'"),
        "{:?}",
        o
    );
    f.wait_gateway("coder", 0);
    assert_eq!(f.hs(&["list"]).ok().stdout, "coder\n");
    // Already registered now: no second message.
    let o = f.hs(&["start", "coder"]).ok();
    assert_eq!(o.stderr, "");
}

#[test]
fn start_of_an_unknown_profile_is_no_such_gateway() {
    if !have_s6() {
        return;
    }
    let f = coder("nosuch");
    for cmd in ["start", "stop", "restart"] {
        let o = f.hs(&[cmd, "nosuch"]).code(1);
        assert!(
            o.stderr
                .starts_with("hermes-s6: fatal: no such gateway 'nosuch'"),
            "{} {:?}",
            cmd,
            o
        );
        assert!(!f.home.join("profiles/nosuch").exists());
    }
    f.hs(&["register", "nosuch"]).code(1);
    assert!(!f.slot("nosuch").exists());
    // A directory without SOUL.md is not a profile either.
    fs::create_dir_all(f.home.join("profiles/nosoul")).unwrap();
    f.hs(&["start", "nosoul"]).code(1);
    assert!(!f.home.join("profiles/nosoul/gateway_state.json").exists());
}

#[test]
fn stop_all_writes_each_marker_into_the_target_home() {
    if !have_s6() {
        return;
    }
    let f = coder("stop-all");
    f.profile("writer");
    f.hs(&["register", "coder", "--start"]).ok();
    f.hs(&["register", "writer", "--start"]).ok();
    let a = f.wait_gateway("coder", 0);
    let b = f.wait_gateway("writer", 0);
    f.hs(&["stop", "--all", "--wait"]).ok();
    for (p, pid) in [("coder", a), ("writer", b)] {
        let s = f.wait_down(p);
        assert!(!s.wantedup);
        assert!(!alive(pid));
        assert_eq!(f.state_str(p, "desired_state").as_deref(), Some("stopped"));
        assert_eq!(f.state_str(p, "gateway_state").as_deref(), Some("stopped"));
        assert_eq!(
            f.state_str(p, "exit_reason").as_deref(),
            Some("operator_stop"),
            "{}",
            p
        );
        assert!(!f.marker(p).exists());
    }
    // Nothing was written into the invoking (root) home.
    assert!(!f.marker("default").exists());
    assert!(!f.home.join("gateway_state.json").exists());

    f.hs(&["restart", "--all", "--wait"]).ok();
    let a2 = f.wait_gateway("coder", a);
    let b2 = f.wait_gateway("writer", b);
    assert!(a2 != a && b2 != b);
}

#[test]
fn wait_timeout_that_cannot_be_met_exits_1() {
    if !have_s6() {
        return;
    }
    let mut f = coder("wait-timeout");
    f.set_gateway("ignore-term");
    f.hs(&["register", "coder", "--start"]).ok();
    let pid = f.wait_gateway("coder", 0);
    // The old gateway cannot be gone within 1 ms: it ignores SIGTERM for 500 ms.
    let o = f
        .hs(&["restart", "coder", "--wait", "--timeout", "1"])
        .code(1);
    assert!(o.stderr.starts_with("hermes-s6: fatal: "), "{:?}", o);
    assert!(o.stderr.contains("timed out"), "{:?}", o);
    // The restart still happens.
    let pid2 = f.wait_gateway("coder", pid);
    let o = f.hs(&["stop", "coder", "--wait", "--timeout", "1"]).code(1);
    assert!(o.stderr.contains("timed out"), "{:?}", o);
    f.wait_down("coder");
    assert!(!alive(pid2));
    // A bad --timeout is bad usage.
    f.hs(&["stop", "coder", "--wait", "--timeout", "soon"])
        .code(100);
}

#[test]
fn wait_for_readiness_times_out_when_the_gateway_never_signals() {
    if !have_s6() {
        return;
    }
    let mut f = coder("ready-timeout");
    f.set_env("HERMES_GATEWAY_NOTIFICATION_FD", "3");
    f.hs(&["register", "coder"]).ok();
    assert_eq!(
        fs::read_to_string(f.slot("coder").join("notification-fd")).unwrap(),
        "3\n"
    );
    f.wait_s6("coder", "supervised", |s| !s.up);
    let t = Instant::now();
    let o = f
        .hs(&["start", "coder", "--wait", "--timeout", "300"])
        .code(1);
    assert!(o.stderr.contains("timed out"), "{:?}", o);
    assert!(t.elapsed() >= Duration::from_millis(300));
    // It is up, just never ready.
    f.wait_gateway("coder", 0);
}

#[test]
fn gateway_output_goes_to_its_s6_log_dir() {
    if !have_s6() {
        return;
    }
    let f = coder("logdir");
    f.hs(&["register", "coder", "--start"]).ok();
    let pid = f.wait_gateway("coder", 0);
    // stderr too (the run script joins it to stdout); s6-log stamps each line (`T`).
    let current = f.home.join("logs/gateways/coder/current");
    let want = format!(" gw {} coder mode plain", pid);
    f.wait("the gateway's line in its s6-log current", || {
        fs::read_to_string(&current).is_ok_and(|t| t.lines().any(|l| l.ends_with(&want)))
    });
    let text = fs::read_to_string(&current).unwrap();
    let l = text.lines().find(|l| l.ends_with(&want)).unwrap();
    // s6-log's `T`: "2026-08-01 10:05:00.123456789  line"
    let b = l.as_bytes();
    assert!(
        b.len() > 20 && b[4] == b'-' && b[7] == b'-' && b[13] == b':' && b[16] == b':',
        "not stamped by s6-log T: {:?}",
        l
    );
}

#[test]
fn start_all_brings_up_every_real_profile_default_first() {
    if !have_s6() {
        return;
    }
    let f = coder("start-all");
    fs::create_dir_all(f.home.join("profiles/nosoul")).unwrap();
    let o = f.hs(&["start", "--all", "--wait"]).ok();
    let regs: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| l.starts_with("hermes-s6: registered"))
        .collect();
    assert_eq!(
        regs,
        vec![
            "hermes-s6: registered the s6 gateway slot for profile 'default'",
            "hermes-s6: registered the s6 gateway slot for profile 'coder'"
        ]
    );
    f.wait_gateway("default", 0);
    f.wait_gateway("coder", 0);
    assert_eq!(f.hs(&["list"]).ok().stdout, "coder\ndefault\n");
    for p in ["default", "coder"] {
        assert_eq!(f.state_str(p, "desired_state").as_deref(), Some("running"));
    }
}

#[test]
fn a_stop_s6_has_not_heard_of_parks_the_gateway_and_a_start_brings_it_back() {
    if !have_s6() {
        return;
    }
    let f = coder("unheard-stop");
    f.hs(&["register", "coder", "--start"]).ok();
    let pid = f.wait_gateway("coder", 0);
    // What another container's `stop` leaves here: the intent, and a
    // marker for this gateway — but no `s6-svc -d` to this supervisor.
    let text = fs::read_to_string(f.home_of("coder").join("gateway_state.json")).unwrap();
    f.write_state(
        "coder",
        &text.replace(
            r#""desired_state":"running""#,
            r#""desired_state":"stopped""#,
        ),
    );
    let start = hermes_s6::procfs::start_time(pid as u32).unwrap();
    let now = hermes_s6::clock::iso_utc(hermes_s6::clock::now_secs());
    fs::write(
        f.marker("coder"),
        format!(
            r#"{{"target_pid":{},"target_start_time":{},"stopper_pid":1,"written_at":"{}"}}"#,
            pid, start, now
        ),
    )
    .unwrap();
    assert!(f.s6("coder").unwrap().wantedup);
    // SAFETY: our own stand-in gateway.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    // finish tells s6 (a `d` in P's turn): down, and wanted down
    let s = f.wait_down("coder");
    assert!(!s.wantedup, "{:?}", s);
    assert_eq!(
        f.state_str("coder", "exit_reason").as_deref(),
        Some("operator_stop")
    );
    assert!(!f.wait_for(Duration::from_millis(1500), || f
        .s6("coder")
        .is_some_and(|s| s.up)));
    // and a start brings it back
    f.hs(&["start", "coder", "--wait"]).ok();
    assert_ne!(f.wait_gateway("coder", pid), pid);
}

//! Boot reconciliation (SPEC §5; upstream §5.3 and §8.2), run as the real binary on a temp
//! HERMES_HOME. Most cases need no scanner (cont-init.d runs before the nested one starts);
//! the last ones run against a live s6-svscan.

mod common;

use common::{have_s6, listing, Scandir};
use std::fs;
use std::os::unix::fs::symlink;

fn fx(tag: &str) -> Scandir {
    Scandir::new(tag)
}

/// `reconcile`, returning its stdout lines.
fn reconcile(f: &Scandir) -> Vec<String> {
    let o = f.hs(&["reconcile"]).ok();
    o.stdout.lines().map(str::to_string).collect()
}

fn line(p: &str, prior: &str, action: &str) -> String {
    format!(
        "reconcile: profile={} prior_state={} action={}",
        p, prior, action
    )
}

fn has_down(f: &Scandir, p: &str) -> bool {
    f.slot(p).join("down").exists()
}

/// One named profile with a state file; returns reconcile's line for it.
fn one(tag: &str, state: &str) -> (Scandir, String) {
    let f = fx(tag);
    f.profile("coder");
    f.write_state("coder", state);
    let lines = reconcile(&f);
    let l = lines
        .iter()
        .find(|l| l.contains("profile=coder "))
        .cloned()
        .unwrap_or_default();
    (f, l)
}

#[test]
fn running_state_is_started_without_down() {
    let (f, l) = one("rc-running", r#"{"gateway_state":"running"}"#);
    assert_eq!(l, line("coder", "running", "started"));
    assert!(f.slot("coder").join("run").exists());
    assert!(!has_down(&f, "coder"));
}

#[test]
fn stopped_state_is_registered_with_down() {
    let (f, l) = one("rc-stopped", r#"{"gateway_state":"stopped"}"#);
    assert_eq!(l, line("coder", "stopped", "registered"));
    assert!(has_down(&f, "coder"));
}

#[test]
fn startup_failed_and_starting_are_not_started() {
    for s in ["startup_failed", "starting", "whatever"] {
        let (f, l) = one("rc-notstarted", &format!(r#"{{"gateway_state":"{}"}}"#, s));
        assert_eq!(l, line("coder", s, "registered"));
        assert!(has_down(&f, "coder"), "{}", s);
    }
}

#[test]
fn desired_running_overrides_startup_failed() {
    let (f, l) = one(
        "rc-desired-up",
        r#"{"desired_state":"running","gateway_state":"startup_failed"}"#,
    );
    assert_eq!(l, line("coder", "running", "started"));
    assert!(!has_down(&f, "coder"));
}

#[test]
fn desired_stopped_overrides_running() {
    let (f, l) = one(
        "rc-desired-down",
        r#"{"desired_state":"stopped","gateway_state":"running"}"#,
    );
    assert_eq!(l, line("coder", "stopped", "registered"));
    assert!(has_down(&f, "coder"));
}

#[test]
fn desired_state_with_an_unknown_value_is_not_started() {
    let (f, l) = one(
        "rc-desired-odd",
        r#"{"desired_state":"paused","gateway_state":"running"}"#,
    );
    assert_eq!(l, line("coder", "paused", "registered"));
    assert!(has_down(&f, "coder"));
}

#[test]
fn draining_and_degraded_are_started() {
    for s in ["draining", "degraded"] {
        let (f, l) = one("rc-draining", &format!(r#"{{"gateway_state":"{}"}}"#, s));
        assert_eq!(l, line("coder", "running", "started"), "{}", s);
        assert!(!has_down(&f, "coder"));
    }
}

#[test]
fn stale_pid_and_processes_files_are_removed_but_the_lock_is_kept() {
    let f = fx("rc-stale");
    let coder = f.profile("coder");
    for h in [&f.home, &coder] {
        for n in ["gateway.pid", "processes.json", "gateway.lock"] {
            fs::write(h.join(n), "{}").unwrap();
        }
    }
    reconcile(&f);
    for h in [&f.home, &coder] {
        assert!(!h.join("gateway.pid").exists(), "{:?}", h);
        assert!(!h.join("processes.json").exists(), "{:?}", h);
        assert!(h.join("gateway.lock").exists(), "{:?}", h);
    }
}

#[test]
fn no_state_is_prior_state_none_and_registered() {
    let f = fx("rc-nostate");
    f.profile("coder");
    let lines = reconcile(&f);
    assert_eq!(
        lines,
        vec![
            line("default", "None", "registered"),
            line("coder", "None", "registered")
        ]
    );
    assert!(has_down(&f, "coder") && has_down(&f, "default"));
    // reconcile never invents intent.
    assert!(f.state("coder").is_none());
}

#[test]
fn profile_without_soul_md_is_skipped_silently() {
    let f = fx("rc-nosoul");
    fs::create_dir_all(f.home.join("profiles/draft")).unwrap();
    fs::write(f.home.join("profiles/afile"), "x").unwrap();
    let o = f.hs(&["reconcile"]).ok();
    assert_eq!(
        o.stdout,
        format!("{}\n", line("default", "None", "registered"))
    );
    assert_eq!(o.stderr, "");
    assert!(!f.slot("draft").exists());
    let log = fs::read_to_string(f.home.join("logs/container-boot.log")).unwrap();
    assert!(!log.contains("draft"));
}

#[test]
fn soul_md_link_counts_as_for_register() {
    let f = fx("rc-soul-link");
    let d = f.home.join("profiles/linked");
    fs::create_dir_all(&d).unwrap();
    fs::write(f.home.join("soul-src.md"), "x").unwrap();
    symlink(f.home.join("soul-src.md"), d.join("SOUL.md")).unwrap();
    f.hs(&["register", "linked"]).ok();
    let lines = reconcile(&f);
    assert!(
        lines.contains(&line("linked", "None", "registered")),
        "{:?}",
        lines
    );
    assert!(
        f.slot("linked").is_dir(),
        "reconcile must keep what register made"
    );
}

#[test]
fn corrupt_json_is_registered_with_a_warning() {
    let f = fx("rc-corrupt");
    f.profile("coder");
    f.write_state("coder", "{\"gateway_state\": \"running\"");
    let o = f.hs(&["reconcile"]).ok();
    assert!(
        o.stdout.contains(&line("coder", "None", "registered")),
        "{:?}",
        o
    );
    assert!(o.stderr.contains("hermes-s6: warning:"), "{:?}", o);
    assert!(o.stderr.contains("gateway_state.json"), "{:?}", o);
    assert!(has_down(&f, "coder"));
}

#[test]
fn non_object_json_is_no_state() {
    for text in ["[]", "\"x\"", "42", ""] {
        let (f, l) = one("rc-nonobject", text);
        assert_eq!(l, line("coder", "None", "registered"), "{:?}", text);
        assert!(has_down(&f, "coder"));
    }
}

#[test]
fn utf8_bom_is_tolerated() {
    let (f, l) = one("rc-bom", "\u{feff}{\"gateway_state\":\"running\"}");
    assert_eq!(l, line("coder", "running", "started"));
    assert!(!has_down(&f, "coder"));
}

#[test]
fn boot_log_has_one_line_per_profile_with_one_timestamp() {
    let f = fx("rc-bootlog");
    f.profile("coder");
    f.profile("writer");
    f.write_state("default", r#"{"gateway_state":"running"}"#);
    f.write_state("writer", r#"{"desired_state":"stopped"}"#);
    fs::create_dir_all(f.home.join("state")).unwrap();
    fs::write(
        f.home.join("state/gateway.lifecycle.json"),
        r#"{"phase":"running"}"#,
    )
    .unwrap();
    fs::create_dir_all(f.home_of("writer").join("state")).unwrap();
    fs::write(
        f.home_of("writer").join("state/gateway.lifecycle.json"),
        r#"{"phase":"exited"}"#,
    )
    .unwrap();
    reconcile(&f);
    let log = fs::read_to_string(f.home.join("logs/container-boot.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{}", log);
    let ts = lines[0].split(' ').next().unwrap();
    // %Y-%m-%dT%H:%M:%S%z
    let b = ts.as_bytes();
    assert_eq!(ts.len(), 24, "{}", ts);
    assert!(b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':');
    assert!(
        matches!(b[19], b'+' | b'-') && b[20..].iter().all(u8::is_ascii_digit),
        "{}",
        ts
    );
    assert_eq!(
        lines,
        vec![
            format!(
                "{} profile=default prior_state=running action=started prior_exit=unclean",
                ts
            ),
            format!(
                "{} profile=coder prior_state=None action=registered prior_exit=unknown",
                ts
            ),
            format!(
                "{} profile=writer prior_state=stopped action=registered prior_exit=clean",
                ts
            ),
        ]
    );
    // A second boot appends another block.
    reconcile(&f);
    let log = fs::read_to_string(f.home.join("logs/container-boot.log")).unwrap();
    assert_eq!(log.lines().count(), 6);
}

#[test]
fn the_boot_log_is_in_local_time_as_upstreams_strftime_writes_it() {
    let f = Scandir::new("bootlog-tz");
    // POSIX rules: no zone database needed
    for (tz, offset) in [("UTC0", "+0000"), ("IST-5:30", "+0530"), ("EST5", "-0500")] {
        f.hs_env(&[("TZ", tz)], &["reconcile"]).ok();
        let log = fs::read_to_string(f.home.join("logs/container-boot.log")).unwrap();
        let line = log.lines().last().unwrap();
        let ts = line.split(' ').next().unwrap();
        assert!(ts.ends_with(offset), "TZ={}: {}", tz, line);
        // local time with its offset: the same instant as now
        let t = hermes_s6::clock::parse_iso_utc(ts).unwrap();
        let now = hermes_s6::clock::now_secs();
        assert!(
            (now - 60..=now).contains(&t),
            "TZ={}: {} is not now",
            tz,
            ts
        );
    }
}

#[test]
fn boot_log_at_256_kib_is_rotated_and_dot_1_overwritten() {
    let f = fx("rc-rotate");
    let logs = f.home.join("logs");
    fs::create_dir_all(&logs).unwrap();
    let big = "x".repeat(256 * 1024 - 1) + "\n";
    fs::write(logs.join("container-boot.log"), &big).unwrap();
    fs::write(logs.join("container-boot.log.1"), "old rotation\n").unwrap();
    reconcile(&f);
    assert_eq!(
        fs::read_to_string(logs.join("container-boot.log.1")).unwrap(),
        big
    );
    let log = fs::read_to_string(logs.join("container-boot.log")).unwrap();
    assert_eq!(log.lines().count(), 1, "{}", log);
    assert!(log.contains("profile=default prior_state=None action=registered"));
}

#[test]
fn boot_log_below_256_kib_is_not_rotated() {
    let f = fx("rc-norotate");
    let logs = f.home.join("logs");
    fs::create_dir_all(&logs).unwrap();
    let small = "x".repeat(256 * 1024 - 2) + "\n";
    fs::write(logs.join("container-boot.log"), &small).unwrap();
    reconcile(&f);
    assert!(!logs.join("container-boot.log.1").exists());
    let log = fs::read_to_string(logs.join("container-boot.log")).unwrap();
    assert!(log.starts_with(&small));
    assert_eq!(log[small.len()..].lines().count(), 1);
}

#[test]
fn dry_run_changes_nothing_and_prints_the_same_lines() {
    let f = fx("rc-dry");
    let coder = f.profile("coder");
    f.profile("writer");
    f.write_state("coder", r#"{"gateway_state":"running"}"#);
    f.write_state("writer", r#"{"desired_state":"stopped"}"#);
    fs::write(coder.join("gateway.pid"), "1").unwrap();
    fs::write(coder.join("processes.json"), "[]").unwrap();
    fs::create_dir_all(f.scandir.join(".gateway-old.tmp")).unwrap();
    fs::create_dir_all(f.scandir.join("gateway-gone")).unwrap();
    let before = listing(&f.root, &[]);
    let dry = f.hs(&["reconcile", "--dry-run"]).ok();
    assert_eq!(listing(&f.root, &[]), before, "dry run changed the tree");
    let real = f.hs(&["reconcile"]).ok();
    assert_eq!(dry.stdout, real.stdout);
    assert_eq!(
        dry.lines(),
        vec![
            line("default", "None", "registered"),
            line("coder", "running", "started"),
            line("writer", "stopped", "registered"),
        ]
    );
    assert_ne!(listing(&f.root, &[]), before);
}

#[test]
fn dry_run_creates_nothing_even_without_a_scandir() {
    let f = fx("rc-dry-noscandir");
    fs::remove_dir(&f.scandir).unwrap();
    let before = listing(&f.root, &[]);
    f.hs(&["reconcile", "--dry-run"]).ok();
    assert_eq!(listing(&f.root, &[]), before);
}

#[test]
fn missing_profiles_dir_gives_only_default() {
    let f = fx("rc-noprofiles");
    assert!(!f.home.join("profiles").exists());
    assert_eq!(reconcile(&f), vec![line("default", "None", "registered")]);
    assert_eq!(f.hs(&["list"]).ok().stdout, "default\n");
}

#[test]
fn invalid_profile_name_is_skipped_with_a_warning_and_others_reconciled() {
    let f = fx("rc-badname");
    f.profile("alpha");
    f.profile("zulu");
    for bad in ["BadName", ".x.staging-123", "with space"] {
        let d = f.home.join("profiles").join(bad);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("SOUL.md"), "x").unwrap();
    }
    let o = f.hs(&["reconcile"]).ok();
    assert_eq!(
        o.lines(),
        vec![
            line("default", "None", "registered"),
            line("alpha", "None", "registered"),
            line("zulu", "None", "registered"),
        ]
    );
    for bad in ["BadName", ".x.staging-123", "with space"] {
        assert!(
            o.stderr
                .lines()
                .any(|l| l.starts_with("hermes-s6: warning: skipping ")
                    && l.contains(&*hermes_s6::error::escape(bad))),
            "no warning for {}: {:?}",
            bad,
            o
        );
    }
    assert_eq!(f.hs(&["list"]).ok().stdout, "alpha\ndefault\nzulu\n");
}

#[test]
fn leftover_tmp_slots_are_swept() {
    let f = fx("rc-sweep");
    f.profile("coder");
    for d in [
        ".gateway-coder.tmp",
        ".gateway-gone.tmp",
        ".gateway-x.del.99",
    ] {
        fs::create_dir_all(f.scandir.join(d).join("log")).unwrap();
        fs::write(f.scandir.join(d).join("run"), "junk").unwrap();
    }
    fs::create_dir_all(f.scandir.join(".other")).unwrap();
    reconcile(&f);
    let mut names: Vec<String> = fs::read_dir(&f.scandir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // each profile's lock (.gateway-P.lock) stays: it is not a leftover
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    names.sort();
    assert_eq!(names, vec![".other", "gateway-coder", "gateway-default"]);
    let run = fs::read_to_string(f.slot("coder").join("run")).unwrap();
    assert!(
        run.contains(" run -\n"),
        "the profile is the slot's name: {}",
        run
    );
    // (a build in progress holds the scan directory's lock shared, which
    // reconcile waits for: tests/races.rs, register ‖ reconcile)
}

#[test]
fn slots_of_profiles_no_longer_real_are_removed() {
    let f = fx("rc-gone");
    let gone = f.profile("gone");
    f.profile("kept");
    reconcile(&f);
    assert!(f.slot("gone").exists());
    fs::remove_file(gone.join("SOUL.md")).unwrap();
    let o = f.hs(&["reconcile"]).ok();
    assert!(!o.stdout.contains("gone"));
    assert!(!f.slot("gone").exists());
    assert!(f.slot("kept").exists());
    // Not ours: left alone.
    fs::create_dir_all(f.scandir.join("other-service")).unwrap();
    reconcile(&f);
    assert!(f.scandir.join("other-service").exists());
}

#[test]
fn default_comes_first_then_profiles_in_name_order() {
    let f = fx("rc-order");
    for p in ["zeta", "alpha", "m-1", "0abc", "beta_2"] {
        f.profile(p);
    }
    let got: Vec<String> = reconcile(&f)
        .iter()
        .map(|l| {
            l.split(' ')
                .nth(1)
                .unwrap()
                .trim_start_matches("profile=")
                .to_string()
        })
        .collect();
    assert_eq!(
        got,
        vec!["default", "0abc", "alpha", "beta_2", "m-1", "zeta"]
    );
}

#[test]
fn profiles_default_dir_is_skipped_with_a_warning() {
    let f = fx("rc-profdefault");
    f.profile("default");
    // profile("default") wrote the root home; make the nested one too.
    let d = f.home.join("profiles/default");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("SOUL.md"), "x").unwrap();
    fs::write(
        d.join("gateway_state.json"),
        r#"{"gateway_state":"running"}"#,
    )
    .unwrap();
    let o = f.hs(&["reconcile"]).ok();
    assert_eq!(o.lines(), vec![line("default", "None", "registered")]);
    assert!(o.stderr.contains("hermes-s6: warning:"), "{:?}", o);
    assert!(o.stderr.contains("profiles/default"), "{:?}", o);
}

#[test]
fn default_slot_is_always_registered_even_with_an_empty_home() {
    let f = fx("rc-emptyhome");
    fs::remove_file(f.home.join("SOUL.md")).unwrap();
    assert_eq!(reconcile(&f), vec![line("default", "None", "registered")]);
    assert!(f.slot("default").join("run").exists());
}

#[test]
fn root_running_autostarts_default_and_stopped_does_not() {
    let (f, _) = one("rc-root", "{}");
    f.write_state("default", r#"{"gateway_state":"running"}"#);
    fs::remove_dir_all(f.slot("default")).unwrap();
    let lines = reconcile(&f);
    assert_eq!(lines[0], line("default", "running", "started"));
    assert!(!has_down(&f, "default"));
    for s in ["stopped", "startup_failed"] {
        f.write_state("default", &format!(r#"{{"gateway_state":"{}"}}"#, s));
        let lines = reconcile(&f);
        assert_eq!(lines[0], line("default", s, "registered"));
        assert!(has_down(&f, "default"));
    }
}

#[test]
fn every_slot_has_run_finish_log_run_and_timeout_kill() {
    let f = fx("rc-finish");
    f.profile("coder");
    f.profile("writer");
    reconcile(&f);
    for p in ["default", "coder", "writer"] {
        let s = f.slot(p);
        for file in ["run", "finish", "log/run"] {
            let m = fs::metadata(s.join(file)).unwrap();
            assert!(m.is_file());
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(m.permissions().mode() & 0o777, 0o755, "{} {}", p, file);
            let text = fs::read_to_string(s.join(file)).unwrap();
            assert!(text.starts_with("#!/usr/bin/execlineb"), "{}", text);
        }
        // one script for every slot (hard links): the profile is the
        // slot's own name, the parameters are in data/env
        let finish = fs::read_to_string(s.join("finish")).unwrap();
        assert!(finish.contains(" finish - $1 $2"), "{}", finish);
        assert_eq!(fs::read_to_string(s.join("timeout-kill")).unwrap(), "500\n");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            fs::metadata(s.join("run")).unwrap().ino(),
            fs::metadata(f.slot("default").join("run")).unwrap().ino(),
            "shared, not copied"
        );
    }
    // The gateway command is recorded in the slot, as configured.
    let env = fs::read_to_string(f.slot("default").join("data/env")).unwrap();
    assert!(
        env.contains(&format!(
            "\nHERMES_GATEWAY_CMD=\"{} plain\"\n",
            f.gw.display()
        )),
        "{}",
        env
    );
    // no builder's template is left in the scan directory
    assert!(
        !fs::read_dir(&f.scandir).unwrap().flatten().any(|e| e
            .file_name()
            .to_string_lossy()
            .starts_with(".hermes-s6-template.")),
        "template left"
    );
}

#[test]
fn existing_unsupervised_slot_is_replaced() {
    let f = fx("rc-replace");
    f.profile("coder");
    fs::create_dir_all(f.slot("coder")).unwrap();
    fs::write(f.slot("coder").join("run"), "#!/bin/sh\nexit 1\n").unwrap();
    fs::write(f.slot("coder").join("stray"), "x").unwrap();
    reconcile(&f);
    assert!(!f.slot("coder").join("stray").exists());
    assert!(fs::read_to_string(f.slot("coder").join("run"))
        .unwrap()
        .contains("execlineb"));
}

#[test]
fn running_twice_gives_the_same_tree() {
    let f = fx("rc-twice");
    f.profile("coder");
    f.profile("writer");
    f.write_state("coder", r#"{"gateway_state":"running"}"#);
    reconcile(&f);
    let first = listing(&f.scandir, &[]);
    reconcile(&f);
    assert_eq!(listing(&f.scandir, &[]), first);
    // …and so does a second boot after the intent flips, back to the first tree.
    f.write_state("coder", r#"{"desired_state":"stopped"}"#);
    reconcile(&f);
    assert_ne!(listing(&f.scandir, &[]), first);
    f.write_state("coder", r#"{"desired_state":"running"}"#);
    reconcile(&f);
    assert_eq!(listing(&f.scandir, &[]), first);
}

#[test]
fn symlinked_profile_dir_is_not_followed() {
    let f = fx("rc-symlink");
    let real = f.root.join("elsewhere");
    fs::create_dir_all(&real).unwrap();
    fs::write(real.join("SOUL.md"), "x").unwrap();
    fs::create_dir_all(f.home.join("profiles")).unwrap();
    symlink(&real, f.home.join("profiles/linked")).unwrap();
    let lines = reconcile(&f);
    assert_eq!(lines, vec![line("default", "None", "registered")]);
    assert!(!f.slot("linked").exists());
}

// ---- against a live scanner -----------------------------------------------------------

#[test]
fn live_reconcile_starts_running_profiles_and_leaves_others_down() {
    if !have_s6() {
        return;
    }
    let f = Scandir::started("rc-live");
    f.profile("coder");
    f.profile("writer");
    f.write_state("coder", r#"{"gateway_state":"running"}"#);
    f.write_state("writer", r#"{"gateway_state":"stopped"}"#);
    reconcile(&f);
    let pid = f.wait_gateway("coder", 0);
    let w = f.wait_s6("writer", "supervised", |_| true);
    assert!(!w.up && !w.wantedup, "{:?}", w);
    let d = f.wait_s6("default", "supervised", |_| true);
    assert!(!d.up, "{:?}", d);
    // A second run in the live container: the same tree, nothing restarted.
    let skip = ["supervise", "event"];
    let before = listing(&f.scandir, &skip);
    reconcile(&f);
    assert_eq!(listing(&f.scandir, &skip), before);
    assert_eq!(f.s6("coder").unwrap().pid, pid);
    assert!(f.gw_pids("coder").len() == 1);
    // Intent flipped while supervised: only the down file follows.
    f.write_state(
        "coder",
        r#"{"desired_state":"stopped","gateway_state":"running"}"#,
    );
    reconcile(&f);
    assert!(has_down(&f, "coder"));
    assert_eq!(f.s6("coder").unwrap().pid, pid);
}

#[test]
fn live_reconcile_unregisters_a_deleted_profile_cleanly() {
    if !have_s6() {
        return;
    }
    let f = Scandir::started("rc-live-gone");
    let gone = f.profile("gone");
    f.write_state("gone", r#"{"gateway_state":"running"}"#);
    reconcile(&f);
    let pid = f.wait_gateway("gone", 0);
    fs::remove_dir_all(&gone).unwrap();
    reconcile(&f);
    assert!(!f.slot("gone").exists());
    assert!(!common::alive(pid));
    let svscan = f.svscan_pid().unwrap();
    f.wait("no supervisor left for gateway-gone", || {
        common::procs_with_cwd_under(&f.scandir)
            .into_iter()
            .filter(|&p| p != svscan)
            .all(|p| {
                fs::read_link(format!("/proc/{}/cwd", p))
                    .map(|c| c.starts_with(f.slot("default")))
                    .unwrap_or(true)
            })
    });
}

/// Run `hermes-s6 ARGS` with stdout a pipe nobody reads (EPIPE on write).
fn with_closed_stdout(f: &Scandir, args: &[&str]) -> (i32, String) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid two-int array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds were just created and are owned here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(r);
    let o = f
        .command(args)
        .stdout(std::process::Stdio::from(w))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn reconcile_with_nobody_reading_its_stdout_still_publishes_every_slot() {
    let f = fx("rc-epipe");
    for p in ["alpha", "beta", "gamma"] {
        f.profile(p);
    }
    let (code, err) = with_closed_stdout(&f, &["reconcile"]);
    assert_eq!(code, 0, "stderr: {}", err);
    assert!(err.contains("unable to write to stdout"), "{}", err);
    for p in ["default", "alpha", "beta", "gamma"] {
        assert!(f.slot(p).is_dir(), "gateway-{} missing", p);
    }
    let log = fs::read_to_string(f.home.join("logs/container-boot.log")).unwrap();
    assert_eq!(log.lines().count(), 4, "{}", log);
    let (code, _) = with_closed_stdout(&f, &["status"]);
    assert_eq!(code, 0, "status must not abort on EPIPE");
}

#[test]
fn a_profile_that_cannot_be_read_keeps_its_slot() {
    let f = fx("rc-unreadable");
    f.profile("alpha");
    reconcile(&f);
    assert!(f.slot("alpha").is_dir());
    // As uid 10000 the home is unreadable (root bypasses modes).
    let home = f.home.join("profiles/alpha");
    let o = std::process::Command::new("chown")
        .args(["-R", "10000:10000"])
        .arg(&f.home)
        .arg(&f.scandir)
        .status()
        .unwrap();
    assert!(o.success());
    fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let o = f.hs_as_10000(&["reconcile"]);
    fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    assert!(o.stderr.contains("alpha"), "the skip is said: {:?}", o);
    assert!(
        f.slot("alpha").is_dir(),
        "an unreadable profile is not a gone one"
    );
}

//! Concurrent commands on one profile, against a real s6-svscan, hundreds of
//! rounds: they take turns (P's lock), so a slot is never published half
//! built, exactly one of two `register`s wins, and after `start` ‖ `stop`
//! the saved intent agrees with s6. Registers of different profiles take
//! turns for the scanner's last places.

mod common;

use common::*;
use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn rounds(default: usize) -> usize {
    std::env::var("HERMES_S6_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn spawn(f: &Scandir, args: &[&str]) -> Child {
    let mut c: Command = f.command(args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c.spawn().unwrap()
}

fn finish(c: Child) -> Out {
    let o = c.wait_with_output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Build leftovers and half-built slots: anything in the scan directory but
/// complete `gateway-*` slots, `.s6-svscan` and the profiles' lock files.
fn junk(f: &Scandir) -> Vec<String> {
    fs::read_dir(&f.scandir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n != ".s6-svscan"
                && n != ".hermes-s6.lock"
                && n != ".hermes-s6.room.lock"
                && !(n.starts_with(".gateway-") && n.ends_with(".lock"))
        })
        .filter(|n| {
            !(n.starts_with("gateway-") && {
                let s = f.scandir.join(n);
                s.join("run").is_file()
                    && s.join("finish").is_file()
                    && s.join("data/env").is_file()
                    && s.join("log/run").is_file()
            })
        })
        .collect()
}

#[test]
fn two_registers_of_one_profile_one_wins_the_slot_is_always_complete() {
    if !have_s6() {
        return;
    }
    let f = Scandir::started("race-register");
    f.profile("coder");
    let n = rounds(200);
    for i in 0..n {
        let a = spawn(&f, &["register", "coder"]);
        let b = spawn(&f, &["register", "coder"]);
        let (a, b) = (finish(a), finish(b));
        let won = [&a, &b].iter().filter(|o| o.code == 0).count();
        assert_eq!(won, 1, "round {}: exactly one wins: {:?} {:?}", i, a, b);
        let lost = if a.code == 0 { &b } else { &a };
        assert_eq!(lost.code, 1, "round {}: {:?}", i, lost);
        assert!(
            lost.stderr.contains("already registered"),
            "round {}: {:?}",
            i,
            lost
        );
        assert_eq!(junk(&f), Vec::<String>::new(), "round {}", i);
        f.hs(&["unregister", "coder"]).ok();
    }
}

#[test]
fn registers_racing_for_the_last_places_never_pass_the_scanners_limit() {
    let f = Scandir::new("race-room");
    let names = ["aa", "bb", "cc", "dd", "ee", "ff"];
    for p in names {
        f.profile(p);
    }
    let n = rounds(60);
    for i in 0..n {
        // 6 registers at once, room for 3 slots
        let all: Vec<Child> = names
            .iter()
            .map(|p| {
                let mut c = f.command(&["register", p]);
                c.env("HERMES_S6_MAX_PROFILES", "3");
                c.stdout(Stdio::piped()).stderr(Stdio::piped());
                c.spawn().unwrap()
            })
            .collect();
        let outs: Vec<Out> = all.into_iter().map(finish).collect();
        let won = outs.iter().filter(|o| o.code == 0).count();
        let listed = f.hs(&["list"]).ok().stdout.lines().count();
        assert_eq!((won, listed), (3, 3), "round {}: {:?}", i, outs);
        for o in outs.iter().filter(|o| o.code != 0) {
            assert_eq!(o.code, 1, "round {}: {:?}", i, o);
            assert!(
                o.stderr.contains("at most 3 gateways"),
                "round {}: {:?}",
                i,
                o
            );
        }
        for p in names {
            f.hs(&["unregister", p]).ok();
        }
    }
}

#[test]
fn register_while_reconcile_sweeps_never_loses_a_build() {
    if !have_s6() {
        return;
    }
    let f = Scandir::started("race-sweep");
    for p in ["aa", "bb", "cc"] {
        f.profile(p);
    }
    let n = rounds(100);
    for i in 0..n {
        let r = spawn(&f, &["reconcile"]);
        let a = spawn(&f, &["register", "coder"]);
        f.profile("coder");
        let (r, a) = (finish(r), finish(a));
        assert!(r.code == 0 || r.code == 1, "round {}: {:?}", i, r);
        // register either built coder's slot completely or said why not
        assert!(
            a.code == 0
                || a.stderr.contains("already registered")
                || a.stderr.contains("no such gateway"),
            "round {}: {:?}",
            i,
            a
        );
        assert_eq!(junk(&f), Vec::<String>::new(), "round {}", i);
        f.hs(&["unregister", "coder"]).ok();
        let _ = fs::remove_dir_all(f.home_of("coder"));
    }
}

#[test]
fn start_and_stop_at_once_leave_the_intent_and_s6_agreeing() {
    if !have_s6() {
        return;
    }
    let f = Scandir::started("race-startstop");
    f.profile("coder");
    f.hs(&["register", "coder"]).ok();
    // stop (unlike start) never waits for a supervisor to appear
    f.wait_s6("coder", "supervised", |_| true);
    let n = rounds(200);
    for i in 0..n {
        let (x, y) = if i % 2 == 0 {
            ("start", "stop")
        } else {
            ("stop", "start")
        };
        let a = spawn(&f, &[x, "coder"]);
        let b = spawn(&f, &[y, "coder"]);
        let (a, b) = (finish(a), finish(b));
        assert_eq!((a.code, b.code), (0, 0), "round {}: {:?} {:?}", i, a, b);
        let intent = f.state_str("coder", "desired_state").unwrap();
        // s6-supervise reads its control FIFO on its own time, acting on
        // each byte as it reads it: wait (bounded) until it has read both,
        // then for the last one's effect — before that, s6 may still agree
        // with the previous round
        assert!(
            f.wait_for(Duration::from_secs(5), || f.control_unread("coder")
                == Some(0)),
            "round {}: s6-supervise never read its commands",
            i
        );
        f.wait_for(Duration::from_secs(2), || {
            f.s6("coder")
                .is_some_and(|s| s.wantedup == (intent == "running"))
        });
        let s6 = f.s6("coder").expect("supervised");
        assert_eq!(
            s6.wantedup,
            intent == "running",
            "round {}: desired_state={} but s6 wants it {}",
            i,
            intent,
            if s6.wantedup { "up" } else { "down" }
        );
        assert_eq!(
            f.slot("coder").join("down").exists(),
            intent != "running",
            "round {}: the down file follows the intent",
            i
        );
    }
    f.hs(&["stop", "coder", "--wait"]).ok();
    assert!(f.wait_for(Duration::from_secs(10), || f
        .s6("coder")
        .is_some_and(|s| !s.up)));
}

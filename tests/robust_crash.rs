//! Crash consistency: the real binary is SIGKILLed at random points while it writes
//! `gateway_state.json` and the planned-stop marker.
//!
//! Why the real binary and one process per write: a kill -9 has to land in a process that
//! owns no test-harness state, and the binary is what runs in production. Each iteration
//! spawns `hermes-s6 run default -- /bin/true` (writes the state, then execs /bin/true) or
//! `hermes-s6 stop default` against a real s6-supervise whose gateway ignores SIGTERM (writes
//! the state, then the marker for that same live pid, then `d`), sleeps a random number of
//! microseconds drawn from [0, 1.2 × the measured run time], and SIGKILLs it. The foreign
//! payload of the state file is resized every few iterations (0 B … 512 KiB) so that the
//! write + fsync window is a large part of the run and kills land inside it.
//!
//! After every kill the file must be byte-identical to the previous document or be the new
//! complete document (parsed, every foreign key unchanged, the owned keys set by *this*
//! process); a temp file may survive only the killed writer, and none may survive the next
//! writer that completes.

mod robust_util;

use hermes_s6::json::Value;
use hermes_s6::marker::{self, Marker};
use hermes_s6::state::{self, State};
use robust_util::*;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const OWNED: &[&str] = &[
    "desired_state",
    "gateway_state",
    "pid",
    "start_time",
    "exit_reason",
    "updated_at",
];

/// A gateway-written state document with `pad` bytes of foreign payload.
fn seed_doc(rng: &mut Rng, pad: usize, desired: Option<&str>) -> String {
    let mut s = String::from(
        r#"{"kind":"hermes-gateway","nested":{"a":[1,2,{"b":null}],"t":true},"big":123456789012345678901234567890,"neg0":-0.0,"huge":1e400,"u":"h\u00e9llo \ud83e\udd80 ✓","#,
    );
    if let Some(d) = desired {
        s.push_str(&format!(r#""desired_state":"{}","#, d));
    }
    s.push_str(&format!(
        r#""exit_reason":"crash","gen":{},"pad":""#,
        rng.next_u64()
    ));
    for _ in 0..pad {
        s.push((b'a' + rng.below(26) as u8) as char);
    }
    s.push_str("\"}\n");
    s
}

#[derive(Default, Debug)]
struct Tally {
    old: usize,
    new: usize,
    completed: usize,
    temp_left_by_kill: usize,
}

/// The state file after a writer `pid` ran (maybe killed): old bytes, or the complete new doc.
fn check_state(path: &Path, old: &[u8], pid: u32, want_desired: &str) -> bool {
    let now = fs::read(path).expect("state file vanished");
    if now == old {
        return false;
    }
    let text = std::str::from_utf8(&now).expect("state file is not UTF-8");
    let new =
        State::parse(text).unwrap_or_else(|e| panic!("torn state file ({}): {:.200}", e, text));
    let before = State::parse(std::str::from_utf8(old).unwrap()).unwrap();
    let (Value::Object(bm), Value::Object(nm)) = (
        hermes_s6::json::parse(std::str::from_utf8(old).unwrap()).unwrap(),
        hermes_s6::json::parse(text).unwrap(),
    ) else {
        panic!("not objects");
    };
    for (k, v) in &bm {
        if !OWNED.contains(&k.as_str()) {
            assert_eq!(new.get(k), Some(v), "foreign key {} changed", k);
        }
    }
    for (k, _) in &nm {
        assert!(
            OWNED.contains(&k.as_str()) || before.get(k).is_some(),
            "new key {} appeared",
            k
        );
    }
    assert_eq!(
        new.pid(),
        Some(pid),
        "state written by someone else: {:.300}",
        text
    );
    assert_eq!(new.desired_state(), Some(want_desired));
    assert!(new.updated_at().is_some());
    true
}

/// Spawn, sleep `delay`, SIGKILL, reap. Returns whether it completed on its own (exit 0).
fn kill_after(cmd: &mut Command, delay: Duration) -> (u32, bool) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let _ = child.kill();
    let st = child.wait().unwrap();
    (pid, st.success())
}

/// Median run time of `cmd` uninterrupted (the range of the random kill delays).
fn calibrate(mut cmd: impl FnMut() -> Command) -> Duration {
    let mut v: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            assert!(cmd()
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success());
            t.elapsed()
        })
        .collect();
    v.sort();
    v[2]
}

#[test]
fn killed_run_leaves_old_or_new_state_and_no_lasting_temp() {
    let n = count(100, 1000);
    let s = seed(1);
    let mut rng = Rng::new(s);
    let d = TempDir::new("crash-run");
    let home = d.path("home");
    fs::create_dir(&home).unwrap();
    let scan = d.path("scan");
    let path = home.join(state::FILE);
    let cmd = || {
        let mut c = hermes(&home, &scan);
        c.env("HERMES_S6_USER", "0:0")
            .args(["run", "default", "--", "/bin/true"]);
        c
    };
    fs::write(&path, seed_doc(&mut rng, 64 << 10, None)).unwrap();
    let span = calibrate(cmd).as_micros() as usize * 12 / 10 + 1;
    let mut t = Tally::default();
    let mut killed = Vec::new();
    let mut desired = "running";
    for i in 0..n {
        if i % 10 == 0 {
            let pad = *rng.pick(&[0, 100, 4 << 10, 64 << 10, 512 << 10]);
            // sometimes no desired_state: `run` must add `running`, else keep the given one
            let d = *rng.pick(&[None, Some("running"), Some("stopped")]);
            desired = d.unwrap_or("running");
            fs::write(&path, seed_doc(&mut rng, pad, d)).unwrap();
        }
        let old = fs::read(&path).unwrap();
        let delay = Duration::from_micros(rng.below(span) as u64);
        let (pid, completed) = kill_after(&mut cmd(), delay);
        if check_state(&path, &old, pid, desired) {
            t.new += 1;
        } else {
            t.old += 1;
        }
        let left = temps(&home);
        if completed {
            t.completed += 1;
            assert!(
                left.is_empty(),
                "temp files after a completed write: {:?}",
                left
            );
        } else {
            killed.push(pid);
            only_killed_writers(&left, &killed, s, i);
            t.temp_left_by_kill += left.iter().any(|l| l.ends_with(&format!(".{}", pid))) as usize;
        }
    }
    assert!(cmd().stderr(Stdio::null()).status().unwrap().success());
    assert!(temps(&home).is_empty(), "{:?}", temps(&home));
    assert_eq!(
        names(&home),
        [".gateway_state.lock", "gateway.lease", "gateway_state.json"]
    );
    eprintln!("crash/run: seed {} n {} span {}us {:?}", s, n, span, t);
    assert!(t.old + t.new == n);
}

#[test]
fn killed_stop_leaves_old_or_new_marker_and_state() {
    let Some(_) = s6_tool("s6-supervise") else {
        eprintln!("s6-supervise not installed: skipped");
        return;
    };
    let n = count(100, 1000);
    let s = seed(2);
    let mut rng = Rng::new(s);
    let d = TempDir::new("crash-stop");
    let home = d.path("home");
    fs::create_dir(&home).unwrap();
    let scan = d.path("scan");
    let sup = Supervised::start(&scan.join("gateway-default")).unwrap();
    let target = sup.up_pid().unwrap() as u32;
    let spath = home.join(state::FILE);
    let mpath = home.join(marker::FILE);
    let data = scan.join("gateway-default").join("data");
    let dpath = data.join(marker::FILE);
    let cmd = || {
        let mut c = hermes(&home, &scan);
        c.args(["stop", "default"]);
        c
    };
    fs::write(&spath, seed_doc(&mut rng, 64 << 10, Some("stopped"))).unwrap();
    let span = calibrate(cmd).as_micros() as usize * 12 / 10 + 1;
    let mut t = Tally::default();
    let mut killed = Vec::new();
    let mut marker_new = 0;
    let mut pad = 0;
    for i in 0..n {
        if i % 10 == 0 {
            pad = *rng.pick(&[0, 4 << 10, 256 << 10]);
        }
        // desired_state `running` every time, so that every stop changes the document
        fs::write(&spath, seed_doc(&mut rng, pad, Some("running"))).unwrap();
        let old_state = fs::read(&spath).unwrap();
        let old_marker = fs::read(&mpath).ok();
        let old_copy = fs::read(&dpath).ok();
        let delay = Duration::from_micros(rng.below(span) as u64);
        let (pid, completed) = kill_after(&mut cmd(), delay);
        // stop writes no pid into the state: only `desired_state` and `updated_at` change
        let now = fs::read(&spath).unwrap();
        if now != old_state {
            let text = std::str::from_utf8(&now).unwrap();
            let st =
                State::parse(text).unwrap_or_else(|e| panic!("torn state ({}): {:.200}", e, text));
            assert_eq!(st.desired_state(), Some("stopped"));
            let before = State::parse(std::str::from_utf8(&old_state).unwrap()).unwrap();
            for k in [
                "kind",
                "nested",
                "big",
                "neg0",
                "huge",
                "u",
                "gen",
                "pad",
                "exit_reason",
            ] {
                assert_eq!(st.get(k), before.get(k), "foreign key {}", k);
            }
            t.new += 1;
        } else {
            t.old += 1;
        }
        // the marker in the home, and its copy in the slot's data/ for finish
        marker_new += check_marker(&mpath, &old_marker, pid, target) as usize;
        check_marker(&dpath, &old_copy, pid, target);
        let left = temps(&home);
        if completed {
            t.completed += 1;
            assert!(m_is_some(&mpath), "completed stop wrote no marker");
            assert!(m_is_some(&dpath), "completed stop wrote no marker copy");
            assert!(temps(&data).is_empty(), "{:?}", temps(&data));
            assert!(
                left.is_empty(),
                "temp files after a completed stop: {:?}",
                left
            );
        } else {
            killed.push(pid);
            only_killed_writers(&left, &killed, s, i);
            t.temp_left_by_kill += left.iter().any(|l| l.ends_with(&format!(".{}", pid))) as usize;
        }
    }
    assert!(cmd().stderr(Stdio::null()).status().unwrap().success());
    assert!(temps(&home).is_empty(), "{:?}", temps(&home));
    assert_eq!(
        sup.up_pid(),
        Some(target as u64),
        "the gateway must have survived"
    );
    eprintln!(
        "crash/stop: seed {} n {} span {}us {:?} marker_new {}",
        s, n, span, t, marker_new
    );
}

/// Temp files may outlive killed writers only (until the next writer that completes).
fn only_killed_writers(left: &[String], killed: &[u32], seed: u64, i: usize) {
    for l in left {
        let pid: u32 = l
            .rsplit('.')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        assert!(
            killed.contains(&pid),
            "seed {} iteration {}: {} is not a killed writer's",
            seed,
            i,
            l
        );
    }
}

/// The marker at `path` after stopper `pid` ran: the old bytes, or its complete marker.
fn check_marker(path: &Path, old: &Option<Vec<u8>>, pid: u32, target: u32) -> bool {
    let m = fs::read(path).ok();
    if &m == old {
        return false;
    }
    let bytes = m.expect("marker vanished");
    let text = std::str::from_utf8(&bytes).unwrap();
    let mk: Marker = Marker::parse(text).unwrap_or_else(|| panic!("torn marker: {:?}", text));
    assert_eq!(mk.stopper_pid, pid, "marker from someone else: {}", text);
    assert_eq!(mk.target_pid, target);
    assert!(mk.target_start_time.is_some() && mk.action.is_none());
    true
}

fn m_is_some(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.is_file())
}

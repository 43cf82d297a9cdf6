//! Concurrency: two processes interleave read-modify-writes of one `gateway_state.json`
//! through `state::update` (what every hermes-s6 command uses). Both children are this test
//! binary re-run on one test (`writer_child`), so each is a real separate process with its own
//! file descriptors and locks, and nothing of the parent's test harness.
//!
//! Writer A owns `desired_state` (alternating running/stopped) and `a_seq`; writer B owns the
//! runtime keys (`gateway_state`, `pid`, `start_time`, `exit_reason`) and `b_seq`; both
//! increment the shared counter `n`. A lost update shows as `n` < 2 × N or a stale `*_seq`.
//! The document also carries the gateway's own keys, which must come out unchanged.

mod robust_util;

use hermes_s6::state::{self, State};
use robust_util::*;
use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::time::Duration;

/// The gateway's keys: hermes-s6 owns none of them.
const FOREIGN: &str = r#"{"kind":"hermes-gateway","platforms":{"telegram":{"state":"connected","since":1785000000.25},"discord":null},"big":-123456789012345678901234567890.5e-7,"list":[1,[2,[3,[]]],{"k":"v"}],"u":"caf\u00e9 \ud83e\udd80 \"q\" \\ \n","dup":1,"dup":2,"empty":{}}"#;

fn desired_for(i: usize) -> &'static str {
    if i % 2 == 0 {
        "running"
    } else {
        "stopped"
    }
}

/// One writer (run only as a child process of `two_writers_lose_nothing`).
#[test]
fn writer_child() {
    if !in_child() {
        return;
    }
    let home = std::env::var_os("ROBUST_HOME").unwrap();
    let home = Path::new(&home);
    let role = std::env::var("ROBUST_ROLE").unwrap();
    let n: usize = std::env::var("ROBUST_N").unwrap().parse().unwrap();
    // start together: say ready, wait for the parent's go (given once both are ready)
    fs::write(home.join(format!("ready-{}", role)), "").unwrap();
    assert!(poll(Duration::from_secs(20), || home.join("go").exists()));
    let unlocked = std::env::var_os("ROBUST_UNLOCKED").is_some();
    let mut switches = 0;
    for i in 0..n {
        let mut f = |s: &mut State| {
            let last = s.get_str("last_writer").map(str::to_string);
            if last.as_deref().is_some_and(|l| l != role) {
                switches += 1;
            }
            let count = s.get_u64("n").unwrap_or(0);
            s.set_u64("n", count + 1);
            s.set_str("last_writer", &role);
            if role == "a" {
                s.set_str("desired_state", desired_for(i));
                s.set_u64("a_seq", i as u64);
            } else {
                s.set_str(
                    "gateway_state",
                    if i % 3 == 0 { "running" } else { "stopped" },
                );
                s.set_u64("pid", 1000 + i as u64);
                s.set_u64("start_time", 5000 + i as u64);
                s.set_str("exit_reason", "signal");
                s.set_u64("b_seq", i as u64);
            }
        };
        if unlocked {
            // the negative control: the same read-modify-write without the lock
            let mut st = state::load(home).unwrap().unwrap_or_default();
            f(&mut st);
            let path = home.join(state::FILE);
            hermes_s6::fsutil::write_atomic(&path, st.to_json().as_bytes(), 0o644).unwrap();
        } else {
            state::update(home, f).unwrap();
        }
    }
    println!("switches={}", switches);
}

fn switches(o: &Out) -> usize {
    o.stdout
        .lines()
        .find_map(|l| l.split("switches=").nth(1))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn two_writers_lose_nothing() {
    if in_child() {
        return;
    }
    let rounds = count(1, 5);
    let n = 500;
    for round in 0..rounds {
        let d = TempDir::new("conc");
        let home = d.0.clone();
        fs::write(home.join(state::FILE), FOREIGN).unwrap();
        let (a, b) = run_pair(&home, n, false);

        let text = fs::read_to_string(home.join(state::FILE)).unwrap();
        let st = State::parse(&text).unwrap();
        assert_eq!(
            st.get_u64("n"),
            Some(2 * n as u64),
            "lost updates: {}",
            text
        );
        assert_eq!(st.get_u64("a_seq"), Some(n as u64 - 1));
        assert_eq!(st.get_u64("b_seq"), Some(n as u64 - 1));
        // the last operation on each key wins
        assert_eq!(st.desired_state(), Some(desired_for(n - 1)));
        assert_eq!(st.pid(), Some(1000 + n as u32 - 1));
        assert_eq!(st.start_time(), Some(5000 + n as u64 - 1));
        assert_eq!(
            st.gateway_state(),
            Some(if (n - 1) % 3 == 0 {
                "running"
            } else {
                "stopped"
            })
        );
        assert!(st.updated_at().is_some());
        // the gateway's keys survive, in order, values untouched (duplicates included; string
        // escapes may be re-spelled as UTF-8, numbers keep their text)
        let before = hermes_s6::json::parse(FOREIGN).unwrap();
        let after = hermes_s6::json::parse(&text).unwrap();
        let (before, after) = (before.as_object().unwrap(), after.as_object().unwrap());
        assert_eq!(
            &after[..before.len()],
            before,
            "foreign keys changed:\n{}",
            text
        );
        assert!(temps(&home).is_empty(), "{:?}", temps(&home));
        let sw = switches(&a) + switches(&b);
        eprintln!(
            "concurrency round {}: 2 x {} updates, {} writer switches",
            round, n, sw
        );
        assert!(sw > 0, "the two writers never interleaved");
    }
}

/// Run writers a and b (N updates each) on `home`, started together.
fn run_pair(home: &Path, n: usize, unlocked: bool) -> (Out, Out) {
    let n_s = n.to_string();
    let spawn = |role: &str| {
        let mut env: Vec<(&str, &OsStr)> = vec![
            ("ROBUST_HOME", home.as_os_str()),
            ("ROBUST_ROLE", OsStr::new(role)),
            ("ROBUST_N", OsStr::new(&n_s)),
        ];
        if unlocked {
            env.push(("ROBUST_UNLOCKED", OsStr::new("1")));
        }
        let mut c = self_test("writer_child", &[], &env);
        std::thread::spawn(move || run_bounded(&mut c, Duration::from_secs(120)))
    };
    let a = spawn("a");
    let b = spawn("b");
    assert!(poll(Duration::from_secs(20), || {
        home.join("ready-a").exists() && home.join("ready-b").exists()
    }));
    fs::write(home.join("go"), "").unwrap();
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert_child_passed(&a, "writer a");
    assert_child_passed(&b, "writer b");
    (a, b)
}

/// The check above can fail: the same writers without the lock do lose updates.
#[test]
fn unlocked_writers_lose_updates_so_the_check_is_real() {
    if in_child() {
        return;
    }
    let d = TempDir::new("conc-unlocked");
    fs::write(d.path(state::FILE), FOREIGN).unwrap();
    let n = 500;
    let (a, b) = run_pair(&d.0, n, true);
    let st = State::parse(&fs::read_to_string(d.path(state::FILE)).unwrap()).unwrap();
    let got = st.get_u64("n").unwrap();
    eprintln!(
        "unlocked control: n = {} of {} ({} switches)",
        got,
        2 * n,
        switches(&a) + switches(&b)
    );
    assert!(
        got < 2 * n as u64,
        "no update lost without the lock: the test cannot see losses"
    );
}

/// Is `pid` waiting for a flock right now? The wait is bounded: flock(2)
/// with LOCK_NB (x86_64 syscall 73) between short sleeps (nanosleep 35,
/// clock_nanosleep 230), read from /proc/PID/syscall; hermes-s6 sleeps
/// nowhere else before a lock.
fn in_flock(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{}/syscall", pid))
        .is_ok_and(|s| matches!(s.split_whitespace().next(), Some("73" | "35" | "230")))
}

/// A failed `stop` rolls back only its own change: another hermes-s6 writer's update that
/// landed while the stop waited for the state lock survives the rollback.
///
/// Deterministic: this test holds `.gateway_state.lock`, so the stop (refused by a
/// supervisor that does not listen) parks in flock(2) after reading the file; the test then
/// writes another key, as a concurrent hermes-s6 would under the lock, and lets go.
#[test]
fn failed_stop_keeps_a_concurrent_update() {
    if in_child() || !cfg!(target_arch = "x86_64") {
        return;
    }
    let d = TempDir::new("conc-rollback");
    let home = d.path("home");
    let scan = d.path("scan");
    let slot = scan.join("gateway-default");
    fs::create_dir_all(slot.join("data")).unwrap();
    let gw = Proc::sleeper();
    let _sup = FakeSupervise::new(&slot, gw.pid() as u64, false);
    fs::create_dir(&home).unwrap();
    fs::write(home.join(state::FILE), "{\"desired_state\":\"running\"}\n").unwrap();
    let lock = hermes_s6::fsutil::lock_exclusive(&home.join(state::LOCK_FILE)).unwrap();
    let mut child = hermes(&home, &scan)
        .args(["stop", "default"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let parked = poll(Duration::from_secs(5), || in_flock(child.id()));
    // the other writer's update, under the lock
    let mut st = state::load(&home).unwrap().unwrap();
    st.set_str("other_writer", "kept");
    hermes_s6::fsutil::write_atomic(&home.join(state::FILE), st.to_json().as_bytes(), 0o644)
        .unwrap();
    drop(lock);
    let (status, timed_out) = wait_bounded(&mut child, Duration::from_secs(10));
    assert!(parked, "stop never waited for the lock");
    assert!(
        !timed_out && status.and_then(|s| s.code()) == Some(1),
        "{:?}",
        status
    );
    let st = state::load(&home).unwrap().unwrap();
    assert_eq!(st.desired_state(), Some("running"), "not rolled back");
    assert_eq!(
        st.get_str("other_writer"),
        Some("kept"),
        "the rollback lost another writer's update: {}",
        st.to_json()
    );
}

/// The other order: another writer's update lands after the failed stop wrote `stopped` and
/// before it rolls back. The rollback then puts back only `desired_state`.
/// This test takes the lock as soon as the stop has released it with `stopped` written (the
/// stop still has its marker and s6 to do); when the stop wins that race instead, the round
/// is repeated (at most 20 times).
#[test]
fn failed_stop_rollback_after_a_concurrent_update() {
    use std::os::unix::io::AsRawFd;
    if in_child() {
        return;
    }
    let d = TempDir::new("conc-rollback2");
    let home = d.path("home");
    let scan = d.path("scan");
    let slot = scan.join("gateway-default");
    fs::create_dir_all(slot.join("data")).unwrap();
    fs::create_dir(&home).unwrap();
    let gw = Proc::sleeper();
    let _sup = FakeSupervise::new(&slot, gw.pid() as u64, false);
    let lock_path = home.join(state::LOCK_FILE);
    fs::write(&lock_path, "").unwrap();
    for round in 0..20 {
        fs::write(home.join(state::FILE), "{\"desired_state\":\"running\"}\n").unwrap();
        let mut child = Proc::spawn(hermes(&home, &scan).args(["stop", "default"]));
        let f = fs::File::open(&lock_path).unwrap();
        let mut caught = false;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            // SAFETY: flock on our own descriptor.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                let st = state::load(&home).unwrap().unwrap();
                if st.desired_state() == Some("stopped") {
                    let mut st = st;
                    st.set_str("other_writer", "kept");
                    let path = home.join(state::FILE);
                    hermes_s6::fsutil::write_atomic(&path, st.to_json().as_bytes(), 0o644).unwrap();
                    caught = true;
                }
                unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
                if caught {
                    break;
                }
            }
            if let Ok(Some(_)) = child.0.try_wait() {
                break;
            }
        }
        let (status, timed_out) = wait_bounded(&mut child.0, Duration::from_secs(10));
        assert!(
            !timed_out && status.and_then(|s| s.code()) == Some(1),
            "{:?}",
            status
        );
        if !caught {
            continue;
        }
        let st = state::load(&home).unwrap().unwrap();
        assert_eq!(st.desired_state(), Some("running"), "not rolled back");
        assert_eq!(st.get_str("other_writer"), Some("kept"), "{}", st.to_json());
        eprintln!("caught the window in round {}", round);
        return;
    }
    eprintln!("the stop always won the race: nothing checked");
}

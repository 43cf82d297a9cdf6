//! SPEC §7 readiness on real s6: a gateway that reports readiness by writing
//! `gateway_state=running` with its own pid (the hermes gateway; here the
//! stand-in's `state-ready` mode, with `HERMES_GATEWAY_READY=state`) is
//! `starting` until then, ready in s6's eyes (notification-fd) at that moment,
//! and the crash-loop rule counts its startup failures, not its run times.

mod common;

use common::{have_s6, Scandir};
use std::time::{Duration, Instant};

fn with_gateway(tag: &str, mode: &str) -> Scandir {
    let mut f = Scandir::started(tag);
    f.profile("coder");
    f.set_gateway(mode);
    f.set_env("HERMES_GATEWAY_READY", "state");
    f
}

fn svstat_ready(f: &Scandir) -> String {
    let o = std::process::Command::new("s6-svstat")
        .args(["-o", "up,ready"])
        .arg(f.slot("coder"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn start_wait_returns_when_the_gateway_itself_says_running() {
    if !have_s6() {
        return;
    }
    let f = with_gateway("ready-wait", "state-ready 1");
    f.hs(&["register", "coder"]).ok();
    let t0 = Instant::now();
    f.hs(&["start", "coder", "--wait", "--timeout", "10000"])
        .ok();
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "returned before the gateway wrote running: {:?}",
        t0.elapsed()
    );
    let line = f.status_line("coder");
    assert!(line.contains(" health=ready "), "{}", line);
    let pid = f.state_u64("coder", "pid").unwrap();
    assert!(line.contains(&format!(" pid={} ", pid)), "{}", line);
    assert_eq!(
        f.state_str("coder", "gateway_state").as_deref(),
        Some("running")
    );
    assert_eq!(svstat_ready(&f), "true true", "s6's ready flag agrees");
}

#[test]
fn until_it_says_running_it_is_starting_and_wait_times_out() {
    if !have_s6() {
        return;
    }
    let f = with_gateway("ready-never", "plain");
    f.hs(&["register", "coder"]).ok();
    let o = f
        .hs(&["start", "coder", "--wait", "--timeout", "1500"])
        .code(1);
    assert!(o.stderr.contains("timed out"), "{:?}", o);
    let line = f.status_line("coder");
    assert!(
        line.contains(" s6=up ") && line.contains(" health=starting "),
        "{}",
        line
    );
    assert!(
        line.contains(" gateway_state=starting "),
        "run's own record: {}",
        line
    );
    assert_eq!(svstat_ready(&f), "true false");
}

#[test]
fn five_startup_failures_in_a_row_park_it_never_shown_running() {
    if !have_s6() {
        return;
    }
    let f = with_gateway("ready-fail", "exit 1");
    f.hs(&["start", "coder"]).ok();
    let mut seen = Vec::new();
    let parked = f.wait_for(Duration::from_secs(20), || {
        let l = f.status_line("coder");
        if l.contains(" health=ready ") || l.contains(" gateway_state=running ") {
            seen.push(l.clone());
        }
        l.contains(" gateway_state=startup_failed ")
    });
    assert!(parked, "{}", f.status_line("coder"));
    assert!(seen.is_empty(), "shown running while failing: {:?}", seen);
    assert_eq!(
        f.state_str("coder", "exit_reason").as_deref(),
        Some("crash_loop")
    );
    assert_eq!(f.gw_pids("coder").len(), 5);
    // finish wrote startup_failed, then exits 125: s6 stops wanting it up
    f.wait_s6("coder", "parked (want down)", |s| !s.wantedup && !s.up);
}

#[test]
fn a_gateway_that_became_ready_is_never_parked_for_dying() {
    if !have_s6() {
        return;
    }
    // ready after 0.1 s, then exit 1: a crash of a working gateway, each time
    let f = with_gateway("ready-crash", "state-ready 0.1 1");
    f.hs(&["start", "coder"]).ok();
    assert!(
        f.wait_for(Duration::from_secs(20), || f.gw_pids("coder").len() >= 7),
        "{}",
        f.status_line("coder")
    );
    assert_ne!(
        f.state_str("coder", "gateway_state").as_deref(),
        Some("startup_failed")
    );
    assert!(f.s6("coder").unwrap().wantedup, "s6 still wants it up");
}

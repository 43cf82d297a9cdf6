//! SPEC §3.3, "what a death means": each row driven through a real s6-supervise (the
//! gateway really dies that way and s6 really obeys finish's exit), plus the marker rules
//! checked on `hermes-s6 finish` directly.

mod common;

use common::{have_s6, Scandir};
use std::fs;
use std::time::Duration;

fn with_gateway(tag: &str, mode: &str) -> Scandir {
    let mut f = Scandir::started(tag);
    f.profile("coder");
    f.set_gateway(mode);
    f
}

#[test]
fn exit_78_parks_as_startup_failed() {
    if !have_s6() {
        return;
    }
    let f = with_gateway("exit78", "exit 78");
    f.hs(&["start", "coder"]).ok();
    f.wait_state("coder", "gateway_state", "startup_failed");
    let s = f.wait_down("coder");
    assert_eq!(s.exitcode, 78, "{:?}", s);
    assert!(
        !s.wantedup,
        "finish 125 must leave s6 wanting it down: {:?}",
        s
    );
    assert_eq!(
        f.state_str("coder", "exit_reason").as_deref(),
        Some("fatal_config")
    );
    // Parked: no respawn, the operator's intent untouched.
    assert_eq!(
        f.state_str("coder", "desired_state").as_deref(),
        Some("running")
    );
    assert!(!f.wait_for(Duration::from_millis(1500), || f.gw_pids("coder").len() > 1));
    assert_eq!(f.gw_pids("coder").len(), 1);
    let line = f.status_line("coder");
    assert!(line.contains(" s6=down "), "{}", line);
    assert!(line.contains(" last_exit=exitcode:78 "), "{}", line);
}

#[test]
fn exit_0_without_marker_parks_as_stopped() {
    if !have_s6() {
        return;
    }
    let f = with_gateway("exit0", "exit 0");
    f.hs(&["start", "coder"]).ok();
    f.wait_state("coder", "gateway_state", "stopped");
    let s = f.wait_down("coder");
    assert!(!s.wantedup && s.exitcode == 0, "{:?}", s);
    assert_eq!(
        f.state_str("coder", "exit_reason").as_deref(),
        Some("clean_exit")
    );
    // desired_state is untouched: the next boot starts it again.
    assert_eq!(
        f.state_str("coder", "desired_state").as_deref(),
        Some("running")
    );
    assert!(!f.wait_for(Duration::from_millis(1500), || f.gw_pids("coder").len() > 1));
    let o = f.hs(&["reconcile", "--dry-run"]).ok();
    assert!(o
        .stdout
        .contains("profile=coder prior_state=running action=started"));
}

#[test]
fn exit_0_respawns_under_clean_exit_restart() {
    if !have_s6() {
        return;
    }
    let mut f = Scandir::new("exit0-restart");
    f.svscan_env
        .push(("HERMES_GATEWAY_CLEAN_EXIT".into(), "restart".into()));
    f.start_svscan();
    f.profile("coder");
    f.set_gateway("exit 0");
    f.hs(&["start", "coder"]).ok();
    f.wait("a second run after a clean exit", || {
        f.gw_pids("coder").len() >= 2
    });
    // …and a gateway that does nothing but exit 0 is still caught as a crash loop.
    f.wait_state("coder", "exit_reason", "crash_loop");
    assert_eq!(
        f.state_str("coder", "gateway_state").as_deref(),
        Some("startup_failed")
    );
}

#[test]
fn five_quick_deaths_park_as_crash_loop() {
    if !have_s6() {
        return;
    }
    let f = with_gateway("crashloop", "exit 3");
    f.hs(&["start", "coder"]).ok();
    f.wait_state("coder", "exit_reason", "crash_loop");
    let s = f.wait_down("coder");
    assert!(!s.wantedup && s.exitcode == 3, "{:?}", s);
    assert_eq!(
        f.state_str("coder", "gateway_state").as_deref(),
        Some("startup_failed")
    );
    assert_eq!(f.gw_pids("coder").len(), 5, "exactly 5 runs before parking");
    assert!(!f.wait_for(Duration::from_millis(1500), || f.gw_pids("coder").len() > 5));
    // `start` clears the count: a 7th run proves it (uncleared, the 6th death would park).
    f.hs(&["start", "coder"]).ok();
    f.wait("two more runs after start", || {
        f.gw_pids("coder").len() >= 7
    });
    f.hs(&["stop", "coder", "--wait"]).ok();
    f.wait_down("coder");
}

#[test]
fn exit_75_respawns_as_a_gateway_requested_restart() {
    if !have_s6() {
        return;
    }
    let f = with_gateway("exit75", "exit 75");
    f.hs(&["start", "coder"]).ok();
    f.wait("a respawn after exit 75", || f.gw_pids("coder").len() >= 2);
    // Between runs finish persisted `stopped`/`restart_requested`; five in a row loop.
    f.wait_state("coder", "exit_reason", "crash_loop");
    assert_eq!(f.gw_pids("coder").len(), 5);
}

#[test]
fn crash_of_a_long_lived_gateway_respawns_as_running() {
    if !have_s6() {
        return;
    }
    let f = with_gateway("crash", "plain");
    f.hs(&["start", "coder"]).ok();
    let pid = f.wait_gateway("coder", 0);
    // SIGKILL: an OOM kill. finish sees 256 and no marker.
    // SAFETY: kill(2) of the gateway our own s6 tree started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let pid2 = f.wait_gateway("coder", pid);
    assert_ne!(pid, pid2);
    assert_eq!(
        f.state_str("coder", "gateway_state").as_deref(),
        Some("running")
    );
    assert!(f.s6("coder").unwrap().wantedup);
}

// ---- `hermes-s6 finish` on its own: the marker rules --------------------------------

const PID: u32 = 4242;
const START: u64 = 777;

fn finish_fixture(tag: &str) -> Scandir {
    let f = Scandir::new(tag);
    f.profile("coder");
    f.write_state(
        "coder",
        &format!(
            r#"{{"desired_state":"running","gateway_state":"running","pid":{},"start_time":{},"other":[1,2]}}"#,
            PID, START
        ),
    );
    f
}

fn marker(f: &Scandir, pid: u32, start: u64, age_secs: i64, action: Option<&str>) {
    let now = hermes_s6::clock::now_secs();
    let m = hermes_s6::marker::Marker {
        target_pid: pid,
        target_start_time: Some(start),
        stopper_pid: 1,
        written_at: now - age_secs,
        action: action.map(str::to_string),
        origin: None,
    };
    fs::write(f.marker("coder"), m.to_json()).unwrap();
}

fn finish(f: &Scandir, code: &str, sig: &str) -> (i32, String, String) {
    let o = f.hs(&["finish", "coder", code, sig]);
    assert!(o.code == 0 || o.code == 125, "{:?}", o);
    // a park is said, as a warning (s6 will not bring it back by itself)
    assert_eq!(
        o.stderr
            .contains("hermes-s6: warning: profile 'coder': gateway parked ("),
        o.code == 125,
        "{:?}",
        o
    );
    assert!(
        !f.marker("coder").exists(),
        "finish must always delete the marker"
    );
    let st = f.state("coder").unwrap();
    assert!(st.get("other").is_some(), "foreign key lost");
    (
        o.code,
        st.get("gateway_state")
            .unwrap()
            .as_str()
            .unwrap()
            .to_string(),
        st.get("exit_reason").unwrap().as_str().unwrap().to_string(),
    )
}

#[test]
fn finish_honours_a_matching_marker_as_operator_stop() {
    let f = finish_fixture("finish-marker");
    marker(&f, PID, START, 1, None);
    // (no supervisor here, so s6 is not known to want it down; the intent is
    // running: a start came after the stop, the gateway comes back)
    assert_eq!(
        finish(&f, "256", "15"),
        (0, "stopped".into(), "operator_stop".into())
    );
    marker(&f, PID, START, 1, Some("restart"));
    assert_eq!(
        finish(&f, "256", "15"),
        (0, "stopped".into(), "operator_restart".into())
    );
    // s6 ≥ 2.13 passes the service name and pgid too.
    marker(&f, PID, START, 1, None);
    let o = f
        .hs(&["finish", "coder", "0", "0", "gateway-coder", "4242"])
        .ok();
    assert_eq!(o.stderr, "");
    assert_eq!(
        f.state_str("coder", "exit_reason").as_deref(),
        Some("operator_stop")
    );
    // A stop s6 has not heard of (asked from another container, which saved
    // the intent `stopped`): parked, never respawned — told to s6 as a `d`
    // where a supervisor listens; here none does, so exit 125 parks it.
    f.write_state(
        "coder",
        &format!(
            r#"{{"desired_state":"stopped","gateway_state":"running","pid":{},"start_time":{},"other":[1,2]}}"#,
            PID, START
        ),
    );
    marker(&f, PID, START, 1, None);
    assert_eq!(
        finish(&f, "256", "15"),
        (125, "stopped".into(), "operator_stop".into())
    );
}

#[test]
fn finish_ignores_and_deletes_stale_or_foreign_markers() {
    let f = finish_fixture("finish-stale");
    marker(&f, PID, START, 61, None);
    assert_eq!(
        finish(&f, "256", "15"),
        (0, "running".into(), "signal".into())
    );
    marker(&f, PID + 1, START, 1, None);
    assert_eq!(
        finish(&f, "256", "15"),
        (0, "running".into(), "signal".into())
    );
    marker(&f, PID, START + 1, 1, None);
    assert_eq!(finish(&f, "1", "0"), (0, "running".into(), "crash".into()));
    fs::write(f.marker("coder"), "{not json").unwrap();
    assert_eq!(
        finish(&f, "256", "9"),
        (0, "running".into(), "signal".into())
    );
}

#[test]
fn finish_without_marker_follows_the_exit_code() {
    let f = finish_fixture("finish-codes");
    assert_eq!(
        finish(&f, "78", "0"),
        (125, "startup_failed".into(), "fatal_config".into())
    );
    assert_eq!(
        finish(&f, "0", "0"),
        (125, "stopped".into(), "clean_exit".into())
    );
    assert_eq!(
        finish(&f, "75", "0"),
        (0, "stopped".into(), "restart_requested".into())
    );
    assert_eq!(
        f.state_str("coder", "desired_state").as_deref(),
        Some("running"),
        "finish never writes desired_state"
    );
}

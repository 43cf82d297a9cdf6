//! Compatibility layout (SPEC §4): a root-owned scandir watched by root's s6-svscan, where the
//! hermes user (uid 10000 here, through setpriv) registers and controls its gateways. The
//! slot must pre-create `supervise/`, its `control` FIFO and `event/` as that user, or root's
//! s6-supervise would make them root-only.

mod common;

use common::{alive, have_s6, Scandir};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

const UID: u32 = 10000;

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

fn chown_r(p: &Path, uid: u32, gid: u32) {
    chown(p, uid, gid);
    if fs::symlink_metadata(p).unwrap().is_dir() {
        for e in fs::read_dir(p).unwrap().flatten() {
            chown_r(&e.path(), uid, gid);
        }
    }
}

/// Real, effective, saved and filesystem uid of a process.
fn uids(pid: i64) -> Vec<String> {
    let st = fs::read_to_string(format!("/proc/{}/status", pid)).unwrap();
    let line = st.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect()
}

fn mode(p: &Path) -> (u32, u32, u32) {
    let m = fs::symlink_metadata(p).unwrap();
    (m.mode() & 0o7777, m.uid(), m.gid())
}

#[test]
fn unprivileged_user_drives_gateways_under_roots_scanner() {
    if !have_s6() {
        return;
    }
    let mut f = Scandir::new("compat");
    f.set_env("HERMES_S6_USER", &format!("{}:{}", UID, UID));
    // the account root's slots drop to: the container's, root-owned
    f.svscan_env = vec![("HERMES_S6_USER".into(), format!("{}:{}", UID, UID))];
    f.profile("coder");
    chown_r(&f.home, UID, UID);
    // A scandir root owns, open to the hermes user (sticky: it cannot touch others' entries).
    fs::set_permissions(&f.scandir, fs::Permissions::from_mode(0o1777)).unwrap();
    f.start_svscan();
    // What init-scandir does for /run/service: the scanner's control FIFO opened to the group.
    let ctl = f.scandir.join(".s6-svscan");
    chown(&ctl, 0, UID);
    fs::set_permissions(&ctl, fs::Permissions::from_mode(0o710)).unwrap();
    chown(&ctl.join("control"), 0, UID);
    fs::set_permissions(ctl.join("control"), fs::Permissions::from_mode(0o660)).unwrap();

    f.hs_as_10000(&["register", "coder"]).ok();
    let slot = f.slot("coder");
    assert_eq!(fs::metadata(&slot).unwrap().uid(), UID);
    f.wait_s6("coder", "supervised by root's s6-supervise", |s| !s.up);
    // s6-supervise (root) reused the pre-created files as they were.
    for base in [slot.clone(), slot.join("log")] {
        assert_eq!(
            mode(&base.join("supervise")),
            (0o755, UID, UID),
            "{:?}",
            base
        );
        let c = base.join("supervise/control");
        assert!(fs::symlink_metadata(&c).unwrap().file_type().is_fifo());
        assert_eq!(mode(&c), (0o660, UID, UID), "{:?}", c);
        assert_eq!(mode(&base.join("event")), (0o3730, UID, UID), "{:?}", base);
    }
    let lock = fs::metadata(slot.join("supervise/lock")).unwrap();
    assert_eq!(lock.uid(), 0, "the supervisor is root's");

    f.hs_as_10000(&["start", "coder", "--wait"]).ok();
    let pid = f.wait_gateway("coder", 0);
    let o = f.hs_as_10000(&["pid", "coder"]).ok();
    assert_eq!(o.stdout.trim(), pid.to_string());
    // The gateway runs as the hermes user, not as root.
    assert_eq!(uids(pid), vec!["10000"; 4]);
    let o = f.hs_as_10000(&["status", "coder"]).ok();
    assert!(
        o.stdout.contains(&format!(" s6=up pid={} ", pid)),
        "{:?}",
        o
    );

    f.hs_as_10000(&["stop", "coder", "--wait"]).ok();
    f.wait_down("coder");
    assert!(!alive(pid));
    assert_eq!(
        f.state_str("coder", "desired_state").as_deref(),
        Some("stopped")
    );
    assert_eq!(
        f.state_str("coder", "exit_reason").as_deref(),
        Some("operator_stop")
    );
    let state = f.home_of("coder").join("gateway_state.json");
    assert_eq!(fs::metadata(&state).unwrap().uid(), UID);

    f.hs_as_10000(&["restart", "coder", "--wait"]).ok();
    let pid2 = f.wait_gateway("coder", pid);

    f.hs_as_10000(&["unregister", "coder"]).ok();
    assert!(!slot.exists());
    assert!(!alive(pid2));
    let svscan = f.svscan_pid().unwrap();
    let left: Vec<i32> = common::procs_with_cwd_under(&f.scandir)
        .into_iter()
        .filter(|&p| p != svscan)
        .collect();
    assert!(left.is_empty(), "supervisors left: {:?}", left);

    // The hermes user's own HERMES_S6_USER never reaches root's slot: the
    // account comes from the container environment only.
    f.profile("evil");
    chown_r(&f.home_of("evil"), UID, UID);
    f.set_env("HERMES_S6_USER", "0:0");
    f.hs_as_10000(&["register", "evil", "--start"]).ok();
    let env = fs::read_to_string(f.slot("evil").join("data/env")).unwrap();
    assert!(!env.contains("HERMES_S6_USER"), "{}", env);
    let pid = f.wait_gateway("evil", 0);
    assert_eq!(
        uids(pid),
        vec!["10000"; 4],
        "root ran the gateway as the account the hermes user asked for"
    );
    f.hs_as_10000(&["unregister", "evil"]).ok();
}

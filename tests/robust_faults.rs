//! Faults while writing a profile's files: a full disk, no free inode, a read-only home, a
//! home the hermes user cannot write, a planned-stop marker for a pid whose /proc entry is
//! gone, and s6 refusing. Each time the real binary must exit 111 (1 for s6's refusal) naming
//! the file, leave `gateway_state.json` byte-identical, and leave no temp file behind.
//!
//! Disk and read-only faults need a private mount namespace: the test re-runs itself
//! (`fault_child`) under `unshare -m`, and that child mounts a small tmpfs or a read-only bind.
//! The mounts die with the namespace whatever happens; the parent checks none leaked.
//! The unwritable-home cases run the binary as uid 10000 (the hermes user's default uid).

mod robust_util;

use hermes_s6::{marker, state};
use robust_util::*;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What the gateway left in its state file (~12 KiB, so it needs several tmpfs pages).
fn old_doc() -> String {
    format!(
        "{{\"kind\":\"hermes-gateway\",\"desired_state\":\"running\",\"gateway_state\":\"running\",\"pad\":\"{}\"}}\n",
        "p".repeat(12 << 10)
    )
}

/// A profile home with the old state (and optionally the lock file) in place.
struct Home {
    home: PathBuf,
    before: Vec<u8>,
    names: Vec<String>,
}

impl Home {
    fn new(home: &Path, with_lock: bool) -> Home {
        fs::create_dir_all(home).unwrap();
        fs::write(home.join(state::FILE), old_doc()).unwrap();
        if with_lock {
            fs::write(home.join(state::LOCK_FILE), "").unwrap();
        }
        Home {
            home: home.to_path_buf(),
            before: fs::read(home.join(state::FILE)).unwrap(),
            names: names(home),
        }
    }

    /// The command failed with `code` naming `path`, and changed nothing.
    fn assert_untouched(&self, o: &Out, code: i32, path: &Path) {
        assert!(o.is(code), "want exit {}: {:?}", code, o);
        let p = path.to_string_lossy();
        assert!(
            o.stderr.contains("hermes-s6: fatal: ") && o.stderr.contains(&*p),
            "stderr must name {}: {}",
            p,
            o.stderr
        );
        let now = fs::read(self.home.join(state::FILE)).unwrap();
        assert!(
            now == self.before,
            "state changed:\n{:.300}",
            String::from_utf8_lossy(&now)
        );
        let mut allowed = self.names.clone();
        // the lock file is the only thing a failed write may create
        if !allowed.iter().any(|n| n == state::LOCK_FILE) {
            allowed.push(state::LOCK_FILE.to_string());
            allowed.sort();
        }
        let left = names(&self.home);
        assert!(
            left.iter().all(|n| allowed.contains(n)),
            "left behind: {:?} (before: {:?})",
            left,
            self.names
        );
        assert!(temps(&self.home).is_empty(), "{:?}", temps(&self.home));
    }
}

/// Run `scenario` in `fault_child` under `unshare -m`, then check that no mount leaked.
fn in_namespace(scenario: &str) {
    if !can_unshare() {
        eprintln!("{}: needs root and unshare: skipped", scenario);
        return;
    }
    let d = TempDir::new("fault-ns");
    let env: [(&str, &OsStr); 2] = [
        ("ROBUST_DIR", d.0.as_os_str()),
        ("ROBUST_SCENARIO", OsStr::new(scenario)),
    ];
    let o = run_bounded(
        &mut self_test(
            "fault_child",
            &["unshare", "-m", "--propagation", "private"],
            &env,
        ),
        std::time::Duration::from_secs(60),
    );
    assert_child_passed(&o, scenario);
    assert!(!mounted_under(&d.0), "a mount leaked under {:?}", d.0);
}

/// The namespace side of `in_namespace` (a no-op in a normal run).
#[test]
fn fault_child() {
    if !in_child() {
        return;
    }
    let dir = PathBuf::from(std::env::var_os("ROBUST_DIR").unwrap());
    let scenario = std::env::var("ROBUST_SCENARIO").unwrap();
    let mnt = dir.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let scan = dir.join("scan");
    fs::create_dir(&scan).unwrap();
    for with_lock in [false, true] {
        let home = mnt.join(format!("home-{}", with_lock));
        match scenario.as_str() {
            "full_disk" => {
                let sub = mnt.join(format!("f-{}", with_lock));
                fs::create_dir(&sub).unwrap();
                mount_tmpfs(&sub, "size=64k,mode=0755");
                let home = sub.join("home");
                let h = Home::new(&home, with_lock);
                fill(&home.join("filler"));
                let h = Home {
                    names: names(&home),
                    ..h
                };
                let o = hermes_run(&home, &scan, &["stop", "default"]);
                assert!(o.stderr.contains("No space left on device"), "{}", o.stderr);
                h.assert_untouched(&o, 111, &home.join(state::FILE));
            }
            "no_inodes" => {
                let sub = mnt.join(format!("i-{}", with_lock));
                fs::create_dir(&sub).unwrap();
                // root dir + home + state file (+ lock): nothing more can be created
                let inodes = if with_lock { 4 } else { 3 };
                mount_tmpfs(&sub, &format!("size=1m,nr_inodes={},mode=0755", inodes));
                let home = sub.join("home");
                let h = Home::new(&home, with_lock);
                let o = hermes_run(&home, &scan, &["stop", "default"]);
                let culprit = if with_lock {
                    state::FILE
                } else {
                    state::LOCK_FILE
                };
                h.assert_untouched(&o, 111, &home.join(culprit));
            }
            "read_only" => {
                let h = Home::new(&home, with_lock);
                bind_readonly(&home);
                let o = hermes_run(&home, &scan, &["stop", "default"]);
                assert!(o.stderr.contains("Read-only file system"), "{}", o.stderr);
                h.assert_untouched(&o, 111, &home);
                // `run` must still exec the gateway (a warning only)
                let o = hermes_run(&home, &scan, &["run", "default", "--", "/bin/true"]);
                assert!(
                    o.is(0) && o.stderr.contains("run-intent not recorded"),
                    "{:?}",
                    o
                );
                h.assert_untouched_quietly();
            }
            s => panic!("unknown scenario {}", s),
        }
    }
}

impl Home {
    fn assert_untouched_quietly(&self) {
        let now = fs::read(self.home.join(state::FILE)).unwrap();
        assert!(
            now == self.before,
            "state changed:\n{:.300}",
            String::from_utf8_lossy(&now)
        );
        assert!(temps(&self.home).is_empty(), "{:?}", temps(&self.home));
    }
}

/// Fill the filesystem holding `path` until ENOSPC.
fn fill(path: &Path) {
    let mut f = fs::File::create(path).unwrap();
    let block = [0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

#[test]
fn full_disk_is_111_and_changes_nothing() {
    if in_child() {
        return;
    }
    in_namespace("full_disk");
}

#[test]
fn no_free_inode_is_111_and_changes_nothing() {
    if in_child() {
        return;
    }
    in_namespace("no_inodes");
}

#[test]
fn read_only_home_is_111_and_changes_nothing() {
    if in_child() {
        return;
    }
    in_namespace("read_only");
}

/// A home the hermes user (uid 10000) cannot write: root-owned 0755, or its own but 0555.
#[test]
fn unwritable_home_is_111_and_changes_nothing() {
    if in_child() {
        return;
    }
    if !is_root() {
        eprintln!("needs root to run as uid 10000: skipped");
        return;
    }
    let d = TempDir::new("fault-perm");
    chmod(&d.0, 0o755);
    let scan = d.path("scan");
    fs::create_dir(&scan).unwrap();
    for (owner, mode) in [(0, 0o755), (10000, 0o555)] {
        for with_lock in [false, true] {
            let home = d.path(&format!("home-{}-{}", owner, with_lock));
            let h = Home::new(&home, with_lock);
            chown(&home, owner, owner);
            chown(&home.join(state::FILE), owner, owner);
            chmod(&home, mode);
            for args in [&["stop", "default"][..], &["start", "default"][..]] {
                let o = run_bounded(
                    as_user(hermes(&home, &scan).args(args), 10000),
                    std::time::Duration::from_secs(5),
                );
                assert!(o.stderr.contains("Permission denied"), "{:?}", o);
                h.assert_untouched(&o, 111, &home);
            }
            chmod(&home, 0o755);
        }
    }
}

/// stop/restart of a gateway whose pid has no /proc entry any more (it died between
/// s6's status and the marker): the marker cannot be written, which is a warning naming
/// /proc/PID/stat; the command goes on (the gateway is gone anyway), no marker, no temp.
#[test]
fn marker_for_a_dead_pid_is_a_warning_naming_proc() {
    if in_child() {
        return;
    }
    let d = TempDir::new("fault-deadpid");
    let scan = d.path("scan");
    let slot = scan.join("gateway-default");
    let pid = dead_pid();
    fs::create_dir_all(slot.join("data")).unwrap();
    let _sup = FakeSupervise::new(&slot, pid as u64, true);
    for (cmd, want) in [("stop", "stopped"), ("restart", "running")] {
        let home = d.path(&format!("home-{}", cmd));
        Home::new(&home, false);
        let o = hermes_run(&home, &scan, &[cmd, "default"]);
        assert!(o.is(0), "{}: {:?}", cmd, o);
        let proc_stat = format!("/proc/{}/stat", pid);
        assert!(
            o.stderr.contains("warning") && o.stderr.contains(&proc_stat),
            "{}",
            o.stderr
        );
        let st = state::load(&home).unwrap().unwrap();
        assert_eq!(st.desired_state(), Some(want));
        assert_eq!(st.get_str("kind"), Some("hermes-gateway"));
        assert!(fs::symlink_metadata(home.join(marker::FILE)).is_err());
        assert!(fs::symlink_metadata(slot.join("data").join(marker::FILE)).is_err());
        assert!(temps(&home).is_empty() && temps(&slot.join("data")).is_empty());
    }
}

/// s6 refuses (a registered slot nobody supervises): exit 1, nothing changed.
#[test]
fn s6_refusal_is_1_and_changes_nothing() {
    if in_child() {
        return;
    }
    let d = TempDir::new("fault-refused");
    let scan = d.path("scan");
    let slot = scan.join("gateway-default");
    fs::create_dir_all(&slot).unwrap();
    for (cmd, with_state) in [("stop", true), ("stop", false)] {
        let home = d.path(&format!("home-{}-{}", cmd, with_state));
        let h = if with_state {
            Home::new(&home, false)
        } else {
            fs::create_dir_all(&home).unwrap();
            Home {
                home: home.clone(),
                before: Vec::new(),
                names: Vec::new(),
            }
        };
        let o = hermes_run(&home, &scan, &[cmd, "default"]);
        assert!(o.is(1), "{:?}", o);
        assert!(o.stderr.contains(&*slot.to_string_lossy()), "{}", o.stderr);
        if with_state {
            h.assert_untouched_quietly();
        } else {
            assert!(
                fs::symlink_metadata(home.join(state::FILE)).is_err(),
                "a state file appeared: {:?}",
                fs::read_to_string(home.join(state::FILE))
            );
        }
    }
}

/// s6 refuses after the marker was written (a supervisor that holds its lock but does not
/// read its control FIFO): exit 1, state byte-identical, both marker copies gone, `down`
/// as it was.
#[test]
fn s6_refusal_after_the_marker_is_1_and_changes_nothing() {
    if in_child() {
        return;
    }
    let d = TempDir::new("fault-refused-marked");
    let scan = d.path("scan");
    let slot = scan.join("gateway-default");
    fs::create_dir_all(slot.join("data")).unwrap();
    let gw = Proc::sleeper();
    let _sup = FakeSupervise::new(&slot, gw.pid() as u64, false);
    // (restart meets the deaf supervisor earlier: it waits for the control FIFO first)
    for (cmd, down) in [("stop", false), ("stop", true)] {
        if down {
            fs::write(slot.join("down"), "").unwrap();
        } else {
            let _ = fs::remove_file(slot.join("down"));
        }
        let home = d.path(&format!("home-{}-{}", cmd, down));
        let h = Home::new(&home, false);
        let o = hermes_run(&home, &scan, &[cmd, "default"]);
        assert!(
            o.is(1) && o.stderr.contains("not supervised"),
            "{} {:?}",
            cmd,
            o
        );
        h.assert_untouched_quietly();
        assert_eq!(names(&home), [state::LOCK_FILE, state::FILE]);
        assert!(!slot.join("data").join(marker::FILE).exists(), "{}", cmd);
        assert_eq!(
            slot.join("down").exists(),
            down,
            "{}: down file changed",
            cmd
        );
    }
}

/// restart fails after it removed the slot's `down` file (s6's status unreadable: a FIFO
/// there): the `down` file and the state come back as they were.
#[test]
fn failed_restart_puts_the_down_file_back() {
    if in_child() {
        return;
    }
    let d = TempDir::new("fault-restart-down");
    let scan = d.path("scan");
    let slot = scan.join("gateway-default");
    fs::create_dir_all(slot.join("data")).unwrap();
    let gw = Proc::sleeper();
    let _sup = FakeSupervise::new(&slot, gw.pid() as u64, true);
    let status = slot.join("supervise/status");
    fs::remove_file(&status).unwrap();
    mkfifo(&status);
    fs::write(slot.join("down"), "").unwrap();
    let home = d.path("home");
    let h = Home::new(&home, false);
    let o = hermes_run(&home, &scan, &["restart", "default"]);
    assert!(
        o.is(111) && o.stderr.contains(&*status.to_string_lossy()),
        "{:?}",
        o
    );
    h.assert_untouched_quietly();
    assert!(
        slot.join("down").exists(),
        "a failed restart removed the down file"
    );
}

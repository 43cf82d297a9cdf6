//! Security: what the hermes user (uid 10000) can plant in the places it owns — a profile
//! home, `logs/`, the nested scandir and its slots — must never make hermes-s6 write, read
//! or delete outside them, nor block. Every planted symlink points into an `outside/`
//! directory whose complete state (names, kinds, modes, owners, contents) is compared before
//! and after; every run of the binary is bounded (5 s) and killed if it blocks.
//! The binary runs as root (the strictest case: root may write anywhere) and, where it
//! matters, as uid 10000.
//!
//! Also: profile names cannot escape `profiles/`; `init-scandir` (root, in a private mount
//! namespace on a tmpfs) refuses an unsafe parent, replaces a symlink instead of following it
//! and removes a stale tree without following links; and, statically, everything root
//! executes at boot from `make install` is root-owned, not group/world-writable, and never
//! executes a path under HERMES_HOME or the scandir.

mod robust_util;

use hermes_s6::{marker, state};
use robust_util::*;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PRECIOUS: &str = "precious, not hermes-s6's\n";

/// Everything under `root`, without following links: path → kind, mode, owner, content.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut m = BTreeMap::new();
    fn walk(p: &Path, m: &mut BTreeMap<PathBuf, String>) {
        let Ok(md) = fs::symlink_metadata(p) else {
            return;
        };
        let t = md.file_type();
        let what = if t.is_symlink() {
            format!("link {:?}", fs::read_link(p).ok())
        } else if t.is_file() {
            format!("file {:?}", fs::read(p).ok())
        } else if t.is_dir() {
            "dir".to_string()
        } else {
            "other".to_string()
        };
        m.insert(
            p.to_path_buf(),
            format!("{} {:o} {}:{}", what, md.mode(), md.uid(), md.gid()),
        );
        if t.is_dir() {
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    walk(&e.path(), m);
                }
            }
        }
    }
    walk(root, &mut m);
    m
}

/// A hermes home, an (empty, hermes-owned) nested scandir, and `outside/` with a precious
/// file and a precious directory: what planted links point at.
struct World {
    d: TempDir,
    home: PathBuf,
    scan: PathBuf,
    outside: PathBuf,
}

impl World {
    fn new(tag: &str) -> World {
        let d = TempDir::new(tag);
        chmod(&d.0, 0o755);
        let (home, scan, outside) = (d.path("home"), d.path("scan"), d.path("outside"));
        for p in [&home, &scan, &outside] {
            fs::create_dir(p).unwrap();
        }
        fs::write(outside.join("precious"), PRECIOUS).unwrap();
        fs::create_dir(outside.join("dir")).unwrap();
        fs::write(outside.join("dir").join("lock"), PRECIOUS).unwrap();
        fs::write(outside.join("deaths"), PRECIOUS).unwrap();
        mkfifo(&outside.join("fifo"));
        if is_root() {
            chown(&home, 10000, 10000);
            chown(&scan, 10000, 10000);
        }
        World {
            d,
            home,
            scan,
            outside,
        }
    }

    fn outside_snapshot(&self) -> BTreeMap<PathBuf, String> {
        snapshot(&self.outside)
    }

    /// The binary as root (`uid` None) or as `uid`, bounded.
    fn run(&self, uid: Option<u32>, args: &[&str]) -> Out {
        let mut c = hermes(&self.home, &self.scan);
        c.env("HERMES_S6_USER", "10000:10000").args(args);
        if let Some(u) = uid {
            as_user(&mut c, u);
        }
        run_bounded(&mut c, Duration::from_secs(5))
    }

    /// Plant `kind` at `at`: a symlink to outside/precious, a dangling symlink into outside/,
    /// a symlink to outside/fifo, or a FIFO.
    fn plant(&self, at: &Path, kind: &str) {
        let _ = fs::remove_file(at);
        match kind {
            "link" => symlink(self.outside.join("precious"), at).unwrap(),
            "dangling" => symlink(self.outside.join("created"), at).unwrap(),
            "link-fifo" => symlink(self.outside.join("fifo"), at).unwrap(),
            "fifo" => mkfifo(at),
            k => panic!("{}", k),
        }
        if is_root() {
            chown(at, 10000, 10000);
        }
    }
}

const PLANTS: &[&str] = &["link", "dangling", "link-fifo", "fifo"];

fn users() -> Vec<Option<u32>> {
    if is_root() {
        vec![None, Some(10000)]
    } else {
        vec![None]
    }
}

fn assert_clean(w: &World, before: &BTreeMap<PathBuf, String>, what: &str, o: &Out) {
    assert!(!o.timed_out, "{}: blocked: {:?}", what, o);
    assert!(
        o.signal.is_none() && !o.stderr.contains("panicked"),
        "{}: {:?}",
        what,
        o
    );
    assert_eq!(
        &w.outside_snapshot(),
        before,
        "{}: wrote outside ({:?})",
        what,
        o
    );
}

// ---------------------------------------------------------------- a profile home

/// gateway_state.json, its lock and the planned-stop marker, each a symlink or a FIFO.
#[test]
fn planted_links_and_fifos_in_a_home_are_never_followed_and_never_block() {
    let w = World::new("sec-home");
    let before = w.outside_snapshot();
    let cmds: &[&[&str]] = &[
        &["stop", "default"],
        &["run", "default", "--", "/bin/true"],
        &["finish", "default", "256", "15"],
        &["status", "--json"],
    ];
    for name in [state::FILE, state::LOCK_FILE, marker::FILE] {
        for kind in PLANTS {
            for uid in users() {
                for args in cmds {
                    w.plant(&w.home.join(name), kind);
                    let o = w.run(uid, args);
                    let what = format!("{} as {:?} at {}: {:?}", kind, uid, name, args);
                    assert_clean(&w, &before, &what, &o);
                    if args[0] == "stop" && name != marker::FILE {
                        assert!(o.is(111), "{}: {:?}", what, o);
                        let named = w.home.join(name);
                        assert!(
                            o.stderr.contains(&*named.to_string_lossy()),
                            "{}: {:?}",
                            what,
                            o
                        );
                    }
                    let _ = fs::remove_file(w.home.join(name));
                }
            }
        }
    }
}

/// stop/finish with a live gateway: the marker (home and slot copy) planted as a link or
/// FIFO. stop writes nothing through it (a warning: the stop goes on without that marker);
/// finish never reads through it and removes it.
#[test]
fn planted_marker_is_refused_by_stop_and_dropped_by_finish() {
    let w = World::new("sec-marker");
    let slot = w.scan.join("gateway-default");
    fs::create_dir_all(slot.join("data")).unwrap();
    let gw = Proc::sleeper();
    let _sup = FakeSupervise::new(&slot, gw.pid() as u64, true);
    if is_root() {
        // the nested layout: the slot is the hermes user's (finish runs as hermes)
        for p in [&slot, &slot.join("data")] {
            chown(p, 10000, 10000);
        }
    }
    fs::write(
        w.home.join(state::FILE),
        "{\"desired_state\":\"running\"}\n",
    )
    .unwrap();
    let before = w.outside_snapshot();
    for at in [
        w.home.join(marker::FILE),
        slot.join("data").join(marker::FILE),
    ] {
        for kind in PLANTS {
            w.plant(&at, kind);
            let o = w.run(None, &["stop", "default"]);
            let what = format!("stop, {} at {:?}", kind, at);
            assert_clean(&w, &before, &what, &o);
            // no marker is a warning naming it; the stop itself goes on
            assert!(o.is(0), "{}: {:?}", what, o);
            assert!(
                o.stderr.contains("warning") && o.stderr.contains(&*at.to_string_lossy()),
                "{}: {}",
                what,
                o.stderr
            );
            let st = state::load(&w.home).unwrap().unwrap();
            assert_eq!(st.desired_state(), Some("stopped"), "{}", what);
            // finish never follows it and deletes it
            let o = w.run(None, &["finish", "default", "256", "15"]);
            assert_clean(&w, &before, &format!("finish, {} at {:?}", kind, at), &o);
            assert!(fs::symlink_metadata(&at).is_err(), "{:?} left", at);
            fs::write(
                w.home.join(state::FILE),
                "{\"desired_state\":\"running\"}\n",
            )
            .unwrap();
        }
    }
}

/// logs/, logs/container-boot.log (+ .1) and logs/gateways/P planted: reconcile and log.
#[test]
fn planted_log_paths_are_never_followed() {
    let w = World::new("sec-logs");
    let logs = w.home.join("logs");
    let before = w.outside_snapshot();
    let reset = || {
        let _ = fs::remove_file(&logs);
        let _ = fs::remove_dir_all(&logs);
        fs::create_dir_all(logs.join("gateways")).unwrap();
        if is_root() {
            chown(&logs, 10000, 10000);
            chown(&logs.join("gateways"), 10000, 10000);
        }
    };
    let runs: &[(&str, &[&str])] = &[("reconcile", &["reconcile"]), ("log", &["log", "default"])];
    // the directories themselves
    for (at, target) in [
        (logs.clone(), w.outside.clone()),
        (logs.join("gateways"), w.outside.clone()),
        (logs.join("gateways").join("default"), w.outside.join("dir")),
        (
            logs.join("gateways").join("default"),
            w.outside.join("fifo"),
        ),
    ] {
        for (name, args) in runs {
            reset();
            let _ = fs::remove_dir_all(&at);
            symlink(&target, &at).unwrap();
            let o = w.run(None, args);
            assert_clean(
                &w,
                &before,
                &format!("{} with {:?} -> {:?}", name, at, target),
                &o,
            );
            let _ = fs::remove_file(&at);
        }
    }
    // the boot log and its rotation target
    for kind in PLANTS {
        reset();
        w.plant(&logs.join("container-boot.log"), kind);
        let o = w.run(None, &["reconcile"]);
        assert_clean(&w, &before, &format!("boot log {}", kind), &o);
        reset();
        fs::write(logs.join("container-boot.log"), vec![b'x'; 300 << 10]).unwrap();
        w.plant(&logs.join("container-boot.log.1"), kind);
        let o = w.run(None, &["reconcile"]);
        assert_clean(&w, &before, &format!("boot log rotation onto {}", kind), &o);
        // rotated: the big log became .1 (replacing the link itself), a new one was started
        assert_eq!(
            fs::metadata(logs.join("container-boot.log.1"))
                .unwrap()
                .len(),
            300 << 10
        );
    }
}

// ---------------------------------------------------------------- the scandir and slots

/// `.gateway-P.tmp` planted (link to a directory, FIFO, file): register builds the slot
/// anyway (under its own name) and never touches what the link points at.
#[test]
fn planted_build_dir_is_replaced_not_followed() {
    let w = World::new("sec-tmp");
    fs::create_dir(w.home.join("profiles")).unwrap();
    fs::create_dir(w.home.join("profiles/coder")).unwrap();
    fs::write(w.home.join("profiles/coder/SOUL.md"), "x").unwrap();
    let before = w.outside_snapshot();
    let tmp = w.scan.join(".gateway-coder.tmp");
    for kind in ["link-dir", "link", "fifo", "file"] {
        match kind {
            "link-dir" => symlink(w.outside.join("dir"), &tmp).unwrap(),
            "file" => fs::write(&tmp, "x").unwrap(),
            k => w.plant(&tmp, k),
        }
        let o = w.run(Some(10000).filter(|_| is_root()), &["register", "coder"]);
        assert_clean(
            &w,
            &before,
            &format!("register with {} at {:?}", kind, tmp),
            &o,
        );
        assert!(o.is(0), "{}: {:?}", kind, o);
        assert!(w.scan.join("gateway-coder/run").is_file());
        // builds happen under the builder's own name (`.gateway-P.PID.tmp`)
        // or in place: the planted entry was never used, nor followed;
        // reconcile sweeps it (below)
        assert!(fs::symlink_metadata(&tmp).is_ok());
        if fs::symlink_metadata(&tmp).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(&tmp).unwrap();
        } else {
            fs::remove_file(&tmp).unwrap();
        }
        let o = w.run(Some(10000).filter(|_| is_root()), &["unregister", "coder"]);
        assert!(o.is(0), "{:?}", o);
    }
    // leftovers of every kind are swept at boot, and one never stops the reconciliation
    for (i, kind) in ["link-dir", "link", "fifo", "file"].iter().enumerate() {
        let at = w.scan.join(format!(".gateway-x{}.tmp", i));
        match *kind {
            "link-dir" => symlink(w.outside.join("dir"), &at).unwrap(),
            "file" => fs::write(&at, "x").unwrap(),
            k => w.plant(&at, k),
        }
        let del = w.scan.join(format!(".gateway-y{}.del.1", i));
        fs::write(&del, "x").unwrap();
    }
    let o = w.run(Some(10000).filter(|_| is_root()), &["reconcile"]);
    assert_clean(&w, &before, "reconcile sweeping planted leftovers", &o);
    assert!(o.is(0) && o.stdout.contains("profile=coder"), "{:?}", o);
    let left: Vec<String> = names(&w.scan)
        .into_iter()
        // the locks (the scan directory's, each profile's) stay: not leftovers
        .filter(|n| n.starts_with('.') && !n.ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "not swept: {:?}", left);
}

/// A slot whose `data/` or the slot itself is a link: stop/start/restart/unregister/finish
/// must not write (marker copy), delete (tally) or rename anything outside.
#[test]
fn planted_slot_links_are_never_followed() {
    if !is_root() {
        eprintln!("needs root (root vs the hermes user): skipped");
        return;
    }
    let w = World::new("sec-slot");
    let slot = w.scan.join("gateway-default");
    let before = w.outside_snapshot();
    let gw = Proc::sleeper();
    // data/ -> outside (a real supervised slot otherwise)
    fs::create_dir_all(&slot).unwrap();
    symlink(&w.outside, slot.join("data")).unwrap();
    let sup = FakeSupervise::new(&slot, gw.pid() as u64, true);
    for args in [
        &["stop", "default"][..],
        &["start", "default"][..],
        &["restart", "default"][..],
        &["finish", "default", "1", "0"][..],
        &["status"][..],
    ] {
        let o = w.run(None, args);
        assert_clean(&w, &before, &format!("{:?} with data -> outside", args), &o);
    }
    drop(sup);
    fs::remove_dir_all(&slot).unwrap();
    // the slot itself -> outside/dir
    symlink(w.outside.join("dir"), &slot).unwrap();
    for args in [
        &["unregister", "default"][..],
        &["stop", "default"][..],
        &["start", "default"][..],
        &["status"][..],
        &["list"][..],
        &["reconcile"][..],
    ] {
        let o = w.run(None, args);
        assert_clean(
            &w,
            &before,
            &format!("{:?} with the slot -> outside", args),
            &o,
        );
    }
}

/// supervise/lock or supervise/status planted as a FIFO (or a link to one): reading s6's
/// state must not block (s6 itself opens the lock non-blocking).
#[test]
fn planted_supervise_fifos_never_block() {
    let w = World::new("sec-supervise");
    let slot = w.scan.join("gateway-default");
    let sup = slot.join("supervise");
    fs::create_dir_all(&sup).unwrap();
    let before = w.outside_snapshot();
    let cmds: &[&[&str]] = &[
        &["status"],
        &["pid", "default"],
        &["stop", "default"],
        &["list"],
    ];
    for name in ["lock", "status"] {
        for kind in ["fifo", "link-fifo"] {
            // `status` is only read under a held lock: hold one for that case
            let gw = Proc::sleeper();
            let _fake =
                (name == "status").then(|| FakeSupervise::new(&slot, gw.pid() as u64, true));
            w.plant(&sup.join(name), kind);
            for args in cmds {
                let o = w.run(None, args);
                assert_clean(
                    &w,
                    &before,
                    &format!("{:?} with supervise/{} a {}", args, name, kind),
                    &o,
                );
            }
            let _ = fs::remove_file(sup.join(name));
        }
    }
}

/// A profile directory that is a link (to a directory root cares about), with a slot the
/// hermes user registered for it: root's stop/start/restart/unregister/reconcile must not
/// write there.
#[test]
fn linked_profile_home_is_never_written_through() {
    if !is_root() {
        eprintln!("needs root (root vs the hermes user): skipped");
        return;
    }
    let w = World::new("sec-profile-link");
    let before = w.outside_snapshot();
    fs::create_dir(w.home.join("profiles")).unwrap();
    symlink(w.outside.join("dir"), w.home.join("profiles/evil")).unwrap();
    let slot = w.scan.join("gateway-evil");
    fs::create_dir_all(slot.join("data")).unwrap();
    let gw = Proc::sleeper();
    let _sup = FakeSupervise::new(&slot, gw.pid() as u64, true);
    for args in [
        &["stop", "evil"][..],
        &["start", "evil"][..],
        &["restart", "evil"][..],
        &["finish", "evil", "0", "0"][..],
        &["run", "evil", "--", "/bin/true"][..],
        &["status"][..],
    ] {
        let o = w.run(None, args);
        assert_clean(
            &w,
            &before,
            &format!("{:?} with profiles/evil -> outside", args),
            &o,
        );
    }
}

/// Names that try to leave `profiles/`: bad usage (100), and nothing created anywhere.
#[test]
fn profile_names_cannot_escape_profiles() {
    let w = World::new("sec-names");
    fs::create_dir(w.home.join("profiles")).unwrap();
    fs::create_dir(w.home.join("profiles/real")).unwrap();
    fs::write(w.home.join("profiles/real/SOUL.md"), "x").unwrap();
    let before = snapshot(&w.d.0);
    let names = [
        "../x",
        "..",
        ".",
        "a/b",
        "/abs",
        "x/../../y",
        "../../outside",
        "real/../..",
        "",
        "real/",
        "-h",
        "Real",
        "real\n",
        "re al",
    ];
    let cmds = [
        "start",
        "stop",
        "restart",
        "register",
        "unregister",
        "pid",
        "port",
        "run",
        "finish",
        "log",
    ];
    for n in names {
        for c in cmds {
            let mut args = vec![c, n];
            if c == "finish" {
                args.extend(["0", "0"]);
            }
            if c == "run" {
                args.extend(["--", "/bin/true"]);
            }
            let o = w.run(None, &args);
            assert!(!o.timed_out && o.signal.is_none(), "{:?}: {:?}", args, o);
            // `-h`/`--all` are options, not names: help (0) or usage (100)
            assert!(
                o.is(100) || (n.starts_with('-') && (o.is(0) || o.is(1))),
                "{:?}: {:?}",
                args,
                o
            );
            assert_eq!(snapshot(&w.d.0), before, "{:?} changed the tree", args);
        }
    }
}

// ---------------------------------------------------------------- init-scandir (root)

/// Runs `scenario` of `init_child` under `unshare -m` (tmpfs at ROBUST_DIR/mnt).
fn init_in_namespace(scenario: &str) {
    if !can_unshare() {
        eprintln!("{}: needs root and unshare: skipped", scenario);
        return;
    }
    let d = TempDir::new("sec-init");
    let env: [(&str, &OsStr); 2] = [
        ("ROBUST_DIR", d.0.as_os_str()),
        ("ROBUST_SCENARIO", OsStr::new(scenario)),
    ];
    let o = run_bounded(
        &mut self_test(
            "init_child",
            &["unshare", "-m", "--propagation", "private"],
            &env,
        ),
        Duration::from_secs(60),
    );
    assert_child_passed(&o, scenario);
    assert!(!mounted_under(&d.0), "a mount leaked under {:?}", d.0);
}

#[test]
fn init_child() {
    if !in_child() {
        return;
    }
    let dir = PathBuf::from(std::env::var_os("ROBUST_DIR").unwrap());
    let scenario = std::env::var("ROBUST_SCENARIO").unwrap();
    let mnt = dir.join("mnt");
    fs::create_dir(&mnt).unwrap();
    mount_tmpfs(&mnt, "size=4m,mode=0755");
    let outside = mnt.join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("precious"), PRECIOUS).unwrap();
    fs::create_dir(outside.join("dir")).unwrap();
    fs::write(outside.join("dir/file"), PRECIOUS).unwrap();
    let before = snapshot(&outside);
    let parent = mnt.join("run-hermes");
    let scandir = parent.join("service");
    let init = || {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("HERMES_S6_SCANDIR", &scandir)
            .env("HERMES_S6_USER", "10000:10000")
            .arg("init-scandir");
        run_bounded(&mut c, Duration::from_secs(5))
    };
    let fresh_and_owned = |o: &Out| {
        assert!(o.is(0), "{:?}", o);
        let m = fs::symlink_metadata(&scandir).unwrap();
        assert!(m.is_dir(), "not a directory");
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (10000, 10000, 0o755));
        assert!(names(&scandir).is_empty(), "{:?}", names(&scandir));
        assert_eq!(snapshot(&outside), before, "outside changed");
    };
    match scenario.as_str() {
        "unsafe_parent" => {
            fs::create_dir(&parent).unwrap();
            for (uid, mode) in [
                (10000, 0o755),
                (0, 0o775),
                (0, 0o757),
                (0, 0o1777),
                (0, 0o777),
            ] {
                chown(&parent, uid, 0);
                chmod(&parent, mode);
                let o = init();
                assert!(
                    o.is(1) && o.stderr.contains("refusing"),
                    "{}:{:o}: {:?}",
                    uid,
                    mode,
                    o
                );
                assert!(
                    fs::symlink_metadata(&scandir).is_err(),
                    "created under an unsafe parent"
                );
            }
            // a parent that is a symlink (to a safe directory) is refused too
            fs::remove_dir(&parent).unwrap();
            symlink(&outside, &parent).unwrap();
            let o = init();
            assert!(o.is(1), "{:?}", o);
            assert_eq!(snapshot(&outside), before);
            fs::remove_file(&parent).unwrap();
            fs::create_dir(&parent).unwrap();
            chmod(&parent, 0o755);
            fresh_and_owned(&init());
        }
        "symlink_at_scandir" => {
            fs::create_dir(&parent).unwrap();
            chmod(&parent, 0o755);
            for target in [
                outside.join("dir"),
                outside.join("precious"),
                outside.join("nothing"),
            ] {
                let _ = fs::remove_dir_all(&scandir);
                let _ = fs::remove_file(&scandir);
                symlink(&target, &scandir).unwrap();
                fresh_and_owned(&init());
            }
        }
        "stale_tree" => {
            fs::create_dir(&parent).unwrap();
            chmod(&parent, 0o755);
            fs::create_dir_all(scandir.join("gateway-x/supervise")).unwrap();
            fs::write(scandir.join("gateway-x/run"), "#!/bin/sh\n").unwrap();
            symlink(outside.join("precious"), scandir.join("gateway-x/data")).unwrap();
            symlink(outside.join("dir"), scandir.join("gateway-y")).unwrap();
            symlink(
                outside.join("dir"),
                scandir.join("gateway-x/supervise/lock"),
            )
            .unwrap();
            mkfifo(&scandir.join("gateway-x/supervise/control"));
            fs::create_dir_all(scandir.join(".s6-svscan")).unwrap();
            chown(&scandir, 10000, 10000);
            fresh_and_owned(&init());
        }
        "deep_tree" => {
            // the hermes user's chain of directories deeper than root's fd
            // limit: init-scandir never walks it, it moves it aside
            fs::create_dir(&parent).unwrap();
            chmod(&parent, 0o755);
            fs::create_dir(&scandir).unwrap();
            let mut d = fs::File::open(&scandir).unwrap();
            for _ in 0..1500 {
                let n = std::ffi::CString::new("d").unwrap();
                // SAFETY: valid dirfd and name; the new fd is owned by the File.
                unsafe {
                    assert_eq!(libc::mkdirat(d.as_raw_fd(), n.as_ptr(), 0o755), 0);
                    let fd = libc::openat(
                        d.as_raw_fd(),
                        n.as_ptr(),
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                    );
                    assert!(fd >= 0);
                    d = fs::File::from_raw_fd(fd);
                }
            }
            drop(d);
            chown(&scandir, 10000, 10000);
            // a low fd limit, as in the attack: walking would need 1500
            let lim = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            // SAFETY: setrlimit with a valid struct, in this child process only.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
            fresh_and_owned(&init());
            let old = parent.join(".old");
            let m = fs::symlink_metadata(&old).unwrap();
            assert_eq!(
                (m.uid(), m.mode() & 0o7777),
                (0, 0o755),
                ".old is root's, read-only to others"
            );
            let moved: Vec<_> = fs::read_dir(&old)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .collect();
            assert_eq!(moved.len(), 1, "{:?}", moved);
            assert!(moved[0].join("d").is_dir(), "moved whole, not walked");
            // the hermes user's part (here as root: the same function), then the next boot
            hermes_s6::fsutil::clear_dir(&moved[0], Duration::from_secs(30)).unwrap();
            fresh_and_owned(&init());
            let left: Vec<_> = fs::read_dir(&old)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .collect();
            assert_eq!(
                left.len(),
                1,
                "the emptied one is gone, this boot's is there: {:?}",
                left
            );
            assert_ne!(left[0], moved[0]);
        }
        "root_scandir_layout" => {
            // the compatibility layout acts on the literal /run/service: a tmpfs over /run,
            // in this namespace only
            mount_tmpfs(Path::new("/run"), "size=1m,mode=0755");
            let svc = Path::new("/run/service");
            let run_init = || {
                let mut c = Command::new(BIN);
                c.env_clear()
                    .env("HERMES_S6_SCANDIR", svc)
                    .env("HERMES_S6_USER", "10000:10000")
                    .arg("init-scandir");
                run_bounded(&mut c, Duration::from_secs(5))
            };
            // /run/service a symlink: refused, target untouched
            symlink(&outside, svc).unwrap();
            let o = run_init();
            assert!(!o.is(0) && !o.timed_out, "{:?}", o);
            assert_eq!(snapshot(&outside), before);
            fs::remove_file(svc).unwrap();
            fs::create_dir(svc).unwrap();
            // .s6-svscan a symlink, then its control a symlink: never chowned through
            symlink(outside.join("dir"), svc.join(".s6-svscan")).unwrap();
            let o = run_init();
            assert!(!o.is(0) && !o.timed_out, "{:?}", o);
            assert_eq!(snapshot(&outside), before);
            fs::remove_file(svc.join(".s6-svscan")).unwrap();
            fs::create_dir(svc.join(".s6-svscan")).unwrap();
            symlink(outside.join("precious"), svc.join(".s6-svscan/control")).unwrap();
            let o = run_init();
            assert!(!o.is(0) && !o.timed_out, "{:?}", o);
            assert_eq!(snapshot(&outside), before);
            // the real thing: opened to the hermes group, sticky
            fs::remove_file(svc.join(".s6-svscan/control")).unwrap();
            mkfifo(&svc.join(".s6-svscan/control"));
            let o = run_init();
            assert!(o.is(0), "{:?}", o);
            let m = fs::metadata(svc).unwrap();
            assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 10000, 0o1775));
        }
        s => panic!("unknown scenario {}", s),
    }
}

#[test]
fn init_scandir_refuses_an_unsafe_parent() {
    if in_child() {
        return;
    }
    init_in_namespace("unsafe_parent");
}

#[test]
fn init_scandir_replaces_a_symlink_instead_of_following_it() {
    if in_child() {
        return;
    }
    init_in_namespace("symlink_at_scandir");
}

#[test]
fn init_scandir_removes_a_stale_tree_without_following_links() {
    if in_child() {
        return;
    }
    init_in_namespace("stale_tree");
}

#[test]
fn init_scandir_moves_a_tree_deeper_than_its_fd_limit_aside_in_one_rename() {
    if in_child() {
        return;
    }
    init_in_namespace("deep_tree");
}

#[test]
fn init_scandir_root_layout_never_follows_links() {
    if in_child() {
        return;
    }
    init_in_namespace("root_scandir_layout");
}

// ---------------------------------------------------------------- what root executes

/// `make install DESTDIR=… SERVICE_STYLE=services.d` (with the debug binary, no build):
/// every file root executes at boot, and every directory above it, is root-owned and not
/// group/world-writable; the root-run part of each script execs only absolute paths under
/// SHEBANGDIR/BINDIR or commands from root's PATH, and variables appear only as arguments
/// (never as the program), so nothing under HERMES_HOME or the scandir runs as root.
#[test]
fn installed_boot_files_are_root_owned_and_exec_nothing_hermes_writes() {
    if in_child() {
        return;
    }
    if !is_root() || Command::new("make").arg("--version").output().is_err() {
        eprintln!("needs root and make: skipped");
        return;
    }
    let d = TempDir::new("sec-install");
    chmod(&d.0, 0o755);
    let dest = d.path("dest");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = run_bounded(
        Command::new("make")
            .current_dir(repo)
            .args(["-s", "-o", "build", "install", "SERVICE_STYLE=services.d"])
            .arg(format!("DESTDIR={}", dest.display()))
            .arg(format!("BIN={}", BIN)),
        Duration::from_secs(60),
    );
    assert!(o.is(0), "make install: {:?}", o);
    let bindir = "/usr/local/bin";
    let shebangdir = "/command";
    let root_run = [
        "etc/cont-init.d/50-hermes-scandir",
        "etc/cont-init.d/60-hermes-reconcile",
        "etc/services.d/hermes-svscan/run",
        "usr/local/bin/hermes-s6",
    ];
    for rel in root_run {
        let mut p = dest.join(rel);
        loop {
            let m = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{:?}: {}", p, e));
            assert!(!m.file_type().is_symlink(), "{:?} is a symlink", p);
            assert_eq!(m.uid(), 0, "{:?} not root-owned", p);
            assert_eq!(
                m.mode() & 0o022,
                0,
                "{:?} is group/world-writable: {:o}",
                p,
                m.mode()
            );
            if p == dest || !p.pop() {
                break;
            }
        }
        if rel.ends_with("hermes-s6") {
            continue;
        }
        let text = fs::read_to_string(dest.join(rel)).unwrap();
        check_root_script(rel, &text, bindir, shebangdir);
    }
}

/// The words of an execline script (comments and the shebang line dropped).
fn words(text: &str) -> Vec<String> {
    let mut v = Vec::new();
    for line in text.lines().skip(1) {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        v.extend(line.split_whitespace().map(str::to_string));
    }
    v
}

fn check_root_script(rel: &str, text: &str, bindir: &str, shebangdir: &str) {
    let first = text.lines().next().unwrap_or("");
    assert_eq!(
        first,
        format!("#!{}/execlineb -P", shebangdir),
        "{}: shebang",
        rel
    );
    let w = words(text);
    // root runs everything up to s6-setuidgid (and all of a script without one)
    let end = w
        .iter()
        .position(|x| x == "s6-setuidgid")
        .unwrap_or(w.len());
    for (i, word) in w[..end].iter().enumerate() {
        let prev = if i > 0 { w[i - 1].as_str() } else { "" };
        if word.starts_with('$') {
            // a variable as an argument of a test (or the value of an
            // `export NAME`), never as a program
            let prev2 = if i > 1 { w[i - 2].as_str() } else { "" };
            assert!(
                ["eltest", "test", "=", "-D"].contains(&prev) || prev2 == "export",
                "{}: {} after {:?} runs as root",
                rel,
                word,
                prev
            );
        }
        // absolute paths as arguments: a default value (`importas -D`), a compared value
        if word.starts_with('/') && prev != "=" && prev != "-D" {
            assert!(
                word.starts_with(&format!("{}/", bindir))
                    || word.starts_with(&format!("{}/", shebangdir)),
                "{}: root runs {}",
                rel,
                word
            );
        }
        assert!(
            !word.contains("/opt/data") && !word.contains("HERMES_HOME"),
            "{}: {}",
            rel,
            word
        );
    }
    if end < w.len() {
        // what follows s6-setuidgid is its user argument, then the unprivileged part
        assert!(
            w[end + 1].starts_with('$'),
            "{}: s6-setuidgid {}",
            rel,
            w[end + 1]
        );
    }
}

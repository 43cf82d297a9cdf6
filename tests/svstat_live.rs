//! `svstat::read` against the real s6: a private s6-svscan on a temp scandir, services driven
//! through up / down-by-SIGTERM / never started / exited 3 / paused, each state compared with
//! what `s6-svstat -o` says about the same live service. Needs root and s6 installed; otherwise
//! it prints a notice and passes.

use hermes_s6::profile::Config;
use hermes_s6::svstat::{self, Status};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FIELDS: &str = "up,wantedup,pid,exitcode,signal,normallyup,ready,paused";
const DEADLINE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(10);

fn tool(name: &str) -> PathBuf {
    Config::from_env().tool(name)
}

/// A scandir with its own s6-svscan; torn down (and checked to be gone) on drop.
struct Tree {
    dir: PathBuf,
    svscan: Option<Child>,
}

impl Tree {
    fn new() -> Tree {
        let dir =
            std::env::temp_dir().join(format!("hermes-s6-svstat-live-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Tree { dir, svscan: None }
    }

    fn service(&self, name: &str, run: &str, down: bool) -> PathBuf {
        let d = self.dir.join(name);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("run"), run).unwrap();
        fs::set_permissions(d.join("run"), fs::Permissions::from_mode(0o755)).unwrap();
        if down {
            fs::write(d.join("down"), "").unwrap();
        }
        d
    }

    fn start(&mut self) {
        let child = Command::new(tool("s6-svscan"))
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn s6-svscan");
        self.svscan = Some(child);
    }

    /// Ask s6-svscan to bring everything down and exit; then SIGTERM; then SIGKILL. Bounded.
    /// Returns whether it exited by itself (the clean path).
    fn stop(&mut self) -> bool {
        let Some(mut child) = self.svscan.take() else {
            return true;
        };
        let _ = Command::new(tool("s6-svscanctl"))
            .arg("-t")
            .arg(&self.dir)
            .stderr(Stdio::null())
            .status();
        if wait_child(&mut child, DEADLINE) {
            return true;
        }
        // SAFETY: signalling the pid of our own child, which has not been reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        if wait_child(&mut child, DEADLINE) {
            return false;
        }
        let _ = child.kill();
        let _ = child.wait();
        kill_leftovers(&self.dir);
        false
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn wait_child(child: &mut Child, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(POLL);
    }
    false
}

/// Processes whose cwd is inside our scandir: s6-supervise and the services it started
/// chdir there, so these are ours and only ours.
fn leftovers(scandir: &Path) -> Vec<libc::pid_t> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid = e
                .file_name()
                .to_string_lossy()
                .parse::<libc::pid_t>()
                .ok()?;
            let cwd = fs::read_link(e.path().join("cwd")).ok()?;
            (pid > 1 && cwd.starts_with(scandir)).then_some(pid)
        })
        .collect()
}

/// Last resort after SIGKILLing our s6-svscan.
fn kill_leftovers(scandir: &Path) {
    for pid in leftovers(scandir) {
        // SAFETY: plain kill(2) of a process our own s6-svscan started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Our Status rendered as `s6-svstat -o FIELDS` would print it.
fn render(st: &Status) -> String {
    let signal = if st.signal < 0 {
        "NA".to_string()
    } else {
        format!("SIG{}", svstat::signal_name(st.signal).unwrap_or("???"))
    };
    format!(
        "{} {} {} {} {} {} {} {}",
        st.up,
        st.want_up,
        if st.up { st.pid as i64 } else { -1 },
        st.exitcode,
        signal,
        st.normally_up.unwrap(),
        st.ready,
        st.paused
    )
}

fn s6_svstat(dir: &Path) -> String {
    let out = Command::new(tool("s6-svstat"))
        .arg("-o")
        .arg(FIELDS)
        .arg(dir)
        .output()
        .expect("run s6-svstat");
    assert!(out.status.success(), "s6-svstat {:?}: {:?}", dir, out);
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

fn s6_svc(opt: &str, dir: &Path) {
    let st = Command::new(tool("s6-svc"))
        .arg(opt)
        .arg(dir)
        .status()
        .expect("run s6-svc");
    assert!(st.success(), "s6-svc {} {:?}: {:?}", opt, dir, st);
}

/// Poll until `read` satisfies `want` and is stable across one s6-svstat run, then require
/// s6-svstat to have said exactly the same. Returns the agreed status.
fn settle(dir: &Path, what: &str, want: impl Fn(&Status) -> bool) -> Status {
    let end = Instant::now() + DEADLINE;
    let mut last = None;
    while Instant::now() < end {
        // `normally_up` as `status` completes it (the `down` file)
        let read = || {
            svstat::read(dir).map(|o| {
                o.map(|a| Status {
                    normally_up: svstat::normally_up(dir),
                    ..a
                })
            })
        };
        if let Ok(Some(a)) = read() {
            if want(&a) {
                let theirs = s6_svstat(dir);
                if let Ok(Some(b)) = read() {
                    if a == b {
                        assert_eq!(render(&a), theirs, "{}: ours {:?}", what, a);
                        return a;
                    }
                }
            }
            last = Some(a);
        }
        std::thread::sleep(POLL);
    }
    panic!("{}: state never reached; last read {:?}", what, last);
}

fn is_root() -> bool {
    // SAFETY: geteuid has no failure mode.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn read_matches_real_s6_svstat_in_every_state() {
    if !tool("s6-svscan").is_file() || !is_root() {
        eprintln!("svstat_live: skipped (needs root and s6-svscan installed)");
        return;
    }
    let mut tree = Tree::new();
    let sleeper = "#!/bin/sh\nexec sleep 1000\n";
    let running = tree.service("running", sleeper, false);
    let downfile = tree.service("downfile", sleeper, true);
    let exit3 = tree.service("exit3", "#!/bin/sh\nexit 3\n", true);
    let paused = tree.service("paused", sleeper, false);
    let all = [&running, &downfile, &exit3, &paused];

    for d in all {
        assert!(
            !svstat::is_supervised(d).unwrap(),
            "{:?} before s6-svscan",
            d
        );
        assert_eq!(svstat::read(d).unwrap(), None);
    }
    tree.start();

    let st = settle(&running, "up", |s| s.up && s.pid > 0);
    assert!(st.want_up && st.normally_up == Some(true) && st.exitcode == -1 && st.signal == -1);
    assert!(svstat::is_supervised(&running).unwrap());
    // Stamps: identical to s6's own TAI64N labels, and TAI−UTC = 37 s (just started).
    let out = Command::new(tool("s6-svstat"))
        .args(["-o", "updownsince,readysince"])
        .arg(&running)
        .output()
        .unwrap();
    let o = svstat::parse_o(
        &["updownsince", "readysince"],
        &String::from_utf8_lossy(&out.stdout),
    )
    .unwrap();
    assert_eq!((o.updownsince, o.readysince), (st.stamp, st.ready_stamp));
    let age = unix_now() - st.stamp.unwrap().unix();
    assert!((-2..=10).contains(&age), "stamp is {} s old", age);
    assert!(st.seconds_in_state(hermes_s6::clock::now()).unwrap() <= 10);
    // `seconds` counts as s6-svstat does (truncated difference of the stamps,
    // never 1 more): ours just before and just after bracket s6's own count.
    std::thread::sleep(Duration::from_millis(1100));
    let before = st.seconds_in_state(hermes_s6::clock::now()).unwrap();
    let human = Command::new(tool("s6-svstat"))
        .arg(&running)
        .output()
        .unwrap();
    let after = st.seconds_in_state(hermes_s6::clock::now()).unwrap();
    let human = String::from_utf8_lossy(&human.stdout);
    let s6_secs: i64 = human
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .find(|w| w[1] == "seconds" || w[1] == "seconds,")
        .and_then(|w| w[0].parse().ok())
        .unwrap_or_else(|| panic!("no seconds in {:?}", human));
    assert!(
        before <= s6_secs && s6_secs <= after,
        "{} <= {} <= {}: {}",
        before,
        s6_secs,
        after,
        human
    );

    let st = settle(&downfile, "down file, never started", |s| !s.up);
    assert!(!st.want_up && st.normally_up == Some(false) && !st.finishing);

    s6_svc("-o", &exit3);
    let st = settle(&exit3, "exited 3 once", |s| {
        !s.up && s.exitcode == 3 && !s.finishing
    });
    assert!(!st.want_up && st.signal == -1);

    let st = settle(&paused, "up before pause", |s| s.up);
    s6_svc("-p", &paused);
    let p = settle(&paused, "paused", |s| s.paused);
    assert!(p.up && p.pid == st.pid);

    // A status file of a size no s6 writes makes read fall back to `s6-svstat -o`. s6-svstat
    // reads only the first bytes it knows, so one extra byte keeps its answer right.
    let status_file = paused.join("supervise/status");
    let orig = fs::read(&status_file).unwrap();
    let mut longer = orig.clone();
    longer.push(0);
    fs::write(&status_file, &longer).unwrap();
    let fb = svstat::read_with(&paused, &tool("s6-svstat"))
        .unwrap()
        .unwrap();
    fs::write(&status_file, &orig).unwrap();
    assert_eq!(fb.wstat, None);
    // the fallback's fields have no pgid (only s6 2.13's 43-byte file does)
    assert_eq!(
        Status {
            wstat: None,
            pgid: None,
            normally_up: None, // not among the fallback's fields
            ..p.clone()
        },
        Status { pgid: None, ..fb }
    );
    // An s6-svstat that refuses `-o` (exit 100, as on an unknown option):
    // the human line, read by the same parser the tests check above.
    let no_o = tree.dir.join(".s6-svstat-without-o");
    fs::write(
        &no_o,
        format!(
            "#!/bin/sh\n[ \"$1\" = -o ] && {{ echo 's6-svstat: usage' >&2; exit 100; }}\nexec {} \"$@\"\n",
            tool("s6-svstat").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&no_o, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(&status_file, &longer).unwrap();
    let h = svstat::read_with(&paused, &no_o).unwrap().unwrap();
    fs::write(&status_file, &orig).unwrap();
    assert_eq!(
        (
            h.up,
            h.pid,
            h.want_up,
            h.paused,
            h.ready,
            h.exitcode,
            h.signal,
            h.normally_up
        ),
        (
            p.up,
            p.pid,
            p.want_up,
            p.paused,
            p.ready,
            p.exitcode,
            p.signal,
            p.normally_up
        ),
        "human fallback {:?} vs {:?}",
        h,
        p
    );
    assert!(h.stamp.is_some());

    s6_svc("-d", &running);
    let st = settle(&running, "down by SIGTERM", |s| {
        !s.up && s.signal == libc::SIGTERM && !s.finishing
    });
    assert!(!st.want_up && st.exitcode == -1 && st.pid == 0);

    for d in all {
        assert!(
            svstat::is_supervised(d).unwrap(),
            "{:?} while supervised",
            d
        );
    }
    assert!(tree.stop(), "s6-svscan did not exit on s6-svscanctl -t");
    assert_eq!(
        leftovers(&tree.dir),
        Vec::<libc::pid_t>::new(),
        "s6-supervise or services left"
    );
    for d in all {
        assert!(
            !svstat::is_supervised(d).unwrap(),
            "{:?} after s6-svscan exit",
            d
        );
        assert_eq!(svstat::read(d).unwrap(), None);
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

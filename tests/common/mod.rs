//! Shared fixture of the integration tests: a unique temp dir holding a `HERMES_HOME`, a scan
//! directory with its own real `s6-svscan` (a child of the test), and a stand-in gateway script.
//!
//! Teardown (Drop): `s6-svscanctl -t`, a bounded wait, then SIGKILL of only what we started
//! (our s6-svscan, and processes whose cwd is inside our temp dir: s6-supervise, gateways,
//! loggers, finish scripts all live there); it fails the test if anything survives. As a net
//! for a test process killed outright, s6-svscan gets SIGTERM (= `-t`) when its parent dies.

#![allow(dead_code)]

use hermes_s6::json::{self, Value};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod base;
pub use base::*;

pub const POLL: Duration = Duration::from_millis(5);
/// Generous: tests run in parallel on small machines; a pass is usually far quicker.
pub const DEADLINE: Duration = Duration::from_secs(20);
pub const TIMEOUT_KILL_MS: u64 = 500;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The stand-in gateway: `gw MODE [ARG]`. Every mode first records its environment
/// (`gw.env`) and, once its signal handling is in place, its pid (`gw.pids`, one per line)
/// in the profile's home, found the way hermes finds it: `$HERMES_HOME[/profiles/P]`.
const GATEWAY: &str = r#"#!/bin/sh
H="$HERMES_HOME"
[ "$HERMES_PROFILE" = default ] || H="$HERMES_HOME/profiles/$HERMES_PROFILE"
ready() {
  env > "$H/gw.env.$$" && mv -f "$H/gw.env.$$" "$H/gw.env"
  echo "gw $$ $HERMES_PROFILE mode $*" >&2
  echo $$ >> "$H/gw.pids"
}
case "$1" in
plain)
  ready "$@"
  exec sleep 100000 ;;
ignore-term)
  trap '' TERM
  ready
  exec sleep 100000 ;;
exit)
  ready "$@"
  exit "$2" ;;
mimic)
  # Like hermes: on SIGTERM, a planned-stop marker for this pid is consumed (deleted) and
  # the exit is clean; an unmarked SIGTERM is unexpected: exit 1 so s6 revives us.
  M="$H/.gateway-planned-stop.json"
  child=
  on_term() {
    [ -n "$child" ] && kill "$child" 2>/dev/null
    if [ -f "$M" ] && grep -q "\"target_pid\":$$[,}]" "$M"; then
      rm -f "$M"
      echo "$$ planned" >> "$H/gw.log"
      exit 0
    fi
    echo "$$ unexpected" >> "$H/gw.log"
    exit 1
  }
  trap on_term TERM
  sleep 100000 &
  child=$!
  ready
  wait
  exit 1 ;;
state-ready)
  # Like hermes: after $2 s of startup it writes gateway_state=running with its
  # own pid into its state file (replaced by a rename); then, with $3, it
  # exits $3 0.3 s later (a crash after it was ready).
  ready "$@"
  sleep "$2"
  sed -e 's/"gateway_state":"[a-z_]*"/"gateway_state":"running"/' "$H/gateway_state.json" > "$H/gw.st.$$"
  mv -f "$H/gw.st.$$" "$H/gateway_state.json"
  if [ -n "$3" ]; then sleep 0.3; exit "$3"; fi
  exec sleep 100000 ;;
esac
echo "gw: unknown mode $1" >&2
exit 2
"#;

/// Result of one `hermes-s6` run.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    #[track_caller]
    pub fn ok(self) -> Out {
        assert_eq!(self.code, 0, "expected success: {:?}", self);
        self
    }

    #[track_caller]
    pub fn code(self, c: i32) -> Out {
        assert_eq!(self.code, c, "expected exit {}: {:?}", c, self);
        self
    }

    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// What `s6-svstat -o up,wantedup,pid,exitcode,signal,normallyup` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S6 {
    pub up: bool,
    pub wantedup: bool,
    pub pid: i64,
    pub exitcode: i64,
    pub signal: String,
    pub normallyup: bool,
}

pub struct Scandir {
    pub root: PathBuf,
    pub home: PathBuf,
    pub scandir: PathBuf,
    pub gw: PathBuf,
    /// Extra environment for every `hermes-s6` run (after the defaults).
    pub env: Vec<(String, String)>,
    /// Environment of s6-svscan, so of every supervisor, run and finish script.
    pub svscan_env: Vec<(String, String)>,
    svscan: Option<Child>,
}

/// Real s6 tests need root (they start services as root and, for the compatibility layout,
/// switch to uid 10000) and Debian's s6. Without them, say so and skip.
pub fn have_s6() -> bool {
    let ok = is_root()
        && Path::new("/usr/bin/s6-svscan").is_file()
        && Path::new("/usr/bin/execlineb").is_file();
    if !ok {
        eprintln!("skipped: needs root, /usr/bin/s6-svscan and /usr/bin/execlineb");
    }
    ok
}

impl Scandir {
    /// A fresh temp tree (no scanner yet): `home/SOUL.md`, `service/`, the gateway script.
    pub fn new(tag: &str) -> Scandir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let root =
            std::env::temp_dir().join(format!("hermes-s6-it-{}-{}-{}", tag, std::process::id(), n));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let home = root.join("home");
        let scandir = root.join("service");
        fs::create_dir_all(&home).unwrap();
        fs::create_dir_all(&scandir).unwrap();
        fs::write(home.join("SOUL.md"), "default\n").unwrap();
        let gw = root.join("gw");
        fs::write(&gw, GATEWAY).unwrap();
        fs::set_permissions(&gw, fs::Permissions::from_mode(0o755)).unwrap();
        Scandir {
            root,
            home,
            scandir,
            gw,
            env: Vec::new(),
            // the "container environment" of the fixture's tree: its slots
            // run as root and stay root (the files are the test's)
            svscan_env: vec![("HERMES_S6_USER".into(), "0:0".into())],
            svscan: None,
        }
    }

    /// `new` plus a running s6-svscan.
    pub fn started(tag: &str) -> Scandir {
        let mut f = Scandir::new(tag);
        f.start_svscan();
        f
    }

    /// The gateway command line for a mode: `HERMES_GATEWAY_CMD`.
    pub fn gw_cmd(&self, mode: &str) -> String {
        format!("{} {}", self.gw.display(), mode)
    }

    /// Set `HERMES_GATEWAY_CMD` for the following registrations.
    pub fn set_gateway(&mut self, mode: &str) {
        let cmd = self.gw_cmd(mode);
        self.set_env("HERMES_GATEWAY_CMD", &cmd);
    }

    pub fn set_env(&mut self, k: &str, v: &str) {
        self.env.retain(|(a, _)| a != k);
        self.env.push((k.to_string(), v.to_string()));
    }

    /// Make `profiles/P` a real profile; returns its home.
    pub fn profile(&self, p: &str) -> PathBuf {
        let h = self.home_of(p);
        fs::create_dir_all(&h).unwrap();
        fs::write(h.join("SOUL.md"), format!("{}\n", p)).unwrap();
        h
    }

    pub fn home_of(&self, p: &str) -> PathBuf {
        if p == "default" {
            self.home.clone()
        } else {
            self.home.join("profiles").join(p)
        }
    }

    pub fn slot(&self, p: &str) -> PathBuf {
        self.scandir.join(format!("gateway-{}", p))
    }

    pub fn marker(&self, p: &str) -> PathBuf {
        self.home_of(p).join(".gateway-planned-stop.json")
    }

    pub fn start_svscan(&mut self) {
        assert!(self.svscan.is_none());
        let log = fs::File::create(self.root.join("svscan.log")).unwrap();
        let mut cmd = Command::new("/usr/bin/s6-svscan");
        cmd.arg(&self.scandir)
            .current_dir("/")
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .envs(self.svscan_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // Our thread gone (test process killed) → s6-svscan tears its tree down.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        self.svscan = Some(cmd.spawn().expect("spawn s6-svscan"));
        // Listening once s6-svscanctl stops saying "supervisor not listening".
        self.wait("s6-svscan listening", || {
            Command::new("/usr/bin/s6-svscanctl")
                .arg("-a")
                .arg(&self.scandir)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    }

    pub fn svscan_pid(&self) -> Option<i32> {
        self.svscan.as_ref().map(|c| c.id() as i32)
    }

    /// The command for `hermes-s6 ARGS` with the fixture's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_of(Path::new(BIN), args)
    }

    /// [`Scandir::command`] for `program` (a link to the binary under
    /// another name, say `hermes`).
    pub fn command_of(&self, program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args)
            .env("HERMES_HOME", &self.home)
            .env("HERMES_S6_SCANDIR", &self.scandir)
            .env("HERMES_S6_SHEBANGDIR", "/usr/bin")
            .env("HERMES_S6_USER", "0:0")
            .env("HERMES_GATEWAY_CMD", self.gw_cmd("plain"))
            .env("HERMES_S6_TIMEOUT_KILL", TIMEOUT_KILL_MS.to_string())
            .env_remove("S6_PROFILE_GATEWAY_SCANDIR")
            .env_remove("HERMES_GATEWAY_CLEAN_EXIT")
            .env_remove("HERMES_GATEWAY_NOTIFICATION_FD")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        c
    }

    pub fn run_cmd(mut c: Command) -> Out {
        let o = c.output().expect("run hermes-s6");
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// `hermes-s6 ARGS`.
    pub fn hs(&self, args: &[&str]) -> Out {
        Scandir::run_cmd(self.command(args))
    }

    /// `hermes-s6 ARGS` with extra environment.
    pub fn hs_env(&self, env: &[(&str, &str)], args: &[&str]) -> Out {
        let mut c = self.command(args);
        c.envs(env.iter().copied());
        Scandir::run_cmd(c)
    }

    /// `hermes-s6 ARGS` as uid:gid 10000 (setpriv, no supplementary groups).
    pub fn hs_as_10000(&self, args: &[&str]) -> Out {
        let inner = self.command(args);
        let mut c = Command::new("setpriv");
        c.args(["--reuid=10000", "--regid=10000", "--clear-groups", BIN])
            .args(args)
            .stdin(Stdio::null());
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        Scandir::run_cmd(c)
    }

    /// Poll `cond` until true; on timeout fail the test with what s6 said.
    #[track_caller]
    pub fn wait(&self, what: &str, mut cond: impl FnMut() -> bool) {
        if !self.wait_for(DEADLINE, &mut cond) {
            panic!("timed out waiting for {}\n{}", what, self.diagnostics());
        }
    }

    pub fn wait_for(&self, limit: Duration, cond: impl FnMut() -> bool) -> bool {
        poll_every(limit, POLL, cond)
    }

    /// `s6-svstat -o …` of P's slot; None when not supervised (exit 1).
    pub fn s6(&self, p: &str) -> Option<S6> {
        let out = Command::new("/usr/bin/s6-svstat")
            .args(["-o", "up,wantedup,pid,exitcode,signal,normallyup"])
            .arg(self.slot(p))
            .stderr(Stdio::null())
            .output()
            .expect("run s6-svstat");
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let w: Vec<&str> = text.split_whitespace().collect();
        if w.len() != 6 {
            return None;
        }
        Some(S6 {
            up: w[0] == "true",
            wantedup: w[1] == "true",
            pid: w[2].parse().unwrap_or(-1),
            exitcode: w[3].parse().unwrap_or(-1),
            signal: w[4].to_string(),
            normallyup: w[5] == "true",
        })
    }

    /// Bytes written to P's control FIFO that s6-supervise has not read yet
    /// (FIONREAD); None when nobody listens. A command returns once it has
    /// written its `u` or `d`: s6 acts on it on its own time.
    pub fn control_unread(&self, p: &str) -> Option<usize> {
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;
        let f = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(self.slot(p).join("supervise/control"))
            .ok()?;
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int through a valid pointer.
        (unsafe { libc::ioctl(f.as_raw_fd(), libc::FIONREAD, &mut n) } == 0)
            .then(|| usize::try_from(n).unwrap_or(0))
    }

    /// s6's state once the slot is supervised and `cond` holds.
    #[track_caller]
    pub fn wait_s6(&self, p: &str, what: &str, cond: impl Fn(&S6) -> bool) -> S6 {
        let mut last = None;
        self.wait(&format!("gateway-{}: {}", p, what), || {
            last = self.s6(p);
            last.as_ref().is_some_and(&cond)
        });
        last.unwrap()
    }

    /// Down with finish done: `hermes-s6 status` says `s6=down` (not `up`, not `finishing`:
    /// s6-svstat -o has no field for a running finish), and s6-svstat, asked afterwards,
    /// agrees. Returns s6-svstat's view from after finish.
    #[track_caller]
    pub fn wait_down(&self, p: &str) -> S6 {
        let mut last = None;
        self.wait(&format!("gateway-{} down, finish done", p), || {
            if !self.status_line(p).contains(" s6=down ") {
                return false;
            }
            last = self.s6(p);
            last.as_ref().is_some_and(|s| !s.up)
        });
        last.unwrap()
    }

    /// The gateway script is up and ready: s6 reports pid N up, the script recorded N as
    /// its pid (its traps are set), and `run` recorded N in gateway_state.json.
    #[track_caller]
    pub fn wait_gateway(&self, p: &str, not_pid: i64) -> i64 {
        let mut pid = -1;
        self.wait(&format!("gateway-{} up (not pid {})", p, not_pid), || {
            let Some(s) = self.s6(p) else { return false };
            if !s.up || s.pid <= 0 || s.pid == not_pid {
                return false;
            }
            pid = s.pid;
            self.gw_pids(p).last() == Some(&pid) && self.state_u64(p, "pid") == Some(pid as u64)
        });
        pid
    }

    /// Pids the gateway script recorded, oldest first.
    pub fn gw_pids(&self, p: &str) -> Vec<i64> {
        fs::read_to_string(self.home_of(p).join("gw.pids"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// `KEY=VALUE` lines of the last gateway's environment.
    pub fn gw_env(&self, p: &str) -> Vec<(String, String)> {
        fs::read_to_string(self.home_of(p).join("gw.env"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// P's gateway_state.json as a JSON value (None: missing or invalid).
    pub fn state(&self, p: &str) -> Option<Value> {
        let text = fs::read_to_string(self.home_of(p).join("gateway_state.json")).ok()?;
        json::parse(&text).ok()
    }

    pub fn state_str(&self, p: &str, k: &str) -> Option<String> {
        self.state(p)?.get(k)?.as_str().map(str::to_string)
    }

    pub fn state_u64(&self, p: &str, k: &str) -> Option<u64> {
        self.state(p)?.get(k)?.as_u64()
    }

    pub fn write_state(&self, p: &str, text: &str) {
        fs::write(self.home_of(p).join("gateway_state.json"), text).unwrap();
    }

    /// `hermes-s6 status P` without the Manager line.
    pub fn status_line(&self, p: &str) -> String {
        let o = self.hs(&["status", p]);
        o.stdout.lines().nth(1).unwrap_or("").to_string() + " "
    }

    /// Poll until P's persisted `key` is `want`.
    #[track_caller]
    pub fn wait_state(&self, p: &str, key: &str, want: &str) {
        self.wait(&format!("{}: {}={}", p, key, want), || {
            self.state_str(p, key).as_deref() == Some(want)
        });
    }

    /// Processes (other than pid 1) whose cwd is inside our temp dir.
    pub fn procs_under(&self, dir: &Path) -> Vec<i32> {
        procs_with_cwd_under(dir)
    }

    /// SIGKILL our s6-svscan and everything under our temp dir, as a container death where
    /// no finish script gets to run.
    pub fn kill_tree(&mut self) {
        if let Some(mut c) = self.svscan.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let gone = self.wait_for(DEADLINE, || {
            let left = procs_with_cwd_under(&self.root);
            for &pid in &left {
                // SAFETY: kill(2) of a process running in our own temp dir.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            left.is_empty()
        });
        assert!(gone, "processes survived SIGKILL under {:?}", self.root);
    }

    /// Stop our tree: `s6-svscanctl -t`, bounded waits, then SIGKILL what is still ours.
    /// Returns the processes that needed SIGKILL and those that survived it.
    fn teardown(&mut self) -> (Vec<i32>, Vec<i32>) {
        if let Some(mut c) = self.svscan.take() {
            let _ = Command::new("/usr/bin/s6-svscanctl")
                .arg("-t")
                .arg(&self.scandir)
                .stderr(Stdio::null())
                .status();
            let exited = self.wait_for(Duration::from_secs(10), || {
                matches!(c.try_wait(), Ok(Some(_)))
            });
            if !exited {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        // Supervisors bring their services down (timeout-kill bounds the stubborn ones).
        self.wait_for(Duration::from_secs(10), || {
            procs_with_cwd_under(&self.root).is_empty()
        });
        let killed = procs_with_cwd_under(&self.root);
        for &pid in &killed {
            // SAFETY: kill(2) of a process running in our own temp dir.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let mut left = Vec::new();
        self.wait_for(Duration::from_secs(5), || {
            left = procs_with_cwd_under(&self.root);
            left.is_empty()
        });
        (killed, left)
    }

    pub fn diagnostics(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!("root: {}\n", self.root.display()));
        if let Ok(rd) = fs::read_dir(&self.scandir) {
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            s.push_str(&format!("scandir: {:?}\n", names));
            for n in names.iter().filter_map(|n| n.strip_prefix("gateway-")) {
                s.push_str(&format!("s6 {}: {:?}\n", n, self.s6(n)));
                s.push_str(&format!(
                    "state {}: {}\n",
                    n,
                    fs::read_to_string(self.home_of(n).join("gateway_state.json"))
                        .unwrap_or_default()
                ));
            }
        }
        s.push_str(&format!(
            "svscan.log:\n{}\n",
            fs::read_to_string(self.root.join("svscan.log")).unwrap_or_default()
        ));
        s
    }
}

impl Drop for Scandir {
    fn drop(&mut self) {
        let (killed, left) = self.teardown();
        let diag = if killed.is_empty() && left.is_empty() {
            String::new()
        } else {
            self.diagnostics()
        };
        // Give the tree back to root before removing it (compat tests chown parts of it).
        let _ = fs::remove_dir_all(&self.root);
        if std::thread::panicking() {
            return;
        }
        assert!(
            left.is_empty(),
            "processes survived teardown under {:?}: {:?}\n{}",
            self.root,
            left,
            diag
        );
        assert!(
            killed.is_empty(),
            "processes needed SIGKILL at teardown under {:?}: {:?}\n{}",
            self.root,
            killed,
            diag
        );
    }
}

/// Pids (> 1) whose cwd is `dir` or below it.
pub fn procs_with_cwd_under(dir: &Path) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cwd = fs::read_link(e.path().join("cwd")).ok()?;
            (pid > 1 && cwd.starts_with(dir) && !is_zombie(pid)).then_some(pid)
        })
        .collect()
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{}/stat", pid))
        .ok()
        .and_then(|s| {
            let i = s.rfind(')')?;
            s[i + 1..].split_whitespace().next().map(|st| st == "Z")
        })
        .unwrap_or(true)
}

/// A stable listing of a tree: relative path, type, mode (and uid), file contents,
/// symlink targets. `skip` names directories whose contents are left out.
pub fn listing(dir: &Path, skip: &[&str]) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, skip: &[&str], out: &mut Vec<String>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        let mut ents: Vec<_> = rd.flatten().collect();
        ents.sort_by_key(|e| e.file_name());
        for e in ents {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let m = fs::symlink_metadata(&p).unwrap();
            let mode = format!("{:o} uid={}", m.mode(), m.uid());
            let ft = m.file_type();
            if ft.is_symlink() {
                out.push(format!(
                    "{} link {} -> {:?}",
                    rel,
                    mode,
                    fs::read_link(&p).unwrap()
                ));
            } else if ft.is_dir() {
                out.push(format!("{} dir {}", rel, mode));
                let name = e.file_name();
                if !skip.iter().any(|s| name == *s) {
                    walk(base, &p, skip, out);
                }
            } else if ft.is_file() {
                out.push(format!(
                    "{} file {} {:?}",
                    rel,
                    mode,
                    String::from_utf8_lossy(&fs::read(&p).unwrap_or_default())
                ));
            } else {
                out.push(format!("{} other {}", rel, mode));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, skip, &mut out);
    out
}

/// Is `pid` alive (and not a zombie)?
pub fn alive(pid: i64) -> bool {
    pid > 0 && !is_zombie(pid as i32)
}

//! Shared helpers of the robustness suite (tests/robust_*.rs): a seeded PRNG, scratch
//! directories, bounded runs of the real binary, re-running one test of the current test
//! binary in a child process, and the stress switch.
//!
//! `HERMES_S6_STRESS=1` (what `make stress` sets) makes every loop use its long count;
//! `HERMES_S6_SEED=N` replays a run (every test prints the seed it used).
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "../common/base.rs"]
mod base;
pub use base::*;

/// Long runs under `make stress`.
pub fn stress() -> bool {
    std::env::var("HERMES_S6_STRESS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `normal` iterations in `cargo test`, `long` under stress.
pub fn count(normal: usize, long: usize) -> usize {
    if stress() {
        long
    } else {
        normal
    }
}

/// The run's seed: `HERMES_S6_SEED`, else a fixed one mixed with `salt` (reproducible).
pub fn seed(salt: u64) -> u64 {
    std::env::var("HERMES_S6_SEED")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0x4845_524d_4553_5336 ^ salt)
}

/// splitmix64: tiny, seedable, good enough to drive mutations and delays.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}

static N: AtomicUsize = AtomicUsize::new(0);

/// A unique scratch directory under the system temp dir, removed (whatever its modes) on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "hermes-s6-robust-{}-{}-{}",
            tag,
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // tests chmod directories 0555 / chown them: make everything removable again
        fn open_up(p: &Path) {
            if let Ok(m) = fs::symlink_metadata(p) {
                if m.is_dir() {
                    let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o755));
                    if let Ok(rd) = fs::read_dir(p) {
                        for e in rd.flatten() {
                            open_up(&e.path());
                        }
                    }
                }
            }
        }
        open_up(&self.0);
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Names in `dir` (sorted), or empty when unreadable.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Leftover temp files (`.NAME.tmp.PID`) of atomic writes in `dir`.
pub fn temps(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.contains(".tmp"))
        .collect()
}

pub fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid C string.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o666) },
        0,
        "mkfifo {:?}",
        p
    );
}

pub fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

pub fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// The outcome of a bounded child run.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Out {
    /// Exited by itself (no signal, no timeout) with `code`.
    pub fn is(&self, code: i32) -> bool {
        !self.timed_out && self.code == Some(code)
    }
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    })
}

/// Wait for `child` at most `timeout`; SIGKILL it (and its process group) after that.
pub fn wait_bounded(
    child: &mut Child,
    timeout: Duration,
) -> (Option<std::process::ExitStatus>, bool) {
    let deadline = Instant::now() + timeout;
    let mut step = Duration::from_micros(200);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return (Some(st), false);
        }
        if Instant::now() >= deadline {
            // SAFETY: our own child's process group (spawned with process_group(0)).
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.kill();
            return (child.wait().ok(), true);
        }
        std::thread::sleep(step);
        step = (step * 2).min(Duration::from_millis(20));
    }
}

/// Run `cmd` (stdin closed, output captured) for at most `timeout`. The child gets its own
/// process group so that a timeout kills whatever it started too.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Out {
    let t = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {}", cmd, e));
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let (st, timed_out) = wait_bounded(&mut child, timeout);
    Out {
        code: st.and_then(|s| s.code()),
        signal: st.and_then(|s| s.signal()),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        timed_out,
        elapsed: t.elapsed(),
    }
}

/// The binary with a clean environment: `home` as HERMES_HOME, `scandir`, s6 tools from
/// PATH, and HERMES_S6_USER=0:0 (root stays root: the files are the test's). Tests about the
/// hermes user set `10000:10000` (no `hermes` account exists on the host).
pub fn hermes(home: &Path, scandir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HERMES_HOME", home)
        .env("HERMES_S6_SCANDIR", scandir)
        .env("HERMES_S6_USER", "0:0")
        .env("HERMES_S6_SHEBANGDIR", "/usr/bin");
    c
}

/// `hermes()` with arguments, run bounded (5 s: nothing here may block).
pub fn hermes_run(home: &Path, scandir: &Path, args: &[&str]) -> Out {
    run_bounded(hermes(home, scandir).args(args), Duration::from_secs(5))
}

/// Run as `uid:uid` with no supplementary groups (std drops them when root sets a uid).
pub fn as_user(c: &mut Command, uid: u32) -> &mut Command {
    c.uid(uid).gid(uid)
}

/// Re-run the test `name` of this very test binary in a child process, with `env` added;
/// `wrap` (e.g. `["unshare", "-m"]`) goes in front. The child test sees `ROBUST_CHILD=1`.
pub fn self_test(name: &str, wrap: &[&str], env: &[(&str, &OsStr)]) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut c = match wrap.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    c.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("ROBUST_CHILD", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Inside a `self_test` child?
pub fn in_child() -> bool {
    std::env::var_os("ROBUST_CHILD").is_some()
}

/// `cmd` must have run the child test and passed; show its output otherwise.
pub fn assert_child_passed(o: &Out, what: &str) {
    assert!(
        o.is(0) && o.stdout.contains("1 passed"),
        "{} failed: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        what,
        o.code,
        o.stdout,
        o.stderr
    );
}

/// Can this process make private mount namespaces (root with `unshare`)?
pub fn can_unshare() -> bool {
    is_root()
        && Command::new("unshare")
            .args(["-m", "true"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Is `p` (or something under it) a mount point in this namespace?
pub fn mounted_under(p: &Path) -> bool {
    let m = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = p.to_string_lossy();
    m.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|mp| mp.starts_with(&*p)))
}

/// Mount a tmpfs with `opts` at `dir` (inside a private mount namespace).
pub fn mount_tmpfs(dir: &Path, opts: &str) {
    let c = |s: &[u8]| std::ffi::CString::new(s).unwrap();
    let src = c(b"tmpfs");
    let tgt = c(dir.as_os_str().as_encoded_bytes());
    let o = c(opts.as_bytes());
    // SAFETY: valid C strings.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            src.as_ptr(),
            0,
            o.as_ptr().cast(),
        )
    };
    assert_eq!(
        r,
        0,
        "mount tmpfs on {:?}: {}",
        dir,
        std::io::Error::last_os_error()
    );
}

/// Bind `dir` onto itself read-only (inside a private mount namespace).
pub fn bind_readonly(dir: &Path) {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid C strings; a bind then a read-only remount of that bind.
    unsafe {
        assert_eq!(
            libc::mount(
                c.as_ptr(),
                c.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null()
            ),
            0
        );
        let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
        assert_eq!(
            libc::mount(
                c.as_ptr(),
                c.as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null()
            ),
            0,
            "remount ro: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// One s6-supervise on one service directory whose `run` is a gateway that ignores SIGTERM
/// (so `stop` can be repeated against the same live pid). Torn down on drop.
pub struct Supervised {
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Supervised {
    /// None when s6 is not installed (the caller prints a notice and passes).
    pub fn start(dir: &Path) -> Option<Supervised> {
        let tool = s6_tool("s6-supervise")?;
        fs::create_dir_all(dir.join("data")).unwrap();
        let run = dir.join("run");
        fs::write(
            &run,
            format!("#!/bin/sh\ntrap '' TERM\nexec sleep {}\n", SLEEPER),
        )
        .unwrap();
        chmod(&run, 0o755);
        let child = Command::new(tool)
            .arg(dir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = Supervised {
            dir: dir.to_path_buf(),
            child: Some(child),
        };
        assert!(
            poll(Duration::from_secs(10), || s.up_pid().is_some()),
            "s6-supervise did not bring {:?} up",
            dir
        );
        Some(s)
    }

    pub fn up_pid(&self) -> Option<u64> {
        hermes_s6::svstat::read(&self.dir)
            .ok()
            .flatten()
            .filter(|s| s.up)
            .map(|s| s.pid)
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // want down and exit when down, then kill the SIGTERM-proof gateway
        let pid = self.up_pid();
        let _ = hermes_s6::control::svc(&self.dir, "dx");
        if let Some(pid) = pid {
            // SAFETY: the gateway s6 runs for us.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let (_, timed_out) = wait_bounded(&mut child, Duration::from_secs(10));
        if !std::thread::panicking() {
            assert!(
                !timed_out,
                "s6-supervise on {:?} had to be killed",
                self.dir
            );
        }
    }
}

/// The argument of the suite's `sleep` processes.
pub const SLEEPER: &str = "86399.4711";

/// A child process killed and reaped on drop (also when the test fails), with no stdio
/// (an orphan holding the harness' stdout would keep `cargo test | …` waiting).
pub struct Proc(pub Child);

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        Proc(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
    /// `sleep` for a long time: a live pid to point things at (an odd duration, so that
    /// tests/stress.sh can tell the suite's sleepers from anybody else's).
    pub fn sleeper() -> Proc {
        Proc::spawn(Command::new("sleep").arg(SLEEPER))
    }
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A supervise/ directory that says "up, pid `pid`": the lock held by this process, a 35-byte
/// status file, a control FIFO. Fault injection for states real s6 cannot be frozen in (a
/// live supervisor reporting a pid that no longer exists).
pub struct FakeSupervise {
    _lock: fs::File,
    _reader: Option<fs::File>,
}

impl FakeSupervise {
    /// `listening`: someone reads the control FIFO (else s6-svc's "not listening").
    pub fn new(slot: &Path, pid: u64, listening: bool) -> FakeSupervise {
        let sup = slot.join("supervise");
        fs::create_dir_all(&sup).unwrap();
        let lock = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(sup.join("lock"))
            .unwrap();
        // SAFETY: zeroed flock is valid; then an exclusive whole-file record lock.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as _;
        fl.l_whence = libc::SEEK_SET as _;
        assert_eq!(
            unsafe { libc::fcntl(lock.as_raw_fd(), libc::F_SETLK, &fl) },
            0
        );
        fs::write(sup.join("status"), status_bytes(pid, 0x4)).unwrap();
        let _ = fs::remove_file(sup.join("control"));
        mkfifo(&sup.join("control"));
        let reader = listening.then(|| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags_nonblock()
                .open(sup.join("control"))
                .unwrap()
        });
        if is_root() {
            // supervise/ is the hermes user's in the nested layout
            for p in [
                sup.clone(),
                sup.join("lock"),
                sup.join("status"),
                sup.join("control"),
            ] {
                chown(&p, 10000, 10000);
            }
            chmod(&sup.join("control"), 0o600);
        }
        FakeSupervise {
            _lock: lock,
            _reader: reader,
        }
    }
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}
impl NonBlock for fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK)
    }
}

/// A 35-byte s6 `supervise/status`: stamp, ready stamp, pid, wstat, flags.
pub fn status_bytes(pid: u64, flags: u8) -> Vec<u8> {
    let mut b = Vec::with_capacity(35);
    let tai = (1u64 << 62) + 1_785_578_700 + 37;
    for _ in 0..2 {
        b.extend_from_slice(&tai.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
    }
    b.extend_from_slice(&pid.to_be_bytes());
    b.extend_from_slice(&0u16.to_be_bytes());
    b.push(flags);
    b
}

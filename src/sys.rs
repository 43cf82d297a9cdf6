//! The system calls std does not offer, in one place: each a safe function
//! on `OwnedFd` / `BorrowedFd` and C strings, errors as `io::Error` (errno).
//! The rest of the crate holds no `unsafe` of its own: whatever a call
//! requires is checked here, once — except what only the caller can know
//! (an fd it inherited and nothing here owns, a process with one thread):
//! those few are `unsafe fn`, each with its contract, and each call says
//! why it holds.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Where a name is looked up: the working directory or an open directory.
#[derive(Clone, Copy)]
pub enum At<'a> {
    Cwd,
    Dir(BorrowedFd<'a>),
}

impl At<'_> {
    fn raw(self) -> libc::c_int {
        match self {
            At::Cwd => libc::AT_FDCWD,
            At::Dir(d) => d.as_raw_fd(),
        }
    }
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A path or a name as a C string for a system call: on the stack when it
/// fits (every path a profile home or a slot uses), like std's own calls.
/// A boot builds a thousand slots on a few threads, and musl's malloc has one
/// lock for all of them: an allocation per call made them wait on each other.
/// Made only by [`CPath::new`], which keeps what `Deref` relies on.
pub struct CPath(Repr);

#[allow(clippy::large_enum_variant)] // on the stack is its purpose
enum Repr {
    /// `buf[..len]` holds no NUL, `buf[len]` is 0, `len < CPATH_INLINE`.
    Inline {
        buf: [u8; CPATH_INLINE],
        len: usize,
    },
    Heap(CString),
}

/// std's own stack-buffer size for paths.
pub const CPATH_INLINE: usize = 384;

impl CPath {
    /// `bytes` as a C string (a NUL inside is EINVAL).
    pub fn new(bytes: &[u8]) -> io::Result<CPath> {
        let nul = || io::Error::from(io::ErrorKind::InvalidInput);
        if bytes.len() >= CPATH_INLINE {
            return CString::new(bytes)
                .map(|c| CPath(Repr::Heap(c)))
                .map_err(|_| nul());
        }
        if bytes.contains(&0) {
            return Err(nul());
        }
        let mut buf = [0u8; CPATH_INLINE];
        buf[..bytes.len()].copy_from_slice(bytes);
        Ok(CPath(Repr::Inline {
            buf,
            len: bytes.len(),
        }))
    }

    #[cfg(test)]
    fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }
}

impl std::ops::Deref for CPath {
    type Target = CStr;
    fn deref(&self) -> &CStr {
        match &self.0 {
            // SAFETY: `new` copied bytes without a NUL into a zeroed buffer
            // at least one byte longer, so buf[len] is their only NUL; the
            // fields are private, nothing else writes them.
            Repr::Inline { buf, len } => unsafe {
                CStr::from_bytes_with_nul_unchecked(&buf[..=*len])
            },
            Repr::Heap(c) => c,
        }
    }
}

/// A path as a C string (a NUL inside is EINVAL).
pub fn cpath(path: &Path) -> io::Result<CPath> {
    CPath::new(path.as_os_str().as_bytes())
}

/// openat(2), always close-on-exec. (openat even for paths: musl's open(2)
/// adds an fcntl(F_SETFD) for O_CLOEXEC.)
pub fn openat(at: At, name: &CStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: valid dirfd (or AT_FDCWD) and NUL-terminated name.
    let fd = check(unsafe {
        libc::openat(
            at.raw(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn mkdirat(at: At, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: valid dirfd and name.
    check(unsafe { libc::mkdirat(at.raw(), name.as_ptr(), mode as libc::mode_t) }).map(drop)
}

pub fn mkfifoat(at: At, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: valid dirfd and name.
    check(unsafe { libc::mkfifoat(at.raw(), name.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// fchmodat(2) with flags 0, which *follows* a symlink at `name`: only for
/// an entry the caller has just made itself (no link can be there).
pub fn fchmodat(at: At, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: valid dirfd and name.
    check(unsafe { libc::fchmodat(at.raw(), name.as_ptr(), mode as libc::mode_t, 0) }).map(drop)
}

pub fn fchmod(fd: BorrowedFd, mode: u32) -> io::Result<()> {
    // SAFETY: valid fd.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) }).map(drop)
}

/// A hard link; flags 0: a symlink at `old` is linked, never followed.
pub fn linkat(from: At, old: &CStr, to: At, new: &CStr) -> io::Result<()> {
    // SAFETY: valid dirfds and names.
    check(unsafe { libc::linkat(from.raw(), old.as_ptr(), to.raw(), new.as_ptr(), 0) }).map(drop)
}

pub fn unlinkat(at: At, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: valid dirfd and name.
    check(unsafe { libc::unlinkat(at.raw(), name.as_ptr(), flags) }).map(drop)
}

/// access(2): may this user do `mode` on `path`?
pub fn access(path: &CStr, mode: libc::c_int) -> bool {
    // SAFETY: valid C string.
    unsafe { libc::access(path.as_ptr(), mode) == 0 }
}

/// The process's umask. umask(2) can only be read by setting it: 022 for
/// that instant, then the old one back (read it before threads start).
pub fn umask() -> u32 {
    // SAFETY: umask cannot fail.
    unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m as u32
    }
}

/// flock(2) with `op` (LOCK_NB included by the caller when wanted).
pub fn flock(fd: BorrowedFd, op: libc::c_int) -> io::Result<()> {
    // SAFETY: valid fd.
    check(unsafe { libc::flock(fd.as_raw_fd(), op) }).map(drop)
}

/// Keep `fd` open across exec (or not).
pub fn set_cloexec(fd: BorrowedFd, on: bool) -> io::Result<()> {
    let v = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: F_SETFD on a valid fd.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, v) }).map(drop)
}

/// Would a read lock on the whole file conflict with a POSIX lock somebody
/// holds (F_GETLK)? s6-supervise holds one on `supervise/lock`.
pub fn read_locked_elsewhere(fd: BorrowedFd) -> io::Result<bool> {
    // SAFETY: flock is plain data; zeroed is a valid value, then the fields set.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_RDLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    // SAFETY: valid fd, valid pointer to a flock.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETLK, &mut fl) })?;
    Ok(fl.l_type != libc::F_UNLCK as _)
}

/// One directory's entries, read through a copy of `dir` from its start:
/// `(name, is_dir)` for each, `.`/`..` left out, until `more` says stop. The
/// type comes from d_type, else fstatat without following links.
pub fn read_dir_at(dir: BorrowedFd, mut more: impl FnMut(&CStr, bool) -> bool) -> io::Result<()> {
    // SAFETY: dup of a valid fd; fdopendir takes ownership of the copy and
    // closedir closes it; each entry is used before the next readdir.
    unsafe {
        let fd = check(libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0))?;
        // the copy shares the offset: start from the top (entries were removed)
        libc::lseek(fd, 0, libc::SEEK_SET);
        let d = libc::fdopendir(fd);
        if d.is_null() {
            let e = io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        loop {
            let ent = libc::readdir(d);
            if ent.is_null() {
                break;
            }
            let name = CStr::from_ptr((*ent).d_name.as_ptr());
            let b = name.to_bytes();
            if b == b"." || b == b".." {
                continue;
            }
            let is_dir = match (*ent).d_type {
                libc::DT_DIR => true,
                libc::DT_UNKNOWN => {
                    let mut st: libc::stat = std::mem::zeroed();
                    libc::fstatat(
                        dir.as_raw_fd(),
                        name.as_ptr(),
                        &mut st,
                        libc::AT_SYMLINK_NOFOLLOW,
                    ) == 0
                        && st.st_mode & libc::S_IFMT == libc::S_IFDIR
                }
                _ => false,
            };
            if !more(name, is_dir) {
                break;
            }
        }
        libc::closedir(d);
        Ok(())
    }
}

pub fn geteuid() -> u32 {
    // SAFETY: cannot fail.
    unsafe { libc::geteuid() }
}

pub fn getuid() -> u32 {
    // SAFETY: cannot fail.
    unsafe { libc::getuid() }
}

/// Become `uid:gid` for good (supplementary groups: just `gid`). Err: what
/// failed, in words (`unable to setgid to 10000: …`); a partial drop is an
/// error too.
pub fn become_user(uid: u32, gid: u32) -> Result<(), String> {
    let failed = |what: &str, id: u32| {
        format!(
            "unable to {} {}: {}",
            what,
            id,
            crate::error::os_text(&io::Error::last_os_error())
        )
    };
    let groups = [gid as libc::gid_t];
    // SAFETY: plain syscalls; `groups` outlives the setgroups call.
    unsafe {
        if libc::setgroups(1, groups.as_ptr()) != 0 {
            return Err(failed("setgroups to", gid));
        }
        if libc::setgid(gid) != 0 {
            return Err(failed("setgid to", gid));
        }
        if libc::setuid(uid) != 0 {
            return Err(failed("setuid to", uid));
        }
        // real and effective ids, and no way back
        if libc::getuid() != uid
            || libc::geteuid() != uid
            || libc::getgid() != gid
            || libc::getegid() != gid
            || libc::setuid(0) == 0
        {
            return Err(format!("unable to drop privileges to {}:{}", uid, gid));
        }
    }
    Ok(())
}

/// kill(2) of one process (`pid` > 1: never a group, never everybody).
pub fn kill(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let p = libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 1)
        .ok_or(io::ErrorKind::InvalidInput)?;
    // SAFETY: a signal to one process.
    check(unsafe { libc::kill(p, sig) }).map(drop)
}

/// Does process `pid` exist (signal 0; one of another user's counts)?
pub fn exists(pid: u32) -> bool {
    let Some(p) = libc::pid_t::try_from(pid).ok().filter(|&p| p > 0) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence.
    check(unsafe { libc::kill(p, 0) })
        .map_or_else(|e| e.raw_os_error() == Some(libc::EPERM), |_| true)
}

/// The local time zone's offset from UTC at `secs`, in seconds east, as
/// localtime_r(3) says: `TZ` (a POSIX rule, or a zone under
/// /usr/share/zoneinfo), else /etc/localtime, else UTC. None when it cannot
/// tell (a time out of range).
// (libc marks musl's time_t deprecated for 32-bit targets, where it is to
// become 64-bit; both targets here are 64-bit, where it already is)
#[allow(deprecated)]
pub fn utc_offset(secs: i64) -> Option<i64> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: all-zero is a valid `tm` (integers and a null tm_zone pointer).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to a time_t and a tm we own.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    #[allow(clippy::useless_conversion)] // c_long is 32-bit on some targets
    (!r.is_null()).then(|| i64::from(tm.tm_gmtoff))
}

/// CLOCK_REALTIME: seconds and nanoseconds since the epoch.
pub fn realtime() -> (i64, u32) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    // time_t is 32-bit on some targets, hence the conversion
    #[allow(clippy::useless_conversion)]
    let secs = i64::from(ts.tv_sec);
    (secs, ts.tv_nsec as u32)
}

/// Clock ticks per second (/proc/PID/stat's unit).
pub fn clk_tck() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&h| h > 0)
}

/// Sleep until a signal ends the process.
pub fn pause_forever() -> ! {
    loop {
        // SAFETY: pause has no preconditions; SIGTERM's default action ends us.
        unsafe { libc::pause() };
    }
}

/// An inotify fd watching `dir` for `mask` (non-blocking, close-on-exec).
pub fn inotify_watch(dir: &CStr, mask: u32) -> io::Result<OwnedFd> {
    // SAFETY: a flag word; the fd is fresh and ours alone.
    let fd = check(unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) })?;
    // SAFETY: (as above)
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an open inotify fd and a valid C string.
    check(unsafe { libc::inotify_add_watch(fd.as_raw_fd(), dir.as_ptr(), mask) })?;
    Ok(fd)
}

/// Wait up to `ms` for `fd` to be readable.
pub fn poll_in(fd: BorrowedFd, ms: i32) {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, ms) };
}

/// read(2) once.
pub fn read(fd: BorrowedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: a buffer of its own length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Close `fd`, an fd this process inherited to pass on (s6's notification
/// fd) or a forked child's copy of one its parent owns.
///
/// # Safety
/// No live value of this process may own or use `fd` afterwards (a copy
/// owned by a value is fine only if that value is never dropped: the
/// process `_exit`s).
pub(crate) unsafe fn close_inherited(fd: RawFd) {
    libc::close(fd);
}

/// One write of `b` to an inherited fd.
///
/// # Safety
/// `fd` is open and nothing owns it but the caller's contract (see
/// [`close_inherited`]).
pub(crate) unsafe fn write_inherited(fd: RawFd, b: &[u8]) -> io::Result<usize> {
    let n = libc::write(fd, b.as_ptr().cast(), b.len());
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Point `fds` at /dev/null and leave the working directory: a detached
/// process must not hold its starter's pipes open (whoever reads them to EOF
/// would wait for it) nor a directory busy.
pub(crate) fn to_dev_null(fds: &[RawFd]) {
    // SAFETY: plain fd syscalls on fds this process owns.
    unsafe {
        let null = libc::open(
            b"/dev/null\0".as_ptr().cast(),
            libc::O_RDWR | libc::O_CLOEXEC,
        );
        if null >= 0 {
            for &fd in fds {
                libc::dup2(null, fd);
            }
            libc::close(null);
        }
        libc::chdir(b"/\0".as_ptr().cast());
    }
}

/// Run `f` in a process of its own (double fork, new session): nobody's
/// child but init's, so the caller — about to exec a gateway, or a boot step
/// — never sees a SIGCHLD or a zombie it did not make, and never waits for
/// it. False when a fork failed.
///
/// # Safety
/// The process has one thread (fork copies only the caller's: a lock
/// another thread held would stay held in the children forever).
pub(crate) unsafe fn detach(f: impl FnOnce()) -> bool {
    // the children run `f` and _exit, never returning into the caller's code
    {
        match libc::fork() {
            -1 => false,
            0 => match libc::fork() {
                0 => {
                    libc::setsid();
                    f();
                    libc::_exit(0);
                }
                -1 => libc::_exit(1),
                _ => libc::_exit(0),
            },
            child => {
                let mut st = 0;
                libc::waitpid(child, &mut st, 0);
                st == 0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn kill_never_signals_a_group_or_init() {
        for pid in [0, 1, u32::MAX] {
            let e = kill(pid, 0).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "pid {}", pid);
        }
        assert!(kill(std::process::id(), 0).is_ok());
    }

    #[test]
    fn cpath_keeps_short_paths_on_the_stack_and_long_ones_whole() {
        let short = cpath(Path::new("/opt/data/profiles/coder")).unwrap();
        assert!(short.is_inline());
        assert_eq!(short.to_bytes(), b"/opt/data/profiles/coder");
        for n in [CPATH_INLINE - 1, CPATH_INLINE, 5000] {
            let long = "x".repeat(n);
            let c = CPath::new(long.as_bytes()).unwrap();
            assert_eq!(c.is_inline(), n < CPATH_INLINE);
            assert_eq!(c.to_bytes(), long.as_bytes());
        }
        let mut long_nul = vec![b'y'; 500];
        long_nul.push(0);
        for bad in [&b"a\0b"[..], b"\0", &long_nul] {
            assert_eq!(
                CPath::new(bad).err().map(|e| e.kind()),
                Some(io::ErrorKind::InvalidInput)
            );
        }
    }

    #[test]
    fn exists_sees_init_and_us_not_a_reaped_child() {
        assert!(exists(1) && exists(std::process::id()));
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        assert!(!exists(pid) && !exists(0));
    }

    #[test]
    fn read_dir_at_lists_entries_with_their_kind_from_the_top() {
        let d = std::env::temp_dir().join(format!("hermes-s6-sys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("f"), "").unwrap();
        std::os::unix::fs::symlink("sub", d.join("l")).unwrap();
        let fd = openat(
            At::Cwd,
            &cpath(&d).unwrap(),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )
        .unwrap();
        for _ in 0..2 {
            let mut seen = Vec::new();
            read_dir_at(fd.as_fd(), |n, dir| {
                seen.push((n.to_str().unwrap().to_string(), dir));
                true
            })
            .unwrap();
            seen.sort();
            // a link to a directory is not one (never followed)
            let want = [("f", false), ("l", false), ("sub", true)];
            assert_eq!(
                seen,
                want.map(|(n, b)| (n.to_string(), b)).to_vec(),
                "read again from the top"
            );
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}

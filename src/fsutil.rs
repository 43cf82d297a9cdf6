//! Careful file operations for files in a profile home, which the unprivileged user controls:
//! write-new-then-rename, reads that never follow a symlink or block on a FIFO, flock locks.
//!
//! Every refusal (symlink, FIFO, directory where a file belongs) is a System error (exit 111)
//! naming the path, and leaves the path as it was.

use crate::error::{sys, Error, Result};
use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A temp file whose writer is alive is left alone unless it is older than this.
const STALE_TEMP_SECS: i64 = 600;

fn describe(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_symlink() {
        "it is a symbolic link"
    } else if t.is_dir() {
        "it is a directory"
    } else if t.is_fifo() {
        "it is a FIFO"
    } else {
        "not a regular file"
    }
}

fn refuse(verb: &str, path: &Path, why: &str) -> Error {
    Error::System(format!("refusing to {} {}: {}", verb, path.display(), why))
}

use crate::sys::{self, cpath, At};

/// `path` as a C string for a system call; a NUL inside is bad usage, named.
pub(crate) fn c_path(path: &Path) -> Result<sys::CPath> {
    cpath(path).map_err(|_| Error::Usage(format!("bad path {}", path.display())))
}

/// `dir/rel` in one allocation (`Path::join` copies, then grows the copy):
/// a boot makes a handful of paths per profile on several threads, and
/// musl's malloc has one lock for all of them.
pub fn join(dir: &Path, rel: impl AsRef<Path>) -> PathBuf {
    let rel = rel.as_ref();
    let mut p = PathBuf::with_capacity(dir.as_os_str().len() + 1 + rel.as_os_str().len());
    p.push(dir);
    p.push(rel);
    p
}

/// open(2) with raw flags (std cannot create a file opened read-only).
pub(crate) fn open_raw(path: &Path, flags: libc::c_int, mode: u32) -> io::Result<File> {
    sys::openat(At::Cwd, &cpath(path)?, flags, mode).map(File::from)
}

fn is_root() -> bool {
    sys::geteuid() == 0
}

fn dir_and_name(path: &Path) -> Result<(&Path, &OsStr)> {
    let name = path.file_name().ok_or_else(|| {
        Error::System(format!(
            "unable to write {}: not a file name",
            path.display()
        ))
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// `.NAME.tmp.` — our temp files for NAME are this prefix plus the writer's pid.
fn temp_prefix(name: &OsStr) -> Vec<u8> {
    let mut p = Vec::with_capacity(name.len() + 6);
    p.push(b'.');
    p.extend_from_slice(name.as_bytes());
    p.extend_from_slice(b".tmp.");
    p
}

fn pid_alive(pid: u32) -> bool {
    sys::exists(pid)
}

/// Remove other writers' leftover temp files for this target: writer dead, or older than
/// STALE_TEMP_SECS (the pid may have been reused, e.g. after a container restart). Best effort.
fn sweep_temps(dir: &Path, prefix: &[u8], now: i64) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let me = std::process::id();
    for ent in rd.flatten() {
        let name = ent.file_name();
        let Some(suffix) = name.as_bytes().strip_prefix(prefix) else {
            continue;
        };
        if suffix.is_empty() || !suffix.iter().all(u8::is_ascii_digit) {
            continue;
        }
        let Some(pid) = std::str::from_utf8(suffix)
            .ok()
            .and_then(|s| s.parse().ok())
        else {
            continue;
        };
        if pid == me {
            continue; // ours: replaced by create_temp
        }
        let old = ent
            .metadata()
            .map(|m| now.saturating_sub(m.mtime()) > STALE_TEMP_SECS)
            .unwrap_or(false);
        if old || !pid_alive(pid) {
            let _ = fs::remove_file(ent.path());
        }
    }
}

fn create_temp(tmp: &Path) -> io::Result<File> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(tmp)
    };
    match open() {
        // a leftover with our pid is from a dead process that had the same pid
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(tmp)?;
            open()
        }
        r => r,
    }
}

/// Replace `path` with `data`: temp file in the same directory, fsync, rename, fsync the
/// directory. An existing target keeps its mode (and owner, when we are root); a new file gets
/// exactly `new_mode` (umask ignored) and, when we are root, the directory's owner (a profile
/// home belongs to the hermes user). A symlink or non-regular file at `path` is refused.
/// On failure the target is untouched and no temp file is left.
pub fn write_atomic(path: &Path, data: &[u8], new_mode: u32) -> Result<()> {
    let (dir, name) = dir_and_name(path)?;
    let old = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Some(m),
        Ok(m) => return Err(refuse("replace", path, describe(&m))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(sys("stat", path, e)),
    };
    let owner = match (&old, is_root()) {
        (Some(m), true) => Some((m.uid(), m.gid())),
        (None, true) => fs::metadata(dir).ok().map(|m| (m.uid(), m.gid())),
        (_, false) => None,
    };
    let mode = old.as_ref().map_or(new_mode, |m| m.mode()) & 0o7777;

    let prefix = temp_prefix(name);
    sweep_temps(dir, &prefix, crate::clock::now_secs());
    let mut tmp_name = prefix;
    tmp_name.extend_from_slice(std::process::id().to_string().as_bytes());
    let tmp = dir.join(OsString::from_vec(tmp_name));

    let mut f = create_temp(&tmp).map_err(|e| sys("create a temporary file for", path, e))?;
    let r = fill(&mut f, data, owner, mode, path).and_then(|()| {
        drop(f);
        fs::rename(&tmp, path).map_err(|e| sys("replace", path, e))
    });
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
        return r;
    }
    // Durability of the rename only: the new content is already in place, so a failure here
    // must not turn into "the command failed" (and some filesystems refuse fsync on a directory).
    if let Ok(d) = open_raw(dir, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn fill(
    f: &mut File,
    data: &[u8],
    owner: Option<(u32, u32)>,
    mode: u32,
    path: &Path,
) -> Result<()> {
    f.write_all(data).map_err(|e| sys("write", path, e))?;
    // chown before chmod: chown clears setuid/setgid bits
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&*f, Some(uid), Some(gid)).map_err(|e| sys("chown", path, e))?;
    }
    f.set_permissions(fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| sys("chmod", path, e))?;
    f.sync_all().map_err(|e| sys("fsync", path, e))
}

/// Read a regular file of at most `max_len` bytes. Missing → `Ok(None)`. Never follows a
/// symlink at `path` and never blocks on a FIFO: those, directories and oversized files are
/// errors naming the path.
pub fn read_file(path: &Path, max_len: usize) -> Result<Option<Vec<u8>>> {
    let mut f = match open_raw(
        path,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        0,
    ) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(refuse("read", path, "it is a symbolic link"))
        }
        Err(e) => return Err(sys("open", path, e)),
    };
    let m = f.metadata().map_err(|e| sys("stat", path, e))?;
    if !m.file_type().is_file() {
        return Err(refuse("read", path, describe(&m)));
    }
    let too_big = || {
        Error::System(format!(
            "unable to read {}: larger than {} bytes",
            path.display(),
            max_len
        ))
    };
    if m.len() > max_len as u64 {
        return Err(too_big());
    }
    let mut buf = Vec::with_capacity(m.len() as usize);
    if m.len() > 0 {
        // The size fstat gave, in one read (files are replaced by rename, not
        // grown in place): no second read just to meet EOF.
        buf.resize(m.len() as usize, 0);
        let mut got = 0;
        while got < buf.len() {
            match f.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(sys("read", path, e)),
            }
        }
        buf.truncate(got);
        return Ok(Some(buf));
    }
    // /proc files say 0 bytes: read them to the end, bounded.
    f.take(max_len as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| sys("read", path, e))?;
    if buf.len() > max_len {
        return Err(too_big());
    }
    Ok(Some(buf))
}

/// An exclusive flock, released when dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Take an exclusive flock on `path`, creating it 0644 (read-only open, so a lock file created
/// by root can still be locked by the hermes user). Blocks until the lock is free.
pub fn lock_exclusive(path: &Path) -> Result<Lock> {
    lock(path, libc::LOCK_EX)
}

/// [`lock_exclusive`], shared: any number of holders, none while somebody
/// holds it exclusively.
pub fn lock_shared(path: &Path) -> Result<Lock> {
    lock(path, libc::LOCK_SH)
}

/// Open a lock file: never through a symlink, never blocking on a FIFO, and
/// only a regular file.
fn open_lock_file(path: &Path, flags: libc::c_int) -> Result<(File, Metadata)> {
    let f = open_raw(path, flags | libc::O_NOFOLLOW | libc::O_NONBLOCK, 0o644).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            refuse("lock", path, "it is a symbolic link")
        } else {
            sys("open", path, e)
        }
    })?;
    let m = f.metadata().map_err(|e| sys("stat", path, e))?;
    if !m.file_type().is_file() {
        return Err(refuse("lock", path, describe(&m)));
    }
    Ok((f, m))
}

fn lock(path: &Path, how: libc::c_int) -> Result<Lock> {
    let (f, m) = open_lock_file(path, libc::O_RDONLY | libc::O_CREAT)?;
    // Bounded: a lock somebody holds forever (a hermes process, a stuck
    // writer) must not hang an operator's command or a boot.
    let limit = std::time::Duration::from_millis(LOCK_WAIT_MS.load(Ordering::Relaxed));
    let start = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        let Err(e) = sys::flock(f.as_fd(), how | libc::LOCK_NB) else {
            return Ok(Lock { _file: f });
        };
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => {}
            _ => return Err(sys("lock", path, e)),
        }
        if start.elapsed() >= limit {
            let holder = lock_holder(m.ino())
                .map(|pid| format!(" (held by pid {})", pid))
                .unwrap_or_default();
            return Err(Error::Refused(format!(
                "timed out after {} ms waiting for the lock {}{}",
                limit.as_millis(),
                path.display(),
                holder
            )));
        }
        std::thread::sleep(pause.min(limit.saturating_sub(start.elapsed())));
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    }
}

/// Try to take an exclusive flock on `path` without waiting: `Ok(None)` when
/// somebody else holds it. Opened read-write (over NFS, Linux turns flock into
/// a POSIX write lock, which needs a writable fd), never through a symlink,
/// never blocking on a FIFO; `create` makes a missing file 0644. The lock goes
/// with the returned file (close-on-exec: whoever must keep it across an exec
/// says so, `clear_cloexec`).
pub fn try_lock(path: &Path, create: bool) -> Result<Option<File>> {
    let create = if create { libc::O_CREAT } else { 0 };
    let (f, _) = open_lock_file(path, libc::O_RDWR | create)?;
    let took = flock_now(&f).map_err(|e| sys("lock", path, e))?;
    Ok(took.then_some(f))
}

/// Is the lock at `path` held by somebody? A probe: taken when free and let
/// go at once. A missing file (the common case, said without building an
/// error), or one that cannot be opened or locked, is not known to be held.
pub fn lock_held(path: &Path) -> bool {
    let flags = libc::O_RDWR | libc::O_NOFOLLOW | libc::O_NONBLOCK;
    let Ok(f) = open_raw(path, flags, 0) else {
        return false;
    };
    f.metadata().is_ok_and(|m| m.is_file()) && matches!(flock_now(&f), Ok(false))
}

/// An exclusive flock without waiting: false when somebody else holds it.
fn flock_now(f: &File) -> io::Result<bool> {
    loop {
        let Err(e) = sys::flock(f.as_fd(), libc::LOCK_EX | libc::LOCK_NB) else {
            return Ok(true);
        };
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// Let `f` survive an exec (the lease the gateway must hold itself).
pub fn clear_cloexec(f: &File) -> Result<()> {
    sys::set_cloexec(f.as_fd(), false).map_err(|e| {
        Error::System(format!(
            "unable to keep the lease across exec: {}",
            crate::error::os_text(&e)
        ))
    })
}

/// Remove everything inside the directory `top` (not `top` itself), holding
/// one directory fd at a time: no recursion and no fd per level, so a tree
/// of any depth (a chain of thousands of directories) is cleared with a
/// handful of fds and a flat stack; never following a link (links are
/// unlinked, not walked). Best-effort and bounded: stops at the first error,
/// or when `budget` is spent (Err TimedOut). For trees the caller's own user
/// built; root never walks one (init-scandir moves it aside instead).
pub fn clear_dir(top: &Path, budget: std::time::Duration) -> io::Result<()> {
    use std::os::fd::OwnedFd;
    let deadline = std::time::Instant::now() + budget;
    let openat = |dir: &OwnedFd, name: &std::ffi::CStr| -> io::Result<OwnedFd> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        sys::openat(At::Dir(dir.as_fd()), name, flags, 0)
    };
    let unlinkat = |dir: &OwnedFd, name: &std::ffi::CStr, flags: libc::c_int| {
        sys::unlinkat(At::Dir(dir.as_fd()), name, flags)
    };
    let mut dir = OwnedFd::from(open_raw(
        top,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        0,
    )?);
    let mut path: Vec<CString> = Vec::new(); // names from `top` down to `dir`
    loop {
        if std::time::Instant::now() >= deadline {
            return Err(io::ErrorKind::TimedOut.into());
        }
        // A batch of entries: the files go now, the first subdirectory is entered.
        let (entries, sub) = read_some(&dir, 256)?;
        for name in &entries {
            if let Err(e) = unlinkat(&dir, name, 0) {
                if e.raw_os_error() != Some(libc::ENOENT) {
                    return Err(e);
                }
            }
        }
        if let Some(name) = sub {
            match openat(&dir, &name) {
                Ok(d) => {
                    dir = d;
                    path.push(name);
                }
                // not a directory after all (replaced meanwhile): an entry like any other
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) => {
                    unlinkat(&dir, &name, 0)?
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
            continue;
        }
        if !entries.is_empty() {
            continue;
        }
        // Empty: go up and remove it.
        let Some(name) = path.pop() else {
            return Ok(());
        };
        let up = openat(&dir, c"..")?;
        dir = up;
        unlinkat(&dir, &name, libc::AT_REMOVEDIR)?;
    }
}

/// Up to `max` entries of `dir` that are not directories, and the name of
/// one subdirectory if there is one (d_type, else fstatat without following).
fn read_some(
    dir: &std::os::fd::OwnedFd,
    max: usize,
) -> io::Result<(Vec<CString>, Option<CString>)> {
    let (mut files, mut sub) = (Vec::new(), None);
    sys::read_dir_at(dir.as_fd(), |name, is_dir| {
        if is_dir {
            sub = Some(name.to_owned());
        } else {
            files.push(name.to_owned());
        }
        // descend at once: the files after it go when we are back
        files.len() < max && sub.is_none()
    })?;
    Ok((files, sub))
}

/// How long [`lock_exclusive`] waits, in ms: the command's `--timeout` when it
/// has one (main sets it), else 10 s.
pub static LOCK_WAIT_MS: AtomicU64 = AtomicU64::new(10_000);

/// The pid holding a flock on inode `ino`, from /proc/locks, if it says.
fn lock_holder(ino: u64) -> Option<u32> {
    let b = read_file(Path::new("/proc/locks"), 1 << 20).ok()??;
    let text = String::from_utf8_lossy(&b);
    let suffix = format!(":{}", ino);
    text.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
        (w.get(1) == Some(&"FLOCK") && w.get(5).is_some_and(|d| d.ends_with(&suffix)))
            .then(|| w.get(4)?.parse().ok())
            .flatten()
    })
}

/// unlink(2); a missing file is `Ok(false)`.
pub fn remove_file(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(sys("remove", path, e)),
    }
}

/// Make sure `path` is a real directory (not a symlink to one). A directory created here gets
/// exactly `mode` (umask ignored); an existing one is left as it is.
pub fn ensure_dir(path: &Path, mode: u32) -> Result<()> {
    let created = match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(sys("create directory", path, e)),
    };
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
    let d = match open_raw(path, flags, 0) {
        Ok(d) => d,
        // Linux says ENOTDIR, not ELOOP, for a symlink opened O_DIRECTORY|O_NOFOLLOW
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
            let link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            let why = if link {
                "it is a symbolic link"
            } else {
                "not a directory"
            };
            return Err(refuse("use", path, why));
        }
        Err(e) => return Err(sys("open", path, e)),
    };
    if created {
        d.set_permissions(fs::Permissions::from_mode(mode & 0o7777))
            .map_err(|e| sys("chmod", path, e))?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::os::unix::io::{AsRawFd, FromRawFd};
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn clear_dir_empties_a_chain_deeper_than_the_fd_limit_without_following_links() {
        let t = TempDir::new("clear");
        let top = t.path("top");
        fs::create_dir(&top).unwrap();
        let outside = t.path("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("precious"), b"x").unwrap();
        // 3000 levels (past a 1024 fd limit and PATH_MAX), built with one fd at a time
        let mut d = File::open(&top).unwrap();
        for i in 0..3000 {
            let n = CString::new("d").unwrap();
            // SAFETY: valid dirfd and name.
            unsafe {
                assert_eq!(libc::mkdirat(d.as_raw_fd(), n.as_ptr(), 0o755), 0);
                if i % 500 == 0 {
                    let f = CString::new("f").unwrap();
                    let fd = libc::openat(
                        d.as_raw_fd(),
                        f.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o644,
                    );
                    assert!(fd >= 0);
                    libc::close(fd);
                    let l = CString::new("link").unwrap();
                    let target = CString::new(outside.as_os_str().as_bytes()).unwrap();
                    assert_eq!(
                        libc::symlinkat(target.as_ptr(), d.as_raw_fd(), l.as_ptr()),
                        0
                    );
                }
                let fd = libc::openat(
                    d.as_raw_fd(),
                    n.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                );
                assert!(fd >= 0);
                d = File::from_raw_fd(fd);
            }
        }
        drop(d);
        fs::write(top.join("a-file"), b"x").unwrap();
        clear_dir(&top, std::time::Duration::from_secs(60)).unwrap();
        assert!(fs::read_dir(&top).unwrap().next().is_none(), "emptied");
        assert!(top.is_dir(), "top itself stays");
        assert!(
            outside.join("precious").exists(),
            "links are unlinked, never followed"
        );
        // and the budget bounds it
        fs::create_dir_all(top.join("x/y")).unwrap();
        let e = clear_dir(&top, std::time::Duration::ZERO).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    /// A unique scratch directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "hermes-s6-{}-{}-{}",
                tag,
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir(&p).unwrap();
            TempDir(p)
        }
        pub(crate) fn path(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
        pub(crate) fn names(&self) -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o755));
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    pub(crate) fn mkfifo(p: &Path) {
        let c = cpath(p).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    }

    /// Run `f` in a forked child (optionally as `uid`); returns the child's exit status.
    /// The child only does syscalls and small allocations, which is fork-safe with glibc/musl.
    pub(crate) fn in_child(uid: Option<u32>, f: impl FnOnce() -> i32) -> i32 {
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let mut code = 99;
            let ok = match uid {
                Some(u) => unsafe {
                    libc::setgroups(0, std::ptr::null()) == 0
                        && libc::setgid(u) == 0
                        && libc::setuid(u) == 0
                },
                None => true,
            };
            if ok {
                code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(98);
            }
            unsafe { libc::_exit(code) };
        }
        let mut st = 0;
        assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
        assert!(libc::WIFEXITED(st), "child status {}", st);
        libc::WEXITSTATUS(st)
    }

    fn mode_of(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn new_file_gets_exactly_new_mode() {
        let d = TempDir::new("fs");
        let p = d.path("f.json");
        write_atomic(&p, b"{}", 0o666).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"{}");
        assert_eq!(mode_of(&p), 0o666);
        assert_eq!(d.names(), ["f.json"]);
    }

    #[test]
    fn existing_mode_is_kept() {
        let d = TempDir::new("fs");
        let p = d.path("f.json");
        fs::write(&p, "old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&p, b"new", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(mode_of(&p), 0o600);
        assert_eq!(d.names(), ["f.json"]);
    }

    #[test]
    fn owner_is_kept_and_new_files_get_the_dir_owner_when_root() {
        if !is_root() {
            return;
        }
        let d = TempDir::new("fs");
        let p = d.path("old");
        fs::write(&p, "x").unwrap();
        std::os::unix::fs::chown(&p, Some(10000), Some(10001)).unwrap();
        write_atomic(&p, b"y", 0o644).unwrap();
        let m = fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid()), (10000, 10001));
        std::os::unix::fs::chown(&d.0, Some(10002), Some(10003)).unwrap();
        let q = d.path("new");
        write_atomic(&q, b"z", 0o644).unwrap();
        let m = fs::metadata(&q).unwrap();
        assert_eq!((m.uid(), m.gid()), (10002, 10003));
    }

    #[test]
    fn symlink_at_target_is_refused() {
        let d = TempDir::new("fs");
        let victim = d.path("victim");
        fs::write(&victim, "keep").unwrap();
        let p = d.path("f.json");
        symlink(&victim, &p).unwrap();
        let e = write_atomic(&p, b"evil", 0o644).unwrap_err();
        assert_eq!(e.exit_code(), 111);
        assert_eq!(
            e.message(),
            format!("refusing to replace {}: it is a symbolic link", p.display())
        );
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert!(fs::symlink_metadata(&p).unwrap().file_type().is_symlink());
        assert_eq!(d.names(), ["f.json", "victim"]);
    }

    #[test]
    fn fifo_and_dir_at_target_are_refused() {
        let d = TempDir::new("fs");
        let p = d.path("fifo");
        mkfifo(&p);
        let e = write_atomic(&p, b"x", 0o644).unwrap_err();
        assert!(e.message().contains("it is a FIFO"), "{}", e);
        let q = d.path("dir");
        fs::create_dir(&q).unwrap();
        let e = write_atomic(&q, b"x", 0o644).unwrap_err();
        assert!(e.message().contains("it is a directory"), "{}", e);
        assert_eq!(d.names(), ["dir", "fifo"]);
    }

    #[test]
    fn unwritable_dir_is_error_111_naming_the_path() {
        let d = TempDir::new("fs");
        let p = d.path("f.json");
        fs::write(&p, "old").unwrap();
        fs::set_permissions(&d.0, fs::Permissions::from_mode(0o555)).unwrap();
        let check = || match write_atomic(&p, b"new", 0o644) {
            Err(e) if e.exit_code() == 111 && e.message().contains(&*p.to_string_lossy()) => 0,
            _ => 1,
        };
        // root ignores permissions: try as an unprivileged uid
        let code = if is_root() {
            in_child(Some(10000), check)
        } else {
            check()
        };
        assert_eq!(code, 0);
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(d.names(), ["f.json"]);
    }

    #[test]
    fn failed_write_leaves_no_temp_and_target_untouched() {
        let d = TempDir::new("fs");
        let p = d.path("f.json");
        fs::write(&p, "old").unwrap();
        // fail in the middle of writing: the file size limit makes write(2) return EFBIG
        let code = in_child(None, || unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: 100,
                rlim_max: 100,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
            match write_atomic(&p, &[b'x'; 4096], 0o644) {
                Err(e) if e.message().starts_with("unable to write ") => 0,
                _ => 1,
            }
        });
        assert_eq!(code, 0);
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(d.names(), ["f.json"]);
    }

    #[test]
    fn stale_temps_are_swept_and_live_ones_kept() {
        let d = TempDir::new("fs");
        let p = d.path("f.json");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        fs::write(d.path(&format!(".f.json.tmp.{}", dead)), "x").unwrap();
        fs::write(d.path(&format!(".f.json.tmp.{}", std::process::id())), "x").unwrap();
        fs::write(d.path(".f.json.tmp.1"), "live").unwrap();
        fs::write(d.path(".f.json.tmp.notapid"), "x").unwrap();
        fs::write(d.path(".other.tmp.999999999"), "x").unwrap();
        write_atomic(&p, b"{}", 0o644).unwrap();
        assert_eq!(
            d.names(),
            [
                ".f.json.tmp.1",
                ".f.json.tmp.notapid",
                ".other.tmp.999999999",
                "f.json"
            ]
        );
        // an old temp is swept even when its pid is alive (pid reuse)
        let old = cpath(&d.path(".f.json.tmp.1")).unwrap();
        let times = [libc::timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 0,
        }; 2];
        assert_eq!(
            unsafe { libc::utimensat(libc::AT_FDCWD, old.as_ptr(), times.as_ptr(), 0) },
            0
        );
        write_atomic(&p, b"{}", 0o644).unwrap();
        assert_eq!(
            d.names(),
            [".f.json.tmp.notapid", ".other.tmp.999999999", "f.json"]
        );
    }

    #[test]
    fn read_file_missing_regular_and_too_large() {
        let d = TempDir::new("fs");
        let p = d.path("f");
        assert_eq!(read_file(&p, 10).unwrap(), None);
        fs::write(&p, "0123456789").unwrap();
        assert_eq!(read_file(&p, 10).unwrap().unwrap(), b"0123456789");
        let e = read_file(&p, 9).unwrap_err();
        assert_eq!(e.exit_code(), 111);
        assert!(e.message().contains(&*p.to_string_lossy()), "{}", e);
    }

    #[test]
    fn read_file_refuses_symlink_fifo_and_dir_without_blocking() {
        let d = TempDir::new("fs");
        fs::write(d.path("target"), "secret").unwrap();
        symlink(d.path("target"), d.path("link")).unwrap();
        let e = read_file(&d.path("link"), 100).unwrap_err();
        assert!(e.message().contains("symbolic link"), "{}", e);
        assert!(e.message().contains(&*d.path("link").to_string_lossy()));
        mkfifo(&d.path("fifo"));
        let e = read_file(&d.path("fifo"), 100).unwrap_err();
        assert!(e.message().contains("FIFO"), "{}", e);
        fs::create_dir(d.path("dir")).unwrap();
        let e = read_file(&d.path("dir"), 100).unwrap_err();
        assert!(e.message().contains("directory"), "{}", e);
    }

    #[test]
    fn lock_is_exclusive_until_dropped() {
        let d = TempDir::new("fs");
        let p = d.path(".lock");
        let l = lock_exclusive(&p).unwrap();
        assert!(fs::symlink_metadata(&p).unwrap().file_type().is_file());
        let other = File::open(&p).unwrap();
        let try_lock = || unsafe { libc::flock(other.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_ne!(try_lock(), 0);
        drop(l);
        // A test forking in parallel (in_child) may briefly hold a copy of the
        // locked descriptor: allow it to exit.
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while try_lock() != 0 && std::time::Instant::now() < end {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!(try_lock(), 0);
    }

    #[test]
    fn lock_refuses_symlink_and_fifo() {
        let d = TempDir::new("fs");
        symlink(d.path("elsewhere"), d.path("l")).unwrap();
        assert!(lock_exclusive(&d.path("l")).is_err());
        assert!(fs::symlink_metadata(d.path("elsewhere")).is_err());
        mkfifo(&d.path("fifo"));
        let e = lock_exclusive(&d.path("fifo")).unwrap_err();
        assert!(e.message().contains("FIFO"), "{}", e);
    }

    #[test]
    fn remove_file_reports_whether_it_existed() {
        let d = TempDir::new("fs");
        let p = d.path("f");
        fs::write(&p, "x").unwrap();
        assert!(remove_file(&p).unwrap());
        assert!(!remove_file(&p).unwrap());
    }

    #[test]
    fn ensure_dir_creates_with_mode_and_refuses_symlinks() {
        let d = TempDir::new("fs");
        let p = d.path("sub");
        ensure_dir(&p, 0o770).unwrap();
        assert_eq!(mode_of(&p), 0o770);
        ensure_dir(&p, 0o700).unwrap();
        assert_eq!(mode_of(&p), 0o770);
        symlink(&p, d.path("link")).unwrap();
        let e = ensure_dir(&d.path("link"), 0o755).unwrap_err();
        assert!(e.message().contains("symbolic link"), "{}", e);
        fs::write(d.path("file"), "").unwrap();
        let e = ensure_dir(&d.path("file"), 0o755).unwrap_err();
        assert!(e.message().contains("not a directory"), "{}", e);
    }
}

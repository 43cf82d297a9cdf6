//! Talking to s6 the way `s6-svc` and `s6-svscanctl` do: one write of
//! command letters to the control FIFO of a supervisor or scanner, without
//! spawning a process. Opening the FIFO write-only and non-blocking fails
//! with ENXIO when nobody listens — the "supervisor not listening" case that
//! s6-svc reports as exit 100 (s6 ≤ 2.13) or 102 (2.14+); we report it as
//! exit 1 "not supervised" on every version.

use crate::error::{refused, sys, Result};
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Outcome of one write to a control FIFO.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    Done,
    NotListening,
}

/// Write `cmds` to the FIFO at `fifo`. Never blocks, never follows a
/// symlink, refuses anything that is not a FIFO.
pub fn write_fifo(fifo: &Path, cmds: &str) -> Result<Sent> {
    let c = crate::fsutil::c_path(fifo)?;
    let flags = libc::O_WRONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW;
    let mut f = match crate::sys::openat(crate::sys::At::Cwd, &c, flags, 0) {
        Ok(fd) => std::fs::File::from(fd),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENXIO) | Some(libc::ENOENT)) => {
            return Ok(Sent::NotListening)
        }
        Err(e) => return Err(sys("open", fifo, e)),
    };
    let st = f.metadata().map_err(|e| sys("stat", fifo, e))?;
    if !st.file_type().is_fifo() {
        return Err(crate::error::Error::System(format!(
            "refusing to write to {}: not a FIFO",
            fifo.display()
        )));
    }
    match f.write(cmds.as_bytes()) {
        Ok(n) if n == cmds.len() => Ok(Sent::Done),
        Ok(_) => Err(refused(format!("short write to {}", fifo.display()))),
        // The reader went away between open and write.
        Err(e) if e.raw_os_error() == Some(libc::EPIPE) => Ok(Sent::NotListening),
        Err(e) => Err(sys("write to", fifo, e)),
    }
}

/// `s6-svc -<cmds> dir`. Not supervised → exit 1 naming the directory.
pub fn svc(dir: &Path, cmds: &str) -> Result<()> {
    match write_fifo(&dir.join("supervise").join("control"), cmds)? {
        Sent::Done => Ok(()),
        Sent::NotListening => Err(refused(format!(
            "{} is not supervised (s6-supervise not running)",
            dir.display()
        ))),
    }
}

/// `s6-svscanctl -<cmds> scandir`; Ok(false) when no scanner listens.
pub fn svscanctl(scandir: &Path, cmds: &str) -> Result<bool> {
    Ok(write_fifo(&scandir.join(".s6-svscan").join("control"), cmds)? == Sent::Done)
}

/// Poll `cond` until it is true or `timeout` has passed. The interval grows
/// from 2 ms to 50 ms: quick answers stay quick, long waits stay cheap.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> Result<bool>) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut step = Duration::from_millis(2);
    loop {
        if cond()? {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        std::thread::sleep(step.min(deadline - now));
        step = (step * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("hermes-s6-control-{}-{}", tag, std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn fifo_without_reader_is_not_listening() {
        let d = tmpdir("noreader");
        let f = d.join("control");
        let c = CString::new(f.as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(write_fifo(&f, "d").unwrap(), Sent::NotListening);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_control_is_not_supervised_exit_1() {
        let d = tmpdir("missing");
        let e = svc(&d, "u").unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(e.message().contains("not supervised"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn regular_file_is_refused_and_not_written() {
        let d = tmpdir("regular");
        let f = d.join("control");
        std::fs::write(&f, "").unwrap();
        assert!(write_fifo(&f, "d").is_err());
        assert_eq!(std::fs::read(&f).unwrap(), b"");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn symlink_to_fifo_is_not_followed() {
        let d = tmpdir("symlink");
        let f = d.join("real");
        let c = CString::new(f.as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        std::os::unix::fs::symlink(&f, d.join("control")).unwrap();
        assert!(write_fifo(&d.join("control"), "d").is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn fifo_with_reader_receives_the_letters() {
        let d = tmpdir("reader");
        let f = d.join("control");
        let c = CString::new(f.as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // A non-blocking reader keeps the FIFO open for our write.
        let rfd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK) };
        assert!(rfd >= 0);
        assert_eq!(write_fifo(&f, "ru").unwrap(), Sent::Done);
        let mut buf = [0u8; 8];
        let n = unsafe { libc::read(rfd, buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(&buf[..n as usize], b"ru");
        unsafe { libc::close(rfd) };
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn wait_until_gives_up_at_the_deadline() {
        let t = Instant::now();
        assert!(!wait_until(Duration::from_millis(30), || Ok(false)).unwrap());
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert!(wait_until(Duration::from_millis(30), || Ok(true)).unwrap());
    }
}

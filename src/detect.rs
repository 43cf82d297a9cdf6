//! Is PID 1 s6 (s6-overlay v3)? `/proc/1/comm` is `s6-svscan` and `/run/s6/basedir` is a
//! directory. Never reads `/proc/1/exe`: that needs ptrace rights, which uid 10000 lacks.

use std::fs;
use std::path::Path;

/// Detection against an alternative root (tests use a temp dir laid out like `/`).
pub fn detect_at(root: &Path) -> bool {
    // comm is at most 16 bytes; anything unreadable or not UTF-8 simply is not s6.
    let comm = match fs::read(root.join("proc/1/comm")) {
        Ok(b) => b,
        Err(_) => return false,
    };
    let is_svscan = std::str::from_utf8(&comm).is_ok_and(|s| s.trim() == "s6-svscan");
    is_svscan && root.join("run/s6/basedir").is_dir()
}

/// Detection on the running system.
pub fn detect() -> bool {
    detect_at(Path::new("/"))
}

#[cfg(test)]
mod tests {
    use super::detect_at;
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static N: AtomicUsize = AtomicUsize::new(0);

    /// A fake root; `comm` None = no /proc/1/comm; `basedir`: 'd' dir, 'f' file, '-' none.
    struct Root(PathBuf);
    impl Root {
        fn new(comm: Option<&[u8]>, basedir: char) -> Root {
            let r = std::env::temp_dir().join(format!(
                "hermes-s6-detect-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = fs::remove_dir_all(&r);
            fs::create_dir_all(r.join("proc/1")).unwrap();
            fs::create_dir_all(r.join("run/s6")).unwrap();
            if let Some(c) = comm {
                fs::write(r.join("proc/1/comm"), c).unwrap();
            }
            match basedir {
                'd' => fs::create_dir(r.join("run/s6/basedir")).unwrap(),
                'f' => fs::write(r.join("run/s6/basedir"), "").unwrap(),
                _ => {}
            }
            Root(r)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Root {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn svscan_with_basedir_is_s6() {
        assert!(detect_at(Root::new(Some(b"s6-svscan\n"), 'd').path()));
    }

    #[test]
    fn comm_without_trailing_newline_is_s6() {
        assert!(detect_at(Root::new(Some(b"s6-svscan"), 'd').path()));
    }

    #[test]
    fn svscan_without_basedir_is_not_s6() {
        assert!(!detect_at(Root::new(Some(b"s6-svscan\n"), '-').path()));
    }

    #[test]
    fn basedir_that_is_a_file_is_not_s6() {
        assert!(!detect_at(Root::new(Some(b"s6-svscan\n"), 'f').path()));
    }

    #[test]
    fn other_pid1_is_not_s6() {
        for c in [
            &b"systemd\n"[..],
            b"init\n",
            b"s6-svscanx\n",
            b"s6\n",
            b"",
            b"\xff\xfe",
        ] {
            assert!(!detect_at(Root::new(Some(c), 'd').path()), "{:?}", c);
        }
    }

    #[test]
    fn missing_comm_is_not_s6() {
        assert!(!detect_at(Root::new(None, 'd').path()));
    }

    #[test]
    fn missing_proc_is_not_s6() {
        let r = Root::new(None, 'd');
        fs::remove_dir_all(r.path().join("proc")).unwrap();
        assert!(!detect_at(r.path()));
    }

    #[test]
    fn unreadable_comm_is_not_s6() {
        // A directory in its place fails to read even for root (EISDIR)…
        let r = Root::new(None, 'd');
        fs::create_dir(r.path().join("proc/1/comm")).unwrap();
        assert!(!detect_at(r.path()));
        // …and mode 000 fails for anyone but root (who bypasses permissions).
        use std::os::unix::fs::PermissionsExt;
        let r = Root::new(Some(b"s6-svscan\n"), 'd');
        let comm = r.path().join("proc/1/comm");
        fs::set_permissions(&comm, fs::Permissions::from_mode(0o000)).unwrap();
        if unsafe { libc::geteuid() } != 0 {
            assert!(!detect_at(r.path()));
        }
    }

    #[test]
    fn never_looks_at_proc_1_exe() {
        // An exe "pointing" at s6-svscan must not make a systemd comm count.
        let r = Root::new(Some(b"systemd\n"), 'd');
        std::os::unix::fs::symlink("/command/s6-svscan", r.path().join("proc/1/exe")).unwrap();
        assert!(!detect_at(r.path()));
    }
}

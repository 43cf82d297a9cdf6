//! A process's start time: field 22 of `/proc/PID/stat` (clock ticks since boot), which together
//! with the pid identifies one process (a pid alone is reused); its process group (field 5).

use crate::error::{sys, Error, Result};
use std::path::Path;

/// Start time of `pid`, from `/proc/PID/task/PID/stat` (its main thread's:
/// the same start time). Not `/proc/PID/stat`: under qemu-user (an amd64
/// image on an arm64 host, or the other way round) a process reading its own
/// `/proc/<own pid>/stat` gets qemu's made-up copy, whose start time is not
/// the kernel's that every other process reads, and no marker would match.
pub fn start_time(pid: u32) -> Result<u64> {
    let task = Path::new("/proc").join(pid.to_string()).join("task");
    if task.is_dir() {
        start_time_at(&task, pid)
    } else {
        start_time_at(Path::new("/proc"), pid)
    }
}

/// Start time of `pid`, from `ROOT/PID/stat` (tests use a synthetic root).
pub fn start_time_at(root: &Path, pid: u32) -> Result<u64> {
    let path = root.join(pid.to_string()).join("stat");
    let data = std::fs::read(&path).map_err(|e| sys("read", &path, e))?;
    parse_start_time(&data)
        .ok_or_else(|| Error::System(format!("unable to parse {}", path.display())))
}

/// The process group of `pid` (field 5 of its stat line), None when gone.
pub fn pgid(pid: u32) -> Option<u32> {
    // the main thread's stat, for the reason `start_time` gives (qemu-user)
    let task = Path::new("/proc")
        .join(pid.to_string())
        .join("task")
        .join(pid.to_string())
        .join("stat");
    let data = std::fs::read(task)
        .or_else(|_| std::fs::read(Path::new("/proc").join(pid.to_string()).join("stat")))
        .ok()?;
    stat_field(&data, 5)
}

fn stat_field(stat: &[u8], n: usize) -> Option<u32> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    rest.split_ascii_whitespace().nth(n - 3)?.parse().ok()
}

/// Field 22 of a stat line. `comm` (field 2) is arbitrary bytes in parentheses and may contain
/// `)` and spaces, so fields are counted from the last `)`.
pub fn parse_start_time(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    // rest starts with field 3 (state), so field 22 is the 20th word
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgid_is_field_5_whatever_comm_holds() {
        assert_eq!(stat_field(b"42 (a) b) S 1 77 77 0", 5), Some(77));
        assert_eq!(pgid(std::process::id()), {
            // SAFETY: getpgrp has no preconditions.
            Some(unsafe { libc::getpgrp() } as u32)
        });
    }

    fn line(comm: &str) -> Vec<u8> {
        format!(
            "412 ({}) S 1 412 412 0 -1 4194560 1234 0 0 0 5 3 0 0 20 0 1 0 18734 12345678 900 \
             18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 17 3 0 0 0 0 0\n",
            comm
        )
        .into_bytes()
    }

    #[test]
    fn plain_comm() {
        assert_eq!(parse_start_time(&line("hermes")), Some(18734));
    }

    #[test]
    fn comm_with_paren_and_space() {
        assert_eq!(parse_start_time(&line("a) b")), Some(18734));
        assert_eq!(parse_start_time(&line("x y z")), Some(18734));
        assert_eq!(parse_start_time(&line(") 1 2 3 4 5 (")), Some(18734));
    }

    #[test]
    fn non_utf8_comm() {
        let mut l = b"7 (\xff\xfe) R".to_vec();
        l.extend_from_slice(&line("x")[8..]);
        assert_eq!(parse_start_time(&l), Some(18734));
    }

    #[test]
    fn malformed_lines_give_none() {
        assert_eq!(parse_start_time(b""), None);
        assert_eq!(parse_start_time(b"412 (x S 1 2 3"), None);
        assert_eq!(parse_start_time(b"412 (x) S 1 2 3"), None);
        let mut l = line("x");
        let s = String::from_utf8(l.clone()).unwrap().replace("18734", "-5");
        l = s.into_bytes();
        assert_eq!(parse_start_time(&l), None);
    }

    #[test]
    fn own_start_time_is_readable() {
        assert!(start_time(std::process::id()).is_ok());
    }

    #[test]
    fn synthetic_root_and_missing_pid() {
        let root = std::env::temp_dir().join(format!("hermes-s6-procfs-{}", std::process::id()));
        std::fs::create_dir_all(root.join("77")).unwrap();
        std::fs::write(root.join("77/stat"), line("a) b")).unwrap();
        assert_eq!(start_time_at(&root, 77).unwrap(), 18734);
        let e = start_time_at(&root, 78).unwrap_err();
        assert_eq!(e.exit_code(), 111);
        assert!(e.message().contains("/78/stat"), "{}", e);
        std::fs::write(root.join("77/stat"), "garbage").unwrap();
        let e = start_time_at(&root, 77).unwrap_err();
        assert!(e.message().starts_with("unable to parse "), "{}", e);
        std::fs::remove_dir_all(&root).unwrap();
    }
}

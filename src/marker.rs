//! The planned-stop marker `.gateway-planned-stop.json` (SPEC §3.2): written into the target
//! profile's home by `stop`/`restart` before the signal, consumed by `finish` (and by the
//! gateway itself) to tell an operator's stop from any other death.

use crate::clock;
use crate::error::{sys, warn, Result};
use crate::fsutil;
use crate::json::{self, Value};
use crate::procfs;
use crate::state::stamp_secs;
use std::io;
use std::path::Path;

pub const FILE: &str = ".gateway-planned-stop.json";
/// A marker is honoured only while younger than this.
pub const TTL_SECS: i64 = 60;
/// Markers are ~150 bytes; anything much larger is not ours.
const MAX_LEN: usize = 64 << 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub target_pid: u32,
    /// Field 22 of `/proc/PID/stat` of the target when the marker was written.
    pub target_start_time: Option<u64>,
    pub stopper_pid: u32,
    /// Epoch seconds.
    pub written_at: i64,
    /// `Some("restart")` for restarts.
    pub action: Option<String>,
    /// The container that wrote it, when it is not the one whose gateway it
    /// targets (`lease::node`): that container's watcher acts on it (SPEC §8).
    pub origin: Option<String>,
}

impl Marker {
    /// `{"target_pid":412,"target_start_time":18734,"stopper_pid":977,"written_at":"2026-08-01T10:05:00Z"}`
    /// plus `,"action":"restart"` when there is an action.
    pub fn to_json(&self) -> String {
        let mut doc = vec![
            (
                "target_pid".to_string(),
                Value::from_u64(self.target_pid.into()),
            ),
            (
                "target_start_time".to_string(),
                self.target_start_time.map_or(Value::Null, Value::from_u64),
            ),
            (
                "stopper_pid".to_string(),
                Value::from_u64(self.stopper_pid.into()),
            ),
            (
                "written_at".to_string(),
                Value::Str(clock::iso_utc(self.written_at)),
            ),
        ];
        if let Some(a) = &self.action {
            doc.push(("action".to_string(), Value::string(a)));
        }
        if let Some(o) = &self.origin {
            doc.push(("origin".to_string(), Value::string(o)));
        }
        Value::Object(doc).to_json()
    }

    /// A marker from its JSON text; None when it is not one (no positive `target_pid`, no
    /// readable `written_at`, a `target_start_time` that is neither an integer nor null).
    /// `written_at` may be an ISO-8601 string (any offset) or an integer epoch.
    pub fn parse(text: &str) -> Option<Marker> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let v = json::parse(text).ok()?;
        let target_pid = v
            .get("target_pid")?
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .filter(|&p| p > 0)?;
        let target_start_time = match v.get("target_start_time") {
            None | Some(Value::Null) => None,
            Some(t) => Some(t.as_u64()?),
        };
        let stopper_pid = v
            .get("stopper_pid")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0);
        let written_at = stamp_secs(v.get("written_at")?)?;
        let action = v.get("action").and_then(Value::as_str).map(str::to_string);
        let origin = v.get("origin").and_then(Value::as_str).map(str::to_string);
        Some(Marker {
            target_pid,
            target_start_time,
            stopper_pid,
            written_at,
            action,
            origin,
        })
    }

    pub fn is_restart(&self) -> bool {
        self.action.as_deref() == Some("restart")
    }

    /// Written no later than `now` and less than TTL_SECS before it.
    pub fn is_fresh(&self, now: i64) -> bool {
        self.written_at <= now && now.saturating_sub(self.written_at) < TTL_SECS
    }

    /// Targets the dead gateway: same pid, and same start time when both are known.
    pub fn targets(&self, dead_pid: Option<u32>, dead_start_time: Option<u64>) -> bool {
        dead_pid == Some(self.target_pid)
            && match (self.target_start_time, dead_start_time) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// Write a marker for `target_pid` (its start time read from /proc; a vanished pid is a System
/// error naming `/proc/PID/stat`), stopper = this process, written now.
pub fn write(home: &Path, target_pid: u32, action: Option<&str>) -> Result<()> {
    let m = Marker {
        target_pid,
        target_start_time: Some(procfs::start_time(target_pid)?),
        stopper_pid: std::process::id(),
        written_at: clock::now_secs(),
        action: action.map(str::to_string),
        origin: None,
    };
    write_marker(home, &m)
}

/// Write a marker for a gateway that runs in another container (its pid and
/// start time from the lease), saying which container asks.
pub fn write_remote(home: &Path, h: &crate::lease::Holder, action: Option<&str>) -> Result<()> {
    let m = Marker {
        target_pid: h.pid,
        target_start_time: h.start_time,
        stopper_pid: std::process::id(),
        written_at: clock::now_secs(),
        action: action.map(str::to_string),
        origin: Some(crate::lease::node()),
    };
    write_marker(home, &m)
}

/// Write `m` atomically into `home` (new file 0644; a symlink there is refused).
pub fn write_marker(home: &Path, m: &Marker) -> Result<()> {
    fsutil::write_atomic(&home.join(FILE), m.to_json().as_bytes(), 0o644)
}

/// Remove the marker (e.g. when s6 refused the stop); a missing marker is fine.
pub fn remove(home: &Path) -> Result<()> {
    fsutil::remove_file(&home.join(FILE)).map(|_| ())
}

/// Read the marker without consuming it. Missing or not a marker → None.
pub fn read(home: &Path) -> Result<Option<Marker>> {
    let bytes = fsutil::read_file(&home.join(FILE), MAX_LEN)?;
    Ok(bytes.and_then(|b| Marker::parse(std::str::from_utf8(&b).ok()?)))
}

/// Read and **always delete** the marker (match or not, corrupt or not), and return it only if
/// it is honoured: fresh at `now` and targeting the dead gateway (`dead_pid` unknown → never).
/// A symlink, FIFO or other non-regular file at the marker path is never followed or read:
/// it is removed (directories are left) with a warning and counts as no marker.
/// Err only when the marker cannot be read (EACCES, EIO…); a failed unlink is a warning.
pub fn consume(
    home: &Path,
    dead_pid: Option<u32>,
    dead_start_time: Option<u64>,
    now: i64,
) -> Result<Option<Marker>> {
    let path = home.join(FILE);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(sys("stat", &path, e)),
        Ok(m) if !m.file_type().is_file() => {
            warn(format_args!(
                "ignoring {}: not a regular file",
                path.display()
            ));
            if !m.file_type().is_dir() {
                unlink(&path);
            }
            return Ok(None);
        }
        Ok(_) => {}
    }
    let read = fsutil::read_file(&path, MAX_LEN);
    unlink(&path);
    let Some(bytes) = read? else {
        return Ok(None);
    };
    let marker = std::str::from_utf8(&bytes).ok().and_then(Marker::parse);
    if marker.is_none() {
        warn(format_args!(
            "ignoring {}: not a valid marker",
            path.display()
        ));
    }
    Ok(marker.filter(|m| m.is_fresh(now) && m.targets(dead_pid, dead_start_time)))
}

fn unlink(path: &Path) {
    if let Err(e) = fsutil::remove_file(path) {
        warn(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::tests::{mkfifo, TempDir};
    use std::fs;
    use std::os::unix::fs::{symlink, MetadataExt};

    const NOW: i64 = 1_785_578_700; // 2026-08-01T10:05:00Z

    fn marker(written_at: i64) -> Marker {
        Marker {
            target_pid: 412,
            target_start_time: Some(18734),
            stopper_pid: 977,
            written_at,
            action: None,
            origin: None,
        }
    }

    fn put(d: &TempDir, text: &str) {
        fs::write(d.path(FILE), text).unwrap();
    }

    fn gone(d: &TempDir) -> bool {
        fs::symlink_metadata(d.path(FILE)).is_err()
    }

    #[test]
    fn json_is_exactly_the_spec_format() {
        let d = TempDir::new("marker");
        write_marker(&d.0, &marker(NOW)).unwrap();
        assert_eq!(
            fs::read_to_string(d.path(FILE)).unwrap(),
            r#"{"target_pid":412,"target_start_time":18734,"stopper_pid":977,"written_at":"2026-08-01T10:05:00Z"}"#
        );
        assert_eq!(fs::metadata(d.path(FILE)).unwrap().mode() & 0o7777, 0o644);
        let mut m = marker(NOW);
        m.action = Some("restart".into());
        assert_eq!(
            m.to_json(),
            r#"{"target_pid":412,"target_start_time":18734,"stopper_pid":977,"written_at":"2026-08-01T10:05:00Z","action":"restart"}"#
        );
        m.target_start_time = None;
        assert!(m.to_json().contains(r#""target_start_time":null"#));
        assert_eq!(Marker::parse(&m.to_json()), Some(m));
    }

    #[test]
    fn write_records_target_start_time_and_stopper() {
        let d = TempDir::new("marker");
        let me = std::process::id();
        write(&d.0, me, Some("restart")).unwrap();
        let m = read(&d.0).unwrap().unwrap();
        assert_eq!(m.target_pid, me);
        assert_eq!(m.target_start_time, Some(procfs::start_time(me).unwrap()));
        assert_eq!(m.stopper_pid, me);
        assert!((m.written_at - clock::now_secs()).abs() < 5);
        assert!(m.is_restart());
        assert!(!gone(&d), "read must not consume");
    }

    #[test]
    fn write_for_vanished_pid_fails_naming_proc_stat() {
        let d = TempDir::new("marker");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let e = write(&d.0, pid, None).unwrap_err();
        assert_eq!(e.exit_code(), 111);
        assert!(
            e.message().contains(&format!("/proc/{}/stat", pid)),
            "{}",
            e
        );
        assert!(d.names().is_empty());
    }

    #[test]
    fn write_refuses_symlink_at_marker_path() {
        let d = TempDir::new("marker");
        symlink(d.path("victim"), d.path(FILE)).unwrap();
        assert!(write_marker(&d.0, &marker(NOW)).is_err());
        assert!(fs::symlink_metadata(d.path("victim")).is_err());
    }

    #[test]
    fn matching_marker_is_honoured_and_deleted() {
        let d = TempDir::new("marker");
        put(&d, &marker(NOW - 5).to_json());
        let m = consume(&d.0, Some(412), Some(18734), NOW).unwrap();
        assert_eq!(m, Some(marker(NOW - 5)));
        assert!(gone(&d));
    }

    #[test]
    fn restart_action_is_returned() {
        let d = TempDir::new("marker");
        let mut m = marker(NOW);
        m.action = Some("restart".into());
        put(&d, &m.to_json());
        assert!(consume(&d.0, Some(412), Some(18734), NOW)
            .unwrap()
            .unwrap()
            .is_restart());
    }

    #[test]
    fn pid_mismatch_is_not_honoured_but_deleted() {
        let d = TempDir::new("marker");
        put(&d, &marker(NOW).to_json());
        assert_eq!(consume(&d.0, Some(413), Some(18734), NOW).unwrap(), None);
        assert!(gone(&d));
    }

    #[test]
    fn unknown_dead_pid_is_never_honoured() {
        let d = TempDir::new("marker");
        put(&d, &marker(NOW).to_json());
        assert_eq!(consume(&d.0, None, None, NOW).unwrap(), None);
        assert!(gone(&d));
    }

    #[test]
    fn start_time_mismatch_is_not_honoured_but_deleted() {
        let d = TempDir::new("marker");
        put(&d, &marker(NOW).to_json());
        assert_eq!(consume(&d.0, Some(412), Some(99999), NOW).unwrap(), None);
        assert!(gone(&d));
    }

    #[test]
    fn unknown_start_time_on_either_side_matches_by_pid() {
        let d = TempDir::new("marker");
        put(&d, &marker(NOW).to_json());
        assert!(consume(&d.0, Some(412), None, NOW).unwrap().is_some());
        let mut m = marker(NOW);
        m.target_start_time = None;
        put(&d, &m.to_json());
        assert!(consume(&d.0, Some(412), Some(5), NOW).unwrap().is_some());
        put(
            &d,
            r#"{"target_pid":412,"stopper_pid":1,"written_at":1785578700}"#,
        );
        assert!(consume(&d.0, Some(412), Some(5), NOW).unwrap().is_some());
    }

    #[test]
    fn stale_marker_is_not_honoured_but_deleted() {
        let d = TempDir::new("marker");
        for age in [61, 60, 3600] {
            put(&d, &marker(NOW - age).to_json());
            assert_eq!(consume(&d.0, Some(412), Some(18734), NOW).unwrap(), None);
            assert!(gone(&d));
        }
        put(&d, &marker(NOW - 59).to_json());
        assert!(consume(&d.0, Some(412), Some(18734), NOW)
            .unwrap()
            .is_some());
    }

    #[test]
    fn extreme_written_at_does_not_panic() {
        let d = TempDir::new("marker");
        for w in [i64::MIN, i64::MAX] {
            put(&d, &format!(r#"{{"target_pid":412,"written_at":{}}}"#, w));
            assert_eq!(consume(&d.0, Some(412), None, NOW).unwrap(), None);
        }
    }

    #[test]
    fn future_dated_marker_is_not_honoured() {
        let d = TempDir::new("marker");
        put(&d, &marker(NOW + 1).to_json());
        assert_eq!(consume(&d.0, Some(412), Some(18734), NOW).unwrap(), None);
        assert!(gone(&d));
    }

    #[test]
    fn integer_epoch_and_upstream_iso_written_at_are_accepted() {
        let d = TempDir::new("marker");
        for w in [
            "1785578690",
            "\"2026-08-01T10:04:50.000000+00:00\"",
            "\"2026-08-01T12:04:50+02:00\"",
        ] {
            put(
                &d,
                &format!(
                    r#"{{"target_pid":412,"target_start_time":18734,"stopper_pid":977,"written_at":{}}}"#,
                    w
                ),
            );
            let m = consume(&d.0, Some(412), Some(18734), NOW).unwrap();
            assert_eq!(m.map(|m| m.written_at), Some(NOW - 10), "{}", w);
        }
    }

    #[test]
    fn corrupt_marker_is_deleted_and_not_honoured() {
        let d = TempDir::new("marker");
        for bad in [
            "",
            "{",
            "[]",
            "{}",
            r#"{"target_pid":"412","written_at":1785578700}"#,
            r#"{"target_pid":0,"written_at":1785578700}"#,
            r#"{"target_pid":412}"#,
            r#"{"target_pid":412,"written_at":"soon"}"#,
            r#"{"target_pid":412,"target_start_time":"x","written_at":1785578700}"#,
        ] {
            put(&d, bad);
            assert_eq!(
                consume(&d.0, Some(412), Some(18734), NOW).unwrap(),
                None,
                "{}",
                bad
            );
            assert!(gone(&d), "{}", bad);
        }
        fs::write(d.path(FILE), b"\xff\xfe").unwrap();
        assert_eq!(consume(&d.0, Some(412), None, NOW).unwrap(), None);
        assert!(gone(&d));
    }

    #[test]
    fn missing_marker_is_none() {
        let d = TempDir::new("marker");
        assert_eq!(consume(&d.0, Some(412), Some(18734), NOW).unwrap(), None);
        assert_eq!(read(&d.0).unwrap(), None);
        remove(&d.0).unwrap();
    }

    #[test]
    fn remove_deletes_the_marker() {
        let d = TempDir::new("marker");
        put(&d, &marker(NOW).to_json());
        remove(&d.0).unwrap();
        assert!(gone(&d));
    }

    #[test]
    fn symlink_at_marker_path_is_not_followed() {
        let d = TempDir::new("marker");
        let target = d.path("precious.json");
        fs::write(&target, marker(NOW).to_json()).unwrap();
        symlink(&target, d.path(FILE)).unwrap();
        assert_eq!(consume(&d.0, Some(412), Some(18734), NOW).unwrap(), None);
        assert!(gone(&d));
        assert_eq!(fs::read_to_string(&target).unwrap(), marker(NOW).to_json());
    }

    #[test]
    fn fifo_at_marker_path_does_not_block() {
        let d = TempDir::new("marker");
        mkfifo(&d.path(FILE));
        assert_eq!(consume(&d.0, Some(412), Some(18734), NOW).unwrap(), None);
        assert!(gone(&d));
        fs::create_dir(d.path(FILE)).unwrap();
        assert_eq!(consume(&d.0, Some(412), Some(18734), NOW).unwrap(), None);
    }
}

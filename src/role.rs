//! What this container is for, read from its main command the way upstream's
//! `container_boot` reads it (SPEC §8): under s6-overlay v3 PID 1 is
//! s6-svscan and the command sits in rc.init's argv
//! (`/bin/sh -e …/rc.init top /opt/hermes/docker/main-wrapper.sh dashboard`),
//! so the first process (PID 1 first, then every other) with an argument
//! containing `main-wrapper.sh` is it.

use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `… dashboard`: the compose file's second container on the same
    /// volume; it runs no gateway.
    Dashboard,
    /// `… gateway run` (without `--no-supervise`): the pre-s6 way of running
    /// the gateway, whose intent the boot seeds.
    LegacyGatewayRun,
    Other,
}

/// The container's main command, NUL-split, empty words dropped; empty when
/// none is found.
pub fn container_argv(proc_root: &Path) -> Vec<String> {
    let read = |pid: &str| -> Option<Vec<String>> {
        let b = crate::fsutil::read_file(&proc_root.join(pid).join("cmdline"), 64 * 1024)
            .ok()
            .flatten()?;
        let argv: Vec<String> = b
            .split(|&c| c == 0)
            .filter(|w| !w.is_empty())
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        argv.iter()
            .any(|w| w.contains("main-wrapper.sh"))
            .then_some(argv)
    };
    if let Some(a) = read("1") {
        return a;
    }
    let Ok(rd) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.iter()
        .find_map(|p| read(&p.to_string()))
        .unwrap_or_default()
}

/// The command's own words: everything after `…main-wrapper.sh` (or after a
/// leading `init`), without a leading `…entrypoint-dispatch.sh` or `hermes`.
pub fn strip(argv: &[String]) -> &[String] {
    let base = |w: &str| w.rsplit('/').next().unwrap_or(w).to_string();
    let mut a = match argv.iter().position(|w| w.ends_with("main-wrapper.sh")) {
        Some(i) => &argv[i + 1..],
        None if argv.first().is_some_and(|w| base(w) == "init") => &argv[1..],
        None => argv,
    };
    if a.first()
        .is_some_and(|w| w.ends_with("entrypoint-dispatch.sh"))
    {
        a = &a[1..];
    }
    if a.first().is_some_and(|w| base(w) == "hermes") {
        a = &a[1..];
    }
    a
}

pub fn role(argv: &[String]) -> Role {
    let a = strip(argv);
    match a.first().map(String::as_str) {
        Some("dashboard") => Role::Dashboard,
        Some("gateway")
            if a.get(1).map(String::as_str) == Some("run")
                && !a.iter().any(|w| w == "--no-supervise") =>
        {
            Role::LegacyGatewayRun
        }
        _ => Role::Other,
    }
}

/// This container's role (from /proc). O(processes): for the boot only;
/// later readers take the role the boot recorded ([`recorded`]).
pub fn detect() -> Role {
    role(&container_argv(Path::new("/proc")))
}

/// Where the boot records a dashboard role: a dot-file in the scan directory
/// (s6-svscan ignores dot-names), new at every boot like the directory.
const RECORD: &str = ".hermes-s6-role";

/// Record (or, for any other role, clear) the boot's finding.
pub fn record(scandir: &Path, r: Role) -> crate::error::Result<()> {
    let path = scandir.join(RECORD);
    if r == Role::Dashboard {
        crate::fsutil::write_atomic(&path, b"dashboard\n", 0o644)
    } else {
        crate::fsutil::remove_file(&path).map(|_| ())
    }
}

/// The role the boot recorded: one small read, for `status`.
pub fn recorded(scandir: &Path) -> Role {
    match crate::fsutil::read_file(&scandir.join(RECORD), 64) {
        Ok(Some(b)) if b.starts_with(b"dashboard") => Role::Dashboard,
        _ => Role::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn roles_as_upstream_reads_them() {
        let rc =
            "/bin/sh -e /run/s6/basedir/scripts/rc.init top /opt/hermes/docker/main-wrapper.sh";
        assert_eq!(
            role(&v(&format!("{} dashboard --host 0.0.0.0", rc))),
            Role::Dashboard
        );
        assert_eq!(
            role(&v(&format!("{} gateway run", rc))),
            Role::LegacyGatewayRun
        );
        assert_eq!(
            role(&v(&format!("{} hermes gateway run", rc))),
            Role::LegacyGatewayRun
        );
        assert_eq!(
            role(&v(&format!("{} gateway run --no-supervise", rc))),
            Role::Other
        );
        assert_eq!(role(&v(&format!("{} chat", rc))), Role::Other);
        assert_eq!(
            role(&v(
                "/init /opt/hermes/docker/entrypoint-dispatch.sh gateway run"
            )),
            Role::LegacyGatewayRun
        );
        assert_eq!(role(&[]), Role::Other);
    }

    #[test]
    fn container_argv_is_the_first_process_naming_main_wrapper() {
        let t = std::env::temp_dir().join(format!("hs6-role-{}", std::process::id()));
        for (pid, cmd) in [
            ("1", "s6-svscan\0/run/service\0"),
            ("7", "sh\0-e\0rc.init\0top\0/x/main-wrapper.sh\0dashboard\0"),
            ("30", "x\0main-wrapper.sh\0gateway\0run\0"),
        ] {
            std::fs::create_dir_all(t.join(pid)).unwrap();
            std::fs::write(t.join(pid).join("cmdline"), cmd).unwrap();
        }
        assert_eq!(role(&container_argv(&t)), Role::Dashboard);
        std::fs::remove_dir_all(&t).unwrap();
        assert!(container_argv(&t).is_empty());
    }
}

//! The nested tree's scanner, sized for the profiles (SPEC §4). s6-svscan
//! gives up on a whole scan when a directory has more services than its
//! limit (default 1000 supervisors, 2 per slot: 500 profiles), so past it no
//! gateway runs at all. `hermes-s6 svscan` execs s6-svscan with a limit made
//! for `HERMES_S6_MAX_PROFILES`, and `register`/`reconcile` never publish
//! more slots than that (the one rule: [`check_room`], made under the
//! scan directory's room lock by [`claim_room`]).

use crate::error::{refused, Error, Result};
use crate::profile::Config;
use std::path::Path;

/// Supervisors for `max_profiles` slots: the gateway and its logger each,
/// plus a few for good measure.
pub fn services_max(max_profiles: usize) -> usize {
    max_profiles * 2 + 8
}

/// May one more slot be published, with `have` already there?
pub fn check_room(cfg: &Config, have: usize, p: &str) -> Result<()> {
    if have < cfg.max_profiles {
        return Ok(());
    }
    Err(refused(format!(
        "profile '{}': not registered, the scanner supervises at most {} gateways and {} are registered (raise HERMES_S6_MAX_PROFILES)",
        p, cfg.max_profiles, have
    )))
}

/// Room for P's new slot, kept until the returned guard is dropped (after
/// the publish): registers of different profiles never both take the last
/// place. Refused (exit 1) when the scanner is full.
pub fn claim_room(cfg: &Config, p: &str) -> Result<Option<crate::fsutil::Lock>> {
    let room = crate::slot::room_lock(cfg)?;
    check_room(cfg, crate::slot::list(cfg)?.len(), p)?;
    Ok(room)
}

/// `hermes-s6 svscan SCANDIR`: exec s6-svscan on SCANDIR with room for
/// `cfg.max_profiles` slots. The option is `-C` from s6 2.12 on (2.15 knows
/// only that one) and `-c` before (2.11 knows only that one): s6-svscan is
/// asked once, on a directory that does not exist, whether it knows `-C`.
pub fn exec_svscan(cfg: &Config, scandir: &Path) -> Error {
    let tool = cfg.tool("s6-svscan");
    let n = services_max(cfg.max_profiles).to_string();
    let opt = if knows_big_c(&tool) { "-C" } else { "-c" };
    let argv = vec![
        tool.display().to_string(),
        opt.to_string(),
        n,
        "--".to_string(),
        scandir.display().to_string(),
    ];
    crate::lifecycle::exec(&argv)
}

/// s6-svscan exits 100 (usage) on an option it does not know, 111 when it
/// cannot chdir to the (missing) scan directory.
fn knows_big_c(tool: &Path) -> bool {
    std::process::Command::new(tool)
        // (/proc/0 never exists, and nobody can make it)
        .args(["-C", "8", "--", "/proc/0/hermes-s6-probe"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.code() != Some(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scanner_has_room_for_every_slot_and_its_logger() {
        assert_eq!(services_max(1000), 2008);
        assert!(
            services_max(501) > 1000,
            "501 profiles need more than s6's default"
        );
    }

    #[test]
    fn one_slot_too_many_is_refused_naming_the_setting() {
        let mut cfg = Config::from_env();
        cfg.max_profiles = 3;
        assert!(check_room(&cfg, 2, "x").is_ok());
        let e = check_room(&cfg, 3, "x").unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.message().contains("HERMES_S6_MAX_PROFILES"),
            "{}",
            e.message()
        );
    }
}

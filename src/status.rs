//! `status`, `list`, `pid`: s6's view and the persisted intent, read from
//! files (`supervise/status`, `gateway_state.json`) without spawning a
//! process per profile.

use crate::clock;
use crate::detect;
use crate::error::{refused, warn, Result};
use crate::profile::{self, Config, Profile};
use crate::reconcile;
use crate::slot;
use crate::state;
use crate::svstat::{self, Status};

/// Everything `status` says about one profile. `status --json` prints it
/// as is: a fixed schema we own, so nanoserde's derive writes it (field
/// order = key order; unknown values are `null`, never left out).
#[derive(Debug, Default, nanoserde::SerJson)]
pub struct Row {
    pub profile: String,
    pub registered: bool,
    /// `up`, `down`, `finishing`, `unsupervised` (slot without a supervisor),
    /// `unknown` (status unreadable) or `none` (no slot).
    pub s6: String,
    pub up: bool,
    #[nserde(serialize_none_as_null)]
    pub pid: Option<u64>,
    #[nserde(serialize_none_as_null)]
    pub seconds: Option<i64>,
    #[nserde(serialize_none_as_null)]
    pub want_up: Option<bool>,
    #[nserde(serialize_none_as_null)]
    pub ready: Option<bool>,
    #[nserde(serialize_none_as_null)]
    pub desired_state: Option<String>,
    #[nserde(serialize_none_as_null)]
    pub gateway_state: Option<String>,
    /// From s6: `exitcode N` or `signal SIGX` of the last death, when down.
    #[nserde(serialize_none_as_null)]
    pub last_exit: Option<String>,
    #[nserde(serialize_none_as_null)]
    pub exit_reason: Option<String>,
    pub port: u16,
    /// `ready`, `starting` (up, not ready yet), `standby` (up, waiting for
    /// the lease another container's gateway holds), `restarting` (down, s6 wants
    /// it up: between two runs), `down`, `deleted` (a slot whose profile is
    /// gone), `multiplexed` (a named profile kept down by
    /// GATEWAY_MULTIPLEX_PROFILES), `dashboard` (a dashboard container runs
    /// no gateway); `-` without a supervisor. Last, so
    /// the keys that came before it keep their places.
    pub health: String,
    /// Stopped with `s6-svc -p` (SIGSTOP) while up.
    #[nserde(serialize_none_as_null)]
    pub paused: Option<bool>,
    /// No `down` file: s6 starts it on its own (at boot, when the scanner starts).
    #[nserde(serialize_none_as_null)]
    pub normally_up: Option<bool>,
    /// `host/pid` of the gateway that holds the profile's lease in another
    /// container (SPEC §8), when one does and this one is not ready here.
    #[nserde(serialize_none_as_null)]
    pub holder: Option<String>,
}

fn last_exit(st: &Status) -> Option<String> {
    if st.up {
        return None;
    }
    if st.signal > 0 {
        // s6 (skalibs' sig_name) calls a signal it has no name for `???`
        return Some(format!(
            "signal SIG{}",
            svstat::signal_name(st.signal).unwrap_or("???")
        ));
    }
    if st.exitcode >= 0 {
        return Some(format!("exitcode {}", st.exitcode));
    }
    None
}

/// One profile's row; `real` says whether P is a real profile (its slot
/// without one is a deleted profile's).
pub fn row(cfg: &Config, p: &str, real: bool, now: (i64, u32)) -> Row {
    row_with(cfg, p, real, now, &state::load(&cfg.home(p)))
}

/// [`row`] with P's state file already read (`health` needs it once more).
fn row_with(
    cfg: &Config,
    p: &str,
    real: bool,
    now: (i64, u32),
    st: &Result<Option<state::State>>,
) -> Row {
    let mut r = Row {
        profile: p.to_string(),
        registered: slot::is_registered(cfg, p),
        s6: "none".into(),
        health: "-".into(),
        port: cfg.api_port(p),
        ..Row::default()
    };
    if r.registered {
        let dir = cfg.slot_dir(p);
        match svstat::read(&dir) {
            Ok(Some(st)) => {
                let ready = slot::is_ready(&st, &dir);
                r.up = st.up;
                r.s6 = if st.up {
                    "up"
                } else if st.finishing {
                    "finishing"
                } else {
                    "down"
                }
                .into();
                r.health = match (st.up, ready, st.want_up) {
                    _ if !real => "deleted",
                    (true, true, _) => "ready",
                    (true, false, _) if crate::lease::standing_by(&dir, st.pid) => "standby",
                    (true, false, _) => "starting",
                    (false, _, true) => "restarting",
                    (false, _, false) => "down",
                }
                .into();
                r.pid = (st.up && st.pid > 0).then_some(st.pid);
                r.seconds = st.seconds_in_state(now);
                r.want_up = Some(st.want_up);
                r.paused = Some(st.paused);
                r.normally_up = st.normally_up.or_else(|| svstat::normally_up(&dir));
                r.ready = Some(ready);
                r.last_exit = last_exit(&st);
            }
            Ok(None) => r.s6 = "unsupervised".into(),
            Err(e) => {
                warn(e);
                r.s6 = "unknown".into();
            }
        }
    }
    if real && r.health != "ready" {
        r.holder = crate::lease::elsewhere(&cfg.home(p)).map(|h| h.label());
    }
    match st {
        Ok(Some(s)) => {
            r.desired_state = s.desired_state().map(Into::into);
            r.gateway_state = s.gateway_state().map(Into::into);
            r.exit_reason = s.get_str("exit_reason").map(Into::into);
        }
        Ok(None) => {}
        Err(e) => warn(e),
    }
    r
}

/// A value from the gateway's state file: `-` when absent, else escaped.
fn esc(v: &Option<String>) -> String {
    v.as_deref()
        .map_or_else(|| "-".to_string(), |v| crate::error::escape(v).into_owned())
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), |v| v.to_string())
}

impl Row {
    /// One `key=value` line: easy to read, easy to grep.
    pub fn line(&self) -> String {
        format!(
            "profile={} slot={} s6={} pid={} seconds={} desired_state={} gateway_state={} last_exit={} exit_reason={} health={} holder={} port={}",
            self.profile,
            if self.registered { "registered" } else { "none" },
            self.s6,
            opt(&self.pid),
            opt(&self.seconds),
            esc(&self.desired_state),
            esc(&self.gateway_state),
            self.last_exit.as_deref().unwrap_or("-").replace(' ', ":"),
            esc(&self.exit_reason),
            self.health,
            self.holder.as_deref().unwrap_or("-"),
            self.port
        )
    }
}

/// `status --json`.
#[derive(nanoserde::SerJson)]
pub struct JsonStatus {
    pub manager: String,
    pub scandir: String,
    pub profiles: Vec<Row>,
}

/// Why a gateway that is not running is not, where s6 cannot say it: a
/// dashboard container runs none, multiplexing keeps named profiles down.
pub fn explain(rows: &mut [Row], role: crate::role::Role, multiplex: bool) {
    for r in rows {
        if role == crate::role::Role::Dashboard && !r.registered {
            r.health = "dashboard".into();
        } else if multiplex
            && r.profile != profile::DEFAULT
            && matches!(r.health.as_str(), "down" | "-")
        {
            r.health = "multiplexed".into();
        }
    }
}

/// Registered or real profiles, `default` first, each with whether it is real.
fn profiles(cfg: &Config) -> Result<Vec<(Profile, bool)>> {
    let real = reconcile::real_profiles(cfg, false)?; // default, then sorted
    let mut v: Vec<(Profile, bool)> = real.iter().map(|p| (p.clone(), true)).collect();
    for p in slot::list(cfg)? {
        if p != profile::DEFAULT && real[1..].binary_search(&p).is_err() {
            // not listed: gone, or skipped (unreadable…), which is not gone
            let r = cfg.is_real(&p);
            v.push((p, r));
        }
    }
    v[1..].sort_unstable();
    Ok(v)
}

/// `status [P] [--json]`.
pub fn status(cfg: &Config, one: Option<&Profile>, as_json: bool) -> Result<i32> {
    let s6 = detect::detect();
    let list = match one {
        Some(p) => {
            let real = cfg.is_real(p);
            if !real && !slot::is_registered(cfg, p) {
                return Err(refused(format!("no such gateway '{}'", p)));
            }
            vec![(p.clone(), real)]
        }
        None => profiles(cfg)?,
    };
    let now = clock::now();
    let mut rows: Vec<Row> = list
        .iter()
        .map(|(p, real)| row(cfg, p, *real, now))
        .collect();
    explain(
        &mut rows,
        crate::role::recorded(&cfg.scandir),
        reconcile::multiplexed(),
    );
    let mut out = String::new();
    if as_json {
        let doc = JsonStatus {
            manager: (if s6 { "s6" } else { "none" }).to_string(),
            scandir: cfg.scandir.display().to_string(),
            profiles: rows,
        };
        out.push_str(&nanoserde::SerJson::serialize_json(&doc));
        out.push('\n');
    } else {
        out.push_str(if s6 {
            "Manager: s6 (container supervisor)\n"
        } else {
            "Manager: none\n"
        });
        for r in &rows {
            out.push_str(&r.line());
            out.push('\n');
        }
    }
    crate::error::out(&out);
    Ok(0)
}

/// `health`: exit 0 when every real profile whose intent is `running` is
/// ready here or held by a live gateway in another container (its lease);
/// else 1, one line per profile that is neither. For Docker's HEALTHCHECK and
/// orchestrators' probes: reads files and probes locks, spawns nothing.
pub fn health(cfg: &Config) -> Result<i32> {
    let now = clock::now();
    // each row, and whether its profile is meant to run: one read of its state
    let (mut rows, meant): (Vec<Row>, Vec<bool>) = profiles(cfg)?
        .iter()
        .filter(|(_, real)| *real)
        .map(|(p, _)| {
            let st = state::load(&cfg.home(p));
            let intent = state::resolve_intent(st.as_ref().ok().and_then(Option::as_ref));
            (row_with(cfg, p, true, now, &st), state::autostarts(intent))
        })
        .unzip();
    explain(
        &mut rows,
        crate::role::recorded(&cfg.scandir),
        reconcile::multiplexed(),
    );
    let (mut here, mut away, mut out) = (0, 0, String::new());
    for (r, _) in rows.iter().zip(meant).filter(|(_, meant)| *meant) {
        match (r.health.as_str(), &r.holder) {
            ("ready", _) => here += 1,
            (_, Some(_)) => away += 1,
            ("multiplexed", _) => {}
            (h, None) => out.push_str(&format!(
                "profile={} health={} s6={}: meant to run, not ready here and no gateway holds its lease elsewhere\n",
                r.profile, h, r.s6
            )),
        }
    }
    if out.is_empty() {
        crate::error::out(&format!(
            "healthy: {} gateway{} ready here, {} in another container\n",
            here,
            if here == 1 { "" } else { "s" },
            away
        ));
        Ok(0)
    } else {
        crate::error::out(&out);
        Ok(1)
    }
}

/// `list`.
pub fn list(cfg: &Config) -> Result<i32> {
    let mut out = String::new();
    for p in slot::list(cfg)? {
        out.push_str(&p);
        out.push('\n');
    }
    crate::error::out(&out);
    Ok(0)
}

/// `pid P`: exit 1 when not up.
pub fn pid(cfg: &Config, p: &Profile) -> Result<i32> {
    if !slot::is_registered(cfg, p) {
        return Err(refused(format!("no s6 gateway slot for profile '{}'", p)));
    }
    match svstat::read(&cfg.slot_dir(p))? {
        Some(st) if st.up && st.pid > 0 => {
            crate::error::out(&format!("{}\n", st.pid));
            Ok(0)
        }
        Some(_) => Err(refused(format!("the gateway of profile '{}' is not up", p))),
        None => Err(refused(format!(
            "the gateway of profile '{}' is not supervised",
            p
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 35-byte `supervise/status` of a service that is down after dying of `sig`.
    fn down_by(sig: u8) -> Status {
        let mut b = vec![0u8; 35];
        b[0] = 0x40; // a TAI64 label, never mind which
        b[12] = 0x40;
        b[33] = sig; // wstat (big-endian u16): WTERMSIG in the low 7 bits
        svstat::decode(&b).unwrap()
    }

    #[test]
    fn last_exit_names_a_signal_as_s6_does_even_one_it_cannot_name() {
        assert_eq!(last_exit(&down_by(15)).as_deref(), Some("signal SIGTERM"));
        assert_eq!(last_exit(&down_by(40)).as_deref(), Some("signal SIG???"));
    }
}

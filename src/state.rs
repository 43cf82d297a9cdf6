//! `gateway_state.json` in a profile home (SPEC §3.1), shared with the gateway itself.
//!
//! hermes-s6 does read-modify-write under its own lock and keeps every key it does not own
//! exactly as it was (order, numbers, nesting, unicode). The gateway writes the same file
//! without that lock (it cannot know about it); its own writes are read-modify-write too.

use crate::clock;
use crate::error::{warn, Result};
use crate::fsutil;
use crate::json::{self, Value};
use std::path::Path;

pub const FILE: &str = "gateway_state.json";
/// flock'ed by hermes-s6 writers so that concurrent updates never lose each other's keys.
pub const LOCK_FILE: &str = ".gateway_state.lock";
/// A state file larger than this is an error, not something to load into memory.
pub const MAX_LEN: usize = 4 << 20;

/// The top-level object of the state file, keys in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    doc: Vec<(String, Value)>,
}

/// Epoch seconds of a stamp: an ISO-8601 string, or an integer (or fractional) epoch, which is
/// what older s6 managers wrote into `updated_at`.
pub fn stamp_secs(v: &Value) -> Option<i64> {
    match v {
        Value::Str(s) => clock::parse_iso_utc(s),
        Value::Number(_) => v.as_i64().or_else(|| {
            let f = v.as_f64()?;
            // the range check keeps the cast exact-ish and rules out inf/NaN
            (f.is_finite() && f.abs() < 1e17).then(|| f.floor() as i64)
        }),
        _ => None,
    }
}

impl State {
    pub fn new() -> State {
        State::default()
    }

    /// A state from a parsed document; None unless it is an object.
    pub fn from_value(v: Value) -> Option<State> {
        match v {
            Value::Object(doc) => Some(State { doc }),
            _ => None,
        }
    }

    /// Parse the file's text (a leading UTF-8 BOM is skipped). Err says why it is not a state.
    pub fn parse(text: &str) -> std::result::Result<State, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let v = json::parse(text)?;
        State::from_value(v).ok_or_else(|| "not a JSON object".to_string())
    }

    /// The value of `k` (the last one if the file repeats it, as Python's reader does).
    pub fn get(&self, k: &str) -> Option<&Value> {
        self.doc
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v)
    }

    pub fn get_str(&self, k: &str) -> Option<&str> {
        self.get(k).and_then(Value::as_str)
    }

    pub fn get_u64(&self, k: &str) -> Option<u64> {
        self.get(k).and_then(Value::as_u64)
    }

    /// Set `k`, in place if present (dropping any duplicates), else appended at the end.
    pub fn set(&mut self, k: &str, v: Value) {
        match self.doc.iter().position(|(key, _)| key == k) {
            Some(i) => {
                self.doc[i].1 = v;
                let mut j = i + 1;
                while j < self.doc.len() {
                    if self.doc[j].0 == k {
                        self.doc.remove(j);
                    } else {
                        j += 1;
                    }
                }
            }
            None => self.doc.push((k.to_string(), v)),
        }
    }

    pub fn set_str(&mut self, k: &str, v: &str) {
        self.set(k, Value::string(v));
    }

    pub fn set_i64(&mut self, k: &str, v: i64) {
        self.set(k, Value::from_i64(v));
    }

    pub fn set_u64(&mut self, k: &str, v: u64) {
        self.set(k, Value::from_u64(v));
    }

    /// Remove every occurrence of `k`; true if there was one.
    pub fn remove(&mut self, k: &str) -> bool {
        let n = self.doc.len();
        self.doc.retain(|(key, _)| key != k);
        self.doc.len() != n
    }

    pub fn desired_state(&self) -> Option<&str> {
        self.get_str("desired_state")
    }

    pub fn gateway_state(&self) -> Option<&str> {
        self.get_str("gateway_state")
    }

    pub fn exit_reason(&self) -> Option<&str> {
        self.get_str("exit_reason")
    }

    /// The recorded gateway pid (0 and out-of-range values are no pid).
    pub fn pid(&self) -> Option<u32> {
        self.get_u64("pid")
            .and_then(|p| u32::try_from(p).ok())
            .filter(|&p| p > 0)
    }

    pub fn start_time(&self) -> Option<u64> {
        self.get_u64("start_time")
    }

    /// `updated_at` as epoch seconds, from an ISO string or an integer epoch.
    pub fn updated_at(&self) -> Option<i64> {
        self.get("updated_at").and_then(stamp_secs)
    }

    /// Compact JSON of the whole document, keys in order.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        out.push('{');
        for (i, (k, v)) in self.doc.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json::write_str(k, &mut out);
            out.push(':');
            v.write(&mut out);
        }
        out.push('}');
        out
    }
}

/// Is the saved `desired_state` `v`? A missing, invalid or unreadable state
/// saves no intent: false.
pub fn desired_is(home: &Path, v: &str) -> bool {
    matches!(load(home), Ok(Some(s)) if s.desired_state() == Some(v))
}

/// Read `home/gateway_state.json`. Missing, invalid JSON or not an object → `Ok(None)` (the
/// latter two with a warning). Unreadable, a symlink, a FIFO or a directory → Err naming it.
pub fn load(home: &Path) -> Result<Option<State>> {
    let path = fsutil::join(home, FILE);
    let Some(bytes) = fsutil::read_file(&path, MAX_LEN)? else {
        return Ok(None);
    };
    let parsed = match std::str::from_utf8(&bytes) {
        Ok(text) => State::parse(text),
        Err(_) => Err("not UTF-8".to_string()),
    };
    match parsed {
        Ok(st) => Ok(Some(st)),
        Err(why) => {
            warn(format_args!(
                "invalid JSON in {}: {}, treating as no state",
                path.display(),
                why
            ));
            Ok(None)
        }
    }
}

/// Read-modify-write under `home/.gateway_state.lock`: load (no state → empty object), apply
/// `f`, stamp `updated_at` (ISO-8601 UTC), write atomically (new file 0644, mode kept).
/// Returns the state as written.
pub fn update(home: &Path, f: impl FnOnce(&mut State)) -> Result<State> {
    let _lock = fsutil::lock_exclusive(&home.join(LOCK_FILE))?;
    let mut st = load(home)?.unwrap_or_default();
    f(&mut st);
    st.set_str("updated_at", &clock::iso_utc(clock::now_secs()));
    fsutil::write_atomic(&home.join(FILE), st.to_json().as_bytes(), 0o644)?;
    Ok(st)
}

/// The run-intent (SPEC §3.1): `desired_state` if present; else `gateway_state`, where
/// `draining` and `degraded` count as `running`; else none. A non-string `desired_state`
/// (never written by anyone) is an unknown intent: None, so nothing autostarts.
pub fn resolve_intent(state: Option<&State>) -> Option<&str> {
    let st = state?;
    match st.get("desired_state") {
        Some(Value::Str(s)) => return Some(s),
        None | Some(Value::Null) => {}
        Some(_) => return None,
    }
    match st.gateway_state()? {
        "draining" | "degraded" => Some("running"),
        s => Some(s),
    }
}

/// Only `running` autostarts.
pub fn autostarts(intent: Option<&str>) -> bool {
    intent == Some("running")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::tests::{in_child, mkfifo, TempDir};
    use std::fs;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    fn st(text: &str) -> State {
        State::parse(text).unwrap()
    }

    fn intent(text: &str) -> Option<String> {
        resolve_intent(Some(&st(text))).map(str::to_string)
    }

    // --- SPEC §3.1 intent table ---

    #[test]
    fn intent_desired_running_autostarts() {
        assert_eq!(
            intent(r#"{"desired_state":"running"}"#).as_deref(),
            Some("running")
        );
        assert!(autostarts(Some("running")));
    }

    #[test]
    fn intent_desired_stopped_does_not_autostart() {
        let i = intent(r#"{"desired_state":"stopped"}"#);
        assert_eq!(i.as_deref(), Some("stopped"));
        assert!(!autostarts(i.as_deref()));
    }

    #[test]
    fn intent_desired_state_overrides_gateway_state_both_directions() {
        let i = intent(r#"{"gateway_state":"running","desired_state":"stopped"}"#);
        assert_eq!(i.as_deref(), Some("stopped"));
        let i = intent(r#"{"gateway_state":"stopped","desired_state":"running"}"#);
        assert_eq!(i.as_deref(), Some("running"));
        let i = intent(r#"{"gateway_state":"startup_failed","desired_state":"running"}"#);
        assert!(autostarts(i.as_deref()));
    }

    #[test]
    fn intent_gateway_state_running_without_desired_state() {
        assert_eq!(
            intent(r#"{"gateway_state":"running"}"#).as_deref(),
            Some("running")
        );
    }

    #[test]
    fn intent_draining_and_degraded_count_as_running() {
        for g in ["draining", "degraded"] {
            let i = intent(&format!(r#"{{"gateway_state":"{}"}}"#, g));
            assert_eq!(i.as_deref(), Some("running"));
            assert!(autostarts(i.as_deref()));
        }
    }

    #[test]
    fn intent_other_gateway_states_do_not_autostart() {
        for g in ["starting", "startup_failed", "stopped", "weird", ""] {
            let i = intent(&format!(r#"{{"gateway_state":"{}"}}"#, g));
            assert_eq!(i.as_deref(), Some(g));
            assert!(!autostarts(i.as_deref()));
        }
    }

    #[test]
    fn intent_none_without_state_or_keys() {
        assert_eq!(resolve_intent(None), None);
        assert_eq!(intent("{}"), None);
        assert_eq!(intent(r#"{"pid":412,"kind":"hermes-gateway"}"#), None);
        assert!(!autostarts(None));
    }

    #[test]
    fn intent_null_desired_state_falls_back_to_gateway_state() {
        let i = intent(r#"{"desired_state":null,"gateway_state":"degraded"}"#);
        assert_eq!(i.as_deref(), Some("running"));
    }

    #[test]
    fn intent_non_string_values_are_unknown() {
        assert_eq!(
            intent(r#"{"desired_state":1,"gateway_state":"running"}"#),
            None
        );
        assert_eq!(intent(r#"{"gateway_state":["running"]}"#), None);
    }

    // --- upstream §5.3 cases about reading the intent ---

    #[test]
    fn upstream_desired_state_unknown_value_is_used_as_is() {
        let i = intent(r#"{"desired_state":"paused","gateway_state":"running"}"#);
        assert_eq!(i.as_deref(), Some("paused"));
        assert!(!autostarts(i.as_deref()));
    }

    #[test]
    fn upstream_no_state_file_is_no_prior_state() {
        let d = TempDir::new("state");
        assert_eq!(load(&d.0).unwrap(), None);
    }

    #[test]
    fn upstream_corrupt_json_is_no_state() {
        let d = TempDir::new("state");
        for bad in [
            "{\"gateway_state\":",
            "",
            "nul",
            "{}{}",
            "\u{feff}\u{feff}{}",
        ] {
            fs::write(d.path(FILE), bad).unwrap();
            assert_eq!(load(&d.0).unwrap(), None, "{:?}", bad);
        }
        fs::write(d.path(FILE), b"{\"a\":\"\xff\"}").unwrap();
        assert_eq!(load(&d.0).unwrap(), None);
    }

    #[test]
    fn upstream_json_not_an_object_is_no_state() {
        let d = TempDir::new("state");
        for bad in [
            "[]",
            "\"x\"",
            "1",
            "null",
            "[{\"desired_state\":\"running\"}]",
        ] {
            fs::write(d.path(FILE), bad).unwrap();
            assert_eq!(load(&d.0).unwrap(), None, "{:?}", bad);
        }
    }

    #[test]
    fn upstream_bom_is_tolerated() {
        let d = TempDir::new("state");
        fs::write(d.path(FILE), "\u{feff}{\"desired_state\":\"running\"}\n").unwrap();
        let s = load(&d.0).unwrap().unwrap();
        assert!(autostarts(resolve_intent(Some(&s))));
    }

    #[test]
    fn upstream_bootstrap_and_legacy_seeds_autostart() {
        let d = TempDir::new("state");
        for seed in [
            "{\"gateway_state\":\"running\"}\n",
            "{\"gateway_state\": \"running\", \"desired_state\": \"running\", \"timestamp\": \
             1785000000, \"migrated_from\": \"legacy-container-cmd\"}\n",
        ] {
            fs::write(d.path(FILE), seed).unwrap();
            let s = load(&d.0).unwrap().unwrap();
            assert!(autostarts(resolve_intent(Some(&s))), "{}", seed);
        }
    }

    // --- reading ---

    #[test]
    fn accessors_read_owned_keys() {
        let s = st(
            r#"{"pid":412,"start_time":18734,"gateway_state":"running","exit_reason":null,
                       "desired_state":"stopped","updated_at":"2026-08-01T10:05:00.120000+00:00"}"#,
        );
        assert_eq!(s.pid(), Some(412));
        assert_eq!(s.start_time(), Some(18734));
        assert_eq!(s.gateway_state(), Some("running"));
        assert_eq!(s.desired_state(), Some("stopped"));
        assert_eq!(s.exit_reason(), None);
        assert_eq!(s.updated_at(), Some(1_785_578_700));
        let s = st(r#"{"pid":0,"start_time":null,"updated_at":1785000000}"#);
        assert_eq!(s.pid(), None);
        assert_eq!(s.start_time(), None);
        assert_eq!(s.updated_at(), Some(1_785_000_000));
        assert_eq!(
            st(r#"{"updated_at":1785000000.7}"#).updated_at(),
            Some(1_785_000_000)
        );
        assert_eq!(st(r#"{"updated_at":"yesterday"}"#).updated_at(), None);
        assert_eq!(st(r#"{"pid":-1}"#).pid(), None);
        assert_eq!(st(r#"{"pid":4294967296}"#).pid(), None);
    }

    #[test]
    fn set_replaces_in_place_and_drops_duplicates() {
        let mut s = st(r#"{"a":1,"k":2,"b":3,"k":4}"#);
        s.set_str("k", "v");
        s.set_i64("n", -5);
        s.set_u64("u", 7);
        assert_eq!(s.to_json(), r#"{"a":1,"k":"v","b":3,"n":-5,"u":7}"#);
        assert!(s.remove("a"));
        assert!(!s.remove("a"));
        assert_eq!(s.to_json(), r#"{"k":"v","b":3,"n":-5,"u":7}"#);
    }

    #[test]
    fn unreadable_file_is_system_error_naming_it() {
        let d = TempDir::new("state");
        let p = d.path(FILE);
        fs::write(&p, "{}").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        let me = unsafe { libc::geteuid() };
        let check = || match load(&d.0) {
            Err(e) if e.exit_code() == 111 && e.message().contains(&*p.to_string_lossy()) => 0,
            _ => 1,
        };
        if me == 0 {
            assert_eq!(in_child(Some(10000), check), 0);
        } else {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
            assert_eq!(check(), 0);
        }
    }

    #[test]
    fn symlink_or_fifo_state_is_an_error_never_followed() {
        let d = TempDir::new("state");
        fs::write(d.path("elsewhere"), r#"{"desired_state":"running"}"#).unwrap();
        symlink(d.path("elsewhere"), d.path(FILE)).unwrap();
        let e = load(&d.0).unwrap_err();
        assert_eq!(e.exit_code(), 111);
        assert!(e.message().contains("symbolic link"), "{}", e);
        assert!(update(&d.0, |s| s.set_str("desired_state", "stopped")).is_err());
        assert_eq!(
            fs::read_to_string(d.path("elsewhere")).unwrap(),
            r#"{"desired_state":"running"}"#
        );
        assert!(fs::symlink_metadata(d.path(FILE))
            .unwrap()
            .file_type()
            .is_symlink());
        fs::remove_file(d.path(FILE)).unwrap();
        mkfifo(&d.path(FILE));
        assert!(load(&d.0).is_err());
    }

    // --- writing ---

    #[test]
    fn update_preserves_foreign_keys_exactly() {
        let d = TempDir::new("state");
        let before = r#"{"pid":412,"kind":"hermes-gateway","argv":["python3","hermes","-p","coder"],"start_time":18734,"gateway_state":"running","exit_reason":null,"big":123456789012345678901234567890,"f":1e400,"z":-0.0,"uni":"héllo 🦀 \u0001","platforms":{"telegram":{"state":"connected","updated_at":"2026-08-01T10:00:03.120000+00:00"}},"updated_at":"2026-08-01T10:00:03.121000+00:00","desired_state":"running","tail":[1,{"x":[]}]}"#;
        fs::write(d.path(FILE), before).unwrap();
        let s = update(&d.0, |s| s.set_str("desired_state", "stopped")).unwrap();
        let after = fs::read_to_string(d.path(FILE)).unwrap();
        assert_eq!(after, s.to_json());
        let stamp = clock::iso_utc(s.updated_at().unwrap());
        let expected = before
            .replace(
                "\"updated_at\":\"2026-08-01T10:00:03.121000+00:00\"",
                &format!("\"updated_at\":\"{}\"", stamp),
            )
            .replace(
                "\"desired_state\":\"running\"",
                "\"desired_state\":\"stopped\"",
            );
        assert_eq!(after, expected);
        assert!((s.updated_at().unwrap() - clock::now_secs()).abs() < 5);
        assert_eq!(d.names(), [".gateway_state.lock", FILE]);
    }

    #[test]
    fn update_creates_new_file_0644_and_keeps_existing_mode() {
        let d = TempDir::new("state");
        update(&d.0, |s| s.set_str("desired_state", "running")).unwrap();
        let p = d.path(FILE);
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o644);
        let s = load(&d.0).unwrap().unwrap();
        assert_eq!(s.desired_state(), Some("running"));
        assert!(s.get("updated_at").and_then(Value::as_str).is_some());
        fs::set_permissions(&p, fs::Permissions::from_mode(0o660)).unwrap();
        update(&d.0, |s| s.set_str("desired_state", "stopped")).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o660);
    }

    #[test]
    fn update_on_corrupt_or_non_object_starts_fresh() {
        let d = TempDir::new("state");
        for bad in ["{oops", "[1,2]"] {
            fs::write(d.path(FILE), bad).unwrap();
            let s = update(&d.0, |s| s.set_str("desired_state", "stopped")).unwrap();
            assert_eq!(s.desired_state(), Some("stopped"));
            assert_eq!(load(&d.0).unwrap().unwrap(), s);
        }
    }

    #[test]
    fn update_in_missing_home_is_system_error() {
        let d = TempDir::new("state");
        let e = update(&d.path("nope"), |_| {}).unwrap_err();
        assert_eq!(e.exit_code(), 111);
        assert!(e.message().contains("nope"), "{}", e);
    }

    #[test]
    fn concurrent_updates_lose_nothing() {
        let d = TempDir::new("state");
        let home = d.0.clone();
        let worker = |tag: &'static str| {
            let home = home.clone();
            std::thread::spawn(move || {
                for i in 0..200u64 {
                    update(&home, |s| {
                        let n = s.get_u64(tag).unwrap_or(0);
                        s.set_u64(tag, n + 1);
                        s.set_u64(&format!("{}{}", tag, i), i);
                    })
                    .unwrap();
                }
            })
        };
        let a = worker("a");
        let b = worker("b");
        a.join().unwrap();
        b.join().unwrap();
        let s = load(&d.0).unwrap().unwrap();
        assert_eq!(s.get_u64("a"), Some(200));
        assert_eq!(s.get_u64("b"), Some(200));
        for i in 0..200u64 {
            assert_eq!(s.get_u64(&format!("a{}", i)), Some(i));
            assert_eq!(s.get_u64(&format!("b{}", i)), Some(i));
        }
        assert_eq!(d.names(), [".gateway_state.lock", FILE]);
    }
}

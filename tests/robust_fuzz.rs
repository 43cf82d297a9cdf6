//! Hostile input for every parser: seeded mutation of real samples (the s6-svstat fixture,
//! gateway/marker/lifecycle JSON documents, 35/43-byte `supervise/status` buffers,
//! `/proc/PID/stat` lines, ISO-8601 stamps, profile names, passwd lines, environment values).
//!
//! Oracles: no panic; every input is parsed within a bounded time (a watchdog aborts the run
//! naming the seed and iteration when one input takes more than 20 s); and, where a parser
//! accepts, round-trip or invariant checks (what `to_json` writes parses back to the same
//! value; a decoded status is self-consistent; an accepted profile name matches
//! `^[a-z0-9][a-z0-9_-]{0,63}$` and its home stays under `profiles/`).
//! Sizes: big inputs (10 MB strings, 10^6-deep nesting, 10 GB sparse files) are rejected
//! without reading past the size limits, checked with the binary's peak RSS.
//!
//! Counts: ~100k inputs in `cargo test` (debug), ~3.5M under `HERMES_S6_STRESS=1` (run in
//! release by tests/stress.sh). `HERMES_S6_SEED` replays a run.

mod robust_util;

use hermes_s6::json::{self, Value};
use hermes_s6::lifecycle::Tally;
use hermes_s6::marker::Marker;
use hermes_s6::profile::{self, Config};
use hermes_s6::state::{self, State};
use hermes_s6::{bootlog, clock, marker, procfs, slot, svstat};
use robust_util::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- mutation engine

/// Byte sequences that matter to the parsers under test.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"\\u",
    b"\\ud800",
    b"\\udc00",
    b"\\u0000",
    b"\\ud83e\\udd80",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"-",
    b".",
    b"e",
    b"E+",
    b"0",
    b"9",
    b"1e400",
    b"-0.0",
    b"18446744073709551616",
    b"99999999999999999999999999",
    b"true",
    b"false",
    b"null",
    b"\x00",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\xc3",
    b"\xe2\x82",
    b"\xf0\x9f\xa6",
    b" ",
    b"\t",
    b"\n",
    b"\r",
    b"(",
    b")",
    b"@",
    b"pid ",
    b"pgid ",
    b"seconds",
    b", ",
    b"ready ",
    b"SIG",
    b"???",
    b"NA",
    b"up (",
    b"down (",
    b"exitcode ",
    b"signal ",
    b"not started yet",
    b"normally up",
    b"want down",
    b"paused",
    b"T",
    b"Z",
    b"+",
    b"24",
    b"60",
    b"29",
    b"02",
    b"9999",
    b"/",
    b"..",
    b"_",
    b"A",
    b"\"target_pid\":",
    b"\"written_at\":",
    b"\"desired_state\":",
    b"\"phase\":",
    b"\"updated_at\":",
    b"{profile}",
];

struct Mutator {
    rng: Rng,
}

impl Mutator {
    fn range(&mut self, len: usize) -> (usize, usize) {
        if len == 0 {
            return (0, 0);
        }
        let a = self.rng.below(len + 1);
        let b = a + self.rng.below(len - a + 1).min(1 + self.rng.below(16));
        (a, b.min(len))
    }

    /// 1–4 random edits of `seed` (sometimes spliced with `other`).
    fn mutate(&mut self, seed: &[u8], other: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(seed);
        for _ in 0..1 + self.rng.below(4) {
            let len = out.len();
            match self.rng.below(11) {
                0 if len > 0 => {
                    let i = self.rng.below(len);
                    out[i] ^= 1 << self.rng.below(8);
                }
                1 if len > 0 => {
                    let i = self.rng.below(len);
                    out[i] = self.rng.byte();
                }
                2 | 3 => {
                    let t = *self.rng.pick(TOKENS);
                    let i = self.rng.below(len + 1);
                    out.splice(i..i, t.iter().copied());
                }
                4 => {
                    let (a, b) = self.range(len);
                    out.drain(a..b);
                }
                5 => {
                    let (a, b) = self.range(len);
                    let chunk: Vec<u8> = out[a..b].to_vec();
                    out.splice(b..b, chunk);
                }
                6 => {
                    let n = self.rng.below(len + 1);
                    out.truncate(n);
                }
                7 if !other.is_empty() => {
                    let i = self.rng.below(len + 1);
                    let (a, b) = (self.rng.below(other.len()), other.len());
                    out.truncate(i);
                    out.extend_from_slice(&other[a..b]);
                }
                8 => {
                    // a chunk repeated: long numbers, deep nesting, long runs
                    let (a, b) = self.range(len);
                    if b > a {
                        let chunk: Vec<u8> = out[a..b].to_vec();
                        for _ in 0..self.rng.below(200) {
                            out.splice(b..b, chunk.iter().copied());
                            if out.len() > 64 << 10 {
                                break;
                            }
                        }
                    }
                }
                9 if len > 1 => {
                    let (i, j) = (self.rng.below(len), self.rng.below(len));
                    out.swap(i, j);
                }
                _ => {
                    let i = self.rng.below(len + 1);
                    let b = *self.rng.pick(b"\"\\{}[]:,-.eE0123456789 ()@\n\x00\xff");
                    out.insert(i, b);
                }
            }
        }
    }
}

/// Text for the `&str` parsers: the bytes if UTF-8, else their lossy form (so that invalid
/// UTF-8 still exercises the parsers, as `state::load` never hands them non-UTF-8).
fn text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

// ---------------------------------------------------------------- watchdog

/// Aborts the process when `progress` stops moving for `limit` (a hang on one input).
struct Watchdog {
    progress: Arc<AtomicUsize>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn new(what: &'static str, seed: u64) -> Watchdog {
        let progress = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let (p, d) = (progress.clone(), done.clone());
        let limit = Duration::from_secs(20);
        let thread = std::thread::spawn(move || {
            let mut last = (p.load(Ordering::Relaxed), Instant::now());
            while !d.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                let now = p.load(Ordering::Relaxed);
                if now != last.0 {
                    last = (now, Instant::now());
                } else if last.1.elapsed() > limit {
                    eprintln!(
                        "HANG: {} seed {} iteration {} took more than {:?}",
                        what, seed, now, limit
                    );
                    std::process::abort();
                }
            }
        });
        Watchdog {
            progress,
            done,
            thread: Some(thread),
        }
    }
    fn tick(&self, i: usize) {
        self.progress.store(i, Ordering::Relaxed);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Run `check` on `n` mutants of `corpus`; reports throughput and the slowest input.
fn fuzz(what: &'static str, salt: u64, n: usize, corpus: &[Vec<u8>], mut check: impl FnMut(&[u8])) {
    let s = seed(salt);
    let mut m = Mutator { rng: Rng::new(s) };
    let dog = Watchdog::new(what, s);
    let mut buf = Vec::new();
    let t = Instant::now();
    let mut slowest = (Duration::ZERO, 0);
    for i in 0..n {
        dog.tick(i);
        let a = &corpus[m.rng.below(corpus.len())];
        let b = &corpus[m.rng.below(corpus.len())];
        // a tenth of the inputs are the corpus itself or mutants of mutants
        if m.rng.chance(10) {
            buf.clear();
            buf.extend_from_slice(a);
        } else {
            m.mutate(a, b, &mut buf);
            if m.rng.chance(4) {
                let first = buf.clone();
                m.mutate(&first, a, &mut buf);
            }
        }
        let t1 = Instant::now();
        check(&buf);
        let e = t1.elapsed();
        if e > slowest.0 {
            slowest = (e, i);
        }
    }
    eprintln!(
        "fuzz {}: seed {} n {} in {:?}, slowest input #{} {:?}",
        what,
        s,
        n,
        t.elapsed(),
        slowest.1,
        slowest.0
    );
}

// ---------------------------------------------------------------- corpora

const FIXTURE: &str = include_str!("fixtures/svstat-samples.txt");

/// (human lines, (-o fields, -o line)) from the verbatim s6-svstat fixture.
fn svstat_samples() -> (Vec<String>, Vec<(Vec<String>, String)>) {
    let (mut human, mut o) = (Vec::new(), Vec::new());
    let mut cmd: Option<&str> = None;
    for line in FIXTURE.lines() {
        if let Some(c) = line.strip_prefix("$ ") {
            cmd = Some(c);
            continue;
        }
        if line.starts_with('#') || line.starts_with("[rc=") || line.is_empty() {
            if line.starts_with("[rc=") {
                cmd = None;
            }
            continue;
        }
        let Some(c) = cmd else { continue };
        let words: Vec<&str> = c.split_whitespace().collect();
        if words.first() != Some(&"s6-svstat") || line.starts_with("s6-svstat:") {
            continue;
        }
        match words.iter().position(|w| *w == "-o") {
            Some(i) => {
                if let Some(f) = words.get(i + 1) {
                    o.push((f.split(',').map(str::to_string).collect(), line.to_string()));
                }
            }
            // short options (-uwNrpest) print -o style values, not the human line
            None if words.len() == 2 || (words.len() == 3 && words[1] == "-n") => {
                human.push(line.to_string())
            }
            None => {}
        }
    }
    assert!(
        human.len() >= 10 && o.len() >= 10,
        "fixture reader found too little"
    );
    (human, o)
}

fn json_corpus() -> Vec<Vec<u8>> {
    let docs = [
        r#"{"desired_state":"running","gateway_state":"running","pid":412,"start_time":18734,"exit_reason":null,"updated_at":"2026-08-01T10:05:00Z"}"#,
        "\u{feff}{\"gateway_state\": \"running\", \"desired_state\": \"running\", \"timestamp\": 1785000000, \"migrated_from\": \"legacy-container-cmd\"}\n",
        r#"{"kind":"hermes-gateway","platforms":{"telegram":{"state":"connected","since":1785000000.25}},"big":123456789012345678901234567890,"u":"caf\u00e9 \ud83e\udd80","l":[1,-2.5e+3,[[]],{}],"k":1,"k":2}"#,
        r#"{"target_pid":412,"target_start_time":18734,"stopper_pid":977,"written_at":"2026-08-01T10:05:00Z"}"#,
        r#"{"target_pid":412,"target_start_time":null,"stopper_pid":977,"written_at":1785578700,"action":"restart"}"#,
        r#"{"target_pid":4294967295,"written_at":"2026-08-01T12:04:50.000000+02:00"}"#,
        r#"{"phase":"exited","pid":7,"exit_code":0,"updated_at":"2026-08-01T10:05:00+00:00"}"#,
        r#"{"phase":"running"}"#,
        r#"[]"#,
        r#""x""#,
        "  {\"updated_at\": 1785000000.7 , \"pid\": -1 }  ",
        r#"{"desired_state":null,"gateway_state":"degraded","pid":0}"#,
    ];
    docs.iter().map(|d| d.as_bytes().to_vec()).collect()
}

/// 35- and 43-byte status files for every flag combination, a few pids and wait statuses.
fn status_corpus() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let tai = (1u64 << 62) + 1_785_578_700 + 37;
    for len in [35usize, 43] {
        for flags in 0u8..16 {
            for (pid, wstat) in [
                (0u64, 0u16),
                (412, 0),
                (0, 3 << 8),
                (0, 15),
                (0, 0x7f),
                (u64::MAX, 0xffff),
            ] {
                let mut b = Vec::with_capacity(len);
                for _ in 0..2 {
                    b.extend_from_slice(&tai.to_be_bytes());
                    b.extend_from_slice(&123u32.to_be_bytes());
                }
                b.extend_from_slice(&pid.to_be_bytes());
                if len == 43 {
                    b.extend_from_slice(&pid.to_be_bytes());
                }
                b.extend_from_slice(&wstat.to_be_bytes());
                b.push(flags);
                assert_eq!(b.len(), len);
                v.push(b);
            }
        }
    }
    v
}

fn stat_line(comm: &[u8], start: u64) -> Vec<u8> {
    let mut l = b"412 (".to_vec();
    l.extend_from_slice(comm);
    l.extend_from_slice(
        format!(
            ") S 1 412 412 0 -1 4194560 1234 0 0 0 5 3 0 0 20 0 1 0 {} 12345678 900 \
             18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 17 3 0 0 0 0 0\n",
            start
        )
        .as_bytes(),
    );
    l
}

// ---------------------------------------------------------------- oracles

fn check_json(b: &[u8]) {
    let t = text(b);
    if let Ok(v) = json::parse(&t) {
        let out = v.to_json();
        let again =
            json::parse(&out).unwrap_or_else(|e| panic!("own output rejected ({}): {:?}", e, out));
        assert_eq!(again, v, "round trip changed {:?}", out);
        let _ = (v.as_i64(), v.as_u64(), v.as_f64(), v.get("pid"));
    }
    match State::parse(&t) {
        Ok(st) => {
            assert_eq!(State::parse(&st.to_json()).as_ref(), Ok(&st));
            let _ = (st.pid(), st.start_time(), st.updated_at(), st.exit_reason());
            let i = state::resolve_intent(Some(&st));
            let _ = state::autostarts(i);
        }
        Err(e) => assert!(!e.is_empty()),
    }
    if let Some(m) = Marker::parse(&t) {
        assert!(m.target_pid > 0);
        let _ = (
            m.is_fresh(i64::MIN),
            m.is_fresh(i64::MAX),
            m.is_fresh(clock::now_secs()),
        );
        let _ = m.targets(Some(m.target_pid), Some(u64::MAX));
        if (0..=253_402_300_799).contains(&m.written_at) {
            assert_eq!(
                Marker::parse(&m.to_json()),
                Some(m.clone()),
                "{}",
                m.to_json()
            );
        }
    }
    // the boot log's prior_exit reader, on the same document (its file part is below)
    let _ = json::parse(t.strip_prefix('\u{feff}').unwrap_or(&t))
        .ok()
        .as_ref()
        .and_then(|v| v.get("phase"))
        .and_then(Value::as_str);
    let _ = Tally::parse(&t);
}

fn check_status(b: &[u8]) {
    match svstat::decode(b) {
        None => assert!(
            b.len() != 35 && b.len() != 43,
            "rejected a {}-byte status",
            b.len()
        ),
        Some(st) => {
            assert!(b.len() == 35 || b.len() == 43);
            assert_eq!(st.up, st.pid > 0, "{:?}", st);
            if st.up {
                assert!(st.exitcode == -1 && st.signal == -1 && !st.finishing);
            }
            assert!(st.exitcode == -1 || st.signal == -1, "{:?}", st);
            assert!((-1..=255).contains(&st.exitcode) && (-1..128).contains(&st.signal));
            for now in [i64::MIN, -1, 0, clock::now_secs(), i64::MAX] {
                for ns in [0, 999_999_999, u32::MAX] {
                    assert!(st.seconds_in_state((now, ns)).map_or(true, |s| s >= 0));
                }
            }
        }
    }
}

const O_FIELDS: &[&str] = &[
    "up",
    "wantedup",
    "normallyup",
    "ready",
    "paused",
    "pid",
    "pgid",
    "exitcode",
    "signal",
    "signum",
    "updownsince",
    "readysince",
    "updownfor",
    "readyfor",
    "bogus",
    "",
];

fn check_human(line: &str) {
    if let Some(h) = svstat::parse_human(line) {
        assert_eq!(h.up, h.pid > 0, "{:?} from {:?}", h, line);
        assert!(h.exitcode == -1 || h.signal == -1);
        assert!((-1..=255).contains(&h.exitcode));
        if h.not_started {
            assert!(!h.up && h.seconds.is_none());
        }
    }
    for w in line.split_whitespace() {
        let _ = svstat::Tai::parse(w).map(|t| t.unix());
        let _ = svstat::signal_number(w);
    }
}

fn check_o(fields: &[&str], line: &str) {
    if let Some(o) = svstat::parse_o(fields, line) {
        let st = o.to_status();
        assert!(!st.up || st.pid > 0 || o.pid.map_or(true, |p| p <= 0));
        assert!(!st.paused || st.up);
        let _ = st.seconds_in_state((i64::MAX, u32::MAX));
        let _ = st.seconds_in_state((i64::MIN, 0));
    }
}

/// `^[a-z0-9][a-z0-9_-]{0,63}$`, written independently of profile::validate.
fn valid_name(s: &str) -> bool {
    let ok = |c: u8, first: bool| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || (!first && (c == b'_' || c == b'-'))
    };
    let b = s.as_bytes();
    !b.is_empty() && b.len() <= 64 && b.iter().enumerate().all(|(i, &c)| ok(c, i == 0))
}

fn check_name(b: &[u8]) {
    let t = text(b);
    let ok = profile::Profile::parse(&t).is_ok();
    assert_eq!(ok, valid_name(&t), "validate({:?})", t);
    if ok {
        assert!((9200..9800).contains(&profile::port(&t)));
        let cfg = weird_config(&t);
        let home = cfg.home(&t);
        if t != profile::DEFAULT {
            assert_eq!(home.parent(), Some(&*cfg.hermes_home.join("profiles")));
        }
        assert_eq!(cfg.slot_dir(&t).parent(), Some(&*cfg.scandir));
        assert_eq!(
            slot::profile_of(&format!("gateway-{}", t)).as_deref(),
            Some(&*t)
        );
    } else {
        assert!(slot::profile_of(&format!("gateway-{}", t)).is_none());
    }
}

fn weird_config(s: &str) -> Config {
    Config {
        hermes_home: PathBuf::from(format!("/h/{}", s)),
        scandir: PathBuf::from("/run/hermes/service"),
        user: s.to_string(),
        gateway_cmd: Some(format!(
            "hermes -p {{profile}} {} {{profile}}{{profile}} --x",
            s
        )),
        ready: None,
        shebangdir: PathBuf::from("/command"),
        max_profiles: hermes_s6::profile::DEFAULT_MAX_PROFILES,
    }
}

/// The inverse of execline's double-quoted word syntax, as far as `slot::quote` uses it.
fn unquote(q: &str) -> Option<String> {
    let inner = q.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut it = inner.chars();
    while let Some(c) = it.next() {
        match c {
            '"' => return None, // an unescaped quote would end the word early
            '\\' => match it.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                c @ ('"' | '\\') => out.push(c),
                _ => return None,
            },
            c => out.push(c),
        }
    }
    Some(out)
}

// ---------------------------------------------------------------- tests

#[test]
fn fuzz_json_state_marker_and_lifecycle_documents() {
    let corpus = json_corpus();
    fuzz("json", 10, count(40_000, 1_500_000), &corpus, check_json);
}

#[test]
fn fuzz_svstat_human_and_o_lines() {
    let (human, o) = svstat_samples();
    let mut corpus: Vec<Vec<u8>> = human.iter().map(|l| l.as_bytes().to_vec()).collect();
    corpus.extend(o.iter().map(|(_, l)| l.as_bytes().to_vec()));
    let s = seed(11);
    let mut rng = Rng::new(s ^ 1);
    let fields: Vec<Vec<&str>> = o
        .iter()
        .map(|(f, _)| f.iter().map(String::as_str).collect())
        .collect();
    fuzz("svstat-lines", 11, count(20_000, 500_000), &corpus, |b| {
        let t = text(b);
        check_human(&t);
        // the fixture's own field list, or a random one (unknown names included)
        let f: Vec<&str> = if rng.chance(2) {
            rng.pick(&fields).clone()
        } else {
            (0..rng.below(8)).map(|_| *rng.pick(O_FIELDS)).collect()
        };
        check_o(&f, &t);
    });
    // every fixture sample itself still parses (the mutants above are not all rejects)
    for l in &human {
        assert!(svstat::parse_human(l).is_some(), "{:?}", l);
    }
    for (f, l) in &o {
        let f: Vec<&str> = f.iter().map(String::as_str).collect();
        assert!(svstat::parse_o(&f, l).is_some(), "{:?} {:?}", f, l);
    }
}

#[test]
fn fuzz_supervise_status_buffers() {
    let corpus = status_corpus();
    let mut rng = Rng::new(seed(12) ^ 1);
    fuzz("status", 12, count(20_000, 500_000), &corpus, |b| {
        check_status(b);
        // also the same bytes cut back to a valid size, so most mutants reach the decoder
        let n = *rng.pick(&[35usize, 43]);
        let mut v = b.to_vec();
        v.resize(n, rng.byte());
        check_status(&v);
    });
}

#[test]
fn fuzz_proc_stat_lines() {
    let mut corpus = vec![
        fs::read("/proc/self/stat").unwrap(),
        stat_line(b"hermes", 18734),
        stat_line(b"a) b", 1),
        stat_line(b") 1 2 3 (", u64::MAX),
    ];
    corpus.push(b"1 (x) S".to_vec());
    let mut rng = Rng::new(seed(13) ^ 1);
    fuzz("procfs", 13, count(5_000, 200_000), &corpus, |b| {
        let _ = procfs::parse_start_time(b);
        // a well-formed line whose comm is the hostile bytes must still give field 22
        let comm: Vec<u8> = b.iter().copied().take(64).collect();
        let start = rng.next_u64();
        assert_eq!(
            procfs::parse_start_time(&stat_line(&comm, start)),
            Some(start),
            "{:?}",
            comm
        );
    });
}

#[test]
fn fuzz_iso_stamps() {
    let corpus: Vec<Vec<u8>> = [
        "2026-08-01T10:05:00Z",
        "2026-08-01T10:05:00.000000+00:00",
        "2026-08-01T12:05:00+02:00",
        "2026-08-01T05:35:00-0430",
        "2026-08-01 10:05:00",
        "2024-02-29T23:59:60+01",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59-23:59",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fuzz("iso", 14, count(5_000, 200_000), &corpus, |b| {
        let t = text(b);
        if let Some(secs) = clock::parse_iso_utc(&t) {
            if (0..=253_402_300_799).contains(&secs) {
                assert_eq!(
                    clock::parse_iso_utc(&clock::iso_utc(secs)),
                    Some(secs),
                    "{:?}",
                    t
                );
            }
            let _ = (clock::iso_utc(secs), clock::boot_log_stamp(secs));
        }
    });
    for secs in [i64::MIN, -62_135_596_800, -1, 0, i64::MAX] {
        let _ = clock::parse_iso_utc(&clock::iso_utc(secs));
    }
}

#[test]
fn fuzz_profile_names_and_config_values() {
    let corpus: Vec<Vec<u8>> = [
        "default",
        "coder",
        "a",
        "0",
        "my-profile",
        "assistant_v2",
        "../x",
        "a/b",
        "/etc",
        "..",
        ".",
        "Coder",
        "a b",
        "x\0y",
        "é",
        "-x",
        "_x",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .chain([b"a".repeat(64), b"a".repeat(65), b"\xff\xfe".to_vec()])
    .collect();
    fuzz("names", 15, count(5_000, 200_000), &corpus, |b| {
        check_name(b);
        let t = text(b);
        let cfg = weird_config(&t);
        for p in ["default", "x"] {
            for w in cfg.gateway_argv(p) {
                assert!(!w.is_empty() && !w.bytes().any(|b| b.is_ascii_whitespace()));
                assert!(!w.contains("{profile}") || t.contains('{') || t.contains('}'));
            }
        }
        // a slot script word: quoting must round-trip through execline's syntax
        assert_eq!(
            unquote(&slot::quote(&t)).as_deref(),
            Some(&*t),
            "quote({:?})",
            t
        );
        // `uid:gid` specs never touch the disk
        if t.contains(':') {
            let _ = profile::resolve_user(&t, Path::new("/nonexistent"));
        }
    });
}

#[test]
fn fuzz_passwd_files() {
    let d = TempDir::new("fuzz-passwd");
    let corpus: Vec<Vec<u8>> = vec![
        b"root:x:0:0:root:/root:/bin/bash\nhermes:x:10000:10000::/opt/data:/bin/sh\n".to_vec(),
        b"# comment\n:x:1:1\nhermes:x:abc:1\nhermes::10001: 10002 :\n".to_vec(),
        b"hermes:x:4294967296:0\nhermes:x:-1:0\nx:y\n\n".to_vec(),
    ];
    let etc = d.0.clone();
    fuzz("passwd", 16, count(1_000, 20_000), &corpus, |b| {
        fs::write(etc.join("passwd"), b).unwrap();
        for who in ["hermes", "10000", "root", ""] {
            let _ = profile::resolve_user(who, &etc);
        }
    });
}

/// Reading real files: a profile home full of hostile JSON, including the boot log's
/// lifecycle file and the crash-loop tally.
#[test]
fn fuzz_files_in_a_home() {
    let d = TempDir::new("fuzz-home");
    let home = d.0.clone();
    fs::create_dir(home.join("state")).unwrap();
    let corpus = json_corpus();
    fuzz("files", 17, count(1_000, 20_000), &corpus, |b| {
        fs::write(home.join(state::FILE), b).unwrap();
        fs::write(home.join(marker::FILE), b).unwrap();
        fs::write(home.join("state/gateway.lifecycle.json"), b).unwrap();
        let st = state::load(&home).unwrap();
        let t = String::from_utf8(b.to_vec()).ok();
        let direct = t.as_deref().and_then(|t| State::parse(t).ok());
        assert_eq!(st, direct);
        let _ = marker::read(&home).unwrap();
        let pe = bootlog::prior_exit(&home);
        assert!(["clean", "unclean", "unknown"].contains(&pe));
        let now = clock::now_secs();
        let _ = marker::consume(&home, Some(412), Some(18734), now).unwrap();
        assert!(
            !home.join(marker::FILE).exists(),
            "consume must delete the marker"
        );
    });
}

// ---------------------------------------------------------------- sizes

#[test]
fn huge_and_deep_inputs_are_rejected_quickly() {
    let t = Instant::now();
    for doc in [
        "[".repeat(1_000_000),
        "{\"a\":".repeat(1_000_000),
        "[{\"a\":".repeat(500_000),
        "\"\\u".repeat(1_000_000),
    ] {
        assert!(json::parse(&doc).is_err());
        assert!(State::parse(&doc).is_err());
        assert!(Marker::parse(&doc).is_none());
    }
    // the depth limit parses on a quarter of the smallest stack the binary
    // parses on (a thread's 2 MiB: reconcile's workers; the main thread has
    // 8). Unoptimised frames are several times larger: 4 MiB there.
    let ok = "[".repeat(json::MAX_DEPTH) + &"]".repeat(json::MAX_DEPTH);
    let stack = if cfg!(debug_assertions) {
        4 << 20
    } else {
        512 << 10
    };
    let deep = std::thread::Builder::new()
        .stack_size(stack)
        .spawn(move || json::parse(&ok).is_ok())
        .unwrap()
        .join()
        .unwrap();
    assert!(deep);
    // 10 MB string and number: parsed in memory, linear time
    let big = format!(
        "{{\"s\":\"{}\",\"n\":{}}}",
        "x".repeat(10 << 20),
        "9".repeat(1 << 20)
    );
    let v = json::parse(&big).unwrap();
    assert_eq!(
        v.get("s").and_then(Value::as_str).map(str::len),
        Some(10 << 20)
    );
    assert_eq!(v.get("n").and_then(Value::as_i64), None);
    assert!(
        svstat::parse_human(&"up (pid 1) 1 seconds, ready 1 seconds".repeat(100_000)).is_none()
    );
    assert!(svstat::decode(&vec![0u8; 10 << 20]).is_none());
    let _ = procfs::parse_start_time(&vec![b')'; 10 << 20]);
    let _ = clock::parse_iso_utc(&"9".repeat(10 << 20));
    assert!(profile::Profile::parse(&"a".repeat(10 << 20)).is_err());
    eprintln!("huge inputs: {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(60));
}

/// Oversized files are refused from their size, not read: a 10 GB sparse state file, a 10 MB
/// marker and lifecycle file. The binary reading them stays far below their size in memory.
#[test]
fn oversized_files_are_not_read() {
    let d = TempDir::new("fuzz-big");
    let home = d.0.clone();
    fs::create_dir(home.join("state")).unwrap();
    let sparse = |p: &Path, len: u64| {
        let f = fs::File::create(p).unwrap();
        f.set_len(len).unwrap();
    };
    sparse(&home.join(state::FILE), 10 << 30);
    fs::write(home.join(marker::FILE), vec![b' '; 10 << 20]).unwrap();
    sparse(&home.join("state/gateway.lifecycle.json"), 10 << 20);
    let t = Instant::now();
    let e = state::load(&home).unwrap_err();
    assert!(e.message().contains("larger than"), "{}", e);
    assert!(marker::read(&home).is_err());
    assert_eq!(bootlog::prior_exit(&home), "unknown");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // the binary: status must report it, stop must refuse it, both in little memory
    let scan = d.path("scan");
    for args in [&["status", "--json"][..], &["stop", "default"][..]] {
        let Some((o, rss_kib)) = run_with_rss(&home, &scan, args, &d.0) else {
            eprintln!("/usr/bin/time missing: peak RSS not checked");
            return;
        };
        assert!(!o.timed_out && o.signal.is_none(), "{:?}", o);
        assert!(
            o.stderr.contains("larger than"),
            "{:?} must name the oversized file: {}",
            args,
            o.stderr
        );
        // Under qemu-user (tools/test-aarch64.sh) the RSS is mostly the emulator's.
        if std::env::var_os("HERMES_S6_TEST_EMULATED").is_none() {
            assert!(rss_kib < 8 << 10, "{:?}: peak RSS {} KiB", args, rss_kib);
        }
    }
}

/// Peak RSS (KiB) of the binary running `args`, measured by GNU time: its child is forked
/// from a small process, unlike ours (the kernel's maxrss counts the memory a child shared
/// with this big test process before exec). None when /usr/bin/time is missing.
fn run_with_rss(home: &Path, scan: &Path, args: &[&str], tmp: &Path) -> Option<(Out, i64)> {
    let time = Path::new("/usr/bin/time");
    if !time.is_file() {
        return None;
    }
    let report = tmp.join("rss");
    let mut c = hermes(home, scan);
    let mut cmd = std::process::Command::new(time);
    cmd.env_clear()
        .envs(c.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg(c.get_program())
        .args(args);
    c.args(args);
    let o = run_bounded(&mut cmd, Duration::from_secs(10));
    let kib = fs::read_to_string(&report)
        .ok()?
        .trim()
        .lines()
        .last()?
        .parse()
        .ok()?;
    Some((o, kib))
}

/// The environment is read once into a Config: weird values (non-UTF-8, huge, control
/// characters, bad user specs) give a clean exit code, never a crash or a hang.
#[test]
fn weird_environment_values_never_crash_the_binary() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let d = TempDir::new("fuzz-env");
    let home = d.path("home");
    fs::create_dir(&home).unwrap();
    let scan = d.path("scan");
    let values: Vec<OsString> = vec![
        OsString::from_vec(b"\xff\xfe/\x80".to_vec()),
        OsString::from("x".repeat(100_000)),
        OsString::from("a\nb\tc\rd"),
        OsString::from("   "),
        OsString::from("{profile}".repeat(10_000)),
        OsString::from("::::"),
        OsString::from("4294967295:4294967295"),
        OsString::from("-1:-1"),
        OsString::from("99999999999999999999:0"),
        OsString::from("root"),
        OsString::from("."),
        OsString::from("relative/dir"),
    ];
    let vars = [
        "HERMES_HOME",
        "HERMES_S6_SCANDIR",
        "S6_PROFILE_GATEWAY_SCANDIR",
        "HERMES_S6_USER",
        "HERMES_GATEWAY_CMD",
        "HERMES_S6_SHEBANGDIR",
        "HERMES_S6_TIMEOUT_KILL",
        "HERMES_GATEWAY_NOTIFICATION_FD",
        "HERMES_GATEWAY_CLEAN_EXIT",
    ];
    let commands: &[&[&str]] = &[
        &["status", "--json"],
        &["list"],
        &["port", "default"],
        &["stop", "default"],
        &["run", "default", "--", "/bin/true"],
        &["finish", "default", "256", "15"],
        &["reconcile", "--dry-run"],
    ];
    let mut n = 0;
    for var in vars {
        for val in &values {
            for args in commands {
                let o = run_bounded(
                    hermes(&home, &scan)
                        .env(var, val)
                        .current_dir(d.0.as_path())
                        .args(*args),
                    Duration::from_secs(10),
                );
                assert!(
                    !o.timed_out
                        && o.signal.is_none()
                        && [0, 1, 100, 111].contains(&o.code.unwrap_or(-1)),
                    "{}={:?} {:?}: {:?}",
                    var,
                    val,
                    args,
                    o
                );
                assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
                n += 1;
            }
        }
    }
    eprintln!("weird environment: {} runs", n);
}

/// A non-UTF-8 HERMES_HOME is a real directory name: the state must go there, not into a
/// directory named after its lossy spelling.
#[test]
fn non_utf8_hermes_home_is_used_as_is() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let d = TempDir::new("fuzz-nonutf8");
    let mut raw = d.0.clone().into_os_string().into_vec();
    raw.extend_from_slice(b"/home-\xff");
    let home = PathBuf::from(OsString::from_vec(raw));
    fs::create_dir(&home).unwrap();
    let scan = d.path("scan");
    let o = run_bounded(
        hermes(&home, &scan).args(["stop", "default"]),
        Duration::from_secs(5),
    );
    assert!(o.is(0), "{:?}", o);
    let st = state::load(&home)
        .unwrap()
        .expect("no state written in the real home");
    assert_eq!(st.desired_state(), Some("stopped"));
    assert_eq!(names(&d.0), ["home-\u{fffd}"], "nothing else may appear");
}

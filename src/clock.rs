//! Wall-clock time and ISO-8601 UTC stamps, by civil-from-days arithmetic (no libc localtime:
//! the container's TZ must not change what the state files and markers say). The boot log
//! alone is in local time, as upstream writes it.

/// Now, from CLOCK_REALTIME: (seconds since the epoch, nanoseconds).
pub fn now() -> (i64, u32) {
    crate::sys::realtime()
}

/// Seconds since the epoch, now.
pub fn now_secs() -> i64 {
    now().0
}

/// `2026-08-01T10:05:00Z`
pub fn iso_utc(secs: i64) -> String {
    let (y, mo, d, h, mi, s) = split(secs);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", y, mo, d, h, mi, s)
}

/// `2026-08-01T12:05:00+0200`, for the boot log: strftime
/// `%Y-%m-%dT%H:%M:%S%z` in the local time zone, as upstream's
/// `time.strftime` writes it (`+0000` in a container without `TZ` or
/// /etc/localtime).
pub fn boot_log_stamp(secs: i64) -> String {
    stamp_at_offset(secs, crate::sys::utc_offset(secs).unwrap_or(0))
}

/// [`boot_log_stamp`] at `offset` seconds east of UTC.
pub fn stamp_at_offset(secs: i64, offset: i64) -> String {
    let (y, mo, d, h, mi, s) = split(secs.saturating_add(offset));
    let (sign, off) = if offset < 0 {
        ('-', -offset)
    } else {
        ('+', offset)
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{:02}{:02}",
        y,
        mo,
        d,
        h,
        mi,
        s,
        sign,
        off / 3600,
        off / 60 % 60
    )
}

fn split(secs: i64) -> (i64, u32, u32, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (y, m, d, sod / 3600, sod / 60 % 60, sod % 60)
}

/// (year, month 1–12, day 1–31) of day `z` since 1970-01-01 (proleptic Gregorian).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 of a civil date (month 1–12).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parse `YYYY-MM-DDTHH:MM:SS[.frac][Z|±HH:MM|±HHMM|±HH]` to epoch seconds (fraction dropped).
/// A space may replace the `T`; no offset at all is taken as UTC (what the gateway and
/// hermes-s6 write is always UTC).
pub fn parse_iso_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let mut p = 0;
    let num = |p: &mut usize, n: usize| -> Option<i64> {
        let digits = b.get(*p..*p + n)?;
        let mut v = 0i64;
        for &c in digits {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        *p += n;
        Some(v)
    };
    let lit = |p: &mut usize, c: &[u8]| -> bool {
        if b.get(*p).is_some_and(|x| c.contains(x)) {
            *p += 1;
            true
        } else {
            false
        }
    };
    let y = num(&mut p, 4)?;
    lit(&mut p, b"-").then_some(())?;
    let mo = num(&mut p, 2)? as u32;
    lit(&mut p, b"-").then_some(())?;
    let d = num(&mut p, 2)? as u32;
    lit(&mut p, b"Tt ").then_some(())?;
    let h = num(&mut p, 2)?;
    lit(&mut p, b":").then_some(())?;
    let mi = num(&mut p, 2)?;
    lit(&mut p, b":").then_some(())?;
    let sec = num(&mut p, 2)?;
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    if lit(&mut p, b".,") {
        let start = p;
        while b.get(p).is_some_and(|c| c.is_ascii_digit()) {
            p += 1;
        }
        if p == start {
            return None;
        }
    }
    let mut offset = 0;
    match b.get(p) {
        None => {}
        Some(b'Z' | b'z') => p += 1,
        Some(&sign @ (b'+' | b'-')) => {
            p += 1;
            let oh = num(&mut p, 2)?;
            let om = if p == b.len() {
                0
            } else {
                lit(&mut p, b":");
                num(&mut p, 2)?
            };
            if oh > 23 || om > 59 {
                return None;
            }
            offset = (oh * 60 + om) * 60;
            if sign == b'-' {
                offset = -offset;
            }
        }
        Some(_) => return None,
    }
    if p != b.len() {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_utc_of_known_epochs() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(1_785_578_700), "2026-08-01T10:05:00Z");
        assert_eq!(iso_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso_utc(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(iso_utc(-1), "1969-12-31T23:59:59Z");
        assert_eq!(iso_utc(1_785_000_000), "2026-07-25T17:20:00Z");
    }

    #[test]
    fn boot_log_stamp_is_local_time_with_a_numeric_offset() {
        assert_eq!(
            stamp_at_offset(1_785_578_700, 0),
            "2026-08-01T10:05:00+0000"
        );
        assert_eq!(
            stamp_at_offset(1_785_578_700, 19_800),
            "2026-08-01T15:35:00+0530"
        );
        assert_eq!(stamp_at_offset(0, -18_000), "1969-12-31T19:00:00-0500");
        assert_eq!(stamp_at_offset(0, -1_800), "1969-12-31T23:30:00-0030");
    }

    #[test]
    fn extreme_epochs_do_not_panic() {
        let _ = iso_utc(i64::MAX);
        let _ = iso_utc(i64::MIN);
    }

    #[test]
    fn days_round_trip_over_four_centuries() {
        for z in (-800_000..800_000).step_by(7) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn parse_accepts_every_utc_spelling() {
        let t = Some(1_785_578_700);
        assert_eq!(parse_iso_utc("2026-08-01T10:05:00Z"), t);
        assert_eq!(parse_iso_utc("2026-08-01T10:05:00+00:00"), t);
        assert_eq!(parse_iso_utc("2026-08-01T10:05:00+0000"), t);
        assert_eq!(parse_iso_utc("2026-08-01T10:05:00.000000+00:00"), t);
        assert_eq!(parse_iso_utc("2026-08-01T10:05:00.999Z"), t);
        assert_eq!(parse_iso_utc("2026-08-01 10:05:00"), t);
        assert_eq!(parse_iso_utc("2026-08-01T10:05:00"), t);
    }

    #[test]
    fn parse_applies_offsets() {
        let t = Some(1_785_578_700);
        assert_eq!(parse_iso_utc("2026-08-01T12:05:00+02:00"), t);
        assert_eq!(parse_iso_utc("2026-08-01T05:35:00-0430"), t);
        assert_eq!(parse_iso_utc("2026-08-01T11:05:00+01"), t);
        assert_eq!(parse_iso_utc("2026-08-01T00:05:00-10:00"), t);
    }

    #[test]
    fn parse_rejects_malformed_stamps() {
        for bad in [
            "",
            "2026-08-01",
            "2026-08-01T10:05",
            "2026-13-01T10:05:00Z",
            "2026-02-29T10:05:00Z",
            "2026-08-32T10:05:00Z",
            "2026-08-01T24:00:00Z",
            "2026-08-01T10:60:00Z",
            "2026-08-01T10:05:00.Z",
            "2026-08-01T10:05:00Zx",
            "2026-08-01T10:05:00+2",
            "2026-08-01T10:05:00+25:00",
            "26-08-01T10:05:00Z",
            "2026-08-01T10:05:00 Z",
            "１２３４-08-01T10:05:00Z",
        ] {
            assert_eq!(parse_iso_utc(bad), None, "{:?}", bad);
        }
        assert_eq!(parse_iso_utc("2024-02-29T00:00:00Z"), Some(1_709_164_800));
    }

    #[test]
    fn format_then_parse_round_trips() {
        for t in [0, 1, 59, 86_399, 1_785_578_700, 253_402_300_799] {
            assert_eq!(parse_iso_utc(&iso_utc(t)), Some(t));
            assert_eq!(parse_iso_utc(&stamp_at_offset(t, 0)), Some(t));
            if (86_400..253_402_214_400).contains(&t) {
                // (local dates of years 1970 to 9999)
                for off in [3_600, -34_200, 50_400] {
                    assert_eq!(parse_iso_utc(&stamp_at_offset(t, off)), Some(t));
                }
            }
        }
    }

    #[test]
    fn now_is_after_2020() {
        let (s, ns) = now();
        assert!(s > 1_577_836_800);
        assert!(ns < 1_000_000_000);
    }
}

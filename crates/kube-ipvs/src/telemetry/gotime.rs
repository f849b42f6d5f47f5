//! Timestamps as Go's `time.Time.String()` prints them in UTC, because stock kube-proxy's
//! `/healthz` body carries them that way (`"2024-05-01 12:00:00.5 +0000 UTC"`) and probes that
//! parse the body expect it. Go appends a monotonic-clock reading (` m=+1.2`) to fresh
//! timestamps; that part is process-local and left out.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// What Go prints for its zero `time.Time` (kube-proxy's `lastUpdated` before the first sync).
pub const ZERO: &str = "0001-01-01 00:00:00 +0000 UTC";

/// Formats `t` like Go's `time.Time.String()` in UTC; `None` is Go's zero time.
pub fn format(t: Option<SystemTime>) -> String {
    let Some(t) = t else {
        return ZERO.to_string();
    };
    // Times before 1970 do not occur here (they would come from a broken clock); print the epoch.
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    if nanos != 0 {
        // Go's ".999999999" layout: up to nine digits, trailing zeros dropped.
        let frac = format!("{nanos:09}");
        let _ = write!(out, ".{}", frac.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

/// (year, month, day) of the proleptic Gregorian calendar for days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`, restricted to non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats_like_go() {
        let at = |s: u64, n: u32| Some(UNIX_EPOCH + Duration::new(s, n));
        let cases = [
            (None, ZERO),
            (at(0, 0), "1970-01-01 00:00:00 +0000 UTC"),
            // 2024-02-29 (leap day) 13:14:15.5
            (
                at(1_709_212_455, 500_000_000),
                "2024-02-29 13:14:15.5 +0000 UTC",
            ),
            (
                at(1_709_212_455, 123_456_789),
                "2024-02-29 13:14:15.123456789 +0000 UTC",
            ),
            (
                at(1_709_212_455, 1_000),
                "2024-02-29 13:14:15.000001 +0000 UTC",
            ),
            // 2000-03-01 00:00:00 and 2100-12-31 23:59:59
            (at(951_868_800, 0), "2000-03-01 00:00:00 +0000 UTC"),
            (at(4_133_980_799, 0), "2100-12-31 23:59:59 +0000 UTC"),
        ];
        for (t, want) in cases {
            assert_eq!(format(t), want, "{t:?}");
        }
    }
}

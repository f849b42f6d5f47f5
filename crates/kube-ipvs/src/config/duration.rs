//! Go `time.Duration` text ("30s", "1m0s", "500ms", "1h2m3.5s"), as used by every duration field of
//! `KubeProxyConfiguration` (`metav1.Duration`) and by kube-proxy's duration flags.
//!
//! Parsing follows `time.ParseDuration` but is exact: fractions are computed in integers and
//! truncated to whole nanoseconds (Go goes through `float64` and may be off by a nanosecond).
//!
//! Not jiff (in the tree through k8s-openapi): its "friendly" format is another grammar. Checked
//! against jiff 0.2.43's `SignedDuration` parser and `SpanPrinter` (compact, no spacing): it
//! refuses Go durations stock accepts (`.5s`, `5.s`, `1.5h30m`, `1h1h`, `0`, `1μs` with the Greek
//! mu), accepts what Go refuses (`5 hours`, ISO `PT5S`, one nanosecond past `math.MaxInt64`), and
//! prints `1h` and `0.0000015s` where Go prints `1h0m0s` and `1.5µs` (`--write-config-to` must
//! write what stock writes).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer};

/// The largest magnitude a Go duration can hold: `math.MaxInt64` nanoseconds.
const MAX_NANOS: u128 = 9_223_372_036_854_775_807;
/// One more for negative values (`math.MinInt64`).
const MAX_NEG_NANOS: u128 = MAX_NANOS + 1;
/// Fraction digits kept; more cannot change the result by a nanosecond at any unit.
const MAX_FRACTION_DIGITS: u32 = 18;

/// Why a duration string is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration {0:?}: empty")]
    Empty(String),
    #[error("invalid duration {0:?}: expected a number")]
    ExpectedNumber(String),
    #[error("invalid duration {0:?}: missing unit (use ns, us, ms, s, m or h)")]
    MissingUnit(String),
    #[error("invalid duration {input:?}: unknown unit {unit:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit { input: String, unit: String },
    #[error("invalid duration {0:?}: out of range (at most 2562047h47m16.854775807s)")]
    Overflow(String),
    #[error("invalid duration {0:?}: must not be negative")]
    Negative(String),
}

/// A signed Go duration as written in a file or flag; validation decides whether a sign is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration {
    negative: bool,
    magnitude: Duration,
}

impl GoDuration {
    /// Zero: what Go writes for an unset `metav1.Duration` ("0s").
    pub const ZERO: GoDuration = GoDuration {
        negative: false,
        magnitude: Duration::ZERO,
    };

    /// A non-negative duration.
    pub const fn from_std(d: Duration) -> Self {
        GoDuration {
            negative: false,
            magnitude: d,
        }
    }

    /// Parses Go's `time.ParseDuration` syntax: an optional sign, then one or more
    /// `<decimal><unit>` pairs (units ns, us, µs, μs, ms, s, m, h), or the bare `0`.
    pub fn parse(input: &str) -> Result<Self, DurationError> {
        let err_input = || input.to_owned();
        let (negative, mut rest) = match input.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, input.strip_prefix('+').unwrap_or(input)),
        };
        if rest == "0" {
            return Ok(GoDuration::ZERO);
        }
        if rest.is_empty() {
            return Err(DurationError::Empty(err_input()));
        }
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let (int_part, after_int) = split_digits(rest);
            let (frac_part, after_frac) = match after_int.strip_prefix('.') {
                Some(r) => {
                    let (f, a) = split_digits(r);
                    (Some(f), a)
                }
                None => (None, after_int),
            };
            if int_part.is_empty() && frac_part.is_none_or(str::is_empty) {
                return Err(DurationError::ExpectedNumber(err_input()));
            }
            let unit_len = after_frac
                .find(|c: char| c == '.' || c.is_ascii_digit())
                .unwrap_or(after_frac.len());
            let (unit, next) = after_frac.split_at(unit_len);
            if unit.is_empty() {
                return Err(DurationError::MissingUnit(err_input()));
            }
            let unit_nanos: u128 = match unit {
                "ns" => 1,
                "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                other => {
                    return Err(DurationError::UnknownUnit {
                        input: err_input(),
                        unit: other.to_owned(),
                    });
                }
            };
            let whole = parse_u128(int_part).ok_or_else(|| DurationError::Overflow(err_input()))?;
            let mut nanos = whole
                .checked_mul(unit_nanos)
                .ok_or_else(|| DurationError::Overflow(err_input()))?;
            if let Some(frac) = frac_part {
                nanos = nanos
                    .checked_add(fraction_nanos(frac, unit_nanos))
                    .ok_or_else(|| DurationError::Overflow(err_input()))?;
            }
            total = total
                .checked_add(nanos)
                .ok_or_else(|| DurationError::Overflow(err_input()))?;
            let limit = if negative { MAX_NEG_NANOS } else { MAX_NANOS };
            if total > limit {
                return Err(DurationError::Overflow(err_input()));
            }
            rest = next;
        }
        let secs = u64::try_from(total / 1_000_000_000)
            .map_err(|_| DurationError::Overflow(err_input()))?;
        let sub = u32::try_from(total % 1_000_000_000)
            .map_err(|_| DurationError::Overflow(err_input()))?;
        let magnitude = Duration::new(secs, sub);
        Ok(GoDuration {
            negative: negative && !magnitude.is_zero(),
            magnitude,
        })
    }

    /// True for "0s" (and "-0s"): Go's zero value, which kube-proxy treats as "unset".
    pub fn is_zero(&self) -> bool {
        self.magnitude.is_zero()
    }

    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// The duration if it is not negative.
    pub fn non_negative(&self) -> Option<Duration> {
        (!self.negative).then_some(self.magnitude)
    }
}

/// Parses a duration that must not be negative (flags and fields where a sign makes no sense).
pub fn parse_non_negative(input: &str) -> Result<Duration, DurationError> {
    let d = GoDuration::parse(input)?;
    d.non_negative()
        .ok_or_else(|| DurationError::Negative(input.to_owned()))
}

fn split_digits(s: &str) -> (&str, &str) {
    let n = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(n)
}

/// Parses ASCII digits; `None` on overflow. Leading zeros are fine (Go accepts "007s").
fn parse_u128(digits: &str) -> Option<u128> {
    digits.bytes().try_fold(0u128, |acc, b| {
        acc.checked_mul(10)?
            .checked_add(u128::from(b.wrapping_sub(b'0')))
    })
}

/// `0.<digits> * unit` in nanoseconds, truncated.
fn fraction_nanos(digits: &str, unit_nanos: u128) -> u128 {
    let mut value: u128 = 0;
    let mut scale: u128 = 1;
    for b in digits.bytes().take(MAX_FRACTION_DIGITS as usize) {
        value = value * 10 + u128::from(b.wrapping_sub(b'0'));
        scale *= 10;
    }
    value * unit_nanos / scale
}

/// Formats like Go's `Duration.String()`: "0s", "500ms", "1.5µs", "1m0s", "1h2m3.5s", "-30s".
pub fn format_go(d: Duration) -> String {
    GoDuration::from_std(d).to_string()
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.negative { "-" } else { "" };
        let nanos = self.magnitude.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        if nanos < 1_000_000_000 {
            let (unit, scale) = if nanos < 1_000 {
                ("ns", 1)
            } else if nanos < 1_000_000 {
                ("\u{b5}s", 1_000)
            } else {
                ("ms", 1_000_000)
            };
            return write!(f, "{sign}{}{unit}", decimal(nanos, scale));
        }
        let hours = nanos / 3_600_000_000_000;
        let minutes = (nanos / 60_000_000_000) % 60;
        let secs = decimal(nanos % 60_000_000_000, 1_000_000_000);
        if hours > 0 {
            write!(f, "{sign}{hours}h{minutes}m{secs}s")
        } else if minutes > 0 {
            write!(f, "{sign}{minutes}m{secs}s")
        } else {
            write!(f, "{sign}{secs}s")
        }
    }
}

/// `value / scale` as a decimal with trailing zeros trimmed.
fn decimal(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = GoDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Go duration string such as \"30s\" or \"1m0s\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GoDuration, E> {
                GoDuration::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I64_MAX: u64 = 9_223_372_036_854_775_807;

    fn ns(n: u64) -> Duration {
        Duration::from_nanos(n)
    }

    #[test]
    fn parses_go_syntax() {
        let cases: &[(&str, Duration, bool)] = &[
            ("0", Duration::ZERO, false),
            ("0s", Duration::ZERO, false),
            ("-0s", Duration::ZERO, false),
            ("+5s", Duration::from_secs(5), false),
            ("30s", Duration::from_secs(30), false),
            ("1m0s", Duration::from_secs(60), false),
            ("500ms", Duration::from_millis(500), false),
            ("1h2m3.5s", Duration::from_millis(3_723_500), false),
            ("2h22m", Duration::from_secs(2 * 3600 + 22 * 60), false),
            ("1.5h", Duration::from_secs(5400), false),
            (".5s", Duration::from_millis(500), false),
            ("5.s", Duration::from_secs(5), false),
            ("007s", Duration::from_secs(7), false),
            ("1ns", ns(1), false),
            ("1us", ns(1_000), false),
            ("1\u{b5}s", ns(1_000), false),
            ("1\u{3bc}s", ns(1_000), false),
            ("1.000000001s", ns(1_000_000_001), false),
            ("1.0000000019s", ns(1_000_000_001), false),
            ("0.3333333333333333333333h", ns(1_199_999_999_999), false),
            ("1s500ms", Duration::from_millis(1500), false),
            // Go adds the terms in any order, repeats included.
            ("1h1h", Duration::from_secs(7200), false),
            ("1.5h30m", Duration::from_secs(7200), false),
            ("30m1h", Duration::from_secs(5400), false),
            ("-1m30s", Duration::from_secs(90), true),
            ("24h0m0s", Duration::from_secs(86_400), false),
            ("2562047h47m16.854775807s", ns(I64_MAX), false),
            ("-2562047h47m16.854775808s", ns(I64_MAX + 1), true),
        ];
        for (input, want, neg) in cases {
            let got = GoDuration::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.magnitude, *want, "{input}");
            assert_eq!(got.is_negative(), *neg, "{input}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("-", "empty"),
            ("30", "missing unit"),
            ("1m30", "missing unit"),
            ("s", "expected a number"),
            (".s", "expected a number"),
            ("1.2.3s", "missing unit"),
            ("3x", "unknown unit \"x\""),
            ("3 s", "unknown unit \" s\""),
            ("1d", "unknown unit \"d\""),
            ("1S", "unknown unit \"S\""),
            ("2562047h47m16.854775808s", "out of range"),
            ("9999999999999999999999h", "out of range"),
            ("0x10s", "unknown unit \"x\""),
            ("5 hours", "unknown unit \" hours\""),
            ("PT5S", "expected a number"),
        ];
        for (input, want) in cases {
            let err = GoDuration::parse(input).expect_err(input).to_string();
            assert!(err.contains(want), "{input}: got {err:?}, want {want:?}");
            assert!(err.contains(&format!("{input:?}")), "{err} names the input");
        }
    }

    #[test]
    fn non_negative_rejects_sign() {
        assert_eq!(parse_non_negative("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_non_negative("-0s"), Ok(Duration::ZERO));
        assert_eq!(
            parse_non_negative("-5s"),
            Err(DurationError::Negative("-5s".into()))
        );
    }

    #[test]
    fn formats_like_go() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (ns(1), "1ns"),
            (ns(1_500), "1.5\u{b5}s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(1_250), "1.25ms"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_millis(3_723_500), "1h2m3.5s"),
            (Duration::from_secs(86_400), "24h0m0s"),
            (ns(1_000_000_001), "1.000000001s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_go(*d), *want);
            assert_eq!(GoDuration::parse(want).unwrap().magnitude, *d, "{want}");
        }
        assert_eq!(GoDuration::parse("-90s").unwrap().to_string(), "-1m30s");
    }

    #[test]
    fn deserializes_from_string_only() {
        let d: GoDuration = serde_json::from_str("\"1m0s\"").unwrap();
        assert_eq!(d.non_negative(), Some(Duration::from_secs(60)));
        let err = serde_json::from_str::<GoDuration>("30")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Go duration string"), "{err}");
        let err = serde_json::from_str::<GoDuration>("\"30\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing unit"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn display_round_trips(n in 0u64..=I64_MAX) {
            let d = Duration::from_nanos(n);
            proptest::prop_assert_eq!(GoDuration::parse(&format_go(d)).unwrap().magnitude, d);
        }
    }
}

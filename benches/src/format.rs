//! How figures are written: times, rates, ratios, spreads and intervals.

use crate::stats::{self, Interval};

/// 3 significant digits.
pub fn sig3(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// The unit a duration of `ns` is shown in: its divisor and its name.
pub fn time_unit(ns: f64) -> (f64, &'static str) {
    if ns < 1e3 {
        (1.0, "ns")
    } else if ns < 1e6 {
        (1e3, "µs")
    } else if ns < 1e9 {
        (1e6, "ms")
    } else {
        (1e9, "s")
    }
}

/// A duration in ns, e.g. `1.23 µs`.
pub fn ns(ns: f64) -> String {
    let (div, unit) = time_unit(ns);
    format!("{} {unit}", sig3(ns / div))
}

/// An optional duration, `—` when absent.
pub fn ns_or_dash(value: Option<f64>) -> String {
    value.map_or_else(|| "—".into(), ns)
}

fn rate_unit(per_sec: f64) -> (f64, &'static str) {
    if per_sec >= 1e6 {
        (1e6, "M/s")
    } else if per_sec >= 1e3 {
        (1e3, "k/s")
    } else {
        (1.0, "/s")
    }
}

/// An operation rate, e.g. `1.23 M/s`.
pub fn rate(per_sec: f64) -> String {
    let (div, unit) = rate_unit(per_sec);
    format!("{} {unit}", sig3(per_sec / div))
}

/// `median [min–max]` of rates, in the median's unit.
pub fn rate_range(values: &[f64]) -> String {
    let Some(s) = stats::Summary::of(values) else { return "—".into() };
    let (div, unit) = rate_unit(s.median);
    if s.n == 1 {
        return format!("{} {unit}", sig3(s.median / div));
    }
    format!("{} {unit} [{}–{}]", sig3(s.median / div), sig3(s.min / div), sig3(s.max / div))
}

/// A grouped time (one group per process): `median (min–max of the process
/// medians)`, or just the median with one process.
pub fn spread(groups: &[Vec<f64>]) -> String {
    let medians = stats::group_medians(groups);
    let Some(s) = stats::Summary::of(&medians) else { return "—".into() };
    let (div, unit) = time_unit(s.median);
    if s.n == 1 {
        return format!("{} {unit}", sig3(s.median / div));
    }
    format!("{} {unit} ({}–{})", sig3(s.median / div), sig3(s.min / div), sig3(s.max / div))
}

/// A plain ratio: `2.50×`, or `—` when the denominator is not positive.
pub fn ratio(num: f64, den: f64) -> String {
    if den > 0.0 {
        format!("{}×", sig3(num / den))
    } else {
        "—".into()
    }
}

/// A ratio with its interval: `1.04× [0.97–1.12]`, marked `≈` when the
/// interval contains 1 (no difference that the spread can tell from noise).
pub fn ratio_interval(i: &Interval) -> String {
    let mark = if i.contains(1.0) { "≈ " } else { "" };
    format!("{mark}{}× [{}–{}]", sig3(i.estimate), sig3(i.low), sig3(i.high))
}

/// The ratio of two grouped figures with its interval when both sides have a
/// spread to resample, else the plain ratio marked as one measurement each.
pub fn ratio_of(num: &[Vec<f64>], den: &[Vec<f64>], seed: u64) -> String {
    match (stats::ratio_interval(num, den, seed), stats::center(num), stats::center(den)) {
        (Some(i), _, _) => ratio_interval(&i),
        (None, Some(n), Some(d)) => format!("{} (one measurement each)", ratio(n, d)),
        _ => "—".into(),
    }
}

/// A share as a percentage: `12 %`.
pub fn percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

/// A number with thousands separators: `65,536`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The first line of `text`, without table separators, cut to 160 characters.
pub fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").replace('|', "/");
    if line.chars().count() > 160 {
        format!("{}…", line.chars().take(160).collect::<String>())
    } else {
        line
    }
}

/// A stable seed from names (FNV-1a), so intervals render the same every time.
pub fn seed_of(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_rates_ratios_and_spreads() {
        assert_eq!(ns(12.345), "12.3 ns");
        assert_eq!(ns(1234.0), "1.23 µs");
        assert_eq!(ns(250_000.0), "250 µs");
        assert_eq!(ns(3.2e9), "3.20 s");
        assert_eq!(rate(17_000_000.0), "17.0 M/s");
        assert_eq!(rate(400_000.0), "400 k/s");
        assert_eq!(ratio(2500.0, 350.0), "7.14×");
        assert_eq!(ratio(1.0, 0.0), "—");
        assert_eq!(spread(&[vec![900.0], vec![1000.0, 1000.0], vec![1100.0]]), "1.00 µs (0.90–1.10)");
        assert_eq!(spread(&[vec![5.0]]), "5.00 ns");
        assert_eq!(rate_range(&[1e6, 2e6, 3e6]), "2.00 M/s [1.00–3.00]");
        assert_eq!(ratio_interval(&Interval { estimate: 1.04, low: 0.97, high: 1.12 }), "≈ 1.04× [0.97–1.12]");
        assert_eq!(ratio_interval(&Interval { estimate: 2.0, low: 1.9, high: 2.1 }), "2.00× [1.90–2.10]");
        assert_eq!(thousands(65_536), "65,536");
        assert_eq!(thousands(999), "999");
        assert_eq!(percent(0.123), "12 %");
        assert_eq!(one_line("a|b\nc"), "a/b");
        assert_ne!(seed_of(&["a", "bc"]), seed_of(&["ab", "c"]));
    }
}

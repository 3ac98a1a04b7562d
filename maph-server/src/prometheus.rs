//! The Prometheus text exposition format (version 0.0.4) of the server's
//! counters: what `GET /metrics` answers.

use std::fmt::Write;

use crate::metrics::{HistogramSnapshot, HttpMetrics};
use crate::routes::StoreReport;

/// Nanoseconds per second: durations are kept in nanoseconds and shown in
/// seconds, the unit Prometheus expects.
const NS: f64 = 1e9;

/// A metric of every store: its name, its help text and how to read it from a report.
type PerStore = (&'static str, &'static str, fn(&StoreReport) -> f64);

pub(crate) fn render(http: &HttpMetrics, stores: &[StoreReport]) -> String {
    let mut out = Text(String::new());
    out.family("maph_uptime_seconds", "gauge", "Seconds since the server started.");
    out.sample("maph_uptime_seconds", &[], http.uptime().as_secs_f64());

    out.family("maph_http_requests_total", "counter", "HTTP requests answered, by method, route and status.");
    for ((method, route, status), count) in http.requests() {
        let status = status.to_string();
        let labels = [("method", method.as_str()), ("route", route.as_str()), ("status", status.as_str())];
        out.sample("maph_http_requests_total", &labels, count as f64);
    }
    out.family("maph_http_request_duration_seconds", "histogram", "Time to answer a request, by route.");
    for (route, histogram) in http.latencies() {
        out.histogram("maph_http_request_duration_seconds", &[("route", &route)], &histogram, NS);
    }

    let gauges: [PerStore; 7] = [
        ("maph_store_keys", "Live keys.", |s| s.size as f64),
        ("maph_store_slots", "Slots of the store's current file.", |s| s.slots as f64),
        ("maph_store_load_factor", "Live keys divided by slots.", |s| s.load_factor),
        ("maph_store_generation", "Commits recorded in the current file.", |s| s.generation as f64),
        ("maph_store_file_bytes", "Size of the store's current file.", |s| s.file_bytes as f64),
        ("maph_store_rebuilding", "1 while a growth or optimize is under way.", |s| f64::from(u8::from(s.rebuilding))),
        ("maph_store_reads_waiting", "Reads waiting for a slot mid-write now.", |s| s.reads_waiting as f64),
    ];
    for (name, help, value) in gauges {
        out.family(name, "gauge", help);
        for store in stores {
            out.sample(name, &[("store", &store.name)], value(store));
        }
    }
    out.family("maph_store_info", "gauge", "1 for each served store, labelled with its strategy.");
    for store in stores {
        out.sample("maph_store_info", &[("store", &store.name), ("strategy", &store.strategy)], 1.0);
    }

    let counters: [PerStore; 10] = [
        ("maph_store_reads_total", "Keys looked up.", |s| s.reads as f64),
        ("maph_store_read_waits_total", "Lookups that met a slot mid-write and waited.", |s| s.read_waits as f64),
        ("maph_store_commits_total", "Commits by the writer thread (a group commit counts once).", |s| {
            s.writer.commits as f64
        }),
        ("maph_store_writes_total", "Writes committed.", |s| s.writer.writes as f64),
        ("maph_store_growths_total", "Times the store was rebuilt larger.", |s| s.writer.growths as f64),
        ("maph_store_growth_failures_total", "Growths that failed (disk, size limit).", |s| {
            s.metrics.growth_failures as f64
        }),
        ("maph_store_optimizations_total", "Optimizes completed.", |s| s.writer.optimizations as f64),
        ("maph_store_lock_acquisitions_total", "Acquisitions of the writer's lock.", |s| {
            s.writer.lock_acquisitions as f64
        }),
        ("maph_store_lock_contended_total", "Acquisitions of the writer's lock that waited.", |s| {
            s.writer.lock_contended as f64
        }),
        ("maph_store_lock_timeouts_total", "Acquisitions of the writer's lock that gave up.", |s| {
            s.writer.lock_timeouts as f64
        }),
    ];
    for (name, help, value) in counters {
        out.family(name, "counter", help);
        for store in stores {
            out.sample(name, &[("store", &store.name)], value(store));
        }
    }

    out.family("maph_store_group_commit_size", "histogram", "Writes per commit.");
    for store in stores {
        out.histogram("maph_store_group_commit_size", &[("store", &store.name)], &store.metrics.group_sizes, 1.0);
    }
    out.family("maph_store_lock_wait_seconds", "histogram", "Time the writer waited for its lock, per acquisition.");
    for store in stores {
        out.histogram("maph_store_lock_wait_seconds", &[("store", &store.name)], &store.metrics.lock_wait, NS);
    }
    out.0
}

struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.0, " {}", number(value));
    }

    /// Cumulative `_bucket` lines (with `+Inf`), `_sum` and `_count`, values
    /// (bucket bounds included) divided by `per_unit`.
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot, per_unit: f64) {
        let mut cumulative = 0u64;
        for (i, count) in h.buckets.iter().enumerate() {
            cumulative += count;
            let le = h.bounds.get(i).map_or_else(|| "+Inf".to_string(), |&b| number(b as f64 / per_unit));
            let _ = write!(self.0, "{name}_bucket");
            self.labels(labels, Some(&le));
            let _ = writeln!(self.0, " {cumulative}");
        }
        let _ = write!(self.0, "{name}_sum");
        self.labels(labels, None);
        let _ = writeln!(self.0, " {}", number(h.sum as f64 / per_unit));
        let _ = write!(self.0, "{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.0, " {}", h.count);
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.0.push('{');
        let all = labels.iter().copied().chain(le.map(|le| ("le", le)));
        for (i, (name, value)) in all.enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            let _ = write!(self.0, "{name}=\"{}\"", escape(value));
        }
        self.0.push('}');
    }
}

/// A label value with `\`, `"` and newlines escaped, as the format requires.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn number(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Histogram;

    #[test]
    fn histograms_are_cumulative_with_inf_sum_and_count() {
        let h = Histogram::new(&[1_000, 2_000]);
        h.observe(500);
        h.observe(1_500);
        h.observe(9_000);
        let mut out = Text(String::new());
        out.histogram("x_seconds", &[("store", "s")], &h.snapshot(), NS);
        assert_eq!(
            out.0,
            "x_seconds_bucket{store=\"s\",le=\"0.000001\"} 1\n\
             x_seconds_bucket{store=\"s\",le=\"0.000002\"} 2\n\
             x_seconds_bucket{store=\"s\",le=\"+Inf\"} 3\n\
             x_seconds_sum{store=\"s\"} 0.000011\n\
             x_seconds_count{store=\"s\"} 3\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

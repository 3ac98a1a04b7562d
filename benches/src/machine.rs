//! What the numbers were measured on: the report names the machine and the
//! conditions (load average, profile, filesystem) so a reader can judge them.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The machine and build a run happened on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name from /proc/cpuinfo.
    pub cpu: String,
    /// Logical CPUs this process may use.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// The compiler that built the benchmark.
    pub rustc: String,
    /// Whether the benchmark was built with optimisations.
    pub optimized: bool,
    /// Filesystem type of the directory holding the stores.
    pub filesystem: String,
    /// The CPU frequency governor, or why it is not known (virtual machines
    /// often do not expose one).
    pub governor: String,
    /// Transparent huge pages for anonymous memory (the bracketed choice of
    /// `/sys/kernel/mm/transparent_hugepage/enabled`).
    pub transparent_hugepages: String,
    /// Cache sizes, as the kernel lists them (`L1d 48K, L2 2048K, ...`).
    pub caches: String,
    /// Running under a hypervisor (the CPU flags say so).
    pub virtualised: bool,
}

impl Machine {
    /// Looks at this machine; `data_dir` is where the stores will live.
    pub fn detect(data_dir: &Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
            rustc: env!("MAPH_BENCH_RUSTC").to_string(),
            optimized: !cfg!(debug_assertions),
            filesystem: filesystem_of(data_dir).unwrap_or_else(|| "unknown".into()),
            governor: read_trimmed("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
                .unwrap_or_else(|| "not exposed (no cpufreq: the host sets the frequency)".into()),
            transparent_hugepages: read_trimmed("/sys/kernel/mm/transparent_hugepage/enabled")
                .and_then(|s| s.split('[').nth(1).and_then(|r| r.split(']').next()).map(String::from))
                .unwrap_or_else(|| "unknown".into()),
            caches: caches(),
            virtualised: cpuinfo
                .lines()
                .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor")),
        }
    }

    /// A machine nobody looked at (for tests and for results that lack one).
    pub fn unknown() -> Machine {
        Machine {
            cpu: "unknown CPU".into(),
            cores: 1,
            kernel: "unknown".into(),
            rustc: "unknown".into(),
            optimized: true,
            filesystem: "unknown".into(),
            governor: "unknown".into(),
            transparent_hugepages: "unknown".into(),
            caches: "unknown".into(),
            virtualised: false,
        }
    }
}

/// The caches of CPU 0, from sysfs: `L1d 48K, L1i 32K, L2 2048K, L3 ...`.
fn caches() -> String {
    let mut parts = Vec::new();
    for index in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{index}");
        let (Some(level), Some(kind), Some(size)) = (
            read_trimmed(&format!("{dir}/level")),
            read_trimmed(&format!("{dir}/type")),
            read_trimmed(&format!("{dir}/size")),
        ) else {
            continue;
        };
        let suffix = match kind.as_str() {
            "Data" => "d",
            "Instruction" => "i",
            _ => "",
        };
        parts.push(format!("L{level}{suffix} {size}"));
    }
    if parts.is_empty() {
        "unknown".into()
    } else {
        parts.join(", ")
    }
}

/// The 1-, 5- and 15-minute load averages: how busy the machine was.
pub fn load_average() -> Option<[f64; 3]> {
    let text = read_trimmed("/proc/loadavg")?;
    let mut it = text.split_whitespace().map(|w| w.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// CPU time used so far: by the whole machine (all processes) and by this
/// process with its waited-for children (the workers, limits, redis-server).
#[derive(Clone, Copy, Debug)]
pub struct CpuSnapshot {
    machine_busy_s: f64,
    ours_s: f64,
}

impl CpuSnapshot {
    /// Reads /proc/stat and this process's resource usage; `None` if unreadable.
    pub fn take() -> Option<CpuSnapshot> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> =
            stat.lines().next()?.strip_prefix("cpu ")?.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
        let busy: u64 = fields.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum();
        // SAFETY: sysconf reads a constant; no memory is passed.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if ticks <= 0 {
            return None;
        }
        Some(CpuSnapshot {
            machine_busy_s: busy as f64 / ticks as f64,
            ours_s: own_cpu_seconds(libc::RUSAGE_SELF) + own_cpu_seconds(libc::RUSAGE_CHILDREN),
        })
    }

    /// The share of the machine's CPU capacity (`cores` × the wall time between
    /// the snapshots) that other processes used between `self` and `later`.
    pub fn others_share(&self, later: &CpuSnapshot, wall_s: f64, cores: usize) -> f64 {
        let machine = later.machine_busy_s - self.machine_busy_s;
        let ours = later.ours_s - self.ours_s;
        ((machine - ours) / (wall_s * cores as f64).max(1e-9)).clamp(0.0, 1.0)
    }
}

fn own_cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage fills the zeroed, owned struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(who, &mut usage) != 0 {
            return 0.0;
        }
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// The type of the filesystem holding `path` (longest matching mount point).
fn filesystem_of(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_dev, point, kind) = (f.next()?, f.next()?, f.next()?);
            Some((point.to_string(), kind.to_string()))
        })
        .filter(|(point, _)| path.starts_with(point))
        .max_by_key(|(point, _)| point.len())
        .map(|(_, kind)| kind)
}

/// Now, in UTC, as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let (y, m, d, hh, mm, _) = utc_fields();
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC")
}

/// Now, in UTC, for a file name: `YYYY-MM-DD-HHMMSS`.
pub fn utc_file_stamp() -> String {
    let (y, m, d, hh, mm, ss) = utc_fields();
    format!("{y:04}-{m:02}-{d:02}-{hh:02}{mm:02}{ss:02}")
}

fn utc_fields() -> (i64, u32, u32, u64, u64, u64) {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }

    #[test]
    fn cpu_shares_stay_in_range() {
        let a = CpuSnapshot::take().expect("/proc/stat is readable on Linux");
        let b = CpuSnapshot::take().unwrap();
        let share = a.others_share(&b, 0.001, 2);
        assert!((0.0..=1.0).contains(&share), "{share}");
    }

    #[test]
    fn this_machine_is_described() {
        let m = Machine::detect(Path::new("/"));
        assert!(m.cores >= 1);
        assert!(m.rustc.starts_with("rustc "), "{}", m.rustc);
        assert_ne!(m.filesystem, "unknown");
    }
}

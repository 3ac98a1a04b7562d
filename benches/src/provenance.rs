//! Where a run's numbers come from: the code (git commit), the machine, its
//! load before and after, the Redis server and its measured round trip, and
//! what the clock costs. A figure without these cannot be compared.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::histogram::Histogram;
use crate::machine::Machine;
use crate::timer::{monotonic_ns, TimerCost};

/// Everything about the circumstances of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Provenance {
    /// When the run started (UTC).
    pub date: String,
    /// How it was started.
    pub command: String,
    /// The harness's version.
    pub harness: String,
    /// The git commit of the measured code, if known.
    pub git_commit: Option<String>,
    /// Whether tracked files differed from that commit.
    pub git_dirty: Option<bool>,
    /// The machine.
    pub machine: Machine,
    /// 1-, 5- and 15-minute load averages before the run.
    pub load_before: Option<[f64; 3]>,
    /// The same after.
    pub load_after: Option<[f64; 3]>,
    /// The share of the machine's CPU other processes used during the run.
    pub others_cpu_share: Option<f64>,
    /// The Redis server of the Redis rows.
    pub redis: RedisInfo,
    /// What reading the clock costs (measured by the run's own process).
    pub timer: Option<TimerCost>,
}

impl Provenance {
    /// Provenance with nothing known but the command (for tests).
    pub fn unknown(command: &str) -> Provenance {
        Provenance {
            date: "unknown".into(),
            command: command.into(),
            harness: env!("CARGO_PKG_VERSION").into(),
            git_commit: None,
            git_dirty: None,
            machine: Machine::unknown(),
            load_before: None,
            load_after: None,
            others_cpu_share: None,
            redis: RedisInfo::default(),
            timer: None,
        }
    }
}

/// The Redis server and its round trip, measured at the start and the end of the run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RedisInfo {
    /// Where the server came from.
    pub source: String,
    /// `redis-server --version`, for a private server.
    pub version: Option<String>,
    /// PING round trips at the start of the run (ns).
    pub ping_before: Option<Histogram>,
    /// PING round trips at the end of the run (ns).
    pub ping_after: Option<Histogram>,
}

impl RedisInfo {
    /// The median PING round trip over both measurements (ns).
    pub fn round_trip_ns(&self) -> Option<f64> {
        let mut all = Histogram::new();
        for h in [&self.ping_before, &self.ping_after].into_iter().flatten() {
            all.merge(h);
        }
        all.quantile(0.5)
    }
}

/// Times `count` PING round trips to `url`, one at a time, through the same
/// client library the Redis coordinator uses.
pub fn ping(url: &str, count: usize) -> anyhow::Result<Histogram> {
    let client = redis::Client::open(url)?;
    let mut connection = client.get_connection()?;
    for _ in 0..count.min(100) {
        let _: String = redis::cmd("PING").query(&mut connection)?;
    }
    let mut h = Histogram::new();
    for _ in 0..count {
        let t0 = monotonic_ns();
        let pong: String = redis::cmd("PING").query(&mut connection)?;
        h.record_ns(monotonic_ns() - t0);
        anyhow::ensure!(pong == "PONG", "PING answered {pong:?}");
    }
    Ok(h)
}

/// The server's `redis_version`, from `INFO server`.
pub fn server_version(url: &str) -> anyhow::Result<String> {
    let mut connection = redis::Client::open(url)?.get_connection()?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut connection)?;
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(|v| format!("v{}", v.trim()))
        .ok_or_else(|| anyhow::anyhow!("INFO server has no redis_version"))
}

/// The commit checked out in `repo`, and whether tracked files differ from it.
pub fn git(repo: &Path) -> (Option<String>, Option<bool>) {
    let run = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = run(&["rev-parse", "HEAD"]);
    let dirty = commit.as_ref().and(run(&["status", "--porcelain", "--untracked-files=no"])).map(|s| !s.is_empty());
    (commit, dirty)
}

/// The repository this harness was built from.
pub fn repository() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_round_trip_merges_both_measurements() {
        let mut a = Histogram::new();
        a.record_ns(40_000);
        let mut b = Histogram::new();
        b.record_ns(40_000);
        b.record_ns(40_000);
        let info = RedisInfo { ping_before: Some(a), ping_after: Some(b), ..RedisInfo::default() };
        let rtt = info.round_trip_ns().unwrap();
        assert!((rtt - 40_000.0).abs() < 700.0, "{rtt}");
        assert_eq!(RedisInfo::default().round_trip_ns(), None);
    }

    #[test]
    fn git_describes_this_repository_or_says_it_cannot() {
        let (commit, dirty) = git(repository());
        if let Some(c) = commit {
            assert_eq!(c.len(), 40);
            assert!(dirty.is_some());
        }
        assert_eq!(git(Path::new("/")).0, None);
    }
}

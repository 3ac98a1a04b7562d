//! Readers under writers: maph's central claim is that readers never wait for
//! writers. Reader processes get random keys as fast as they can while 0, 1,
//! 2 and 4 writer processes set random keys of the same store under each
//! strategy; the readers' latency percentiles and throughput are set beside
//! LMDB's readers (snapshot transactions) and beside the reference design's
//! readers, which take `flock(LOCK_SH)` around every read.

use std::time::Duration;

use crate::contention::Setup;
use crate::group::{self, GroupRun};
use crate::keys::{derive_seed, Popularity};
use crate::plan::ReadersSettings;
use crate::results::{Outcome, ReadersResult};
use crate::rows::{Role, Row, RowEnv, SharedLock};
use crate::worker::{Arrival, Task, WorkerRole, WorkerSpec};
use crate::workload::Keyspace;

/// Rows whose readers are also measured taking the strategy's shared lock:
/// the reference design's readers (`flock(LOCK_SH)` around each read).
pub const LOCKED_READER_ROWS: &[&str] = &["flock"];

/// The reader configurations of `rows`: every row with lock-free readers, and
/// the rows of [`LOCKED_READER_ROWS`] again with locked readers.
pub fn configurations(rows: &[Row]) -> Vec<(Row, bool)> {
    let mut out: Vec<(Row, bool)> = rows.iter().map(|r| (*r, false)).collect();
    for row in rows.iter().filter(|r| LOCKED_READER_ROWS.contains(&r.id) && r.shared_lock == SharedLock::Shared) {
        let at = out.iter().position(|(r, _)| r.id == row.id).map_or(out.len(), |i| i + 1);
        out.insert(at, (*row, true));
    }
    out
}

/// Runs every configuration at every writer count.
pub fn run_all(
    setup: &Setup<'_>,
    rows: &[Row],
    settings: &ReadersSettings,
    progress: &mut dyn FnMut(&str),
) -> Vec<ReadersResult> {
    let mut results = Vec::new();
    for (row, locked) in configurations(rows) {
        for &writers in &settings.writers {
            let outcome = match row.refuses(writers, settings.readers) {
                Some(why) => Outcome::NotApplicable(why.to_string()),
                None => {
                    let mut runs = Vec::new();
                    let mut failure = None;
                    for repeat in 0..settings.repeats.max(1) {
                        match once(setup, &row, locked, writers, settings, repeat) {
                            Ok(run) => {
                                progress(&format!(
                                    "readers under writers, {}{}: {writers} writer{}, run {}: reader p99 {:.0} ns, {:.0} reads/s",
                                    row.id,
                                    if locked { " (locked readers)" } else { "" },
                                    if writers == 1 { "" } else { "s" },
                                    repeat + 1,
                                    run.read_latency.quantile(0.99).unwrap_or(0.0),
                                    run.read_throughput()
                                ));
                                runs.push(run);
                            }
                            Err(e) => {
                                progress(&format!(
                                    "readers under writers, {}: {writers} writers failed: {e:#}",
                                    row.id
                                ));
                                failure = Some(format!("{e:#}"));
                                break;
                            }
                        }
                    }
                    failure.map_or(Outcome::Measured(runs), Outcome::Failed)
                }
            };
            results.push(ReadersResult { row: row.id.into(), locked, writers, readers: settings.readers, outcome });
        }
    }
    results
}

/// One run: a fresh, filled store; `writers` writer and the readers, started together.
fn once(
    setup: &Setup<'_>,
    row: &Row,
    locked: bool,
    writers: usize,
    settings: &ReadersSettings,
    repeat: usize,
) -> anyhow::Result<GroupRun> {
    let dir =
        setup.base.join(format!("readers-{}{}-w{writers}-r{repeat}", row.id, if locked { "-locked" } else { "" }));
    let env = RowEnv { dir: dir.clone(), redis_url: setup.redis_url.map(String::from), dataset: setup.dataset };
    fill(row, &env, setup.seed, setup.settle_pages)?;
    let worker = |role, index: usize| WorkerSpec {
        row: row.id.into(),
        dir: dir.clone(),
        redis_url: setup.redis_url.map(String::from),
        dataset: setup.dataset,
        role,
        task: Task::Mix { read_share: 0.0, popularity: Popularity::Uniform },
        arrival: Arrival::Closed,
        // The same sequences for every row.
        seed: derive_seed(setup.seed, &[0x5eed, writers as u64, repeat as u64, index as u64]),
        sample_every: setup.sample_every,
    };
    let mut specs: Vec<WorkerSpec> =
        (0..writers).map(|w| worker(WorkerRole::Writer { index: w, writers }, w)).collect();
    specs.extend((0..settings.readers).map(|r| worker(WorkerRole::Reader { locked }, 1000 + r)));
    let run = group::run(setup.exe, &specs, Duration::from_millis(settings.duration_ms));
    let _ = std::fs::remove_dir_all(&dir);
    run
}

/// Creates the row's store in `env` and writes every key of the dataset once.
pub fn fill(row: &Row, env: &RowEnv, seed: u64, settle_pages: bool) -> anyhow::Result<()> {
    row.create_in(env, settle_pages)?;
    let mut subject = (row.open)(env, Role::Alone)?;
    Keyspace::new(env.dataset.keys, env.dataset.value_size, seed).populate(subject.as_mut())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows;

    #[test]
    fn flock_is_measured_twice_and_its_locked_readers_follow_it() {
        let configs = configurations(&rows::all());
        let ids: Vec<(&str, bool)> = configs.iter().map(|(r, l)| (r.id, *l)).collect();
        let at = ids.iter().position(|&c| c == ("flock", false)).unwrap();
        assert_eq!(ids[at + 1], ("flock", true));
        assert_eq!(ids.iter().filter(|(_, l)| *l).count(), 1);
        assert!(configurations(&[rows::find("single-writer").unwrap()]).len() == 1);
    }
}

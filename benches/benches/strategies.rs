//! `cargo bench -p maph-bench`: the single-process strategy table under
//! criterion's own command line and output, every row through the same
//! workloads as the report, in one process. (The report measures each row in
//! several fresh processes, with contention runs, readers under writers and
//! the floor: `scripts/bench`.) Filter rows like any criterion bench:
//! `cargo bench -p maph-bench -- flock/`.

use std::time::Duration;

use criterion::Criterion;
use maph_bench::redis_server::RedisSource;
use maph_bench::rows::{self, Role, RowEnv, SharedLock};
use maph_bench::workload::{bench_column, Column, Keyspace};
use maph_bench::{Dataset, Plan, Preset};

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let scratch = tempfile::Builder::new().prefix("maph-bench-").tempdir().expect("a temporary directory");
    let all = rows::all();
    let redis = if all.iter().any(|r| r.needs_redis) {
        RedisSource::find_or_start(scratch.path())
    } else {
        RedisSource::Unavailable("no Redis row is built".into())
    };
    let problem = match &redis {
        RedisSource::Unavailable(reason) => reason.clone(),
        _ => String::new(),
    };
    let dataset = Dataset::DEFAULT;
    let keyspace = Keyspace::new(dataset.keys, dataset.value_size, Plan::new(Preset::Default).seed);
    for row in all {
        if let Some(reason) = row.unavailable(redis.url(), &problem) {
            eprintln!("{}: skipped: {reason}", row.id);
            continue;
        }
        let env = RowEnv { dir: scratch.path().join(row.id), redis_url: redis.url().map(String::from), dataset };
        let mut subject = row
            .create_in(&env, true)
            .and_then(|()| (row.open)(&env, Role::Alone))
            .unwrap_or_else(|e| panic!("{}: could not set up: {e:#}", row.id));
        keyspace.populate(subject.as_mut()).unwrap_or_else(|e| panic!("{}: could not populate: {e:#}", row.id));
        for column in Column::ALL {
            if column == Column::LockedRead && matches!(row.shared_lock, SharedLock::Free(_)) {
                continue;
            }
            keyspace.probe(subject.as_mut(), column).unwrap_or_else(|e| panic!("{} / {}: {e:#}", row.id, column.id()));
            bench_column(&mut criterion, row.id, subject.as_mut(), &keyspace, column);
        }
    }
    criterion.final_summary();
}

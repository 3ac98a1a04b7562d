//! The figures the reference design text publishes
//! (`shared/reference/multi-writer-strategies.md`), quoted so the report can
//! set ours beside them. They come without a machine, a method or a spread.

use crate::workload::Column;

/// A row of the reference's "Locking Overhead" table: no lock versus flock.
#[derive(Clone, Copy, Debug)]
pub struct OverheadRow {
    /// The operation, as the reference names it.
    pub operation: &'static str,
    /// Our column measuring the same operation.
    pub column: Column,
    /// What that column does, in a few words.
    pub ours: &'static str,
    /// The reference's "No Lock" figure, in ns.
    pub no_lock_ns: f64,
    /// The reference's "flock" figure, in ns.
    pub flock_ns: f64,
}

/// The reference's "Performance Impact / Locking Overhead" table.
pub const OVERHEAD: [OverheadRow; 4] = [
    OverheadRow {
        operation: "Single write",
        column: Column::Write,
        ours: "one set, one lock",
        no_lock_ns: 350.0,
        flock_ns: 2_500.0,
    },
    OverheadRow {
        operation: "Single read",
        column: Column::LockedRead,
        ours: "no lock / one read under LOCK_SH",
        no_lock_ns: 300.0,
        flock_ns: 2_000.0,
    },
    OverheadRow {
        operation: "Batch writes (100)",
        column: Column::Write100,
        ours: "100 sets in one commit, one lock",
        no_lock_ns: 35_000.0,
        flock_ns: 250_000.0,
    },
    OverheadRow {
        operation: "Batch reads (100)",
        column: Column::Read100,
        ours: "100 lock-free reads (both rows)",
        no_lock_ns: 30_000.0,
        flock_ns: 200_000.0,
    },
];

/// A row of the reference's "Comparison of Strategies" table.
#[derive(Clone, Copy, Debug)]
pub struct StrategyRow {
    /// The strategy, as the reference names it.
    pub strategy: &'static str,
    /// Our rows that implement it.
    pub ours: &'static [&'static str],
    /// The reference's throughput claim.
    pub throughput: &'static str,
    /// The reference's latency claim.
    pub latency: &'static str,
    /// The reference's safety verdict.
    pub safe: bool,
}

/// The reference's "Comparison of Strategies" table.
pub const STRATEGIES: [StrategyRow; 5] = [
    StrategyRow {
        strategy: "Single writer",
        ours: &["single-writer"],
        throughput: "17M ops/sec",
        latency: "300ns",
        safe: true,
    },
    StrategyRow {
        strategy: "File locking",
        ours: &["flock", "fcntl-whole", "fcntl-range"],
        throughput: "400K ops/sec",
        latency: "2.5μs",
        safe: true,
    },
    StrategyRow {
        strategy: "App coordination",
        ours: &["redis-op", "redis-lease"],
        throughput: "Varies",
        latency: "Varies",
        safe: true,
    },
    StrategyRow {
        strategy: "No coordination",
        ours: &["uncoordinated"],
        throughput: "17M ops/sec",
        latency: "300ns",
        safe: false,
    },
    StrategyRow { strategy: "Partitioning", ours: &["shard"], throughput: "17M ops/sec", latency: "300ns", safe: true },
];

//! Child processes that cannot outlive the benchmark (maph-testkit's helper).

pub use maph_testkit::die_with_parent;

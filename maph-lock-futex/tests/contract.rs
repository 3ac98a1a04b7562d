//! The coordinator contract (maph-testkit), run across processes for the
//! in-file lock in global and striped mode: reference Test 3, a panic releases
//! the lock, a SIGKILLed holder blocks no one (robust takeover), deadlines, and
//! shared guards (granted as exclusive here) giving a consistent view.

use maph_core::{Config, Result, Store};
use maph_lock_futex::FutexCoordinator;
use maph_testkit::Contract;

const MODES: [(&str, u32); 2] = [("global", 1), ("striped", 8)];

fn contract(test: &str, (label, stripes): (&str, u32)) -> Contract<impl Fn(&Store) -> Result<FutexCoordinator>> {
    let config = Config::new(1024).strategy(FutexCoordinator::STRATEGY);
    // The coordinator keeps its own handle of the store (it owns an Arc<Store>).
    Contract::new(test, config, move |store: &Store| FutexCoordinator::striped(store.reopen()?, stripes)).label(label)
}

#[test]
fn reference_test_3_two_processes_write_their_own_keys() {
    for mode in MODES {
        contract("reference_test_3_two_processes_write_their_own_keys", mode).two_processes_write_their_own_keys();
    }
}

#[test]
fn a_panic_inside_a_write_releases_the_lock() {
    for mode in MODES {
        contract("a_panic_inside_a_write_releases_the_lock", mode).panic_inside_a_write_releases_the_lock();
    }
}

#[test]
fn a_holder_killed_by_sigkill_blocks_no_one() {
    for mode in MODES {
        contract("a_holder_killed_by_sigkill_blocks_no_one", mode).holder_killed_by_sigkill_blocks_no_one();
    }
}

#[test]
fn a_deadline_is_honoured_while_another_process_holds_the_lock() {
    for mode in MODES {
        contract("a_deadline_is_honoured_while_another_process_holds_the_lock", mode)
            .deadline_is_honoured_while_another_process_holds_the_lock();
    }
}

#[test]
fn shared_guards_give_reader_threads_a_consistent_view_of_several_keys() {
    for mode in MODES {
        contract("shared_guards_give_reader_threads_a_consistent_view_of_several_keys", mode)
            .shared_guards_give_a_consistent_view_of_several_keys(5_000);
    }
}

/// A read-only handle, a store of another strategy and another store's
/// coordinator are refused.
#[test]
fn writers_that_may_not_write_are_refused() {
    for mode in MODES {
        contract("writers_that_may_not_write_are_refused", mode).writers_that_may_not_write_are_refused();
    }
}

/// A wait past the slow-wait threshold is reported to the hook, once.
#[test]
fn a_slow_wait_is_reported_to_the_hook() {
    for mode in MODES {
        contract("a_slow_wait_is_reported_to_the_hook", mode).slow_waits_are_reported();
    }
}

/// Exclusive and shared access exclude each other, between threads and
/// processes (the contract scenario every coordinator runs; issue 13, item 6).
#[test]
fn exclusive_and_shared_access_exclude_each_other() {
    for mode in MODES {
        contract("exclusive_and_shared_access_exclude_each_other", mode).exclusive_and_shared_exclude_each_other();
    }
}

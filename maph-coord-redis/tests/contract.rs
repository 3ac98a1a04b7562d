//! The coordinator contract (maph-testkit), run across processes for the Redis
//! token: reference Test 3, a panic releases the token, a SIGKILLed holder's
//! token ends with its ttl (kept short here), deadlines, and shared guards
//! (which take the token too) giving a consistent view.

mod support;

use std::time::Duration;

use maph_coord_redis::{RedisConfig, RedisCoordinator};
use maph_core::{Config, Result, Store};
use maph_testkit::{child, Contract};
use support::RedisServer;

/// How each process makes its coordinator (the same closure in parent and children).
type Make = Box<dyn Fn(&Store) -> Result<RedisCoordinator>>;

const URL_VAR: &str = "MAPH_CONTRACT_REDIS_URL";
const TOKEN_VAR: &str = "MAPH_CONTRACT_TOKEN";

/// Runs `scenario` against a Redis server: the parent starts one (or uses
/// `MAPH_REDIS_URL`) and hands its address and a token name unique to this test
/// to its children through their environment.
fn with_contract(test: &str, scenario: impl Fn(&Contract<Make>)) {
    let (server, url, name) = if child(test).is_some() {
        let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("the parent sets {k}"));
        (None, var(URL_VAR), var(TOKEN_VAR))
    } else {
        let server = RedisServer::start();
        let url = server.url().to_string();
        (Some(server), url, support::unique_name(test))
    };
    let make: Make = {
        let (url, name) = (url.clone(), name.clone());
        Box::new(move |store: &Store| {
            RedisCoordinator::new(
                store,
                RedisConfig::new(url.clone())
                    .name(name.clone())
                    .ttl(Duration::from_millis(500))
                    .renew_every(Duration::from_millis(150))
                    .clock_margin(Duration::from_millis(50)),
            )
        })
    };
    let contract = Contract::new(test, Config::new(1024).strategy(RedisCoordinator::STRATEGY), make)
        .env(URL_VAR, &url)
        .env(TOKEN_VAR, &name);
    scenario(&contract);
    drop(server);
}

#[test]
fn reference_test_3_two_processes_write_their_own_keys() {
    with_contract("reference_test_3_two_processes_write_their_own_keys", |c| c.two_processes_write_their_own_keys());
}

#[test]
fn a_panic_inside_a_write_releases_the_token() {
    with_contract("a_panic_inside_a_write_releases_the_token", |c| c.panic_inside_a_write_releases_the_lock());
}

#[test]
fn a_holder_killed_by_sigkill_blocks_no_one_past_the_ttl() {
    with_contract("a_holder_killed_by_sigkill_blocks_no_one_past_the_ttl", |c| {
        c.holder_killed_by_sigkill_blocks_no_one()
    });
}

#[test]
fn a_deadline_is_honoured_while_another_process_holds_the_token() {
    with_contract("a_deadline_is_honoured_while_another_process_holds_the_token", |c| {
        c.deadline_is_honoured_while_another_process_holds_the_lock()
    });
}

#[test]
fn shared_guards_give_reader_threads_a_consistent_view_of_several_keys() {
    with_contract("shared_guards_give_reader_threads_a_consistent_view_of_several_keys", |c| {
        c.shared_guards_give_a_consistent_view_of_several_keys(300)
    });
}

/// A read-only handle, a store of another strategy and another store's
/// coordinator are refused.
#[test]
fn writers_that_may_not_write_are_refused() {
    with_contract("writers_that_may_not_write_are_refused", |c| c.writers_that_may_not_write_are_refused());
}

/// Exclusive and shared access exclude each other, between threads and
/// processes (the contract scenario every coordinator runs; issue 13, item 6).
#[test]
fn exclusive_and_shared_access_exclude_each_other() {
    with_contract("exclusive_and_shared_access_exclude_each_other", |c| c.exclusive_and_shared_exclude_each_other());
}

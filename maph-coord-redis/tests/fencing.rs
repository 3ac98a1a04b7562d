//! A holder paused past its lease cannot overwrite the writer that took over.
//!
//! Process A takes the token (lease mode, renewed in the background) and is
//! stopped with SIGSTOP. Its token expires; process B takes the token (with a
//! higher fence) and writes. A is continued with SIGCONT and tries to write:
//!
//! 1. through its coordinator as it is: refused with `LeaseLost`, by A's own
//!    lease clock (A was away longer than the ttl);
//! 2. through the same guard, with that local check skipped: refused with
//!    `StaleFence`, by the *store*. This is the case fencing exists for: a
//!    holder paused *after* its own checks passed. A pause can fall between
//!    the check and the write at any time, but not on cue in a test, so A's
//!    wrapper coordinator ([`BelievesItsLease`]) reproduces its effect: a
//!    validate that says "still valid" about a lease that is not.
//!
//! Afterwards B's data is intact, A's release did not delete B's token, and the
//! store's highest fence is B's.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use maph_coord_redis::{RedisConfig, RedisCoordinator};
use maph_core::{
    Access, ContentionCounters, Error, LockScope, Mode, Result, Store, StoreId, Strategy, Ticket, Wait,
    WriteCoordinator,
};
use maph_testkit::{child, spawn, ChildContext};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use redis::TypedCommands;
use support::RedisServer;

const TEST: &str = "a_holder_paused_past_its_lease_is_fenced_off";
/// A's lease: short, so the test does not wait long for it to expire, yet long
/// enough that A, starved by a busy machine, still writes once before it stops.
const A_TTL: Duration = Duration::from_secs(3);
/// B's lease: long, so B keeps its token however slow the machine is while
/// the parent checks A's release.
const B_TTL: Duration = Duration::from_secs(20);
/// How long anyone waits for the token (generous: the machine may be busy).
const PATIENCE: Duration = Duration::from_secs(60);

/// A coordinator whose `validate` can be told to trust its lease blindly: a
/// model of a holder that checked its lease, then was paused before writing.
struct BelievesItsLease {
    inner: RedisCoordinator,
    blind: AtomicBool,
}

impl WriteCoordinator for BelievesItsLease {
    fn strategy(&self) -> Strategy {
        self.inner.strategy()
    }
    fn acquire(&self, access: Access, scope: LockScope, wait: Wait) -> Result<Option<Ticket>> {
        self.inner.acquire(access, scope, wait)
    }
    unsafe fn release(&self, ticket: Ticket) {
        // SAFETY: forwarded unchanged; tickets only ever come from `inner`.
        unsafe { self.inner.release(ticket) }
    }
    fn validate(&self, ticket: &Ticket) -> Result<()> {
        if self.blind.load(Ordering::SeqCst) {
            Ok(())
        } else {
            self.inner.validate(ticket)
        }
    }
    fn counters(&self) -> &ContentionCounters {
        self.inner.counters()
    }
    fn bound_store(&self) -> Option<StoreId> {
        self.inner.bound_store()
    }
}

fn child_a(ctx: ChildContext) -> ! {
    let (url, name, path) = (&ctx.args()[0], &ctx.args()[1], &ctx.args()[2]);
    let store = Store::open(path, Mode::ReadWrite).unwrap();
    let config = RedisConfig::new(url).name(name).ttl(A_TTL);
    let token =
        BelievesItsLease { inner: RedisCoordinator::new(&store, config).unwrap(), blind: AtomicBool::new(false) };
    let guard = token.lock_exclusive_for(LockScope::Whole, PATIENCE).unwrap();
    store.write_with(&guard, |tx| tx.set(b"owner", b"A")).unwrap();
    ctx.report("locked", guard.fence().unwrap());
    // The parent stops us here, lets B take over, continues us, then says go.
    ctx.wait_for_start();
    let own_check = store.write_with(&guard, |tx| tx.set(b"owner", b"A-late"));
    ctx.report("own_check", support::outcome(&own_check));
    token.blind.store(true, Ordering::SeqCst);
    let fenced = store.write_with(&guard, |tx| tx.set(b"owner", b"A-fenced"));
    match fenced {
        Err(Error::StaleFence { presented, highest }) => ctx.report("fenced", format!("{presented} {highest}")),
        other => ctx.report("fenced", support::outcome(&other)),
    }
    drop(guard); // compare-and-delete: must not delete B's token
    ctx.exit()
}

fn child_b(ctx: ChildContext) -> ! {
    let (url, name, path) = (&ctx.args()[0], &ctx.args()[1], &ctx.args()[2]);
    let store = Store::open(path, Mode::ReadWrite).unwrap();
    let token = RedisCoordinator::new(&store, RedisConfig::new(url).name(name).ttl(B_TTL)).unwrap();
    // Waits (with backoff) until A's token has expired in Redis.
    let guard = token.lock_exclusive_for(LockScope::Whole, PATIENCE).unwrap();
    store
        .write_with(&guard, |tx| {
            tx.set(b"owner", b"B")?;
            tx.set(b"b-only", b"1")
        })
        .unwrap();
    ctx.report("written", guard.fence().unwrap());
    // Hold the token until the parent has checked that A's release left it alone.
    ctx.wait_for_start();
    ctx.report("still_valid", support::outcome(&guard.validate()));
    drop(guard); // `exit` runs no destructors: release explicitly
    ctx.exit()
}

#[test]
fn a_holder_paused_past_its_lease_is_fenced_off() {
    if let Some(ctx) = child(TEST) {
        match ctx.role() {
            "a" => child_a(ctx),
            _ => child_b(ctx),
        }
    }
    let server = RedisServer::start();
    let dir = maph_testkit::temp_dir();
    let path = support::create_store(dir.path(), 128);
    let name = support::unique_name(TEST);
    let args = vec![server.url().to_string(), name.clone(), path.display().to_string()];

    let mut a = spawn(TEST, "a", &args);
    let fence_a: u64 = a.wait_for_report("locked").parse().unwrap();
    let a_pid = Pid::from_raw(a.pid() as i32);
    kill(a_pid, Signal::SIGSTOP).expect("stop A");

    let mut b = spawn(TEST, "b", &args);
    let fence_b: u64 = b.wait_for_report("written").parse().unwrap();
    assert!(fence_b > fence_a, "B's fence {fence_b} must be above A's {fence_a}");

    kill(a_pid, Signal::SIGCONT).expect("continue A");
    let a = a.finish_ok(); // closes A's stdin: its signal to try writing
    let a_own_check: String = a.report("own_check");
    assert!(a_own_check.starts_with("LeaseLost"), "A's own lease clock must refuse: {a_own_check}\n{}", a.describe());
    let a_fenced: String = a.report("fenced");
    assert_eq!(a_fenced, format!("{fence_a} {fence_b}"), "the store must refuse A's fence:\n{}", a.describe());

    // A's release compared the token's value and left B's token in place.
    let token_key = format!("maph:{{{name}}}:token");
    let holder = support::connection(&server).get(&token_key).unwrap().expect("B still holds the token");
    assert!(holder.ends_with(&format!("/{fence_b}")), "token {holder} should be B's (fence {fence_b})");

    let b = b.finish_ok();
    assert_eq!(b.report::<String>("still_valid"), "Ok", "{}", b.describe());

    let store = Store::open(&path, Mode::ReadOnly).unwrap();
    assert_eq!(support::text(&store, b"owner").as_deref(), Some("B"), "B's data must be intact");
    assert_eq!(support::text(&store, b"b-only").as_deref(), Some("1"));
    assert_eq!(store.highest_fence(), fence_b);
    let left: Option<String> = support::connection(&server).get(&token_key).unwrap();
    assert_eq!(left, None, "B released its token");
}

//! The renewal thread: keeps a held token alive, and marks the lease lost the
//! moment it cannot.
//!
//! It never needs to be woken by an acquisition (which would cost a futex wake
//! and a context switch per write in per-operation use): when idle it sleeps one
//! renewal interval at a time, and a lease taken meanwhile is at most that old
//! when it looks, so every lease is renewed by the time it is one interval old
//! (plus scheduling delay), well inside `ttl - margin`.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::MutexGuard;

use crate::clock;
use crate::coordinator::Shared;
use crate::lease::TOKEN_GONE;
use crate::link::Link;

/// Runs until the coordinator is dropped.
pub(crate) fn run(shared: Arc<Shared>, mut link: Link) {
    let config = &shared.config;
    let (ttl, margin, every) = (config.ttl, config.lease_margin(), config.renewal_interval());
    // After a failed renewal, retry sooner than a full interval: the lease is
    // running out. A tenth of the ttl gives several tries before it does.
    let retry = (ttl / 10).max(Duration::from_millis(5));
    let mut retry_at: Option<(u64, Duration)> = None;
    let mut state = shared.state.lock();
    loop {
        if state.shutdown {
            return;
        }
        let now = clock::now();
        let Some(lease) = state.current.as_ref().filter(|l| l.lost.is_none()) else {
            shared.wake.wait_for(&mut state, every);
            continue;
        };
        let mut due = lease.confirmed_at + every;
        if let Some((seq, at)) = retry_at {
            if seq == lease.seq {
                due = due.min(at);
            }
        }
        if now < due {
            shared.wake.wait_for(&mut state, due - now);
            continue;
        }
        let (seq, value) = (lease.seq, lease.value.clone());
        let sent = clock::now();
        // Redis is asked without holding the state lock, so writers' validity
        // checks never wait for a round trip.
        let outcome = MutexGuard::unlocked(&mut state, || link.renew(&shared.token_key, &value, shared.ttl_ms));
        let Some(lease) = state.lease_mut(seq) else {
            continue; // released (or replaced) while we asked: nothing to do
        };
        match outcome {
            Ok(true) => {
                lease.confirmed(sent);
                retry_at = None;
            }
            Ok(false) => lease.lost = Some(TOKEN_GONE.to_string()),
            Err(e) => {
                if clock::now().saturating_sub(lease.confirmed_at) >= ttl.saturating_sub(margin) {
                    lease.lost = Some(format!("it could not be renewed before it ran out: {e}"));
                } else {
                    retry_at = Some((seq, clock::now() + retry));
                }
            }
        }
    }
}

//! Owner ids: the value a holder puts in the token key, unique per acquisition.
//!
//! Release and renewal compare the key's value with the holder's own before
//! touching it, so an id must never be reused: not by another thread, another
//! coordinator of this process, another process, or a later process that got
//! the same pid. `<pid>.<salt>.<counter>` does that: the salt is drawn once per
//! process from the boot-time clock, the pid and an address, and the counter
//! never repeats within the process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// A fresh owner id.
pub(crate) fn next() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // Relaxed: only uniqueness matters, and fetch_add gives that at any ordering.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}.{:016x}.{n}", std::process::id(), salt())
}

fn salt() -> u64 {
    static SALT: OnceLock<u64> = OnceLock::new();
    *SALT.get_or_init(|| {
        let local = 0u8;
        let clock = crate::clock::now().as_nanos() as u64;
        let wall =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        splitmix64(clock ^ wall.rotate_left(32) ^ u64::from(std::process::id()) ^ (&local as *const u8 as u64))
    })
}

/// SplitMix64's finaliser: spreads every input bit over the output.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_do_not_repeat_and_carry_the_pid() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| next()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.starts_with(&format!("{}.", std::process::id()))));
        // The token value is `<owner>/<fence>`: an owner id must not contain '/'.
        assert!(ids.iter().all(|id| !id.contains('/')));
    }
}

//! The store's highest fence beside Redis's fence counter: checking that the
//! two agree, and repairing a store whose fence word is damaged.
//!
//! Every fence a holder presents was issued by the acquire script, so the
//! store's highest fence is never above the counter, unless Redis lost
//! increments (a restart without persistence, a replica promoted with a lower
//! counter) or the store's word was damaged. A loss is bounded by what Redis
//! issued and forgot; the next acquisition simply continues from the store's
//! fence. Damage is not bounded: one flipped high bit puts the word 2⁴⁰ or more
//! above anything issued, and at 2⁶³ − 1 and above no fence could ever pass it.
//! [`IMPLAUSIBLE_FENCE_GAP`] tells the two apart while Redis has a counter;
//! acquisitions refuse a store past it (rather than carry the damage into the
//! counter), and
//! [`RedisCoordinator::repair_fence`](crate::RedisCoordinator::repair_fence)
//! repairs it.

use maph_core::{Error, Result, Store};

use crate::link::Link;
use crate::{RedisConfig, STRATEGY};

/// How far above Redis's fence counter the store's highest fence may be before
/// it counts as damaged: 2⁴⁰ fences. Redis runs on the order of 10⁵ scripts a
/// second, so that is months of nothing but acquisitions, more than any
/// failover or restart forgets; a flipped bit 40 to 63 of the word (or garbage
/// in it) is that far above.
pub const IMPLAUSIBLE_FENCE_GAP: u64 = 1 << 40;

/// The highest fence Redis can issue: its counters are signed 64-bit integers.
pub const MAX_FENCE: u64 = i64::MAX as u64;

/// The store's highest fence and Redis's fence counter, read side by side by
/// [`check_fence`] or [`RedisCoordinator::check_fence`](crate::RedisCoordinator::check_fence).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceCheck {
    /// The highest fence the store has accepted (`Store::highest_fence`).
    pub store_highest: u64,
    /// The last fence Redis issued; `None` if its counter key does not exist
    /// (Redis lost everything, or never issued a fence for this token).
    pub counter: Option<u64>,
    /// The counter's key.
    pub counter_key: String,
}

/// What a [`FenceCheck`] means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceVerdict {
    /// The counter is at or above the store's highest fence: every new fence
    /// is above every fence the store accepted.
    InStep,
    /// The counter is behind by a plausible amount (Redis lost increments:
    /// a restart without persistence, a failover). Nothing to do: the next
    /// acquisition continues from the store's fence.
    CounterBehind {
        /// Store's highest fence minus the counter.
        by: u64,
    },
    /// The store's highest fence is more than [`IMPLAUSIBLE_FENCE_GAP`] above
    /// an existing counter, or at [`MAX_FENCE`] or above: its word is damaged.
    /// Acquisitions are refused until [`RedisCoordinator::repair_fence`](crate::RedisCoordinator::repair_fence).
    Implausible {
        /// Store's highest fence minus the counter.
        by: u64,
    },
}

impl FenceCheck {
    /// What the two numbers mean.
    pub fn verdict(&self) -> FenceVerdict {
        let by = self.store_highest.saturating_sub(self.counter.unwrap_or(0));
        if self.store_highest >= MAX_FENCE || (self.counter.is_some() && by > IMPLAUSIBLE_FENCE_GAP) {
            FenceVerdict::Implausible { by }
        } else if by > 0 {
            FenceVerdict::CounterBehind { by }
        } else {
            FenceVerdict::InStep
        }
    }
}

impl std::fmt::Display for FenceCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (store, key) = (self.store_highest, &self.counter_key);
        let counter = self.counter.map_or_else(|| "missing".to_string(), |c| c.to_string());
        match self.verdict() {
            FenceVerdict::InStep => {
                write!(f, "fences in step: the store's highest fence is {store}, the counter {key} is {counter}")
            }
            FenceVerdict::CounterBehind { by } => write!(
                f,
                "{key} ({counter}) is {by} behind the store's highest fence ({store}): Redis lost increments \
                 (a restart without persistence, a failover); the next acquisition continues from the store's fence"
            ),
            FenceVerdict::Implausible { by } => write!(
                f,
                "the store's highest fence ({store}) is {by} above {key} ({counter}), more than Redis can have \
                 issued: the store's fence word is damaged, and acquisitions are refused until it is repaired \
                 (RedisCoordinator::repair_fence)"
            ),
        }
    }
}

/// Reads the store's highest fence and the Redis counter of its token (named
/// as `config` names it), without taking the token: a read-only check, for a
/// store opened read-only too.
pub fn check_fence(store: &Store, config: &RedisConfig) -> Result<FenceCheck> {
    config.validate()?;
    let counter_key = config.fence_key_for(Some(store.path()));
    let mut link = Link::new(config)?;
    read(&mut link, store, counter_key)
}

/// One reading; the store's fence is read after the counter, so an
/// acquisition in between can only make the counter look behind, never make
/// damage look in step.
pub(crate) fn read(link: &mut Link, store: &Store, counter_key: String) -> Result<FenceCheck> {
    let counter = match link.fence_counter(&counter_key)? {
        None => None,
        Some(text) => Some(parse_counter(&counter_key, &text)?),
    };
    Ok(FenceCheck { store_highest: store.highest_fence(), counter, counter_key })
}

/// A counter value, exactly, or an error that says what to do about it.
pub(crate) fn parse_counter(key: &str, text: &str) -> Result<u64> {
    text.parse::<u64>().ok().filter(|&n| n <= MAX_FENCE).ok_or_else(|| bad_counter(key, text))
}

pub(crate) fn bad_counter(key: &str, text: &str) -> Error {
    Error::Coordination {
        strategy: STRATEGY,
        detail: format!(
            "the Redis fence counter {key} holds {text:?}, not a fence (a decimal integer below 2^63): something \
             else wrote it. Delete the key; the next acquisition continues from the store's highest fence"
        ),
    }
}

/// The lowest counter with which `floor` is plausible.
pub(crate) fn plausible_from(floor: u64) -> u64 {
    floor.saturating_sub(IMPLAUSIBLE_FENCE_GAP)
}

/// The refusal of an acquisition on a store whose fence word is damaged.
pub(crate) fn implausible(check: &FenceCheck) -> Error {
    Error::Coordination { strategy: STRATEGY, detail: format!("not taking the write token: {check}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(store_highest: u64, counter: u64) -> FenceVerdict {
        FenceCheck { store_highest, counter: Some(counter), counter_key: "k".into() }.verdict()
    }

    fn check_missing(store_highest: u64) -> FenceVerdict {
        FenceCheck { store_highest, counter: None, counter_key: "k".into() }.verdict()
    }

    #[test]
    fn verdicts_follow_the_gap() {
        assert_eq!(check(5, 5), FenceVerdict::InStep);
        assert_eq!(check(5, 9), FenceVerdict::InStep);
        assert_eq!(check(9, 5), FenceVerdict::CounterBehind { by: 4 });
        assert_eq!(check(IMPLAUSIBLE_FENCE_GAP, 0), FenceVerdict::CounterBehind { by: IMPLAUSIBLE_FENCE_GAP });
        assert_eq!(check(IMPLAUSIBLE_FENCE_GAP + 8, 7), FenceVerdict::Implausible { by: IMPLAUSIBLE_FENCE_GAP + 1 });
        // A flipped bit 62 of an in-step word.
        assert!(matches!(check(1 << 62 | 1000, 1000), FenceVerdict::Implausible { .. }));
        assert!(matches!(check(MAX_FENCE, MAX_FENCE), FenceVerdict::Implausible { .. }));
        assert!(matches!(check(u64::MAX, 0), FenceVerdict::Implausible { .. }));
        // Without a counter only the absolute bound tells damage.
        assert_eq!(check_missing(0), FenceVerdict::InStep);
        assert_eq!(check_missing(1 << 53), FenceVerdict::CounterBehind { by: 1 << 53 });
        assert!(matches!(check_missing(MAX_FENCE), FenceVerdict::Implausible { .. }));
        assert_eq!(plausible_from(IMPLAUSIBLE_FENCE_GAP + 8), 8);
        assert_eq!(plausible_from(3), 0);
    }

    #[test]
    fn counters_parse_exactly_or_say_what_to_do() {
        assert_eq!(parse_counter("k", "9007199254740993").unwrap(), (1 << 53) + 1);
        assert_eq!(parse_counter("k", "9223372036854775807").unwrap(), MAX_FENCE);
        for bad in ["9223372036854775808", "-1", "x", ""] {
            assert!(parse_counter("k", bad).unwrap_err().to_string().contains("Delete the key"), "{bad}");
        }
    }
}

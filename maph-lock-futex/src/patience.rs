//! How a waiter paces itself: when to give up, when to check that the holder
//! still lives, and how long to sleep in between.

use std::time::{Duration, Instant};

// (The model never gives up.)
#[cfg_attr(loom, allow(dead_code))]
/// What a waiter should do next, holding a word it could not take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// The deadline has passed.
    GiveUp,
    /// A whole detection period has gone by since the last check: make sure
    /// the holder still lives.
    CheckHolder,
    /// Sleep on the word for at most this long.
    Sleep(Duration),
}

/// The clock side of one wait for a lock word.
#[derive(Debug)]
pub(crate) struct Patience {
    deadline: Option<Instant>,
    detection_period: Duration,
    #[cfg(not(loom))]
    last_check: Instant,
    #[cfg(loom)]
    check_next: bool,
}

impl Patience {
    /// Starts waiting now, until `deadline` (`None`: as long as it takes).
    pub fn new(deadline: Option<Instant>, detection_period: Duration) -> Patience {
        Patience {
            deadline,
            detection_period,
            #[cfg(not(loom))]
            last_check: Instant::now(),
            #[cfg(loom)]
            check_next: false,
        }
    }

    /// The next step. A holder is checked once per detection period of
    /// waiting; sleeps end by then, and by the deadline.
    #[cfg(not(loom))]
    pub fn next_turn(&mut self) -> Turn {
        let now = Instant::now();
        let left = match self.deadline {
            Some(d) if now >= d => return Turn::GiveUp,
            Some(d) => d - now,
            None => Duration::MAX,
        };
        let since_check = now - self.last_check;
        if since_check >= self.detection_period {
            self.last_check = now;
            return Turn::CheckHolder;
        }
        Turn::Sleep(left.min(self.detection_period - since_check))
    }

    /// Under loom there is no clock: the model alternates checking the holder
    /// and sleeping, so that both follow every interleaving the checker tries,
    /// and it never gives up (models wait without a deadline).
    #[cfg(loom)]
    pub fn next_turn(&mut self) -> Turn {
        let _ = (self.deadline, self.detection_period);
        self.check_next = !self.check_next;
        if self.check_next {
            Turn::CheckHolder
        } else {
            Turn::Sleep(Duration::ZERO)
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_passed_deadline_gives_up_at_once() {
        let mut p = Patience::new(Some(Instant::now()), Duration::from_millis(10));
        assert_eq!(p.next_turn(), Turn::GiveUp);
    }

    #[test]
    fn sleeps_end_by_the_next_check_and_checks_come_once_a_period() {
        let period = Duration::from_millis(30);
        let mut p = Patience::new(None, period);
        match p.next_turn() {
            Turn::Sleep(nap) => assert!(nap <= period),
            other => panic!("expected a sleep first, got {other:?}"),
        }
        std::thread::sleep(period);
        assert_eq!(p.next_turn(), Turn::CheckHolder);
        assert!(matches!(p.next_turn(), Turn::Sleep(_)), "one check per period");
    }

    #[test]
    fn a_sleep_ends_by_the_deadline() {
        let mut p = Patience::new(Some(Instant::now() + Duration::from_millis(2)), Duration::from_secs(60));
        match p.next_turn() {
            Turn::Sleep(nap) => assert!(nap <= Duration::from_millis(2)),
            Turn::GiveUp => {} // the 2 ms passed already on a slow machine
            Turn::CheckHolder => panic!("no check before a whole period"),
        }
    }
}

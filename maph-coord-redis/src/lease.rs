//! What this process believes about the token it holds, and when it must stop
//! believing it.

use std::time::Duration;

/// One acquisition of the token.
#[derive(Debug)]
pub(crate) struct Lease {
    /// Matches `Ticket::private` of the ticket this lease was issued with.
    pub(crate) seq: u64,
    /// The token key's value: `<owner>/<fence>`.
    pub(crate) value: String,
    /// Lease clock reading taken *before* sending the last command Redis
    /// confirmed (acquire or renew). Redis's ttl started after that, so the
    /// lease runs at least until `confirmed_at + ttl` by a clock running at
    /// Redis's rate.
    pub(crate) confirmed_at: Duration,
    /// Why the lease ended, once something noticed.
    pub(crate) lost: Option<String>,
}

impl Lease {
    /// Whether the lease may still be written under at `now`; otherwise why not.
    ///
    /// Refuses from `ttl - margin` after the last confirmation: the margin
    /// absorbs a clock here running slower than Redis's and the time between
    /// this check and the write itself. What the margin cannot cover (a pause
    /// right after the check) the store's fencing check covers.
    pub(crate) fn check(&self, now: Duration, ttl: Duration, margin: Duration) -> Result<(), String> {
        if let Some(why) = &self.lost {
            return Err(why.clone());
        }
        let age = now.saturating_sub(self.confirmed_at);
        let usable = ttl.saturating_sub(margin);
        if age >= usable {
            return Err(format!(
                "Redis last confirmed it {age:?} ago, and it is only trusted for {usable:?} \
                 (the {ttl:?} ttl minus a {margin:?} clock margin): this process was paused, \
                 or could not reach Redis to renew it"
            ));
        }
        Ok(())
    }

    /// Records a confirmation sent at `sent`.
    pub(crate) fn confirmed(&mut self, sent: Duration) {
        self.confirmed_at = self.confirmed_at.max(sent);
    }
}

/// The coordinator's lease state, shared with its renewal thread.
#[derive(Debug, Default)]
pub(crate) struct LeaseState {
    /// The lease held now, if any (one at a time: the in-process gate sees to it).
    pub(crate) current: Option<Lease>,
    /// Set when the coordinator is dropped: the renewal thread ends.
    pub(crate) shutdown: bool,
}

impl LeaseState {
    /// The current lease, if it is the one numbered `seq`.
    pub(crate) fn lease_mut(&mut self, seq: u64) -> Option<&mut Lease> {
        self.current.as_mut().filter(|l| l.seq == seq)
    }
}

/// Why a token the renewal thread asked about was not renewed.
pub(crate) const TOKEN_GONE: &str = "Redis no longer holds this process's token: it expired, or was deleted or \
                                     taken over by another writer";

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(confirmed_at: Duration) -> Lease {
        Lease { seq: 1, value: "o/1".into(), confirmed_at, lost: None }
    }

    #[test]
    fn trusted_until_ttl_minus_margin_after_the_send() {
        let ttl = Duration::from_secs(10);
        let margin = Duration::from_secs(1);
        let l = lease(Duration::from_secs(100));
        assert!(l.check(Duration::from_secs(100), ttl, margin).is_ok());
        assert!(l.check(Duration::from_millis(108_999), ttl, margin).is_ok());
        let why = l.check(Duration::from_secs(109), ttl, margin).unwrap_err();
        assert!(why.contains("paused"), "{why}");
    }

    #[test]
    fn a_lost_lease_stays_lost_and_confirmations_never_go_back() {
        let mut l = lease(Duration::from_secs(5));
        l.confirmed(Duration::from_secs(4));
        assert_eq!(l.confirmed_at, Duration::from_secs(5));
        l.lost = Some(TOKEN_GONE.into());
        l.confirmed(Duration::from_secs(6));
        assert_eq!(l.check(Duration::from_secs(6), Duration::from_secs(10), Duration::ZERO).unwrap_err(), TOKEN_GONE);
    }
}

//! The strategy tag: a short name recorded in the store header at create.
//!
//! Every coordinator reports its tag, and the store refuses a writer whose tag
//! differs from the one recorded. That makes the reference design's "pitfall 3"
//! (one writer locks, another does not) impossible by accident.

use std::fmt;

/// Width of the tag in the header, in bytes.
pub const STRATEGY_LEN: usize = 16;

/// A stable, human-readable name for a coordination strategy (at most 16 ASCII bytes).
///
/// ```
/// use maph_core::Strategy;
/// const MINE: Strategy = Strategy::new("my-lock");
/// assert_eq!(MINE.as_str(), "my-lock");
/// assert_eq!(Strategy::SINGLE_WRITER.to_string(), "single-writer");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Strategy([u8; STRATEGY_LEN]);

impl Strategy {
    /// One writer process, chosen by an exclusive lease ([`crate::SingleWriter`]).
    pub const SINGLE_WRITER: Strategy = Strategy::new("single-writer");
    /// No coordination at all ([`crate::Uncoordinated`]); unsafe with several writers.
    pub const UNCOORDINATED: Strategy = Strategy::new("uncoordinated");

    /// Makes a tag from a name. Panics (at compile time in a `const`) if the name is
    /// empty, longer than 16 bytes, or not printable ASCII.
    pub const fn new(name: &str) -> Strategy {
        let bytes = name.as_bytes();
        assert!(!bytes.is_empty() && bytes.len() <= STRATEGY_LEN, "a strategy name has 1 to 16 bytes");
        let mut tag = [0u8; STRATEGY_LEN];
        let mut i = 0;
        while i < bytes.len() {
            assert!(bytes[i] > b' ' && bytes[i] < 0x7f, "a strategy name is printable ASCII");
            tag[i] = bytes[i];
            i += 1;
        }
        Strategy(tag)
    }

    /// Reads a tag from its header bytes; `None` if they are not a valid tag.
    pub fn from_bytes(bytes: [u8; STRATEGY_LEN]) -> Option<Strategy> {
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(STRATEGY_LEN);
        let (name, padding) = bytes.split_at(len);
        let valid = !name.is_empty() && name.iter().all(|&b| b > b' ' && b < 0x7f) && padding.iter().all(|&b| b == 0);
        valid.then_some(Strategy(bytes))
    }

    /// The bytes written to the header (NUL-padded).
    pub fn to_bytes(self) -> [u8; STRATEGY_LEN] {
        self.0
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(STRATEGY_LEN);
        // Only printable ASCII is ever stored (checked in `new` and `from_bytes`).
        std::str::from_utf8(&self.0[..len]).unwrap_or("?")
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Strategy({:?})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_header_bytes() {
        let s = Strategy::new("fcntl");
        assert_eq!(Strategy::from_bytes(s.to_bytes()), Some(s));
    }

    #[test]
    fn rejects_garbage_bytes() {
        assert_eq!(Strategy::from_bytes([0; 16]), None);
        let mut b = Strategy::new("ab").to_bytes();
        b[5] = b'x'; // text after the padding
        assert_eq!(Strategy::from_bytes(b), None);
        assert_eq!(Strategy::from_bytes([0xff; 16]), None);
    }
}

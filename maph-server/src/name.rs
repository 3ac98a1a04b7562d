//! Store names: the part of a URL that becomes a file name, so it is checked
//! before it comes anywhere near the file system.

use std::fmt;

/// Longest store name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// A valid store name: 1 to 64 of `A-Z a-z 0-9 _ -`.
///
/// Nothing else is allowed, so a name is always one plain file name inside the
/// data directory: no `/`, no `.`, no `..` (a request for `..%2Fetc` arrives
/// here decoded as `../etc` and is refused).
///
/// ```
/// use maph_server::StoreName;
/// assert_eq!(StoreName::parse("users-2024_v1").unwrap().file_name(), "users-2024_v1.maph");
/// assert!(StoreName::parse("../etc").is_err());
/// assert!(StoreName::parse("").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreName(String);

impl StoreName {
    /// Checks `name`; the error says what a valid name looks like.
    pub fn parse(name: &str) -> Result<StoreName, String> {
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(StoreName(name.to_string()))
        } else {
            Err(format!(
                "invalid store name {:?}: use 1 to {MAX_NAME_LEN} letters, digits, '_' or '-'",
                truncate(name, 80)
            ))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The store's file name in the data directory: `<name>.maph`.
    pub fn file_name(&self) -> String {
        format!("{}.maph", self.0)
    }
}

impl fmt::Display for StoreName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// At most `max` characters of `text`, for echoing untrusted input in messages.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        for name in ["a", "Z9", "under_score", "dash-ed", &"x".repeat(MAX_NAME_LEN)] {
            assert!(StoreName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        for name in ["", "..", "../etc", "a/b", "a.b", "a b", "ü", "a\0", "%2F", &long] {
            let err = StoreName::parse(name).unwrap_err();
            assert!(err.contains("invalid store name"), "{err}");
        }
    }

    #[test]
    fn truncates_long_input_in_messages() {
        let err = StoreName::parse(&"/".repeat(500)).unwrap_err();
        assert!(err.len() < 200, "{err}");
    }
}

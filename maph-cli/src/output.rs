//! Printing results: text for people, JSON for scripts.

use std::io::Write;

use base64::Engine;
use serde_json::{json, Value};

use crate::error::{CliError, CliResult};

/// Where results go and in which form.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// Prints `json` (compact, one line) or the text `human` makes.
    pub fn emit(&self, json: Value, human: impl FnOnce() -> String) -> CliResult {
        let text = if self.json { json.to_string() } else { human() };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}").map_err(write_failed)
    }
}

pub fn write_failed(e: std::io::Error) -> CliError {
    CliError::new(format!("could not write to standard output: {e}"))
}

/// `{"key", "value"}`, with `value_base64` (and `value: null`) for bytes that
/// are not UTF-8, the same shape the server answers with.
pub fn entry_json(key: &[u8], value: &[u8]) -> Value {
    let mut entry = match std::str::from_utf8(value) {
        Ok(text) => json!({ "value": text }),
        Err(_) => json!({ "value": null, "value_base64": base64::engine::general_purpose::STANDARD.encode(value) }),
    };
    match std::str::from_utf8(key) {
        Ok(text) => entry["key"] = json!(text),
        Err(_) => {
            entry["key"] = Value::Null;
            entry["key_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(key));
        }
    }
    entry
}

/// Bytes as one line of text: UTF-8 without control characters as is, anything
/// else escaped (`\t`, `\n`, `\xff`), so a scan line never breaks in two.
pub fn printable(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(char::is_control) && !text.contains('\\') => text.to_string(),
        _ => bytes.escape_ascii().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_keeps_text_and_escapes_the_rest() {
        assert_eq!(printable("héllo".as_bytes()), "héllo");
        assert_eq!(printable(b"a\tb\nc"), "a\\tb\\nc");
        assert_eq!(printable(&[0xff, b'x']), "\\xffx");
        assert_eq!(printable(b"back\\slash"), "back\\\\slash");
    }

    #[test]
    fn entry_json_uses_base64_for_bytes() {
        assert_eq!(entry_json(b"k", b"v"), json!({"key": "k", "value": "v"}));
        let e = entry_json(&[0xff], &[0x00, 0xff]);
        assert_eq!(e["key_base64"], "/w==");
        assert_eq!(e["value_base64"], "AP8=");
    }
}

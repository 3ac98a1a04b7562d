//! How the command fails: one line on standard error and an exit code.

use std::fmt;

/// Exit code: something was not found (a key, or a problem by `verify`).
pub const EXIT_NOT_FOUND: u8 = 1;
/// Exit code: the command could not do its job (bad input, I/O, a busy lease).
/// clap uses the same code for usage errors.
pub const EXIT_ERROR: u8 = 2;

/// A failure to report: the message is one line that says what to do.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub code: u8,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> CliError {
        CliError { message: message.into(), code: EXIT_ERROR }
    }

    pub fn not_found(message: impl Into<String>) -> CliError {
        CliError { message: message.into(), code: EXIT_NOT_FOUND }
    }

    /// Adds what was being done in front of a store error.
    pub fn context(what: impl fmt::Display) -> impl FnOnce(maph_core::Error) -> CliError {
        move |e| CliError::new(format!("{what}: {e}"))
    }
}

impl From<maph_core::Error> for CliError {
    fn from(e: maph_core::Error) -> CliError {
        CliError::new(e.to_string())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the message held.
        f.write_str(&self.message.replace('\n', " "))
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

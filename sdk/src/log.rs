//! A bounded log kept with each decision.
//!
//! The host keeps a limited number of lines and bytes per decision and counts what it
//! drops, so logging can never flood the host. Natively the lines go to stderr.

/// Severity of a log line.
pub use crate::__private::wit::civic::rules::log::Level;

/// Adds a line at `level`.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        crate::__private::wit::civic::rules::log::log(level, message)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        eprintln!("[{level:?}] {message}");
    }
}

/// Adds a debug line.
pub fn debug(message: &str) {
    log(Level::Debug, message)
}

/// Adds an info line.
pub fn info(message: &str) {
    log(Level::Info, message)
}

/// Adds a warning line.
pub fn warn(message: &str) {
    log(Level::Warn, message)
}

/// Adds an error line.
pub fn error(message: &str) {
    log(Level::Error, message)
}

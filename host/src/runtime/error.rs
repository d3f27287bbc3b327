//! Typed plug-in errors that say which plug-in failed and how.

use std::fmt;
use std::time::Duration;

/// Which plug-in: its name and version (the sha256 of its component bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PluginRef {
    /// The plug-in's name (for bundled ones, the crate name).
    pub name: String,
    /// Hex sha256 of the component bytes.
    pub version: String,
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}",
            self.name,
            &self.version[..self.version.len().min(12)]
        )
    }
}

/// How a plug-in failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PluginFailure {
    /// The fuel budget ran out (a runaway loop, or a rule too slow for its budget).
    #[error(
        "ran out of fuel after {budget} units; raise the plug-in's fuel limit or make the rule cheaper"
    )]
    OutOfFuel {
        /// The budget it had.
        budget: u64,
    },
    /// The wall-clock deadline passed.
    #[error("exceeded its {limit_ms} ms deadline")]
    Timeout {
        /// The deadline, in milliseconds.
        limit_ms: u64,
    },
    /// The plug-in tried to grow its memory past its cap.
    #[error("tried to grow its memory past the {limit_bytes}-byte cap")]
    MemoryLimit {
        /// The cap, in bytes.
        limit_bytes: u64,
    },
    /// The plug-in trapped (panicked, overflowed its stack, executed `unreachable`...).
    #[error("trapped: {message}{}", panic.as_ref().map(|p| format!(" (panic: {p})")).unwrap_or_default())]
    Trap {
        /// wasmtime's description of the trap.
        message: String,
        /// The guest's panic message, when it reported one.
        panic: Option<String>,
    },
    /// The plug-in returned a decision the host refuses to act on.
    #[error("returned an invalid decision: {0}")]
    InvalidDecision(String),
    /// The rule itself reported an error (the contract's `rule-error`).
    #[error("rule error: {0}")]
    RuleError(String),
    /// The component was not built against a contract this host supports.
    #[error("is not compatible with contract civic:rules@{expected}: {detail}")]
    IncompatibleContract {
        /// The contract version the host speaks.
        expected: String,
        /// What does not match.
        detail: String,
    },
    /// The bytes are not a valid Wasm component, or failed to compile.
    #[error("is not a valid component: {0}")]
    InvalidComponent(String),
}

impl PluginFailure {
    /// A short stable code for metrics and APIs, such as `out-of-fuel`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::OutOfFuel { .. } => "out-of-fuel",
            Self::Timeout { .. } => "timeout",
            Self::MemoryLimit { .. } => "memory-limit",
            Self::Trap { .. } => "trap",
            Self::InvalidDecision(_) => "invalid-decision",
            Self::RuleError(_) => "rule-error",
            Self::IncompatibleContract { .. } => "incompatible-contract",
            Self::InvalidComponent(_) => "invalid-component",
        }
    }
}

/// A plug-in failed: which one, doing what, and how.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plug-in {plugin} failed in {hook}: {failure}")]
pub struct PluginError {
    /// The plug-in.
    pub plugin: PluginRef,
    /// The hook (`eligibility`, `routing`, `escalation`), or `load`.
    pub hook: &'static str,
    /// What went wrong.
    pub failure: PluginFailure,
    /// Fuel consumed before the failure.
    pub fuel_used: u64,
    /// Time spent before the failure.
    pub duration: Duration,
}

/// The runtime itself could not be set up (not a plug-in's fault).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// wasmtime refused the engine configuration.
    #[error("could not configure the wasm engine: {0}")]
    Engine(String),
    /// The compiled-plug-in cache directory is not usable.
    #[error("compiled-plug-in cache at {path}: {source}")]
    Cache {
        /// The cache directory.
        path: std::path::PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

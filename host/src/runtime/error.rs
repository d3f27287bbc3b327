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
    /// The host, not the plug-in, was too busy: the deciding thread had used less CPU time
    /// than the limit when the wall-clock backstop passed. Never counted toward suspension.
    #[error(
        "was stopped by the host after {wall_ms} ms having had only {cpu_ms} ms of CPU time (its limit is {limit_ms} ms): the host is overloaded, not the plug-in at fault"
    )]
    HostOverloaded {
        /// The plug-in's CPU-time limit, in milliseconds.
        limit_ms: u64,
        /// CPU time the decision had when it was stopped.
        cpu_ms: u64,
        /// Wall-clock time when it was stopped.
        wall_ms: u64,
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
    #[error("returned an invalid decision: {detail}")]
    InvalidDecision {
        /// What is wrong with it.
        detail: String,
    },
    /// The rule itself reported an error (the contract's `rule-error`).
    #[error("rule error: {detail}")]
    RuleError {
        /// The rule's own words, bounded and with control characters escaped.
        detail: String,
    },
    /// The component was not built against a contract this host supports.
    #[error("is not compatible with contract civic:rules@{expected}: {detail}")]
    IncompatibleContract {
        /// The contract version the host speaks.
        expected: String,
        /// What does not match.
        detail: String,
    },
    /// The bytes are not a valid Wasm component, or failed to compile.
    #[error("is not a valid component: {detail}")]
    InvalidComponent {
        /// Why.
        detail: String,
    },
}

impl PluginFailure {
    /// A short stable code for metrics and APIs, such as `out-of-fuel`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::OutOfFuel { .. } => "out-of-fuel",
            Self::Timeout { .. } => "timeout",
            Self::HostOverloaded { .. } => "host-overloaded",
            Self::MemoryLimit { .. } => "memory-limit",
            Self::Trap { .. } => "trap",
            Self::InvalidDecision { .. } => "invalid-decision",
            Self::RuleError { .. } => "rule-error",
            Self::IncompatibleContract { .. } => "incompatible-contract",
            Self::InvalidComponent { .. } => "invalid-component",
        }
    }
}

impl PluginFailure {
    /// An invalid-component failure.
    pub fn invalid_component(detail: impl Into<String>) -> Self {
        Self::InvalidComponent {
            detail: detail.into(),
        }
    }

    /// An invalid-decision failure.
    pub fn invalid_decision(detail: impl Into<String>) -> Self {
        Self::InvalidDecision {
            detail: detail.into(),
        }
    }

    /// Whether the host, not the plug-in, caused the failure: such failures never count
    /// toward suspending the plug-in.
    pub fn is_host_fault(&self) -> bool {
        matches!(self, Self::HostOverloaded { .. })
    }
}

/// A plug-in failed: which one, doing what, and how.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plug-in {plugin} failed in {}: {failure}", hook.map_or("load", super::Hook::as_str))]
pub struct PluginError {
    /// The plug-in.
    pub plugin: PluginRef,
    /// The hook it was deciding, or `None` while it was loaded.
    pub hook: Option<super::Hook>,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each failure kind. The match below is exhaustive, so a new kind fails to
    /// compile until it is listed, and then fails the test until it has a sample here.
    fn samples() -> Vec<PluginFailure> {
        vec![
            PluginFailure::OutOfFuel { budget: 7 },
            PluginFailure::Timeout { limit_ms: 100 },
            PluginFailure::HostOverloaded {
                limit_ms: 100,
                cpu_ms: 3,
                wall_ms: 900,
            },
            PluginFailure::MemoryLimit { limit_bytes: 4096 },
            PluginFailure::Trap {
                message: "wasm trap: unreachable".into(),
                panic: Some("boom \u{1b}[31m".into()),
            },
            PluginFailure::invalid_decision("lead unit `x` does not exist"),
            PluginFailure::RuleError {
                detail: "invalid input: no grid".into(),
            },
            PluginFailure::IncompatibleContract {
                expected: "0.1.0".into(),
                detail: "built against 9.9.9".into(),
            },
            PluginFailure::invalid_component("not wasm"),
        ]
    }

    #[test]
    fn every_failure_kind_round_trips_through_json() {
        let mut seen = [false; 9];
        for f in samples() {
            let i = match &f {
                PluginFailure::OutOfFuel { .. } => 0,
                PluginFailure::Timeout { .. } => 1,
                PluginFailure::HostOverloaded { .. } => 2,
                PluginFailure::MemoryLimit { .. } => 3,
                PluginFailure::Trap { .. } => 4,
                PluginFailure::InvalidDecision { .. } => 5,
                PluginFailure::RuleError { .. } => 6,
                PluginFailure::IncompatibleContract { .. } => 7,
                PluginFailure::InvalidComponent { .. } => 8,
            };
            seen[i] = true;
            let text = serde_json::to_string(&f).unwrap_or_else(|e| panic!("{f:?}: {e}"));
            let back: PluginFailure = serde_json::from_str(&text).unwrap();
            assert_eq!(back, f, "{text}");
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["kind"], f.code(), "{text}");
        }
        assert!(
            seen.iter().all(|s| *s),
            "a failure kind has no sample: {seen:?}"
        );
    }
}

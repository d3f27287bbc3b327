//! Golden fixtures: a case, a hook, and the decision expected of a plug-in, with a fuel
//! budget so a rule that gets slower fails its test. Used by `civic plugin test` and by
//! the bundled plug-ins' test suite.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::dryrun::{Outcome, Request};
use crate::runtime::Hook;

/// One fixture file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// What it checks, in words.
    #[serde(default)]
    pub description: String,
    /// The hook to run.
    pub hook: Hook,
    /// The input.
    pub request: Request,
    /// Most fuel the decision may use.
    pub max_fuel: u64,
    /// The expected decision: every field given must match (objects are matched field by
    /// field, everything else exactly). `null` expects "no opinion".
    #[serde(default)]
    pub expect: Option<Value>,
    /// The expected failure code instead of a decision (`trap`, `out-of-fuel`, ...).
    #[serde(default)]
    pub expect_failure: Option<String>,
}

/// Why a fixture did not pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// Where in the decision (`.lead`, `.reasons`), or what (`fuel`, `failure`).
    pub at: String,
    /// Expected.
    pub expected: Value,
    /// Actual.
    pub actual: Value,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "at {}: expected {}, got {}",
            self.at, self.expected, self.actual
        )
    }
}

/// Reads every `*.json` fixture in a directory, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<(PathBuf, Fixture)>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("{} holds no *.json fixtures", dir.display()));
    }
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let f: Fixture =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok((p, f))
        })
        .collect()
}

fn subset(at: &str, expected: &Value, actual: &Value, out: &mut Vec<Mismatch>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                subset(
                    &format!("{at}.{k}"),
                    ev,
                    a.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if expected != actual => out.push(Mismatch {
            at: if at.is_empty() { ".".into() } else { at.into() },
            expected: expected.clone(),
            actual: actual.clone(),
        }),
        _ => {}
    }
}

/// Compares an outcome with a fixture's expectations.
pub fn check(f: &Fixture, o: &Outcome) -> Vec<Mismatch> {
    let mut out = Vec::new();
    match (&f.expect_failure, &o.failure) {
        (Some(code), Some(fail)) if *code == fail.code => {}
        (Some(code), _) => out.push(Mismatch {
            at: "failure".into(),
            expected: Value::String(code.clone()),
            actual: o
                .failure
                .as_ref()
                .map(|x| Value::String(x.message.clone()))
                .unwrap_or(Value::Null),
        }),
        (None, Some(fail)) => out.push(Mismatch {
            at: "failure".into(),
            expected: Value::Null,
            actual: Value::String(fail.message.clone()),
        }),
        (None, None) => subset(
            "",
            f.expect.as_ref().unwrap_or(&Value::Null),
            &o.decision,
            &mut out,
        ),
    }
    if o.fuel_used > f.max_fuel {
        out.push(Mismatch {
            at: "fuel".into(),
            expected: format!("at most {}", f.max_fuel).into(),
            actual: o.fuel_used.into(),
        });
    }
    out
}

//! Replaying recorded decisions: the recorded plug-in version, directory version and input,
//! run again, and the output compared with what was recorded.

use serde::Serialize;

use crate::decide::RecordedInput;
use crate::model::{DecisionRecord, EventBody};
use crate::runtime::Hook;
use crate::service::{Service, ServiceError};

/// The replay of one decision.
#[derive(Debug, Clone, Serialize)]
pub struct Replayed {
    /// Position of the decision in the case's history.
    pub seq: u64,
    /// The hook.
    pub hook: Hook,
    /// The plug-in version that decided.
    pub plugin: String,
    /// The recorded plug-in version's id.
    pub version: String,
    /// The directory version.
    pub directory_version: u64,
    /// The output now is the recorded one.
    pub identical: bool,
    /// The recorded output.
    pub recorded: serde_json::Value,
    /// The output now (or the failure).
    pub replayed: serde_json::Value,
    /// Fields that differ (`.lead`, ...).
    pub differences: Vec<String>,
}

/// The replay of a case's decisions.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The case.
    pub case: String,
    /// Every decision replayed.
    pub decisions: Vec<Replayed>,
    /// All identical.
    pub identical: bool,
}

fn diff(at: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                diff(
                    &format!("{at}.{k}"),
                    x.get(k).unwrap_or(&serde_json::Value::Null),
                    y.get(k).unwrap_or(&serde_json::Value::Null),
                    out,
                );
            }
        }
        _ if a != b => out.push(if at.is_empty() { ".".into() } else { at.into() }),
        _ => {}
    }
}

/// Re-runs one recorded decision.
pub fn replay_decision(
    svc: &Service,
    seq: u64,
    rec: &DecisionRecord,
) -> Result<Replayed, ServiceError> {
    let hook = rec.hook;
    let plugin = svc.registry().plugin_by_version(&rec.plugin.version)?;
    let directory = svc.directory_version(rec.directory_version)?;
    let input: RecordedInput = rec.input.parse().map_err(|e| {
        ServiceError::Invalid(format!("decision {seq} has an unreadable input: {e}"))
    })?;
    if hook == Hook::Escalation && input.timer.is_none() {
        return Err(ServiceError::Invalid(format!(
            "escalation decision {seq} has no timer"
        )));
    }
    let result = svc
        .runtime()
        .evaluate(&plugin, &input.call(hook, &directory))
        .map(|e| serde_json::to_value(e.output));
    let replayed = match result {
        Ok(v) => v.unwrap_or_default(),
        Err(e) => serde_json::json!({"failure": e.to_string()}),
    };
    let recorded = rec.output.value();
    let mut differences = Vec::new();
    diff("", &recorded, &replayed, &mut differences);
    Ok(Replayed {
        seq,
        hook: rec.hook,
        plugin: rec.plugin.name.clone(),
        version: rec.plugin.version.clone(),
        directory_version: rec.directory_version,
        identical: differences.is_empty(),
        recorded,
        replayed,
        differences,
    })
}

/// Replays every decision of a case.
pub fn replay_case(svc: &Service, id: &str) -> Result<Report, ServiceError> {
    svc.case(id)?;
    let mut decisions = Vec::new();
    for e in svc.store().history(id)? {
        if let EventBody::Decision(rec) = &e.what {
            decisions.push(replay_decision(svc, e.seq, rec)?);
        }
    }
    let identical = decisions.iter().all(|d| d.identical);
    Ok(Report {
        case: id.to_owned(),
        decisions,
        identical,
    })
}

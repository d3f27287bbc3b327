//! Running a district's hook with the host's fallbacks, and recording what decided.
//!
//! The district's own version runs first; "no opinion" falls back to the city default;
//! a failure is recorded (and counted toward suspension) and, where the caller asks,
//! the city default decides instead. Every decision becomes a [`DecisionRecord`] with its
//! full input, so it can be replayed exactly.

use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::metrics::Metrics;
use crate::model::{DecisionRecord, EventBody, Millis, RawJson};
use crate::registry::{Active, Registry};
use crate::runtime::{CONTRACT_VERSION, Evaluation, Hook, Plugin, PluginError, wit};

/// The input of a decision, as recorded for replay.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct RecordedInput {
    /// The case as the plug-in saw it.
    pub case: wit::Case,
    /// Evaluation time.
    pub now: Millis,
    /// The caller's recent cases.
    pub recent_cases: Vec<wit::RecentCase>,
    /// For escalation: the timer that fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer: Option<wit::Timer>,
}

/// Reason codes of any decision.
pub trait Reasons {
    /// The decision's reason codes.
    fn reasons(&self) -> &[String];
}

impl Reasons for wit::EligibilityDecision {
    fn reasons(&self) -> &[String] {
        &self.reasons
    }
}
impl Reasons for wit::RoutingDecision {
    fn reasons(&self) -> &[String] {
        &self.reasons
    }
}
impl Reasons for wit::EscalationDecision {
    fn reasons(&self) -> &[String] {
        &self.reasons
    }
}

/// What deciding produced: the decision (if any plug-in gave one) and the events to record.
#[derive(Debug)]
pub struct Decided<T> {
    /// The decision (its record is the last of `events`).
    pub decision: Option<T>,
    /// Decision and failure events, in order.
    pub events: Vec<EventBody>,
    /// A plug-in failed on the way.
    pub failed: bool,
}

/// Builds the record of one evaluation.
pub fn record<T: Serialize + Reasons>(
    hook: Hook,
    active: &Active,
    directory_version: u64,
    input: &RecordedInput,
    eval: &Evaluation<T>,
    fallback: bool,
) -> DecisionRecord {
    // Serialised once: the digest is of the same text the record keeps.
    let input = RawJson::of(input);
    DecisionRecord {
        hook: hook.as_str().into(),
        plugin: active.plugin.id().clone(),
        contract_version: CONTRACT_VERSION.into(),
        directory_version,
        input_digest: hex::encode(Sha256::digest(input.get())),
        input,
        output: RawJson::of(&eval.output),
        reasons: eval
            .output
            .as_ref()
            .map(|o| o.reasons().to_vec())
            .unwrap_or_default(),
        fuel_used: eval.fuel_used,
        duration_us: eval.duration.as_micros() as u64,
        fallback,
    }
}

/// Runs `hook` for `district`. `eval` runs one plug-in on the input. With
/// `city_default_on_failure`, a failing district plug-in is replaced by the city default.
#[allow(clippy::too_many_arguments)]
pub fn decide<T: Serialize + Reasons>(
    registry: &Registry,
    metrics: &Metrics,
    district: &str,
    hook: Hook,
    directory_version: u64,
    input: &RecordedInput,
    now: Millis,
    city_default_on_failure: bool,
    eval: impl Fn(&Plugin) -> Result<Evaluation<T>, PluginError>,
) -> Decided<T> {
    let mut out = Decided {
        decision: None,
        events: Vec::new(),
        failed: false,
    };
    let Some(resolved) = registry.resolve(district, hook) else {
        return out;
    };
    let mut candidates: Vec<(Arc<Active>, bool)> =
        vec![(resolved.active.clone(), resolved.is_city_default)];
    if !resolved.is_city_default
        && let Some(city) = registry.city_default(hook)
    {
        candidates.push((city, true));
    }
    for (i, (active, is_city)) in candidates.iter().enumerate() {
        let fallback = i > 0;
        match eval(&active.plugin) {
            Ok(e) => {
                registry.record_outcome(active, true, now);
                metrics.decision(
                    district,
                    hook,
                    &active.record.name,
                    if e.output.is_some() {
                        "decided"
                    } else {
                        "no-opinion"
                    },
                    e.fuel_used,
                    e.duration,
                );
                let rec = record(hook, active, directory_version, input, &e, fallback);
                if (!is_city || district == crate::registry::CITY)
                    && let Some(shadow) = registry.shadow(district, hook)
                {
                    // Without effect: compared, counted, never recorded on the case.
                    let candidate = eval(&shadow.active.plugin)
                        .map(|s| serde_json::to_value(&s.output).unwrap_or_default())
                        .map_err(|f| f.to_string());
                    shadow.observe(&input.case.id, &rec.output.value(), candidate);
                }
                if let Some(output) = e.output {
                    out.events.push(EventBody::Decision(Box::new(rec)));
                    out.decision = Some(output);
                    return out;
                }
            }
            Err(err) => {
                out.failed = true;
                metrics.failure(district, hook, err.failure.code());
                // An overloaded host is not the plug-in's fault: never a step toward
                // suspending it.
                if !err.failure.is_host_fault() {
                    registry.record_outcome(active, false, now);
                }
                // The failure carries the guest's own words (a panic message, a rule error):
                // escaped, so a plug-in cannot forge or colour lines of the server log.
                tracing::warn!(%district, hook = hook.as_str(), error = %crate::text::escape_for_log(&err.to_string()), "plug-in failed");
                let next = if city_default_on_failure && !is_city && candidates.len() > i + 1 {
                    "city-default"
                } else {
                    "manual-triage"
                };
                out.events.push(EventBody::RuleFailure {
                    hook: hook.as_str().into(),
                    plugin: err.plugin.clone(),
                    failure: err.failure.clone(),
                    fallback: next.into(),
                });
                if next == "manual-triage" {
                    return out;
                }
            }
        }
    }
    out
}

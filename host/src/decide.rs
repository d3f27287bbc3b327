//! Running a district's hook with the host's fallbacks, and recording what decided.
//!
//! The district's own version runs first; "no opinion" falls back to the city default;
//! a failure is recorded (and counted toward suspension) and, where the caller asks,
//! the city default decides instead. Every decision becomes a [`DecisionRecord`] with its
//! full input, so it can be replayed exactly.

use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::directory::Directory;
use crate::metrics::Metrics;
use crate::model::{DecisionRecord, EventBody, Millis, RawJson};
use crate::registry::{Active, Registry};
use crate::runtime::{
    CONTRACT_VERSION, Decision, Evaluation, Hook, Input, Plugin, PluginError, wit,
};

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

impl RecordedInput {
    /// The runtime's input for `hook` from this recording, against `directory`.
    pub fn call<'a>(
        &'a self,
        hook: Hook,
        directory: &'a std::sync::Arc<crate::directory::Directory>,
    ) -> crate::runtime::Input<'a> {
        crate::runtime::Input {
            hook,
            case: &self.case,
            now: self.now,
            recent_cases: &self.recent_cases,
            directory,
            timer: self.timer,
        }
    }
}

/// What deciding produced: the decision (if any plug-in gave one) and the events to record.
#[derive(Debug)]
pub struct Decided {
    /// The decision (its record is the last of `events`).
    pub decision: Option<Decision>,
    /// Decision and failure events with their actors, in order.
    pub events: Vec<(String, EventBody)>,
    /// A plug-in failed on the way.
    pub failed: bool,
}

/// Who a decision is recorded as made by: the plug-in, by name.
pub fn plugin_actor(plugin: &crate::runtime::PluginRef) -> String {
    format!("plugin:{}", plugin.name)
}

/// What to decide.
pub struct Request<'a> {
    /// The case's district.
    pub district: &'a str,
    /// The hook.
    pub hook: Hook,
    /// The directory decided against.
    pub directory: &'a Arc<Directory>,
    /// The input, as it will be recorded.
    pub input: &'a RecordedInput,
    /// When.
    pub now: Millis,
    /// A failing district plug-in is replaced by the city default (escalation); else a
    /// failure sends the case to a person.
    pub city_default_on_failure: bool,
}

/// What deciding uses: the registry to resolve versions and count outcomes, metrics, and
/// how to evaluate a plug-in (Wasm, or native rules for a benchmark baseline).
pub struct Deciders<'a> {
    /// Plug-in versions.
    pub registry: &'a Registry,
    /// Metrics.
    pub metrics: &'a Metrics,
    /// Evaluates one plug-in on an input.
    pub evaluate: &'a Evaluator<'a>,
}

/// How one plug-in is evaluated on an input (the service's evaluation, or a test's).
pub type Evaluator<'a> =
    dyn Fn(&Plugin, &Input<'_>) -> Result<Evaluation<Decision>, PluginError> + Sync + 'a;

/// Builds the record of one evaluation.
pub fn record(
    hook: Hook,
    active: &Active,
    directory_version: u64,
    input: &RecordedInput,
    eval: &Evaluation<Decision>,
    fallback: bool,
) -> DecisionRecord {
    // Serialised once: the digest is of the same text the record keeps.
    let input = RawJson::of(input);
    DecisionRecord {
        hook,
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

/// Runs `req.hook` for `req.district`: the district's version, then (on "no opinion", or
/// on failure where asked) the city default; a shadow candidate alongside, without effect.
pub fn decide(d: &Deciders<'_>, req: &Request<'_>) -> Decided {
    let Request {
        district,
        hook,
        directory,
        input,
        now,
        city_default_on_failure,
    } = *req;
    let mut out = Decided {
        decision: None,
        events: Vec::new(),
        failed: false,
    };
    let Some(resolved) = d.registry.resolve(district, hook) else {
        return out;
    };
    let mut candidates: Vec<(Arc<Active>, bool)> =
        vec![(resolved.active.clone(), resolved.is_city_default)];
    if !resolved.is_city_default
        && let Some(city) = d.registry.city_default(hook)
    {
        candidates.push((city, true));
    }
    let call = input.call(hook, directory);
    for (i, (active, is_city)) in candidates.iter().enumerate() {
        let fallback = i > 0;
        match (d.evaluate)(&active.plugin, &call) {
            Ok(e) => {
                d.registry.record_outcome(active, true, now);
                d.metrics.decision(
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
                let rec = record(hook, active, directory.version(), input, &e, fallback);
                if (!is_city || district == crate::registry::CITY)
                    && let Some(shadow) = d.registry.shadow(district, hook)
                {
                    // Without effect: compared, counted, never recorded on the case.
                    let candidate = (d.evaluate)(&shadow.active.plugin, &call)
                        .map(|s| serde_json::to_value(&s.output).unwrap_or_default())
                        .map_err(|f| f.to_string());
                    shadow.observe(&input.case.id, &rec.output.value(), candidate);
                }
                if let Some(output) = e.output {
                    out.events.push((
                        plugin_actor(&rec.plugin),
                        EventBody::Decision(Box::new(rec)),
                    ));
                    out.decision = Some(output);
                    return out;
                }
            }
            Err(err) => {
                out.failed = true;
                d.metrics.failure(district, hook, err.failure.code());
                // An overloaded host is not the plug-in's fault: never a step toward
                // suspending it.
                if !err.failure.is_host_fault() {
                    d.registry.record_outcome(active, false, now);
                }
                // The failure carries the guest's own words (a panic message, a rule error):
                // escaped, so a plug-in cannot forge or colour lines of the server log.
                tracing::warn!(%district, hook = hook.as_str(), error = %crate::text::escape_for_log(&err.to_string()), "plug-in failed");
                let next = if city_default_on_failure && !is_city && candidates.len() > i + 1 {
                    "city-default"
                } else {
                    "manual-triage"
                };
                out.events.push((
                    "system".into(),
                    EventBody::RuleFailure {
                        hook,
                        plugin: err.plugin.clone(),
                        failure: err.failure.clone(),
                        fallback: next.into(),
                    },
                ));
                if next == "manual-triage" {
                    return out;
                }
            }
        }
    }
    out
}

//! Evaluating one hook of one plug-in on a case, storing nothing: the API's dry run, and
//! the plug-in author's `civic plugin run` and `civic plugin test`, share this code and
//! the server's runtime and limits.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::directory::Directory;
use crate::intake::{self, NewCase};
use crate::model::{EligibilityOutcome, Mediation, Millis, TimerKind, mediation_track_name};
use crate::runtime::{
    Decision, DecisionLog, Evaluation, Hook, Input, Plugin, PluginRef, Runtime, wit,
};
use crate::service::ServiceError;

/// A timer for an escalation dry run.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryTimer {
    /// Which deadline.
    pub kind: TimerKind,
    /// When it was due.
    pub due_at: Millis,
    /// Working days overdue.
    #[serde(default)]
    pub working_days_overdue: u32,
}

/// What to evaluate: a case as at intake, plus what later hooks need.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The case.
    pub case: NewCase,
    /// Evaluation time; default: the caller's now.
    #[serde(default)]
    pub now: Option<Millis>,
    /// For routing: the eligibility outcome; default: what eligibility decides.
    #[serde(default)]
    pub eligibility: Option<EligibilityOutcome>,
    /// For escalation: the current handler.
    #[serde(default)]
    pub handler: Option<String>,
    /// For escalation: the timer that fired.
    #[serde(default)]
    pub timer: Option<DryTimer>,
    /// Units that returned the case.
    #[serde(default)]
    pub returned_by: Vec<String>,
    /// Through the API: the deployed version to run (default: the one that would run
    /// now). The command line runs the component file it is given instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The outcome: the decision and what it cost, or the typed failure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// The plug-in that ran.
    pub plugin: PluginRef,
    /// The hook.
    pub hook: Hook,
    /// The decision (`null` for "no opinion" or a failure).
    pub decision: serde_json::Value,
    /// Reason codes.
    pub reasons: Vec<String>,
    /// Fuel used.
    pub fuel_used: u64,
    /// Wall-clock microseconds.
    pub duration_us: u64,
    /// What the plug-in logged.
    pub log: Option<DecisionLog>,
    /// The failure, if it failed.
    pub failure: Option<Failure>,
}

/// A failure as reported by a dry run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    /// Short code (`trap`, `out-of-fuel`, ...).
    pub code: String,
    /// The full message naming the plug-in.
    pub message: String,
    /// The typed failure.
    pub detail: crate::runtime::PluginFailure,
}

fn done(plugin: &Plugin, hook: Hook, e: Evaluation<Decision>) -> Outcome {
    Outcome {
        plugin: plugin.id().clone(),
        hook,
        reasons: e
            .output
            .as_ref()
            .map(|d| d.reasons().to_vec())
            .unwrap_or_default(),
        decision: serde_json::to_value(&e.output).unwrap_or_default(),
        fuel_used: e.fuel_used,
        duration_us: e.duration.as_micros() as u64,
        log: Some(e.log),
        failure: None,
    }
}

/// Evaluates `hook` of `plugin` on the request. For routing without an eligibility outcome,
/// `eligibility_plugin` decides it first (not reported).
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    runtime: &Runtime,
    directory: &Arc<Directory>,
    plugin: &Plugin,
    eligibility_plugin: Option<&Plugin>,
    hook: Hook,
    req: &Request,
    default_now: Millis,
    actor: &str,
) -> Result<Outcome, ServiceError> {
    let now = req.now.unwrap_or(default_now);
    let mut case = intake::validate(
        directory,
        &req.case,
        "dry-run".into(),
        "k-dry-run".into(),
        actor,
        now,
    )?;
    case.handler = req.handler.clone();
    case.returned_by = req.returned_by.clone();
    let recent = Vec::new();
    if hook == Hook::Routing {
        case.eligibility = match req.eligibility.clone() {
            Some(e) => Some(e),
            None => eligibility_plugin.and_then(|p| {
                let wc = case.to_wit();
                let e = runtime
                    .evaluate(
                        p,
                        &Input {
                            hook: Hook::Eligibility,
                            case: &wc,
                            now,
                            recent_cases: &recent,
                            directory,
                            timer: None,
                        },
                    )
                    .ok()?
                    .output?
                    .into_eligibility()?;
                Some(EligibilityOutcome {
                    grid_admissible: e.grid_admissible,
                    mediation: e.mediation.map(|m| Mediation {
                        track: mediation_track_name(m.track).into(),
                        unit: m.unit,
                    }),
                })
            }),
        };
    }
    let timer = match (hook, &req.timer) {
        (Hook::Escalation, None) => {
            return Err(ServiceError::Invalid(
                "an escalation dry run needs a `timer`".into(),
            ));
        }
        (_, t) => t.as_ref().map(|t| wit::Timer {
            kind: t.kind.into(),
            due_at: t.due_at,
            working_days_overdue: t.working_days_overdue,
        }),
    };
    let wc = case.to_wit();
    let input = Input {
        hook,
        case: &wc,
        now,
        recent_cases: &recent,
        directory,
        timer,
    };
    let result = runtime
        .evaluate(plugin, &input)
        .map(|e| done(plugin, hook, e));
    Ok(result.unwrap_or_else(|e| Outcome {
        plugin: plugin.id().clone(),
        hook,
        decision: serde_json::Value::Null,
        reasons: Vec::new(),
        fuel_used: e.fuel_used,
        duration_us: e.duration.as_micros() as u64,
        log: None,
        failure: Some(Failure {
            code: e.failure.code().into(),
            message: e.to_string(),
            detail: e.failure,
        }),
    }))
}

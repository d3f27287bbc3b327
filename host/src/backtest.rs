//! Backtesting a candidate version: the district's past cases in a time range, each
//! re-evaluated on its recorded input under both the candidate and the active version, and
//! the differences counted. Nothing is stored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::decide::RecordedInput;
use crate::model::{EventBody, Millis};
use crate::runtime::{Decision, Hook, Plugin, wit};
use crate::service::{Service, ServiceError};
use crate::store::Filter;

/// How much one backtest may do: it stops at whichever comes first and says so. A
/// dispatcher's backtest of a spinning version once held both cores for 23 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Past cases evaluated at most (the newest first).
    pub max_cases: usize,
    /// Wall-clock time at most.
    pub max_time: std::time::Duration,
}

impl Budget {
    /// A dispatcher's backtest.
    pub const DISPATCHER: Budget = Budget {
        max_cases: 2_000,
        max_time: std::time::Duration::from_secs(10),
    };
    /// What an activation compares, to say what the new version replaces: the newest
    /// cases, briefly (the activation waits for it).
    pub const PREVIEW: Budget = Budget {
        max_cases: 500,
        max_time: std::time::Duration::from_secs(5),
    };
    /// An admin's backtest.
    pub const ADMIN: Budget = Budget {
        max_cases: 100_000,
        max_time: std::time::Duration::from_secs(120),
    };
}

/// Districts with a backtest running: one at a time per district, so backtests cannot
/// take every core from the district's live decisions.
#[derive(Debug, Default)]
pub struct Running(parking_lot::Mutex<std::collections::HashSet<String>>);

struct RunningGuard<'a>(&'a Running, String);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.0.lock().remove(&self.1);
    }
}

/// What to backtest.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The candidate version.
    pub version: String,
    /// Cases created at or after (ms).
    #[serde(default)]
    pub from: Option<Millis>,
    /// Cases created before (ms).
    #[serde(default)]
    pub to: Option<Millis>,
    /// How many changed cases to list (default 20, at most 200).
    #[serde(default)]
    pub sample: Option<usize>,
}

/// A changed case: what would actually happen to it under each version — after the city
/// default stands in where a version has no opinion, as it does at intake.
#[derive(Debug, Clone, Serialize)]
pub struct Changed {
    /// The case.
    pub case: String,
    /// What changed: `routing` (lead or co-handlers), `deadline` (same units, other
    /// deadlines), `eligibility`, `escalation`, or `failure` (a version failed).
    pub kind: &'static str,
    /// The active version's effective outcome.
    pub active: String,
    /// The deadlines it sets (`defaults` when it keeps them; routing only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_deadlines: Option<String>,
    /// Its reason codes.
    pub active_reasons: Vec<String>,
    /// The active version had no opinion; this is the city default's decision.
    pub active_by_city_default: bool,
    /// The candidate's effective outcome.
    pub candidate: String,
    /// The deadlines it sets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_deadlines: Option<String>,
    /// Its reason codes.
    pub candidate_reasons: Vec<String>,
    /// The candidate had no opinion; this is the city default's decision.
    pub candidate_by_city_default: bool,
}

/// A case one of the versions failed on.
#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    /// The case.
    pub case: String,
    /// `active` or `candidate`.
    pub version: String,
    /// The typed failure, in words.
    pub failure: String,
}

/// Fuel used per decision: percentiles.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Fuel {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

/// What the backtest found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Cases in the range.
    pub cases: usize,
    /// Cases with a recorded decision of the hook, evaluated under both versions.
    pub evaluated: usize,
    /// Cases whose outcome changed.
    pub changed: usize,
    /// Counts per outcome change (`jiyang/yuehe/grid-01 → jiyang`; for a deadline change,
    /// `jiyang/dept/urban: deadlines resolution 1 working days → defaults`).
    pub changes: BTreeMap<String, usize>,
    /// Changed cases per kind (`routing`, `deadline`, `eligibility`, `escalation`,
    /// `failure`).
    pub by_kind: BTreeMap<&'static str, usize>,
    /// A sample of changed cases with their reason codes.
    pub sample: Vec<Changed>,
    /// Cases a version failed on.
    pub failures: Vec<Failed>,
    /// Fuel of the active version.
    pub fuel_active: Fuel,
    /// Fuel of the candidate.
    pub fuel_candidate: Fuel,
    /// Why it stopped before the end of the range, if it did (its budget).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Wall time.
    pub elapsed_ms: u64,
    /// Throughput.
    pub cases_per_second: f64,
}

/// One version's effective outcome for a case.
#[derive(Debug, Clone)]
struct Effective {
    /// What happens: the lead (with its co-handlers), the eligibility, or the actions.
    what: String,
    /// The deadlines a routing decision sets (`None` for the other hooks).
    deadlines: Option<String>,
    reasons: Vec<String>,
    /// Fuel the version itself used.
    fuel: u64,
    /// The version had no opinion and this is the city default's decision.
    by_city_default: bool,
}

type Outcome = Result<Effective, String>;

/// What a decision does, in words a dispatcher compares: (what, deadlines).
fn describe(d: &Decision) -> (String, Option<String>) {
    match d {
        Decision::Eligibility(d) => {
            let adm = match &d.admissibility {
                wit::Admissibility::Admissible => "admissible".to_string(),
                wit::Admissibility::Rejected(r) => {
                    format!("rejected:{:?}", r.reason).to_lowercase()
                }
                wit::Admissibility::Transferred(l) => format!("transferred:{l:?}").to_lowercase(),
            };
            let med = d
                .mediation
                .as_ref()
                .map(|m| format!(" mediation:{}", m.unit))
                .unwrap_or_default();
            (format!("{adm} grid:{}{med}", d.grid_admissible), None)
        }
        Decision::Routing(d) => {
            let what = if d.co_handlers.is_empty() {
                d.lead.clone()
            } else {
                format!("{} with {}", d.lead, d.co_handlers.join(", "))
            };
            (what, Some(deadlines(&d.deadlines)))
        }
        Decision::Escalation(d) => (format!("{:?}", d.actions), None),
    }
}

/// Deadline overrides in words; `defaults` when there are none.
fn deadlines(d: &wit::DeadlineOverrides) -> String {
    let span = |s: &wit::Span| match s {
        wit::Span::Minutes(m) => format!("{m} min"),
        wit::Span::WorkingDays(n) => format!("{n} working days"),
    };
    let mut parts: Vec<String> = [
        ("sign-off", &d.sign_off),
        ("first contact", &d.first_contact),
        ("resolution", &d.resolution),
    ]
    .into_iter()
    .filter_map(|(name, s)| s.as_ref().map(|s| format!("{name} {}", span(s))))
    .collect();
    if let Some(p) = d.warning_percent {
        parts.push(format!("warning at {p}%"));
    }
    if parts.is_empty() {
        "defaults".into()
    } else {
        parts.join(", ")
    }
}

/// Evaluates `plugin` on a recorded input; where it has no opinion, `fallback` (the city
/// default) decides, as at intake; where neither has one, the case goes to a person.
fn evaluate(
    svc: &Service,
    plugin: &Plugin,
    fallback: Option<&Plugin>,
    hook: Hook,
    input: &RecordedInput,
    dir: &Arc<crate::directory::Directory>,
) -> Outcome {
    if hook == Hook::Escalation && input.timer.is_none() {
        return Err("no timer recorded".into());
    }
    let call = input.call(hook, dir);
    let e = svc
        .runtime()
        .evaluate(plugin, &call)
        .map_err(|e| e.to_string())?;
    let fuel = e.fuel_used;
    let (decision, by_city_default) = match (e.output, fallback) {
        (Some(d), _) => (Some(d), false),
        (None, Some(city)) => (
            svc.runtime()
                .evaluate(city, &call)
                .map_err(|e| format!("the city default, standing in: {e}"))?
                .output,
            true,
        ),
        (None, None) => (None, false),
    };
    Ok(match decision {
        Some(d) => {
            let (what, deadlines) = describe(&d);
            Effective {
                what,
                deadlines,
                reasons: d.reasons().to_vec(),
                fuel,
                by_city_default,
            }
        }
        None => Effective {
            what: "no opinion: a person decides".into(),
            deadlines: None,
            reasons: vec![],
            fuel,
            by_city_default,
        },
    })
}

fn fuel(mut v: Vec<u64>) -> Fuel {
    if v.is_empty() {
        return Fuel::default();
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    Fuel {
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: *v.last().expect("not empty"),
    }
}

/// Runs a backtest of `req.version` for `district`'s `hook` on both cores, within `budget`;
/// one at a time per district (`running`).
pub fn run(
    svc: &Service,
    running: &Running,
    district: &str,
    hook: Hook,
    req: &Request,
    budget: Budget,
) -> Result<Report, ServiceError> {
    if !running.0.lock().insert(district.to_owned()) {
        return Err(ServiceError::Busy(format!(
            "a backtest of {district} is already running; wait for it to finish"
        )));
    }
    let _running = RunningGuard(running, district.to_owned());
    let started = Instant::now();
    let deadline = started + budget.max_time;
    let out_of_time = std::sync::atomic::AtomicBool::new(false);
    let candidate = svc.registry().plugin(district, hook, &req.version)?;
    let active = svc
        .registry()
        .resolve(district, hook)
        .map(|r| r.active.plugin.clone())
        .ok_or_else(|| {
            ServiceError::Invalid(format!(
                "no {} plug-in is active for {district}",
                hook.as_str()
            ))
        })?;
    // Where a version has no opinion the city default decides, as at intake.
    let city = svc
        .registry()
        .resolve(crate::registry::CITY, hook)
        .map(|r| r.active.plugin.clone());
    let mut ids = Vec::new();
    let filter = Filter {
        district: Some(district.to_owned()),
        created_from: req.from,
        created_to: req.to,
        ..Filter::default()
    };
    svc.store()
        .for_each_case(&filter, &mut |c: crate::model::Case| {
            ids.push((c.id, c.event_count))
        })?;
    let in_range = ids.len();
    ids.truncate(budget.max_cases);
    let sample_size = req.sample.unwrap_or(20).min(200);
    type Row = (String, Outcome, Outcome);
    let rows: Vec<Row> = std::thread::scope(|s| {
        let chunk = ids.len().div_ceil(2).max(1);
        let handles: Vec<_> = ids
            .chunks(chunk)
            .map(|part| {
                let (active, candidate, city) = (active.clone(), candidate.clone(), city.clone());
                let out_of_time = &out_of_time;
                s.spawn(move || -> Result<Vec<Row>, ServiceError> {
                    let mut out = Vec::new();
                    for (id, events) in part {
                        if Instant::now() >= deadline {
                            out_of_time.store(true, std::sync::atomic::Ordering::Relaxed);
                            break;
                        }
                        let history = svc.store().history_of(id, *events)?;
                        let Some(rec) = history.iter().rev().find_map(|e| match &e.what {
                            EventBody::Decision(r) if r.hook == hook => Some(r),
                            _ => None,
                        }) else {
                            continue;
                        };
                        let Ok(input) = rec.input.parse::<RecordedInput>() else {
                            continue;
                        };
                        let dir = svc.directory_version(rec.directory_version)?;
                        let a = evaluate(svc, &active, city.as_deref(), hook, &input, &dir);
                        let c = evaluate(svc, &candidate, city.as_deref(), hook, &input, &dir);
                        out.push((id.clone(), a, c));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(ServiceError::Unavailable(
                        "a backtest worker panicked".into(),
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.into_iter().flatten().collect())
    })?;
    let stopped = if out_of_time.load(std::sync::atomic::Ordering::Relaxed) {
        Some(format!(
            "stopped after {} s, its time budget, having evaluated {} of {in_range} cases",
            budget.max_time.as_secs(),
            rows.len()
        ))
    } else if in_range > budget.max_cases {
        Some(format!(
            "evaluated the newest {} of {in_range} cases, its case budget; narrow from/to for the rest",
            budget.max_cases
        ))
    } else {
        None
    };
    let mut report = Report {
        cases: in_range,
        evaluated: rows.len(),
        stopped,
        ..Report::default()
    };
    let (mut fa, mut fc) = (Vec::new(), Vec::new());
    for (id, a, c) in rows {
        for (which, r) in [("active", &a), ("candidate", &c)] {
            if let Err(f) = r {
                report.failures.push(Failed {
                    case: id.clone(),
                    version: which.into(),
                    failure: f.clone(),
                });
            }
        }
        if let Ok(e) = &a {
            fa.push(e.fuel);
        }
        if let Ok(e) = &c {
            fc.push(e.fuel);
        }
        let (kind, key) = match (&a, &c) {
            (Ok(x), Ok(y)) if x.what != y.what => (
                match hook {
                    Hook::Routing => "routing",
                    Hook::Eligibility => "eligibility",
                    Hook::Escalation => "escalation",
                },
                format!("{} → {}", x.what, y.what),
            ),
            (Ok(x), Ok(y)) if x.deadlines != y.deadlines => (
                "deadline",
                format!(
                    "{}: deadlines {} → {}",
                    x.what,
                    x.deadlines.as_deref().unwrap_or("defaults"),
                    y.deadlines.as_deref().unwrap_or("defaults")
                ),
            ),
            (Ok(_), Ok(_)) => continue,
            // Both failed: the candidate changes nothing.
            (Err(_), Err(_)) => continue,
            (Ok(x), Err(_)) => ("failure", format!("{} → failure", x.what)),
            (Err(_), Ok(y)) => ("failure", format!("failure → {}", y.what)),
        };
        report.changed += 1;
        *report.changes.entry(key).or_default() += 1;
        *report.by_kind.entry(kind).or_default() += 1;
        if report.sample.len() < sample_size {
            let side = |r: &Outcome| match r {
                Ok(e) => (
                    e.what.clone(),
                    e.deadlines.clone(),
                    e.reasons.clone(),
                    e.by_city_default,
                ),
                Err(_) => ("failure".into(), None, vec![], false),
            };
            let (active, active_deadlines, active_reasons, active_by_city_default) = side(&a);
            let (candidate, candidate_deadlines, candidate_reasons, candidate_by_city_default) =
                side(&c);
            report.sample.push(Changed {
                case: id,
                kind,
                active,
                active_deadlines,
                active_reasons,
                active_by_city_default,
                candidate,
                candidate_deadlines,
                candidate_reasons,
                candidate_by_city_default,
            });
        }
    }
    report.fuel_active = fuel(fa);
    report.fuel_candidate = fuel(fc);
    let took = started.elapsed();
    report.elapsed_ms = took.as_millis() as u64;
    report.cases_per_second = report.evaluated as f64 / took.as_secs_f64().max(1e-9);
    Ok(report)
}

/// What activating a version replaces: the version in force until now, and how the two
/// decide the district's newest past cases.
#[derive(Debug, Clone, Serialize)]
pub struct Replaced {
    /// The version in force until now.
    pub version: String,
    /// Its name.
    pub name: String,
    /// It is the city default, standing in for a district without its own.
    pub city_default: bool,
    /// The comparison on the newest past cases ([`Budget::PREVIEW`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compared: Option<Report>,
    /// Why they were not compared (a backtest of the district is running, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_compared: Option<String>,
}

/// What activating `version` on `district`'s `hook` would replace, compared on the newest
/// past cases; `None` where nothing is in force (or for the city's own slots, which have
/// no cases of their own).
pub fn what_it_replaces(
    svc: &Service,
    running: &Running,
    district: &str,
    hook: Hook,
    version: &str,
) -> Option<Replaced> {
    if district == crate::registry::CITY {
        return None;
    }
    let now = svc.registry().resolve(district, hook)?;
    let request = Request {
        version: version.to_owned(),
        from: None,
        to: None,
        sample: Some(10),
    };
    let (compared, not_compared) =
        match run(svc, running, district, hook, &request, Budget::PREVIEW) {
            Ok(report) => (Some(report), None),
            Err(e) => (None, Some(e.to_string())),
        };
    Some(Replaced {
        version: now.active.record.version.clone(),
        name: now.active.record.name.clone(),
        city_default: now.is_city_default,
        compared,
        not_compared,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;
    use crate::intake::NewCase;
    use crate::service::ServiceConfig;

    fn service_with_cases(dir: &std::path::Path, n: usize) -> (Service, String) {
        let svc = Service::open(
            &ServiceConfig::new(dir),
            Arc::new(ManualClock::new(1_796_000_400_000)),
        )
        .unwrap();
        svc.bootstrap(dir).unwrap();
        for i in 0..n {
            let new: NewCase = serde_json::from_value(serde_json::json!({
                "district": "jiyang", "category": "noise",
                "location": {"grid": "jiyang/yuehe/grid-01"},
                "caller": {"phone": format!("1310000{i:04}")}
            }))
            .unwrap();
            svc.intake(&new, "agent").unwrap();
        }
        let version = svc
            .registry()
            .resolve("jiyang", Hook::Routing)
            .unwrap()
            .active
            .record
            .version
            .clone();
        (svc, version)
    }

    fn request(version: &str) -> Request {
        Request {
            version: version.to_owned(),
            from: None,
            to: None,
            sample: None,
        }
    }

    #[test]
    fn a_backtest_stops_at_its_budget_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let (svc, v) = service_with_cases(dir.path(), 5);
        let running = Running::default();
        let all = run(
            &svc,
            &running,
            "jiyang",
            Hook::Routing,
            &request(&v),
            Budget::ADMIN,
        )
        .unwrap();
        assert_eq!(
            (all.cases, all.evaluated, all.stopped.as_deref()),
            (5, 5, None)
        );
        let few = Budget {
            max_cases: 3,
            max_time: Duration::from_secs(3600),
        };
        let r = run(&svc, &running, "jiyang", Hook::Routing, &request(&v), few).unwrap();
        assert_eq!((r.cases, r.evaluated), (5, 3));
        assert!(r.stopped.unwrap().contains("newest 3 of 5 cases"));
        let no_time = Budget {
            max_cases: 100,
            max_time: Duration::ZERO,
        };
        let r = run(
            &svc,
            &running,
            "jiyang",
            Hook::Routing,
            &request(&v),
            no_time,
        )
        .unwrap();
        assert_eq!(r.evaluated, 0);
        assert!(r.stopped.unwrap().contains("time budget"));
    }

    #[test]
    fn one_backtest_at_a_time_per_district() {
        let dir = tempfile::tempdir().unwrap();
        let (svc, v) = service_with_cases(dir.path(), 1);
        let running = Running::default();
        running.0.lock().insert("jiyang".into());
        let e = run(
            &svc,
            &running,
            "jiyang",
            Hook::Routing,
            &request(&v),
            Budget::ADMIN,
        )
        .unwrap_err();
        assert!(matches!(e, ServiceError::Busy(_)), "{e}");
        running.0.lock().clear();
        run(
            &svc,
            &running,
            "jiyang",
            Hook::Routing,
            &request(&v),
            Budget::ADMIN,
        )
        .unwrap();
        assert!(running.0.lock().is_empty(), "the guard lets go");
    }
}

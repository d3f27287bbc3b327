//! Backtesting a candidate version: the district's past cases in a time range, each
//! re-evaluated on its recorded input under both the candidate and the active version, and
//! the differences counted. Nothing is stored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::decide::RecordedInput;
use crate::model::{EventBody, Millis};
use crate::runtime::{Hook, Input, Plugin, wit};
use crate::service::{Service, ServiceError};
use crate::store::Filter;

/// What to backtest.
#[derive(Debug, Clone, Deserialize, Serialize)]
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

/// A changed case.
#[derive(Debug, Clone, Serialize)]
pub struct Changed {
    /// The case.
    pub case: String,
    /// The active version's outcome and reasons.
    pub active: String,
    /// Its reason codes.
    pub active_reasons: Vec<String>,
    /// The candidate's outcome.
    pub candidate: String,
    /// Its reason codes.
    pub candidate_reasons: Vec<String>,
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
    /// Counts per outcome change (`jiyang/yuehe/grid-01 → jiyang`).
    pub changes: BTreeMap<String, usize>,
    /// A sample of changed cases with their reason codes.
    pub sample: Vec<Changed>,
    /// Cases a version failed on.
    pub failures: Vec<Failed>,
    /// Fuel of the active version.
    pub fuel_active: Fuel,
    /// Fuel of the candidate.
    pub fuel_candidate: Fuel,
    /// Wall time.
    pub elapsed_ms: u64,
    /// Throughput.
    pub cases_per_second: f64,
}

type Outcome = Result<(String, Vec<String>, u64), String>;

fn evaluate(
    svc: &Service,
    plugin: &Plugin,
    hook: Hook,
    input: &RecordedInput,
    dir: &Arc<crate::directory::Directory>,
) -> Outcome {
    let call = Input {
        case: &input.case,
        now: input.now,
        recent_cases: &input.recent_cases,
        directory: dir,
    };
    let summary = |fuel: u64, s: String, r: Vec<String>| Ok((s, r, fuel));
    match hook {
        Hook::Eligibility => match svc.runtime.eligibility(plugin, &call) {
            Ok(e) => match e.output {
                Some(d) => {
                    let adm = match &d.admissibility {
                        wit::Admissibility::Admissible => "admissible".to_string(),
                        wit::Admissibility::Rejected(r) => {
                            format!("rejected:{:?}", r.reason).to_lowercase()
                        }
                        wit::Admissibility::Transferred(l) => {
                            format!("transferred:{l:?}").to_lowercase()
                        }
                    };
                    let med = d
                        .mediation
                        .as_ref()
                        .map(|m| format!(" mediation:{}", m.unit))
                        .unwrap_or_default();
                    summary(
                        e.fuel_used,
                        format!("{adm} grid:{}{med}", d.grid_admissible),
                        d.reasons,
                    )
                }
                None => summary(e.fuel_used, "no opinion".into(), vec![]),
            },
            Err(e) => Err(e.to_string()),
        },
        Hook::Routing => match svc.runtime.routing(plugin, &call) {
            Ok(e) => match e.output {
                Some(d) => summary(e.fuel_used, d.lead, d.reasons),
                None => summary(e.fuel_used, "no opinion".into(), vec![]),
            },
            Err(e) => Err(e.to_string()),
        },
        Hook::Escalation => {
            let Some(timer) = input.timer else {
                return Err("no timer recorded".into());
            };
            match svc.runtime.escalation(plugin, &call, &timer) {
                Ok(e) => match e.output {
                    Some(d) => summary(e.fuel_used, format!("{:?}", d.actions), d.reasons),
                    None => summary(e.fuel_used, "no opinion".into(), vec![]),
                },
                Err(e) => Err(e.to_string()),
            }
        }
    }
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

/// Runs a backtest of `req.version` for `district`'s `hook`, on both cores.
pub fn run(
    svc: &Service,
    district: &str,
    hook: Hook,
    req: &Request,
) -> Result<Report, ServiceError> {
    let started = Instant::now();
    let candidate = svc.registry.plugin(district, hook, &req.version)?;
    let active = svc
        .registry
        .resolve(district, hook)
        .map(|r| r.active.plugin.clone())
        .ok_or_else(|| {
            ServiceError::Invalid(format!(
                "no {} plug-in is active for {district}",
                hook.as_str()
            ))
        })?;
    let mut ids = Vec::new();
    let filter = Filter {
        district: Some(district.to_owned()),
        created_from: req.from,
        created_to: req.to,
        ..Filter::default()
    };
    svc.store
        .for_each_case(&filter, |c| ids.push((c.id, c.event_count)))?;
    let sample_size = req.sample.unwrap_or(20).min(200);
    type Row = (String, Outcome, Outcome);
    let rows: Vec<Row> = std::thread::scope(|s| {
        let chunk = ids.len().div_ceil(2).max(1);
        let handles: Vec<_> = ids
            .chunks(chunk)
            .map(|part| {
                let (active, candidate) = (active.clone(), candidate.clone());
                s.spawn(move || -> Result<Vec<Row>, ServiceError> {
                    let mut out = Vec::new();
                    for (id, events) in part {
                        let history = svc.store.history_of(id, *events)?;
                        let Some(rec) = history.iter().rev().find_map(|e| match &e.what {
                            EventBody::Decision(r) if r.hook == hook.as_str() => Some(r),
                            _ => None,
                        }) else {
                            continue;
                        };
                        let Ok(input) = rec.input.parse::<RecordedInput>() else {
                            continue;
                        };
                        let dir = svc.store.directory(rec.directory_version)?;
                        let a = evaluate(svc, &active, hook, &input, &dir);
                        let c = evaluate(svc, &candidate, hook, &input, &dir);
                        out.push((id.clone(), a, c));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("backtest worker panicked"))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.into_iter().flatten().collect())
    })?;
    let mut report = Report {
        cases: ids.len(),
        evaluated: rows.len(),
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
        let show = |r: &Outcome| {
            r.as_ref()
                .map(|(s, _, _)| s.clone())
                .unwrap_or_else(|_| "failure".into())
        };
        if let Ok((_, _, f)) = &a {
            fa.push(*f);
        }
        if let Ok((_, _, f)) = &c {
            fc.push(*f);
        }
        let (sa, sc) = (show(&a), show(&c));
        if sa != sc {
            report.changed += 1;
            *report.changes.entry(format!("{sa} → {sc}")).or_default() += 1;
            if report.sample.len() < sample_size {
                let reasons =
                    |r: &Outcome| r.as_ref().map(|(_, r, _)| r.clone()).unwrap_or_default();
                report.sample.push(Changed {
                    case: id,
                    active: sa,
                    active_reasons: reasons(&a),
                    candidate: sc,
                    candidate_reasons: reasons(&c),
                });
            }
        }
    }
    report.fuel_active = fuel(fa);
    report.fuel_candidate = fuel(fc);
    let took = started.elapsed();
    report.elapsed_ms = took.as_millis() as u64;
    report.cases_per_second = report.evaluated as f64 / took.as_secs_f64().max(1e-9);
    Ok(report)
}

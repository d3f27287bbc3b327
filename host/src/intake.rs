//! Intake: a new case runs the district's eligibility and then routing plug-ins and is
//! stored with its decision records in one durable write. A failing rule never loses a
//! case: it is stored and handed to the district desk for manual triage, with the failure
//! in its history.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::deadlines;
use crate::decide::{self, RecordedInput};
use crate::directory::{Directory, UnitKind};
use crate::lifecycle::{self, Action};
use crate::model::{
    Case, CaseKind, CaseStatus, Channel, Dispute, EligibilityOutcome, EventBody, Location,
    Mediation, Millis, Urgency, mediation_track_name,
};
use crate::runtime::{Hook, Input, wit};
use crate::service::{Service, ServiceError};
use crate::store::Change;

/// Longest description accepted.
pub const MAX_DESCRIPTION: usize = 4000;
/// Longest chamber-of-commerce name of a dispute party.
pub const MAX_CHAMBER: usize = 100;
/// How far back the caller's history reaches.
pub const RECENT_WINDOW_MS: i64 = 30 * 86_400_000;
/// The caller's most recent cases given to rules (enough for the repeat rules).
pub const MAX_RECENT: usize = 20;
/// The case that makes a repeat: the third from one caller and category in the window.
pub const REPEAT_THRESHOLD: usize = 3;

/// The caller, as given at intake. Only a keyed hash of the phone number is kept.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Caller {
    /// Phone number (hashed immediately, never stored).
    #[serde(default)]
    pub phone: Option<String>,
}

/// A new case as an intake channel submits it. Fields only the platform may set (status,
/// handler, ...) are not here, so a body carrying them is refused.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCase {
    /// The district (`jiyang`, ...).
    pub district: String,
    /// Service code.
    pub category: String,
    /// Kind; defaults to the category's.
    #[serde(default)]
    pub kind: Option<CaseKind>,
    /// Channel; defaults to `phone`.
    #[serde(default)]
    pub channel: Option<Channel>,
    /// Emergency time limits.
    #[serde(default)]
    pub urgent: bool,
    /// Where.
    #[serde(default)]
    pub location: Location,
    /// Who called.
    #[serde(default)]
    pub caller: Caller,
    /// Flags (`litigation`, `fire`, `repeat-no-new-facts`, ...).
    #[serde(default)]
    pub flags: Vec<String>,
    /// Dispute details.
    #[serde(default)]
    pub dispute: Option<Dispute>,
    /// What the citizen said.
    #[serde(default)]
    pub description: String,
}

fn invalid(m: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(m.into())
}

fn kind_of(s: &str) -> Option<CaseKind> {
    serde_json::from_value(serde_json::Value::String(s.into())).ok()
}

/// Checks a new case against the directory and builds the received case.
pub fn validate(
    dir: &Directory,
    new: &NewCase,
    id: String,
    caller_key: String,
    created_by: &str,
    now: Millis,
) -> Result<Case, ServiceError> {
    if !dir.is_district(&new.district) {
        return Err(invalid(format!(
            "`{}` is not a district; known: {}",
            new.district,
            dir.districts().join(", ")
        )));
    }
    let category = dir.category(&new.category).ok_or_else(|| {
        invalid(format!(
            "`{}` is not a service code of the category list",
            new.category
        ))
    })?;
    let mut location = new.location.clone();
    if let Some(g) = &location.grid {
        let unit = dir
            .unit(g)
            .filter(|u| u.kind == UnitKind::Grid)
            .ok_or_else(|| invalid(format!("`{g}` is not a grid")))?;
        if dir.district_of(g) != Some(new.district.as_str()) {
            return Err(invalid(format!(
                "grid `{g}` is not in district {}",
                new.district
            )));
        }
        match &location.community {
            Some(c) if unit.parent.as_deref() != Some(c.as_str()) => {
                return Err(invalid(format!("grid `{g}` is not in community `{c}`")));
            }
            None => location.community = unit.parent.clone(),
            _ => {}
        }
    }
    if let Some(c) = &location.community {
        let ok = dir
            .unit(c)
            .is_some_and(|u| matches!(u.kind, UnitKind::Community | UnitKind::Village));
        if !ok || dir.district_of(c) != Some(new.district.as_str()) {
            return Err(invalid(format!(
                "`{c}` is not a community or village of district {}",
                new.district
            )));
        }
    }
    for (v, lo, hi, name) in [
        (location.lat, -90.0, 90.0, "lat"),
        (location.lon, -180.0, 180.0, "lon"),
    ] {
        if v.is_some_and(|v| !(lo..=hi).contains(&v) || !v.is_finite()) {
            return Err(invalid(format!("{name} is out of range")));
        }
    }
    if let Some(a) = &location.address {
        crate::text::check("the address", a, 500).map_err(|e| invalid(e.to_string()))?;
    }
    crate::text::check("the description", &new.description, MAX_DESCRIPTION)
        .map_err(|e| invalid(e.to_string()))?;
    let mut flags = wit::CaseFlags::empty();
    for f in &new.flags {
        if f == "repeat" {
            return Err(invalid(
                "the `repeat` flag is set by the platform, not at intake",
            ));
        }
        flags |= wit::CaseFlags::from_name(f).ok_or_else(|| {
            invalid(format!(
                "unknown flag `{f}`; known: {}",
                wit::CaseFlags::all_names().collect::<Vec<_>>().join(", ")
            ))
        })?;
    }
    if let Some(d) = &new.dispute {
        if d.dispute_type.is_empty() || d.dispute_type.len() > 32 || d.chambers.len() > 8 {
            return Err(invalid(
                "dispute: the type must be 1-32 bytes and at most 8 parties given",
            ));
        }
        crate::text::check("the dispute type", &d.dispute_type, 32)
            .map_err(|e| invalid(e.to_string()))?;
        for chamber in d.chambers.iter().flatten() {
            crate::text::check("a party's chamber", chamber, MAX_CHAMBER)
                .map_err(|e| invalid(e.to_string()))?;
        }
    }
    let kind = match new.kind {
        Some(k) => k,
        None => kind_of(&category.default_kind).unwrap_or(CaseKind::Help),
    };
    let mut c = Case::received(
        id,
        new.district.clone(),
        new.category.clone(),
        created_by.to_owned(),
        now,
    );
    c.kind = kind;
    c.channel = new.channel.unwrap_or(Channel::Phone);
    c.urgency = if new.urgent {
        Urgency::Urgent
    } else {
        Urgency::Normal
    };
    c.location = location;
    c.caller_key = caller_key;
    c.flags = flags;
    c.dispute = new.dispute.clone();
    c.description = new.description.clone();
    Ok(c)
}

/// A keyed hash of a phone number: the same caller gets the same key, and the number
/// cannot be read back from it.
pub fn caller_key(secret: &[u8], phone: Option<&str>, fallback: &str) -> String {
    let digits: String = phone
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let mut h = Sha256::new();
    h.update(secret);
    h.update([0]);
    h.update(if digits.is_empty() {
        fallback.as_bytes()
    } else {
        digits.as_bytes()
    });
    format!("k{}", &hex::encode(h.finalize())[..31])
}

/// The caller's recent cases in `district`, as rules see them. Another district's cases
/// are not this district's business: its rules never see them, and neither does the
/// decision record its history shows (where they once named cases the viewer could not
/// open).
pub fn recent_cases(
    svc: &Service,
    caller_key: &str,
    district: &str,
    exclude: &str,
    now: Millis,
) -> Result<Vec<wit::RecentCase>, ServiceError> {
    Ok(svc
        .store
        // Read past other districts' cases (a caller with many elsewhere is rare).
        .caller_cases(caller_key, now - RECENT_WINDOW_MS, MAX_RECENT * 5)?
        .into_iter()
        .filter(|c| c.id != exclude && c.district == district)
        .take(MAX_RECENT)
        .map(|c| wit::RecentCase {
            id: c.id,
            category: c.category,
            status: c.status.into(),
            created_at: c.created_at,
            closed_at: matches!(c.status, CaseStatus::Closed | CaseStatus::Merged)
                .then_some(c.updated_at),
        })
        .collect())
}

type Events = Vec<(Millis, String, EventBody)>;

fn push_transition(
    case: &mut Case,
    action: Action,
    actor: &str,
    now: Millis,
    events: &mut Events,
) -> Result<(), ServiceError> {
    let next = lifecycle::apply(case, &action, now)?;
    events.push((
        now,
        actor.to_owned(),
        EventBody::Transition {
            action,
            from: case.status,
            to: next.status,
        },
    ));
    *case = next;
    Ok(())
}

/// A case just taken in, with the decisions that shaped it.
#[derive(Debug, Clone)]
pub struct Taken {
    /// The stored case.
    pub case: Case,
    /// What its rules decided, in order (the full records are in its history).
    pub decisions: Vec<Decided>,
}

/// One decision taken at intake, as a caller shows it: which rule, why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decided {
    /// `eligibility` or `routing`.
    pub hook: String,
    /// The plug-in and version that decided.
    pub plugin: crate::runtime::PluginRef,
    /// Reason codes.
    pub reasons: Vec<String>,
    /// The city default decided because the district's plug-in failed or had no opinion.
    pub fallback: bool,
}

impl Decided {
    /// What a decision record says, without its input and output.
    pub fn of(r: &crate::model::DecisionRecord) -> Decided {
        Decided {
            hook: r.hook.clone(),
            plugin: r.plugin.clone(),
            reasons: r.reasons.clone(),
            fallback: r.fallback,
        }
    }
}

/// Takes a case in: validate, eligibility, routing, one durable write.
pub fn intake(svc: &Service, new: &NewCase, actor: &str) -> Result<Taken, ServiceError> {
    let (case, events) = take_in(svc, new, actor)?;
    let decisions = events
        .iter()
        .filter_map(|(_, _, e)| match e {
            // Not the whole record: its input is large and already on its way to the store.
            EventBody::Decision(r) => Some(Decided::of(r)),
            _ => None,
        })
        .collect();
    let case = svc.store.create_case(Change { case, events })?;
    Ok(Taken { case, decisions })
}

fn take_in(svc: &Service, new: &NewCase, actor: &str) -> Result<(Case, Events), ServiceError> {
    let now = svc.clock.now();
    let dir = svc.directory()?;
    let id = svc.store.next_case_id()?;
    let key = caller_key(svc.caller_secret(), new.caller.phone.as_deref(), &id);
    let mut case = validate(&dir, new, id, key, actor, now)?;
    let recent = recent_cases(svc, &case.caller_key, &case.district, &case.id, now)?;
    let same_category = recent
        .iter()
        .filter(|r| r.category == case.category)
        .count();
    if same_category + 1 >= REPEAT_THRESHOLD {
        case.flags |= wit::CaseFlags::REPEAT;
    }
    let mut events: Events = vec![(
        now,
        actor.to_owned(),
        EventBody::Received {
            channel: case.channel,
        },
    )];
    let plugin_actor = |rec: &crate::model::DecisionRecord| format!("plugin:{}", rec.plugin.name);

    // Eligibility.
    let input = RecordedInput {
        case: case.to_wit(),
        now,
        recent_cases: recent.clone(),
        timer: None,
    };
    let elig = decide::decide(
        &svc.registry,
        &svc.metrics,
        &case.district,
        Hook::Eligibility,
        dir.version(),
        &input,
        now,
        false,
        |p| {
            svc.eval_eligibility(
                p,
                &Input {
                    case: &input.case,
                    now,
                    recent_cases: &input.recent_cases,
                    directory: &dir,
                },
            )
        },
    );
    let failed = elig.failed;
    let decision = elig.decision;
    for e in elig.events {
        let who = match &e {
            EventBody::Decision(r) => plugin_actor(r),
            _ => "system".into(),
        };
        events.push((now, who, e));
    }
    match decision {
        Some(d) => match d.admissibility {
            wit::Admissibility::Rejected(r) => {
                let reason = match &r.related_case {
                    Some(c) => format!("{:?} (repeat of {c})", r.reason),
                    None => format!("{:?}", r.reason),
                };
                push_transition(
                    &mut case,
                    Action::Reject { reason },
                    "system",
                    now,
                    &mut events,
                )?;
                return Ok((case, events));
            }
            wit::Admissibility::Transferred(line) => {
                let line = match line {
                    wit::EmergencyLine::Police => "110",
                    wit::EmergencyLine::Fire => "119",
                    wit::EmergencyLine::Ambulance => "120",
                    wit::EmergencyLine::TrafficPolice => "122",
                };
                push_transition(
                    &mut case,
                    Action::Transfer { line: line.into() },
                    "system",
                    now,
                    &mut events,
                )?;
                return Ok((case, events));
            }
            wit::Admissibility::Admissible => {
                case.eligibility = Some(EligibilityOutcome {
                    grid_admissible: d.grid_admissible,
                    mediation: d.mediation.map(|m| Mediation {
                        track: mediation_track_name(m.track).into(),
                        unit: m.unit,
                    }),
                });
            }
        },
        None if failed => {}
        None => {
            case.eligibility = Some(EligibilityOutcome {
                grid_admissible: false,
                mediation: None,
            })
        }
    }
    push_transition(
        &mut case,
        Action::QueueForDispatch,
        "system",
        now,
        &mut events,
    )?;
    if failed {
        manual_triage(svc, &mut case, now, &mut events)?;
    } else {
        route(svc, &dir, &mut case, &recent, now, &mut events)?;
    }
    if case.flags.contains(wit::CaseFlags::REPEAT) {
        // Handed to escalation at once: the sweep fires a timer that is already due.
        case.timers.push(crate::model::PendingTimer {
            kind: crate::model::TimerKind::Repeat,
            due_at: now,
        });
    }
    Ok((case, events))
}

/// Sends a pending case to its district desk for a person to triage.
fn manual_triage(
    svc: &Service,
    case: &mut Case,
    now: Millis,
    events: &mut Events,
) -> Result<(), ServiceError> {
    let none = wit::DeadlineOverrides {
        sign_off: None,
        first_contact: None,
        resolution: None,
        warning_percent: None,
    };
    let (deadlines, timers) =
        deadlines::at_dispatch(&svc.calendar, now, case.kind, case.urgency, &none);
    let action = Action::Dispatch {
        lead: case.district.clone(),
        co_handlers: vec![],
        deadlines,
        timers,
    };
    push_transition(case, action, "system", now, events)
}

/// Runs routing for a case pending dispatch and dispatches it (or sends it to manual
/// triage when routing fails). Used at intake, after a return and after a reopen.
pub fn route(
    svc: &Service,
    dir: &std::sync::Arc<Directory>,
    case: &mut Case,
    recent: &[wit::RecentCase],
    now: Millis,
    events: &mut Events,
) -> Result<(), ServiceError> {
    let input = RecordedInput {
        case: case.to_wit(),
        now,
        recent_cases: recent.to_vec(),
        timer: None,
    };
    let routed = decide::decide(
        &svc.registry,
        &svc.metrics,
        &case.district,
        Hook::Routing,
        dir.version(),
        &input,
        now,
        false,
        |p| {
            svc.eval_routing(
                p,
                &Input {
                    case: &input.case,
                    now,
                    recent_cases: &input.recent_cases,
                    directory: dir,
                },
            )
        },
    );
    for e in routed.events {
        let who = match &e {
            EventBody::Decision(r) => format!("plugin:{}", r.plugin.name),
            _ => "system".into(),
        };
        events.push((now, who, e));
    }
    let Some(r) = routed.decision else {
        return manual_triage(svc, case, now, events);
    };
    let (deadlines, timers) =
        deadlines::at_dispatch(&svc.calendar, now, case.kind, case.urgency, &r.deadlines);
    let action = Action::Dispatch {
        lead: r.lead,
        co_handlers: r.co_handlers,
        deadlines,
        timers,
    };
    push_transition(case, action, "system", now, events)
}

//! How a case moves through its rules: intake (eligibility, then routing, one durable
//! write) and routing again after a return or a reopen. A failing rule never loses a case:
//! it is stored and handed to the district desk for manual triage, with the failure in its
//! history. Every change goes through the state machine ([`lifecycle::apply`]).

use std::sync::Arc;

use super::{Service, ServiceError};
use crate::deadlines;
use crate::decide::{self, RecordedInput};
use crate::directory::Directory;
use crate::intake::{self, MAX_RECENT, NewCase, RECENT_WINDOW_MS, REPEAT_THRESHOLD};
use crate::lifecycle::{self, Action};
use crate::model::{
    Case, CaseStatus, DecisionSummary, EligibilityOutcome, EventBody, Mediation, Millis,
    PendingTimer, TimerKind, mediation_track_name,
};
use crate::runtime::{Hook, wit};
use crate::store::Change;

/// Events of a write being prepared: when, who, what.
pub(crate) type Events = Vec<(Millis, String, EventBody)>;

/// A case just taken in, with the decisions that shaped it.
#[derive(Debug, Clone)]
pub struct Taken {
    /// The stored case.
    pub case: Case,
    /// What its rules decided, in order (the full records are in its history).
    pub decisions: Vec<DecisionSummary>,
}

/// The caller's recent cases in `district`, as rules see them. Another district's cases
/// are not this district's business: its rules never see them, and neither does the
/// decision record its history shows (where they once named cases the viewer could not
/// open).
pub(crate) fn recent_cases(
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

/// Applies `action` and records it as a transition by `actor`.
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

/// Runs one hook for `case` with the host's fallbacks; its events join `events`.
fn decide(
    svc: &Service,
    hook: Hook,
    dir: &Arc<Directory>,
    input: &RecordedInput,
    now: Millis,
    events: &mut Events,
) -> decide::Decided {
    let evaluate = |p: &crate::runtime::Plugin, i: &crate::runtime::Input<'_>| svc.evaluate(p, i);
    let mut decided = decide::decide(
        &decide::Deciders {
            registry: &svc.registry,
            metrics: &svc.metrics,
            evaluate: &evaluate,
        },
        &decide::Request {
            district: &input.case.district,
            hook,
            directory: dir,
            input,
            now,
            city_default_on_failure: false,
        },
    );
    events.extend(
        std::mem::take(&mut decided.events)
            .into_iter()
            .map(|(who, e)| (now, who, e)),
    );
    decided
}

/// Takes a case in: validate, eligibility, routing, one durable write.
pub(crate) fn take_in(svc: &Service, new: &NewCase, actor: &str) -> Result<Taken, ServiceError> {
    let now = svc.clock.now();
    let dir = svc.directory()?;
    let id = svc.store.next_case_id()?;
    let key = intake::caller_key(svc.caller_secret(), new.caller.phone.as_deref(), &id);
    let mut case = intake::validate(&dir, new, id, key, actor, now)?;
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
    let input = RecordedInput {
        case: case.to_wit(),
        now,
        recent_cases: recent.clone(),
        timer: None,
    };
    let elig = decide(svc, Hook::Eligibility, &dir, &input, now, &mut events);
    let failed = elig.failed;
    match elig.decision.and_then(|d| d.into_eligibility()) {
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
                return store_new(svc, case, events);
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
                return store_new(svc, case, events);
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
        let timer = PendingTimer {
            kind: TimerKind::Repeat,
            due_at: now,
        };
        case = lifecycle::apply(&case, &Action::SetTimer { timer }, now)?;
    }
    store_new(svc, case, events)
}

/// The one durable write of a new case.
fn store_new(svc: &Service, case: Case, events: Events) -> Result<Taken, ServiceError> {
    let decisions = events
        .iter()
        .filter_map(|(_, _, e)| match e {
            // Not the whole record: its input is large and already on its way to the store.
            EventBody::Decision(r) => Some(DecisionSummary::of(r)),
            _ => None,
        })
        .collect();
    let case = svc.store.create_case(Change { case, events })?;
    Ok(Taken { case, decisions })
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
pub(crate) fn route(
    svc: &Service,
    dir: &Arc<Directory>,
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
    let routed = decide(svc, Hook::Routing, dir, &input, now, events);
    let Some(r) = routed.decision.and_then(|d| d.into_routing()) else {
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

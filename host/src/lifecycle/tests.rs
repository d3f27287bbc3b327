use proptest::prelude::*;

use super::*;
use crate::model::{Case, CaseStatus as S};
use crate::store::sled::{Durability, SledStore as Store};
use crate::store::{CaseStore, Change};

const T0: i64 = 1_796_000_400_000;

pub(crate) fn fresh(id: &str) -> Case {
    let mut c = Case::received(
        id.into(),
        "jiyang".into(),
        "noise".into(),
        "agent-1".into(),
        T0,
    );
    c.caller_key = "k1".into();
    c
}

fn dispatch(lead: &str) -> Action {
    Action::Dispatch {
        lead: lead.into(),
        co_handlers: vec![],
        deadlines: Deadlines {
            sign_off: Some(T0 + 1000),
            ..Deadlines::default()
        },
        timers: vec![
            PendingTimer {
                kind: TimerKind::SignOff,
                due_at: T0 + 1000,
            },
            PendingTimer {
                kind: TimerKind::FirstContact,
                due_at: T0 + 2000,
            },
            PendingTimer {
                kind: TimerKind::Resolution,
                due_at: T0 + 9000,
            },
        ],
    }
}

fn run(c: &Case, actions: &[Action]) -> Result<Case, LifecycleError> {
    actions
        .iter()
        .try_fold(c.clone(), |c, a| apply(&c, a, T0 + 1))
}

#[test]
fn the_closed_loop_runs_from_received_to_closed() {
    let c = run(
        &fresh("c-1"),
        &[
            Action::QueueForDispatch,
            dispatch("jiyang/yuehe/grid-01"),
            Action::Sign {
                unit: "jiyang/yuehe/grid-01".into(),
            },
            Action::Start,
            Action::Reply {
                text: "the stall now closes at 22:00".into(),
            },
            Action::Callback {
                satisfied: true,
                resolved: true,
                note: String::new(),
            },
            Action::Close,
        ],
    )
    .unwrap();
    assert_eq!(c.status, S::Closed);
    assert!(c.timers.is_empty());
    assert!(c.satisfaction.unwrap().satisfied);
}

#[test]
fn signing_and_starting_stop_their_timers() {
    let c = run(
        &fresh("c-1"),
        &[
            Action::QueueForDispatch,
            dispatch("g"),
            Action::Sign { unit: "g".into() },
        ],
    )
    .unwrap();
    assert!(c.timers.iter().all(|t| t.kind != TimerKind::SignOff));
    let c = apply(&c, &Action::Start, T0).unwrap();
    assert_eq!(
        c.timers.iter().map(|t| t.kind).collect::<Vec<_>>(),
        [TimerKind::Resolution]
    );
}

#[test]
fn illegal_actions_name_the_state_and_the_action() {
    let c = fresh("c-9");
    let e = apply(&c, &Action::Sign { unit: "g".into() }, T0).unwrap_err();
    assert_eq!((e.status, e.action), (S::Received, "sign"));
    assert_eq!(
        e.to_string(),
        "cannot sign case c-9 while it is received: only allowed when the case is dispatched"
    );
    let d = run(&c, &[Action::QueueForDispatch, dispatch("g")]).unwrap();
    let e = apply(
        &d,
        &Action::Sign {
            unit: "other".into(),
        },
        T0,
    )
    .unwrap_err();
    assert!(
        e.why
            .contains("unit other is not the handler (the handler is g)"),
        "{e}"
    );
    let e = apply(
        &d,
        &Action::Return {
            unit: "g".into(),
            reason: "  ".into(),
        },
        T0,
    )
    .unwrap_err();
    assert!(e.why.contains("return reason must not be empty"));
    assert!(
        apply(&c, &Action::Transfer { line: "911".into() }, T0)
            .unwrap_err()
            .why
            .contains("not an emergency line")
    );
    assert!(apply(&d, &Action::Merge { into: "c-9".into() }, T0).is_err());
}

#[test]
fn a_return_clears_the_handler_and_remembers_who_returned() {
    let c = run(
        &fresh("c-1"),
        &[
            Action::QueueForDispatch,
            dispatch("g"),
            Action::Return {
                unit: "g".into(),
                reason: "not a grid matter".into(),
            },
        ],
    )
    .unwrap();
    assert_eq!(c.status, S::PendingDispatch);
    assert_eq!(
        (c.handler, c.returned_by, c.timers.len()),
        (None, vec!["g".to_string()], 0)
    );
}

#[test]
fn extensions_are_requested_then_approved_or_refused_once() {
    let c = run(
        &fresh("c-1"),
        &[
            Action::QueueForDispatch,
            dispatch("g"),
            Action::Sign { unit: "g".into() },
        ],
    )
    .unwrap();
    let c = apply(
        &c,
        &Action::RequestExtension {
            days: 3,
            reason: "waiting for parts".into(),
        },
        T0,
    )
    .unwrap();
    assert!(
        apply(
            &c,
            &Action::RequestExtension {
                days: 3,
                reason: "again".into()
            },
            T0
        )
        .is_err()
    );
    let later = Action::ApproveExtension {
        resolution: T0 + 99_000,
        timers: vec![PendingTimer {
            kind: TimerKind::Resolution,
            due_at: T0 + 99_000,
        }],
    };
    let approved = apply(&c, &later, T0).unwrap();
    assert_eq!(approved.deadlines.resolution, Some(T0 + 99_000));
    assert_eq!(
        approved
            .timers
            .iter()
            .filter(|t| t.kind == TimerKind::Resolution)
            .count(),
        1
    );
    assert!(
        apply(&approved, &later, T0)
            .unwrap_err()
            .why
            .contains("no pending extension")
    );
    let refused = apply(
        &c,
        &Action::RefuseExtension {
            reason: "not justified".into(),
        },
        T0,
    )
    .unwrap();
    assert_eq!(refused.extension.unwrap().approved, Some(false));
}

#[test]
fn reopen_after_unsatisfied_callback_goes_back_to_dispatch() {
    let c = run(
        &fresh("c-1"),
        &[
            Action::QueueForDispatch,
            dispatch("g"),
            Action::Sign { unit: "g".into() },
            Action::Reply {
                text: "done".into(),
            },
            Action::Callback {
                satisfied: false,
                resolved: false,
                note: "still noisy".into(),
            },
            Action::Reopen {
                reason: "citizen not satisfied".into(),
            },
        ],
    )
    .unwrap();
    assert_eq!(
        (c.status, c.reopen_count, c.handler),
        (S::PendingDispatch, 1, None)
    );
}

// ---- property test: the lifecycle through the store against an in-memory model ----

#[derive(Debug, Clone)]
enum Step {
    Queue,
    Reject,
    Dispatch(u8),
    Sign(bool),
    Start,
    Reply,
    Return(bool),
    RequestExt,
    ApproveExt,
    Callback(bool),
    Close,
    Reopen,
    Merge,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        Just(Step::Queue),
        Just(Step::Reject),
        (0u8..3).prop_map(Step::Dispatch),
        any::<bool>().prop_map(Step::Sign),
        Just(Step::Start),
        Just(Step::Reply),
        any::<bool>().prop_map(Step::Return),
        Just(Step::RequestExt),
        Just(Step::ApproveExt),
        any::<bool>().prop_map(Step::Callback),
        Just(Step::Close),
        Just(Step::Reopen),
        Just(Step::Merge),
    ]
}

/// The reference model: what the domain page says, written independently of `apply`.
#[derive(Debug, Clone, PartialEq)]
struct Model {
    status: S,
    handler: Option<String>,
    returned: Vec<String>,
    ext_pending: bool,
    reopens: u32,
    version: u64,
}

impl Model {
    /// The action for a step, and the model after it if the step is legal.
    fn step(&self, s: &Step) -> (Action, Option<Model>) {
        let unit = |i: u8| format!("jiyang/yuehe/grid-0{}", i + 1);
        let mut m = self.clone();
        m.version += 1;
        let h = self.handler.clone().unwrap_or_default();
        let ok = |legal: bool, m: Model| if legal { Some(m) } else { None };
        match s {
            Step::Queue => (
                Action::QueueForDispatch,
                ok(
                    self.status == S::Received,
                    Model {
                        status: S::PendingDispatch,
                        ..m
                    },
                ),
            ),
            Step::Reject => (
                Action::Reject {
                    reason: "in litigation".into(),
                },
                ok(
                    self.status == S::Received,
                    Model {
                        status: S::Rejected,
                        ..m
                    },
                ),
            ),
            Step::Dispatch(i) => (
                dispatch(&unit(*i)),
                ok(
                    self.status == S::PendingDispatch,
                    Model {
                        status: S::Dispatched,
                        handler: Some(unit(*i)),
                        ..m
                    },
                ),
            ),
            Step::Sign(right) => {
                let who = if *right {
                    h.clone()
                } else {
                    "someone-else".into()
                };
                (
                    Action::Sign { unit: who },
                    ok(
                        self.status == S::Dispatched && *right,
                        Model {
                            status: S::Signed,
                            ..m
                        },
                    ),
                )
            }
            Step::Start => (
                Action::Start,
                ok(
                    self.status == S::Signed,
                    Model {
                        status: S::InProgress,
                        ..m
                    },
                ),
            ),
            Step::Reply => (
                Action::Reply {
                    text: "fixed".into(),
                },
                ok(
                    matches!(self.status, S::Signed | S::InProgress),
                    Model {
                        status: S::Replied,
                        ..m
                    },
                ),
            ),
            Step::Return(right) => {
                let who = if *right {
                    h.clone()
                } else {
                    "someone-else".into()
                };
                let mut returned = self.returned.clone();
                returned.push(who.clone());
                (
                    Action::Return {
                        unit: who,
                        reason: "not ours".into(),
                    },
                    ok(
                        matches!(self.status, S::Dispatched | S::Signed) && *right,
                        Model {
                            status: S::PendingDispatch,
                            handler: None,
                            returned,
                            ext_pending: false,
                            ..m
                        },
                    ),
                )
            }
            Step::RequestExt => (
                Action::RequestExtension {
                    days: 2,
                    reason: "parts".into(),
                },
                ok(
                    matches!(self.status, S::Signed | S::InProgress) && !self.ext_pending,
                    Model {
                        ext_pending: true,
                        ..m
                    },
                ),
            ),
            Step::ApproveExt => (
                Action::ApproveExtension {
                    resolution: T0 + 1_000_000 + self.version as i64,
                    timers: vec![],
                },
                ok(
                    self.ext_pending,
                    Model {
                        ext_pending: false,
                        ..m
                    },
                ),
            ),
            Step::Callback(sat) => (
                Action::Callback {
                    satisfied: *sat,
                    resolved: *sat,
                    note: String::new(),
                },
                ok(
                    self.status == S::Replied,
                    Model {
                        status: S::Callback,
                        ..m
                    },
                ),
            ),
            Step::Close => (
                Action::Close,
                ok(
                    self.status == S::Callback,
                    Model {
                        status: S::Closed,
                        ..m
                    },
                ),
            ),
            Step::Reopen => (
                Action::Reopen {
                    reason: "not resolved".into(),
                },
                ok(
                    matches!(self.status, S::Callback | S::Closed),
                    Model {
                        status: S::PendingDispatch,
                        handler: None,
                        ext_pending: false,
                        reopens: self.reopens + 1,
                        ..m
                    },
                ),
            ),
            Step::Merge => (
                Action::Merge {
                    into: "c-0000000001".into(),
                },
                ok(
                    !matches!(
                        self.status,
                        S::Rejected | S::Transferred | S::AnsweredAtIntake | S::Closed | S::Merged
                    ),
                    Model {
                        status: S::Merged,
                        ..m
                    },
                ),
            ),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn lifecycle_through_the_store_matches_the_model(steps in proptest::collection::vec(step(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), Durability::Unsafe).unwrap();
        let id = "c-0000000002";
        store.create_case(Change { case: fresh(id), events: vec![] }).unwrap();
        let mut model = Model { status: S::Received, handler: None, returned: vec![], ext_pending: false, reopens: 0, version: 1 };
        for s in &steps {
            let (action, next) = model.step(s);
            let before = store.get_case(id).unwrap().unwrap();
            let result = store.update_case(id, Some(model.version), &|c| {
                Ok(Change { case: apply(c, &action, T0 + 5)?, events: vec![] })
            });
            match next {
                Some(next) => {
                    let c = result.unwrap_or_else(|e| panic!("{s:?} should be legal in {:?}: {e}", model.status));
                    model = next;
                    prop_assert_eq!(c.status, model.status);
                    prop_assert_eq!(&c.handler, &model.handler);
                    prop_assert_eq!(&c.returned_by, &model.returned);
                    prop_assert_eq!(c.reopen_count, model.reopens);
                    prop_assert_eq!(c.version, model.version);
                    if c.status.is_terminal() { prop_assert!(c.timers.is_empty()); }
                }
                None => {
                    prop_assert!(result.is_err(), "{:?} should be refused in {:?}", s, model.status);
                    prop_assert_eq!(store.get_case(id).unwrap().unwrap(), before, "a refused action changes nothing");
                }
            }
        }
        let report = store.check_consistency().unwrap();
        prop_assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}

/// A legal-looking instance of the API action `name` for `c` (handler as the unit, text
/// filled in), so only the case's state decides whether `apply` accepts it.
fn sample(name: &str, c: &Case) -> Action {
    let unit = c.handler.clone().unwrap_or_default();
    let reason = "checked".to_string();
    match name {
        "sign" => Action::Sign { unit },
        "start" => Action::Start,
        "reply" => Action::Reply { text: reason },
        "return" => Action::Return { unit, reason },
        "request-extension" => Action::RequestExtension { days: 2, reason },
        "approve-extension" => Action::ApproveExtension {
            // The service always moves the deadline later (by the days asked for).
            resolution: c.deadlines.resolution.unwrap_or(T0) + 86_400_000,
            timers: vec![],
        },
        "refuse-extension" => Action::RefuseExtension { reason },
        "pause" => Action::Pause { reason },
        "resume" => Action::Resume {
            timers: vec![],
            deadlines: c.deadlines.clone(),
        },
        "callback" => Action::Callback {
            satisfied: true,
            resolved: true,
            note: String::new(),
        },
        "close" => Action::Close,
        "reopen" => Action::Reopen { reason },
        "merge" => Action::Merge {
            into: "case-other".into(),
        },
        other => panic!("no sample for {other}"),
    }
}

const API_ACTIONS: [&str; 13] = [
    "sign",
    "start",
    "reply",
    "return",
    "request-extension",
    "approve-extension",
    "refuse-extension",
    "pause",
    "resume",
    "callback",
    "close",
    "reopen",
    "merge",
];

proptest! {
    /// What `offered` lists is exactly what `apply` accepts, in every state a random walk
    /// reaches: a console button never leads to a state-machine refusal, and no legal
    /// action is hidden.
    #[test]
    fn offered_actions_are_exactly_the_legal_ones(walk in proptest::collection::vec(0usize..API_ACTIONS.len(), 0..30)) {
        let mut c = run(&fresh("case-1"), &[Action::QueueForDispatch, dispatch("jiyang/yuehe/grid-01")]).unwrap();
        for pick in walk {
            let offered = crate::actions::offered(&c);
            for name in API_ACTIONS {
                let accepted = apply(&c, &sample(name, &c), T0 + 5).is_ok();
                prop_assert_eq!(offered.contains(&name), accepted, "{} in {:?} (paused {:?})", name, c.status, c.paused_at);
            }
            if c.status == S::PendingDispatch {
                c = apply(&c, &dispatch("jiyang/yuehe/grid-02"), T0 + 5).unwrap();
            } else if let Ok(next) = apply(&c, &sample(API_ACTIONS[pick], &c), T0 + 5) {
                c = next;
            }
        }
    }
}

/// What must hold of a case whatever changed it: a person or an escalation.
fn invariants(c: &Case) -> Result<(), String> {
    if c.status.is_terminal() && !c.timers.is_empty() {
        return Err(format!("{} with timers {:?}", c.status, c.timers));
    }
    if let Some(h) = &c.handler
        && c.co_handlers.contains(h)
    {
        return Err(format!("{h} is lead and co-handler"));
    }
    let worked = matches!(
        c.status,
        S::Dispatched | S::Signed | S::InProgress | S::Replied | S::Callback
    );
    if worked && c.handler.is_none() {
        return Err(format!("{} without a handler", c.status));
    }
    if c.paused_at.is_some() && !c.timers.is_empty() {
        return Err("paused with running timers".into());
    }
    let mut kinds: Vec<_> = c.timers.iter().map(|t| t.kind).collect();
    kinds.sort();
    kinds.dedup();
    if kinds.len() != c.timers.len() {
        return Err(format!("two timers of one kind: {:?}", c.timers));
    }
    Ok(())
}

/// An escalation action as the sweep applies it, chosen by `pick`.
fn escalation(pick: usize, c: &Case) -> Action {
    match pick % 5 {
        0 => Action::Supervise {
            unit: "jiyang".into(),
        },
        1 => Action::Mark {
            name: "repeat".into(),
        },
        2 => Action::SetDeadline {
            kind: TimerKind::Resolution,
            due_at: T0 + 50_000,
        },
        3 => Action::SetDeadline {
            kind: TimerKind::SignOff,
            due_at: T0 - 1,
        },
        _ => Action::MoveTo {
            unit: if c.handler.as_deref() == Some("jiyang/yuehe") {
                "jiyang".into()
            } else {
                "jiyang/yuehe".into()
            },
            sign_off: T0 + 86_400_000,
        },
    }
}

proptest! {
    /// Escalation actions obey the same rules as people's: in any state a random walk of
    /// people's actions and timer firings reaches, an escalation action either is refused
    /// (nothing changes) or leaves a case that every invariant holds of — a terminal case
    /// is never moved or given a deadline, a move lands in a state people can also reach,
    /// and only a move raises the escalation level.
    #[test]
    fn escalation_actions_keep_the_state_machine_rules(
        walk in proptest::collection::vec((0usize..API_ACTIONS.len(), 0usize..10, any::<bool>()), 0..40)
    ) {
        let mut c = run(&fresh("case-1"), &[Action::QueueForDispatch, dispatch("jiyang/yuehe/grid-01")]).unwrap();
        for (person, esc, fire) in walk {
            if c.status == S::PendingDispatch {
                c = apply(&c, &dispatch("jiyang/yuehe/grid-02"), T0 + 5).unwrap();
            }
            if fire && let Some(timer) = c.timers.first().copied() {
                // As the sweep does: consume the timer, then apply its escalation.
                let fired = apply(&c, &Action::TimerFired { timer }, T0 + 5).unwrap();
                prop_assert!(!fired.timers.contains(&timer));
                let a = escalation(esc, &fired);
                let before = fired.clone();
                match apply(&fired, &a, T0 + 5) {
                    Ok(next) => {
                        prop_assert!(invariants(&next).is_ok(), "{:?} after {:?}: {:?}", invariants(&next), a, next);
                        prop_assert!(!before.status.is_terminal() || next.status == before.status);
                        let raised = next.escalation_level != before.escalation_level;
                        prop_assert_eq!(raised, matches!(a, Action::MoveTo { .. }));
                        if raised {
                            prop_assert_eq!(next.status, S::Dispatched);
                        }
                        c = next;
                    }
                    Err(_) => c = fired,
                }
            } else if let Ok(next) = apply(&c, &sample(API_ACTIONS[person], &c), T0 + 5) {
                prop_assert!(invariants(&next).is_ok(), "{:?}: {:?}", invariants(&next), next);
                c = next;
            }
        }
    }
}

#[test]
fn escalation_actions_refuse_what_the_state_machine_refuses() {
    let open = run(
        &fresh("c-e"),
        &[Action::QueueForDispatch, dispatch("jiyang/yuehe/grid-01")],
    )
    .unwrap();
    let mut closed = open.clone();
    closed.status = S::Closed;
    closed.timers.clear();
    let later = Action::SetDeadline {
        kind: TimerKind::Resolution,
        due_at: T0 + 10_000,
    };
    assert!(
        apply(&closed, &later, T0 + 5).is_err(),
        "no deadline on a closed case"
    );
    assert!(
        apply(
            &open,
            &Action::SetDeadline {
                kind: TimerKind::Resolution,
                due_at: T0
            },
            T0 + 5
        )
        .is_err(),
        "not in the past"
    );
    let moved = apply(
        &open,
        &Action::MoveTo {
            unit: "jiyang/yuehe".into(),
            sign_off: T0 + 99,
        },
        T0 + 5,
    )
    .unwrap();
    assert_eq!(
        (
            moved.status,
            moved.escalation_level,
            moved.deadlines.sign_off
        ),
        (S::Dispatched, 1, Some(T0 + 99))
    );
    assert!(
        apply(
            &moved,
            &Action::MoveTo {
                unit: "jiyang/yuehe".into(),
                sign_off: T0 + 99
            },
            T0 + 5
        )
        .is_err(),
        "already there"
    );
    assert!(
        apply(
            &closed,
            &Action::MoveTo {
                unit: "jiyang".into(),
                sign_off: T0 + 99
            },
            T0 + 5
        )
        .is_err(),
        "not a closed case"
    );
    let gone = PendingTimer {
        kind: TimerKind::Overdue,
        due_at: 1,
    };
    assert!(apply(&open, &Action::TimerFired { timer: gone }, T0 + 5).is_err());
}

//! Assessment (考核): the rates a hotline centre judges its units by, from the event log.
//!
//! Every rate is a numerator over a denominator, each a count of *facts*. A fact is one
//! thing a unit did or owes — a dispatch it received, a sign-off deadline it met or missed,
//! a callback about its work — attributed to the unit that was the case's handler when it
//! happened, and to a time: the event's, or, for a deadline, the deadline's (so a month's
//! on-time rates are about the deadlines that fell in it, and are final once it is over).
//!
//! Facts are derived here, once, in two ways that must agree:
//! - [`event_facts`]: what a write's new events add, starting from the case as it was;
//! - [`open_facts`]: deadlines the case still owes, from the case as it stands (replaced on
//!   every write; a met deadline becomes an event fact, a missed one stays open and counts
//!   in its month's denominator).
//!
//! The store keeps both with each write, so a month's figures are a count over that
//! month's facts, never a walk of the cases; [`case_facts`] derives all of one case's facts
//! from its whole history, which is how a store builds them for cases written before it
//! kept them, and how the tests recompute a month.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{Action, Case, CaseStatus, Deadlines, Event, EventBody, Millis};

/// What a fact counts toward.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Measure {
    /// A case dispatched (or moved up) to the unit.
    Dispatched,
    /// A sign-off deadline of the unit's.
    SignOffDue,
    /// A sign-off deadline met.
    SignedOnTime,
    /// A first-contact deadline of the unit's.
    ContactDue,
    /// A first-contact deadline met.
    ContactedOnTime,
    /// A resolution deadline of the unit's (as extended, when an extension was approved).
    ResolutionDue,
    /// A resolution deadline met by the unit's reply.
    RepliedOnTime,
    /// A case the unit returned (退单).
    Returned,
    /// A case the unit handled, closed.
    Closed,
    /// A closed or called-back case of the unit's, reopened (重办).
    Reopened,
    /// A callback (回访) answered about the unit's work.
    CallbackAnswered,
    /// A callback where the citizen was satisfied.
    Satisfied,
    /// A callback where the citizen said the matter was resolved.
    Resolved,
    /// An extension (延期) the unit asked for.
    ExtensionAsked,
    /// An extension approved.
    ExtensionGranted,
}

impl Measure {
    /// Every measure.
    pub const ALL: [Measure; 15] = [
        Self::Dispatched,
        Self::SignOffDue,
        Self::SignedOnTime,
        Self::ContactDue,
        Self::ContactedOnTime,
        Self::ResolutionDue,
        Self::RepliedOnTime,
        Self::Returned,
        Self::Closed,
        Self::Reopened,
        Self::CallbackAnswered,
        Self::Satisfied,
        Self::Resolved,
        Self::ExtensionAsked,
        Self::ExtensionGranted,
    ];

    /// The name a store keeps it under (stable: stored facts carry it).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dispatched => "dispatched",
            Self::SignOffDue => "sign-off-due",
            Self::SignedOnTime => "signed-on-time",
            Self::ContactDue => "contact-due",
            Self::ContactedOnTime => "contacted-on-time",
            Self::ResolutionDue => "resolution-due",
            Self::RepliedOnTime => "replied-on-time",
            Self::Returned => "returned",
            Self::Closed => "closed",
            Self::Reopened => "reopened",
            Self::CallbackAnswered => "callback-answered",
            Self::Satisfied => "satisfied",
            Self::Resolved => "resolved",
            Self::ExtensionAsked => "extension-asked",
            Self::ExtensionGranted => "extension-granted",
        }
    }

    /// The measure named `s` by [`Measure::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// One thing counted for a unit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fact {
    /// The case's district.
    pub district: String,
    /// The unit it counts for.
    pub unit: String,
    /// When it counts: the event's time, or the deadline's for a deadline.
    pub at: Millis,
    /// What it counts toward.
    pub measure: Measure,
    /// The case.
    pub case: String,
    /// The event it comes from; `None` for a deadline the case still owes ([`open_facts`]).
    pub seq: Option<u64>,
}

impl Fact {
    /// A deadline still owed (not yet met, whether or not it has passed).
    pub fn is_open(&self) -> bool {
        self.seq.is_none()
    }
}

/// Who handles the case and by when, as the facts need it: the case's own fields, followed
/// through a write's events.
struct Handling {
    handler: Option<String>,
    deadlines: Deadlines,
    status: CaseStatus,
    paused: bool,
}

impl Handling {
    fn of(c: &Case) -> Self {
        Self {
            handler: c.handler.clone(),
            deadlines: c.deadlines.clone(),
            status: c.status,
            paused: c.paused_at.is_some(),
        }
    }

    /// The deadlines owed in this state, with their unit: sign-off until signed, first
    /// contact until work starts, resolution until the reply — none while the case waits
    /// for the citizen (its clock is stopped).
    fn owed(&self) -> Vec<(String, Millis, Measure)> {
        use CaseStatus as S;
        let Some(unit) = &self.handler else {
            return Vec::new();
        };
        if self.paused {
            return Vec::new();
        }
        let d = &self.deadlines;
        [
            (
                matches!(self.status, S::Dispatched),
                d.sign_off,
                Measure::SignOffDue,
            ),
            (
                matches!(self.status, S::Dispatched | S::Signed),
                d.first_contact,
                Measure::ContactDue,
            ),
            (
                matches!(self.status, S::Dispatched | S::Signed | S::InProgress),
                d.resolution,
                Measure::ResolutionDue,
            ),
        ]
        .into_iter()
        .filter_map(|(owes, at, m)| Some((unit.clone(), at.filter(|_| owes)?, m)))
        .collect()
    }
}

/// The facts `events` add to a case that stood as `before` (`None`: a new case).
pub fn event_facts(before: Option<&Case>, district: &str, id: &str, events: &[Event]) -> Vec<Fact> {
    let mut h = before.map_or(
        Handling {
            handler: None,
            deadlines: Deadlines::default(),
            status: CaseStatus::Received,
            paused: false,
        },
        Handling::of,
    );
    let mut out = Vec::new();
    for e in events {
        let EventBody::Transition { action, to, .. } = &e.what else {
            continue;
        };
        let owed_before = h.owed();
        let mut settled: Option<Measure> = None;
        let mut fact = |unit: &str, at: Millis, measure: Measure| {
            out.push(Fact {
                district: district.to_owned(),
                unit: unit.to_owned(),
                at,
                measure,
                case: id.to_owned(),
                seq: Some(e.seq),
            })
        };
        // A deadline met or missed counts at the deadline; met when the act came by it.
        let mut due = |unit: &str, deadline: Option<Millis>, due: Measure, met: Measure| {
            settled = Some(due);
            if let Some(d) = deadline {
                fact(unit, d, due);
                if e.at <= d {
                    fact(unit, d, met);
                }
            }
        };
        let unit = h.handler.clone();
        match (action, unit.as_deref()) {
            (
                Action::Dispatch {
                    lead, deadlines, ..
                },
                _,
            ) => {
                h.handler = Some(lead.clone());
                h.deadlines = deadlines.clone();
                fact(lead, e.at, Measure::Dispatched);
            }
            (Action::MoveTo { unit, sign_off }, _) => {
                h.handler = Some(unit.clone());
                h.deadlines.sign_off = Some(*sign_off);
                fact(unit, e.at, Measure::Dispatched);
            }
            (Action::Sign { .. }, Some(u)) => due(
                u,
                h.deadlines.sign_off,
                Measure::SignOffDue,
                Measure::SignedOnTime,
            ),
            (Action::Start, Some(u)) => due(
                u,
                h.deadlines.first_contact,
                Measure::ContactDue,
                Measure::ContactedOnTime,
            ),
            (Action::Reply { .. }, Some(u)) => due(
                u,
                h.deadlines.resolution,
                Measure::ResolutionDue,
                Measure::RepliedOnTime,
            ),
            (Action::Return { .. }, Some(u)) => {
                fact(u, e.at, Measure::Returned);
                h.handler = None;
                h.deadlines = Deadlines::default();
            }
            (Action::Reopen { .. }, u) => {
                if let Some(u) = u {
                    fact(u, e.at, Measure::Reopened);
                }
                h.handler = None;
                h.deadlines = Deadlines::default();
            }
            (Action::Close, Some(u)) => fact(u, e.at, Measure::Closed),
            (
                Action::Callback {
                    satisfied,
                    resolved,
                    ..
                },
                Some(u),
            ) => {
                fact(u, e.at, Measure::CallbackAnswered);
                if *satisfied {
                    fact(u, e.at, Measure::Satisfied);
                }
                if *resolved {
                    fact(u, e.at, Measure::Resolved);
                }
            }
            (Action::RequestExtension { .. }, Some(u)) => fact(u, e.at, Measure::ExtensionAsked),
            (Action::ApproveExtension { resolution, .. }, u) => {
                if let Some(u) = u {
                    fact(u, e.at, Measure::ExtensionGranted);
                }
                h.deadlines.resolution = Some(*resolution);
            }
            (Action::SetDeadline { kind, due_at }, _) => {
                use crate::model::TimerKind as K;
                // As the lifecycle moves them; other timers have no deadline.
                let slot = match kind {
                    K::SignOff => Some(&mut h.deadlines.sign_off),
                    K::FirstContact => Some(&mut h.deadlines.first_contact),
                    K::Resolution => Some(&mut h.deadlines.resolution),
                    K::Warning => Some(&mut h.deadlines.warning),
                    _ => None,
                };
                if let Some(slot) = slot {
                    *slot = Some(*due_at);
                }
            }
            (Action::Resume { deadlines, .. }, _) => {
                h.deadlines = deadlines.clone();
                h.paused = false;
            }
            (Action::Pause { .. }, _) => h.paused = true,
            _ => {}
        }
        h.status = *to;
        // A deadline the case stops owing without the act that meets it (returned, moved
        // up, merged, paused, its time moved) is missed if it had passed, and counted so;
        // one still to come is simply no longer the unit's.
        let owed_after = h.owed();
        for (unit, at, measure) in owed_before {
            let gone = !owed_after
                .iter()
                .any(|(u, a, m)| *u == unit && *a == at && *m == measure);
            if gone && settled != Some(measure) && at < e.at {
                out.push(Fact {
                    district: district.to_owned(),
                    unit,
                    at,
                    measure,
                    case: id.to_owned(),
                    seq: Some(e.seq),
                });
            }
        }
    }
    out
}

/// The deadlines `c` still owes, each counted at its time for its handler: sign-off until
/// signed, first contact until work starts, resolution until the reply.
pub fn open_facts(c: &Case) -> Vec<Fact> {
    Handling::of(c)
        .owed()
        .into_iter()
        .map(|(unit, at, measure)| Fact {
            district: c.district.clone(),
            unit,
            at,
            measure,
            case: c.id.clone(),
            seq: None,
        })
        .collect()
}

/// Every fact of a case with this whole history.
pub fn case_facts(c: &Case, history: &[Event]) -> Vec<Fact> {
    let mut out = event_facts(None, &c.district, &c.id, history);
    out.extend(open_facts(c));
    out
}

/// How many facts of one measure a unit has in a period: `done` met or counted, `open`
/// deadlines still owed, of which `overdue` have passed.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Count {
    /// Facts from events.
    pub done: u64,
    /// Deadlines still owed.
    pub open: u64,
    /// Deadlines still owed that have passed.
    pub overdue: u64,
}

impl Count {
    /// Adds `n` facts: done, or deadlines still owed (`passed`: already overdue).
    pub fn add(&mut self, owed: bool, passed: bool, n: u64) {
        if owed {
            self.open += n;
            if passed {
                self.overdue += n;
            }
        } else {
            self.done += n;
        }
    }

    /// Adds another count of the same measure.
    pub fn merge(&mut self, other: Count) {
        self.done += other.done;
        self.open += other.open;
        self.overdue += other.overdue;
    }
}

/// Counts per (district, unit, measure), as a store answers them.
pub type Counts = BTreeMap<(String, String, Measure), Count>;

/// Adds `facts` to `counts` (`now` tells an overdue deadline from one still to come).
pub fn count(counts: &mut Counts, facts: impl IntoIterator<Item = Fact>, now: Millis) {
    for f in facts {
        let owed = f.is_open();
        counts
            .entry((f.district, f.unit, f.measure))
            .or_default()
            .add(owed, f.at < now, 1);
    }
}

/// A rate: which measures make it, and how to read it. Declared once in [`INDICATORS`];
/// the API, the console and the docs show these words.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Indicator {
    /// Its id.
    pub id: &'static str,
    /// Its Chinese name.
    pub zh: &'static str,
    /// What is counted above the line.
    pub numerator: Measure,
    /// What is counted below it.
    pub denominator: Measure,
    /// Whether a deadline still owed and already passed counts below the line (a missed
    /// deadline counts in its period even while the case is open; one still to come does
    /// not count yet).
    pub open_counts: bool,
    /// What it measures, in one sentence.
    pub definition: &'static str,
}

/// The rates, each defined once.
pub const INDICATORS: &[Indicator] = &[
    Indicator {
        id: "on-time-sign-off",
        zh: "及时签收率",
        numerator: Measure::SignedOnTime,
        denominator: Measure::SignOffDue,
        open_counts: true,
        definition: "sign-off deadlines that fell in the period and were met, of those met or missed (a missed one counts while the case still owes it)",
    },
    Indicator {
        id: "response",
        zh: "响应率",
        numerator: Measure::ContactedOnTime,
        denominator: Measure::ContactDue,
        open_counts: true,
        definition: "first-contact deadlines that fell in the period and were met, of those met or missed",
    },
    Indicator {
        id: "on-time-completion",
        zh: "按时办结率",
        numerator: Measure::RepliedOnTime,
        denominator: Measure::ResolutionDue,
        open_counts: true,
        definition: "resolution deadlines (as extended by approved extensions) that fell in the period and were met by the unit's reply, of those met or missed",
    },
    Indicator {
        id: "return",
        zh: "回退率",
        numerator: Measure::Returned,
        denominator: Measure::Dispatched,
        open_counts: false,
        definition: "cases the unit returned in the period, of the cases dispatched to it in the period",
    },
    Indicator {
        id: "redo",
        zh: "重办率",
        numerator: Measure::Reopened,
        denominator: Measure::Closed,
        open_counts: false,
        definition: "cases of the unit's reopened in the period, of its cases closed in the period",
    },
    Indicator {
        id: "satisfaction",
        zh: "满意率",
        numerator: Measure::Satisfied,
        denominator: Measure::CallbackAnswered,
        open_counts: false,
        definition: "callbacks in the period where the citizen was satisfied, of the callbacks answered in it",
    },
    Indicator {
        id: "resolution",
        zh: "解决率",
        numerator: Measure::Resolved,
        denominator: Measure::CallbackAnswered,
        open_counts: false,
        definition: "callbacks in the period where the citizen said the matter was resolved, of the callbacks answered in it",
    },
    Indicator {
        id: "extensions",
        zh: "延期",
        numerator: Measure::ExtensionGranted,
        denominator: Measure::ExtensionAsked,
        open_counts: false,
        definition: "extensions approved in the period, of the extensions asked for in it",
    },
];

/// One rate's figures: both counts, and the rate when there is a denominator.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rate {
    /// The indicator's id.
    pub indicator: &'static str,
    /// Above the line.
    pub numerator: u64,
    /// Below the line.
    pub denominator: u64,
    /// `numerator / denominator`; `None` ("no data") when nothing is below the line.
    pub rate: Option<f64>,
}

/// One unit's (or a district's, or the city's) figures for a period.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Figures {
    /// Each rate.
    pub rates: Vec<Rate>,
    /// Resolution deadlines in the period still owed and already passed (超期).
    pub overdue_now: u64,
    /// Every measure's count (deadlines still owed included, passed or not).
    #[schema(value_type = BTreeMap<String, u64>)]
    pub counts: BTreeMap<Measure, u64>,
}

impl Figures {
    /// The figures of a set of counts (one unit's, or summed).
    pub fn of<'a>(counts: impl IntoIterator<Item = (&'a Measure, &'a Count)>) -> Self {
        let mut done: BTreeMap<Measure, u64> = BTreeMap::new();
        let mut open: BTreeMap<Measure, u64> = BTreeMap::new();
        let mut missed: BTreeMap<Measure, u64> = BTreeMap::new();
        let mut overdue_now = 0;
        for (m, c) in counts {
            *done.entry(*m).or_default() += c.done;
            *open.entry(*m).or_default() += c.open;
            *missed.entry(*m).or_default() += c.overdue;
            if *m == Measure::ResolutionDue {
                overdue_now += c.overdue;
            }
        }
        let get = |map: &BTreeMap<Measure, u64>, m| map.get(&m).copied().unwrap_or(0);
        let rates = INDICATORS
            .iter()
            .map(|i| {
                let numerator = get(&done, i.numerator);
                let denominator = get(&done, i.denominator)
                    + if i.open_counts {
                        get(&missed, i.denominator)
                    } else {
                        0
                    };
                Rate {
                    indicator: i.id,
                    numerator,
                    denominator,
                    rate: (denominator > 0).then(|| numerator as f64 / denominator as f64),
                }
            })
            .collect();
        let counts = Measure::ALL
            .into_iter()
            .map(|m| (m, get(&done, m) + get(&open, m)))
            .filter(|(_, n)| *n > 0)
            .collect();
        Figures {
            rates,
            overdue_now,
            counts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Channel, Event};

    fn ev(seq: u64, at: Millis, action: Action) -> Event {
        Event {
            seq,
            at,
            actor: "t".into(),
            what: EventBody::Transition {
                action,
                from: CaseStatus::Received,
                to: CaseStatus::Received,
            },
        }
    }

    /// A sign-off met counts above and below the line at the deadline; a late start counts
    /// below only; a return goes to the unit that returned, not the next one.
    #[test]
    fn deadlines_count_at_their_time_for_the_unit_that_owed_them() {
        let deadlines = Deadlines {
            sign_off: Some(100),
            first_contact: Some(200),
            resolution: Some(1_000),
            warning: None,
        };
        let events = vec![
            Event {
                seq: 0,
                at: 0,
                actor: "t".into(),
                what: EventBody::Received {
                    channel: Channel::Phone,
                },
            },
            ev(
                1,
                10,
                Action::Dispatch {
                    lead: "a".into(),
                    co_handlers: vec![],
                    deadlines,
                    timers: vec![],
                },
            ),
            ev(2, 90, Action::Sign { unit: "a".into() }),
            ev(3, 300, Action::Start),
            ev(
                4,
                400,
                Action::Return {
                    unit: "a".into(),
                    reason: "not ours".into(),
                },
            ),
        ];
        let got: Vec<(String, Millis, Measure)> = event_facts(None, "d", "c-1", &events)
            .into_iter()
            .map(|f| (f.unit, f.at, f.measure))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), 10, Measure::Dispatched),
                ("a".into(), 100, Measure::SignOffDue),
                ("a".into(), 100, Measure::SignedOnTime),
                ("a".into(), 200, Measure::ContactDue),
                ("a".into(), 400, Measure::Returned),
            ]
        );
    }

    /// A deadline the case stops owing without being met — returned before signing — is
    /// counted missed if it had passed, and not at all if it had not.
    #[test]
    fn a_passed_deadline_the_case_stops_owing_counts_as_missed() {
        let deadlines = Deadlines {
            sign_off: Some(100),
            first_contact: Some(200),
            resolution: Some(1_000),
            warning: None,
        };
        let t = |seq, at, action, from, to| Event {
            seq,
            at,
            actor: "t".into(),
            what: EventBody::Transition { action, from, to },
        };
        use CaseStatus as S;
        let events = vec![
            t(
                0,
                10,
                Action::Dispatch {
                    lead: "a".into(),
                    co_handlers: vec![],
                    deadlines,
                    timers: vec![],
                },
                S::PendingDispatch,
                S::Dispatched,
            ),
            t(
                1,
                150,
                Action::Return {
                    unit: "a".into(),
                    reason: "not ours".into(),
                },
                S::Dispatched,
                S::PendingDispatch,
            ),
        ];
        let mut got: Vec<(Millis, Measure)> = event_facts(None, "d", "c-1", &events)
            .into_iter()
            .map(|f| (f.at, f.measure))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                (10, Measure::Dispatched),
                (100, Measure::SignOffDue),
                (150, Measure::Returned),
            ],
            "the sign-off had passed and was missed; first contact and resolution had not"
        );
    }

    /// A rate with nothing below the line is "no data", not 0 % or 100 %; deadlines still
    /// owed count below the line of the on-time rates once they have passed, not before.
    #[test]
    fn rates_show_both_counts_and_no_data_without_a_denominator() {
        let mut counts = BTreeMap::new();
        counts.insert(
            Measure::SignOffDue,
            Count {
                done: 3,
                open: 2,
                overdue: 1,
            },
        );
        counts.insert(
            Measure::SignedOnTime,
            Count {
                done: 2,
                ..Count::default()
            },
        );
        let f = Figures::of(&counts);
        let sign = f
            .rates
            .iter()
            .find(|r| r.indicator == "on-time-sign-off")
            .unwrap();
        assert_eq!((sign.numerator, sign.denominator), (2, 4));
        assert_eq!(sign.rate, Some(0.5));
        let sat = f
            .rates
            .iter()
            .find(|r| r.indicator == "satisfaction")
            .unwrap();
        assert_eq!((sat.numerator, sat.denominator, sat.rate), (0, 0, None));
        assert_eq!(
            f.overdue_now, 0,
            "only resolution deadlines make a case overdue"
        );
    }

    /// The README's table of indicators says what [`INDICATORS`] says, row for row.
    #[test]
    fn the_readme_defines_each_indicator_as_the_code_does() {
        let readme = include_str!("../../README.md");
        for i in INDICATORS {
            let row = format!("| `{}` | {} | {} |", i.id, i.zh, i.definition);
            assert!(readme.contains(&row), "README.md lacks the row\n{row}");
        }
    }

    #[test]
    fn measures_round_trip_through_their_names() {
        for m in Measure::ALL {
            assert_eq!(Measure::parse(m.as_str()), Some(m));
        }
    }
}

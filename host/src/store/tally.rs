//! Counts kept as cases change, so that `/metrics` and a district's overview never walk
//! every case: cases per (district, status), and a district's decisions per plug-in and rule
//! failures per hour.
//!
//! What a write adds to or takes from each count is derived here, once, from the case as
//! it was, the case as written and the write's new events ([`deltas`]); an engine applies
//! those deltas with the write it made. The same counts can always be computed again from
//! the cases and their histories ([`Tallies::recount_case`]), which is how an engine that
//! lost them rebuilds them and how the contract suite checks them.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::Activity;
use crate::model::{Case, CaseStatus, Event, EventBody, Millis};

/// An hour, the grain of rule activity (a whole hour in every time zone the city may use
/// that is a whole number of hours from UTC, so local days add up from hours).
pub const HOUR_MS: Millis = 3_600_000;

/// What a count counts, within a district.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Tally {
    /// Cases now at this status.
    Status(CaseStatus),
    /// Decisions made in the hour starting at this time by this plug-in (`name@version`).
    Decided(Millis, String),
    /// Rule failures (the host fell back) in the hour starting at this time.
    Failed(Millis),
}

/// A count's key: the district and what it counts.
pub type Key = (String, Tally);

/// The counts a write changes, with how much: the case leaves its old status and enters its
/// new one, and each new decision or rule failure adds one to its hour.
pub fn deltas(old: Option<&Case>, new: &Case, events: &[Event]) -> Vec<(Key, i64)> {
    let mut out = Vec::new();
    match old {
        Some(o) if o.status == new.status && o.district == new.district => {}
        Some(o) => {
            out.push(((o.district.clone(), Tally::Status(o.status)), -1));
            out.push(((new.district.clone(), Tally::Status(new.status)), 1));
        }
        None => out.push(((new.district.clone(), Tally::Status(new.status)), 1)),
    }
    for e in events {
        if let Some(t) = of_event(e) {
            out.push(((new.district.clone(), t), 1));
        }
    }
    out
}

/// The counts removing `case` from the store changes: it leaves its status. Its rule
/// activity stays counted — the decisions were made, whatever is kept of the case.
pub fn removed(case: &Case) -> Vec<(Key, i64)> {
    vec![((case.district.clone(), Tally::Status(case.status)), -1)]
}

/// The activity count an event adds to, if any.
fn of_event(e: &Event) -> Option<Tally> {
    let hour = e.at.div_euclid(HOUR_MS) * HOUR_MS;
    match &e.what {
        EventBody::Decision(r) => Some(Tally::Decided(
            hour,
            format!("{}@{}", r.plugin.name, r.plugin.version),
        )),
        EventBody::RuleFailure { .. } => Some(Tally::Failed(hour)),
        _ => None,
    }
}

/// A set of counts (an engine's, in memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tallies {
    counts: HashMap<Key, i64>,
    /// The start of the latest hour with activity.
    latest: Millis,
}

impl Default for Tallies {
    fn default() -> Self {
        Self {
            counts: HashMap::new(),
            latest: Millis::MIN,
        }
    }
}

/// The hour a count of activity belongs to.
fn hour_of(t: &Tally) -> Option<Millis> {
    match t {
        Tally::Decided(h, _) | Tally::Failed(h) => Some(*h),
        Tally::Status(_) => None,
    }
}

impl Tallies {
    /// Applies a write's deltas.
    pub fn apply(&mut self, deltas: Vec<(Key, i64)>) {
        for (k, d) in deltas {
            if let Some(h) = hour_of(&k.1) {
                self.latest = self.latest.max(h);
            }
            // A count back at zero goes (a district's status no case has any more).
            match self.counts.entry(k) {
                Entry::Occupied(mut o) => {
                    *o.get_mut() += d;
                    if *o.get() == 0 {
                        o.remove();
                    }
                }
                Entry::Vacant(v) if d != 0 => {
                    v.insert(d);
                }
                Entry::Vacant(_) => {}
            }
        }
    }

    /// The start of the latest hour with activity (`Millis::MIN` if none).
    pub fn latest_hour(&self) -> Millis {
        self.latest
    }

    /// Drops the activity of hours before `hour` (counts kept only for a window).
    pub fn forget_activity_before(&mut self, hour: Millis) {
        self.counts
            .retain(|(_, t), _| hour_of(t).is_none_or(|h| h >= hour));
    }

    /// Counts one stored case and its whole history, as if written afresh (rebuilding the
    /// counts from the cases).
    pub fn recount_case(&mut self, case: &Case, history: &[Event]) {
        self.apply(deltas(None, case, history));
    }

    /// Cases per (district, status).
    pub fn status_counts(&self) -> HashMap<(String, CaseStatus), u64> {
        self.counts
            .iter()
            .filter_map(|((d, t), n)| match t {
                Tally::Status(s) => Some(((d.clone(), *s), (*n).max(0) as u64)),
                _ => None,
            })
            .collect()
    }

    /// `district`'s decisions and failures per hour, for the hours that start in
    /// `[from, to)`, by hour.
    pub fn activity(&self, district: &str, from: Millis, to: Millis) -> Vec<Activity> {
        let mut out: Vec<Activity> = self
            .counts
            .iter()
            .filter(|((d, _), _)| d == district)
            .filter_map(|((_, t), n)| {
                let (hour, plugin) = match t {
                    Tally::Decided(h, p) => (*h, Some(p.clone())),
                    Tally::Failed(h) => (*h, None),
                    Tally::Status(_) => return None,
                };
                (hour >= from && hour < to).then_some(Activity {
                    hour,
                    plugin,
                    count: (*n).max(0) as u64,
                })
            })
            .collect();
        out.sort_by(|a, b| (a.hour, &a.plugin).cmp(&(b.hour, &b.plugin)));
        out
    }

    /// The counts as bytes (an engine's snapshot of them).
    pub fn encode(&self) -> Result<Vec<u8>, super::StoreError> {
        let rows: Vec<(&Key, &i64)> = self.counts.iter().collect();
        super::encode(&rows)
    }

    /// Counts from [`Tallies::encode`]'s bytes.
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Self, super::StoreError> {
        let rows: Vec<(Key, i64)> = super::decode(key, bytes)?;
        let mut t = Self::default();
        t.apply(rows);
        Ok(t)
    }
}

/// Rule activity of the hours starting in `[from, to)` from the histories of `district`'s cases changed since
/// `from` (the walk an engine without kept counts makes; the contract compares the two).
pub fn activity_by_walk(
    store: &(impl super::CaseStore + ?Sized),
    district: &str,
    from: Millis,
    to: Millis,
) -> Result<Vec<Activity>, super::StoreError> {
    let filter = super::Filter {
        district: Some(district.to_owned()),
        ..super::Filter::default()
    };
    let mut touched = Vec::new();
    store.for_each_case(&filter, &mut |c: Case| {
        if c.updated_at >= from {
            touched.push(c);
        }
    })?;
    let mut t = Tallies::default();
    for c in touched {
        let events: Vec<Event> = store
            .history_of(&c.id, c.event_count)?
            .into_iter()
            .filter(|e| (from..to).contains(&e.at.div_euclid(HOUR_MS).saturating_mul(HOUR_MS)))
            .collect();
        t.recount_case(&c, &events);
    }
    Ok(t.activity(district, from, to))
}

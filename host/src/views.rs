//! Read models for people at a desk: the case board with its traffic lights and urgency
//! order, and a district's overview. They only read the store; the console and any other
//! client get the same answers through the API.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::calendar;
use crate::model::{Case, Light, Millis};
use crate::service::{Service, ServiceError};
use crate::store::{Filter, MAX_PAGE};

/// Order of a board listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Order {
    /// Newest first (the store's index order).
    #[default]
    Newest,
    /// Most urgent first: red, then yellow, then green, each by resolution deadline.
    Urgent,
}

impl std::str::FromStr for Order {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "newest" => Ok(Order::Newest),
            "urgent" => Ok(Order::Urgent),
            _ => Err(format!("`{s}` is not an order (newest, urgent)")),
        }
    }
}

/// A case with its light, as the board shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BoardCase {
    /// The case.
    #[serde(flatten)]
    pub case: Case,
    /// Its light now.
    pub light: Option<Light>,
}

/// One page of the board.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BoardPage {
    /// The cases.
    pub cases: Vec<BoardCase>,
    /// Cursor of the next page.
    pub next: Option<String>,
    /// The time the lights were computed at.
    pub now: Millis,
}

/// Why a board query is refused.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// The cursor did not come from this listing.
    #[error("the cursor `{0}` does not belong to an urgency listing")]
    Cursor(String),
    /// The service failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<crate::store::StoreError> for BoardError {
    fn from(e: crate::store::StoreError) -> Self {
        BoardError::Service(e.into())
    }
}

/// One page of the cases matching `filter` (already narrowed to the caller's scope),
/// optionally only those with `light`, in `order`.
///
/// Newest-first pages walk the store's index and stop as soon as the page is full, so a
/// light filter costs only the cases it skips. Urgency order has no index: it reads the
/// whole scope (a district's cases), which is what a dispatcher's board is.
pub fn page(
    svc: &Service,
    filter: &Filter,
    light: Option<Light>,
    order: Order,
    cursor: Option<&str>,
    limit: usize,
) -> Result<BoardPage, BoardError> {
    let now = svc.clock().now();
    let limit = limit.clamp(1, MAX_PAGE);
    let keep = |c: &Case| light.is_none_or(|l| c.light(now) == Some(l));
    let board = |case: Case| BoardCase {
        light: case.light(now),
        case,
    };
    match order {
        Order::Newest => {
            let mut cases = Vec::new();
            let mut cursor = cursor.map(str::to_owned);
            let mut scanned = 0;
            loop {
                // Asking only for what is missing means a page never overshoots, so the
                // store's cursor stays exact.
                let p = svc
                    .store()
                    .list(filter, cursor.as_deref(), limit - cases.len())?;
                cases.extend(p.cases.into_iter().filter(|c| keep(c)).map(board));
                cursor = p.next;
                scanned += p.scanned;
                // A filter that matches little returns a short page with a cursor rather
                // than walk the whole scope in one request.
                if cases.len() == limit || cursor.is_none() || scanned >= crate::store::MAX_SCAN {
                    break;
                }
            }
            Ok(BoardPage {
                cases,
                next: cursor,
                now,
            })
        }
        Order::Urgent => {
            let offset = match cursor {
                None => 0,
                Some(c) => c
                    .strip_prefix("u")
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| BoardError::Cursor(c.to_owned()))?,
            };
            let mut lit: Vec<(Light, Millis, Case)> = Vec::new();
            // Only open cases have a light.
            crate::store::for_each_open_case(&**svc.store(), filter, &mut |c| {
                if let Some(l) = c.light(now)
                    && keep(&c)
                {
                    lit.push((l, c.deadlines.resolution.unwrap_or(Millis::MAX), c));
                }
            })?;
            lit.sort_by(|a, b| (a.0, a.1, &a.2.id).cmp(&(b.0, b.1, &b.2.id)));
            let total = lit.len();
            let cases: Vec<BoardCase> = lit
                .into_iter()
                .skip(offset)
                .take(limit)
                .map(|(_, _, c)| board(c))
                .collect();
            let end = offset + cases.len();
            Ok(BoardPage {
                cases,
                next: (end < total).then(|| format!("u{end}")),
                now,
            })
        }
    }
}

/// One day of a district's rule activity.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Day {
    /// The date (local time).
    pub date: String,
    /// Decisions per plug-in (`name@version`).
    pub decisions: BTreeMap<String, u64>,
    /// Rule failures (the host fell back).
    pub failures: u64,
}

/// What a district looks like now and over its last days.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// The district.
    pub district: String,
    /// When it was computed.
    pub now: Millis,
    /// Open cases per status.
    pub open_by_status: BTreeMap<String, u64>,
    /// Open cases per handling unit (`unassigned` for none).
    pub open_by_unit: BTreeMap<String, u64>,
    /// Open cases per light.
    pub lights: BTreeMap<String, u64>,
    /// Rule activity per day, oldest first, today last.
    pub days: Vec<Day>,
}

/// The overview of `district` with rule activity over the last `days` days (today included).
///
/// Reads the district's open cases (through the status index) and the rule activity the
/// store counts per hour; never the district's closed cases or their histories.
pub fn overview(svc: &Service, district: &str, days: u32) -> Result<Overview, BoardError> {
    let now = svc.clock().now();
    let today = svc.calendar().day_of(now);
    let first = today - (days.max(1) as i64 - 1);
    let since = svc.calendar().start_of(first);
    let mut out = Overview {
        district: district.to_owned(),
        now,
        open_by_status: BTreeMap::new(),
        open_by_unit: BTreeMap::new(),
        lights: BTreeMap::new(),
        days: (first..=today)
            .map(|d| Day {
                date: calendar::format_date(d),
                ..Day::default()
            })
            .collect(),
    };
    let filter = Filter {
        district: Some(district.to_owned()),
        ..Filter::default()
    };
    crate::store::for_each_open_case(&**svc.store(), &filter, &mut |c| {
        *out.open_by_status
            .entry(c.status.as_str().to_owned())
            .or_default() += 1;
        *out.open_by_unit
            .entry(c.handler.clone().unwrap_or_else(|| "unassigned".into()))
            .or_default() += 1;
        if let Some(l) = c.light(now) {
            *out.lights.entry(l.as_str().to_owned()).or_default() += 1;
        }
    })?;
    for a in svc.store().activity(district, since, now + 1)? {
        let slot = (svc.calendar().day_of(a.hour) - first) as usize;
        let Some(day) = out.days.get_mut(slot) else {
            continue;
        };
        match a.plugin {
            Some(p) => {
                // `name@version`, the version cut to 12 characters as the console shows it.
                let label = match p.split_once('@') {
                    Some((name, v)) => format!("{name}@{}", &v[..v.len().min(12)]),
                    None => p,
                };
                *day.decisions.entry(label).or_default() += a.count;
            }
            None => day.failures += a.count,
        }
    }
    Ok(out)
}

/// Whose figures an assessment shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every district and unit, and the city's totals (the city admin).
    City,
    /// One district and its units (its admin and dispatchers).
    District(String),
    /// One unit (its handlers).
    Unit {
        /// The unit's district.
        district: String,
        /// The unit.
        unit: String,
    },
}

/// One row of an assessment: a unit's, a district's or the city's figures.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AssessedRow {
    /// The unit or district id (`city` for the city).
    pub id: String,
    /// Its name in the directory (the id when the directory no longer has it).
    pub name: String,
    /// A unit's kind (rank units against units of their kind).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The figures.
    pub figures: crate::assessment::Figures,
}

/// The centre's view of a period: each rate with both its counts, per unit, per district
/// and for the city, as far as the audience may see.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Assessment {
    /// The first day counted (city time).
    pub from: String,
    /// The last day counted.
    pub to: String,
    /// When the figures were read: deadlines still owed and before it are overdue.
    pub now: Millis,
    /// What each rate counts.
    pub indicators: Vec<crate::assessment::Indicator>,
    /// The city's totals (the city admin only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<AssessedRow>,
    /// Per district.
    pub districts: Vec<AssessedRow>,
    /// Per unit with anything counted in the period.
    pub units: Vec<AssessedRow>,
}

/// The assessment of the days `first..=last` for `audience`, read from the facts the store
/// keeps and the counts of ended days (see [`district_counts`]; no case is read).
pub fn assessment(
    svc: &Service,
    audience: &Audience,
    first: calendar::Day,
    last: calendar::Day,
) -> Result<Assessment, ServiceError> {
    use crate::assessment::{Figures, INDICATORS};
    let dir = svc.directory()?;
    let now = svc.clock().now();
    let districts = match audience {
        Audience::City => dir.districts(),
        Audience::District(d) | Audience::Unit { district: d, .. } => vec![d.clone()],
    };
    let name = |id: &str| {
        dir.unit(id)
            .map_or_else(|| id.to_owned(), |u| u.name.clone())
    };
    let mut all = crate::assessment::Counts::new();
    for d in &districts {
        all.extend(district_counts(svc, d, first, last, now)?);
    }
    if let Audience::Unit { unit, .. } = audience {
        all.retain(|(_, u, _), _| u == unit);
    }
    let row = |id: &str,
               kind: Option<String>,
               keep: &dyn Fn(&(String, String, crate::assessment::Measure)) -> bool| {
        AssessedRow {
            id: id.to_owned(),
            name: name(id),
            kind,
            figures: Figures::of(
                all.iter()
                    .filter(|(k, _)| keep(k))
                    .map(|((_, _, m), c)| (m, c)),
            ),
        }
    };
    let mut units: Vec<&str> = all.keys().map(|(_, u, _)| u.as_str()).collect();
    units.dedup();
    units.sort_unstable();
    units.dedup();
    let unit_rows = units
        .into_iter()
        .map(|u| {
            let kind = dir
                .unit(u)
                .and_then(|x| serde_json::to_value(x.kind).ok())
                .and_then(|v| v.as_str().map(str::to_owned));
            row(u, kind, &|(_, x, _)| x == u)
        })
        .collect();
    let district_rows = match audience {
        Audience::Unit { .. } => Vec::new(),
        _ => districts
            .iter()
            .map(|d| row(d, None, &|(x, _, _)| x == d))
            .collect(),
    };
    Ok(Assessment {
        from: calendar::format_date(first),
        to: calendar::format_date(last),
        now,
        indicators: INDICATORS.to_vec(),
        city: (*audience == Audience::City).then(|| AssessedRow {
            id: "city".into(),
            name: dir.city().to_owned(),
            kind: None,
            figures: Figures::of(all.iter().map(|((_, _, m), c)| (m, c))),
        }),
        districts: district_rows,
        units: unit_rows,
    })
}

/// Where the counts of each ended day are kept, per district (`{district}/{day}`).
const DAY_COUNTS: &str = "assessment-days";

/// One kept day's counts, as stored.
type DayRows = Vec<(
    (String, String, crate::assessment::Measure),
    crate::assessment::Count,
)>;

/// `district`'s counts for the days `first..=last`: each day that has ended from its kept
/// counts (taken from the facts the first time it is asked for, then kept in the store for
/// every host), today and later from the facts.
///
/// An ended day's counts do not change: what counts at a day is either something done then
/// or a deadline that fell then, and once it has passed a deadline can only go from owed
/// to missed or met late — below the line either way — and nothing new falls in the past
/// (deadlines are set in the future).
fn district_counts(
    svc: &Service,
    district: &str,
    first: calendar::Day,
    last: calendar::Day,
    now: Millis,
) -> Result<crate::assessment::Counts, ServiceError> {
    let cal = svc.calendar();
    let store = svc.store();
    let today = cal.day_of(now);
    let mut counts = crate::assessment::Counts::new();
    let mut add = |more: crate::assessment::Counts| {
        for (k, c) in more {
            counts.entry(k).or_default().merge(c);
        }
    };
    for day in first..=last.min(today - 1) {
        add(day_counts(svc, district, day, now)?);
    }
    let live = first.max(today);
    if live <= last {
        add(store.assessment(district, cal.start_of(live), cal.start_of(last + 1), now)?);
    }
    Ok(counts)
}

/// One ended day's counts for `district`: kept ones, or taken from the facts and kept.
fn day_counts(
    svc: &Service,
    district: &str,
    day: calendar::Day,
    now: Millis,
) -> Result<crate::assessment::Counts, ServiceError> {
    Ok(kept_day(svc, district, day, now)?.0)
}

/// [`day_counts`], and whether they had to be counted (they were not kept).
fn kept_day(
    svc: &Service,
    district: &str,
    day: calendar::Day,
    now: Millis,
) -> Result<(crate::assessment::Counts, bool), ServiceError> {
    let (cal, store) = (svc.calendar(), svc.store());
    let key = format!("{district}/{day}");
    let kept: Option<DayRows> = match store.record_get(DAY_COUNTS, &key)? {
        Some(bytes) => serde_json::from_slice(&bytes).ok(),
        None => None,
    };
    if let Some(rows) = kept {
        return Ok((rows.into_iter().collect(), false));
    }
    let c = store.assessment(district, cal.start_of(day), cal.start_of(day + 1), now)?;
    let rows: Vec<_> = c.iter().collect();
    let bytes = serde_json::to_vec(&rows).expect("counts serialize");
    store.record_put(DAY_COUNTS, &[(key, bytes)])?;
    Ok((c, true))
}

/// Keeps the counts of every district's ended days among the last `days` (what `civic
/// serve` does every few minutes, so that a month is answered from kept counts from its
/// first asking). Returns how many days it had to count.
pub fn keep_ended_days(svc: &Service, days: i64) -> Result<usize, ServiceError> {
    let now = svc.clock().now();
    let today = svc.calendar().day_of(now);
    let mut counted = 0;
    for district in svc.directory()?.districts() {
        for day in today - days..today {
            counted += usize::from(kept_day(svc, &district, day, now)?.1);
        }
    }
    Ok(counted)
}

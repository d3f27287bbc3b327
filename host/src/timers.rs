//! Deadlines that pass: the sweep that fires due timers through the district's escalation
//! plug-in, exactly once, and the dispatcher's overdue and warning views.
//!
//! A timer is consumed in the same atomic write as the events and changes its escalation
//! produces: a crash between deciding and writing leaves the timer in place, so it fires
//! again later — never lost, never applied twice. If the district's escalation plug-in
//! fails, the city default's decides; if that fails too, the host reminds the handler and
//! puts the case under the desk's supervision, so escalation never silently does not happen.

use std::sync::Arc;

use serde::Serialize;

use crate::decide::{self, RecordedInput};
use crate::directory::Directory;
use crate::lifecycle;
use crate::model::{Case, CaseStatus, EventBody, Light, Millis, PendingTimer, TimerKind, Urgency};
use crate::runtime::{Hook, wit};
use crate::service::{Service, ServiceError};
use crate::store::{Change, DueTimer, Lease, StoreError, Versioned, partition_of};

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SweepReport {
    /// Timers found due.
    pub due: usize,
    /// Timers fired and consumed.
    pub fired: usize,
    /// Timers that were already consumed by someone else.
    pub skipped: usize,
    /// Actions applied.
    pub actions: usize,
    /// Fired timers where the district's plug-in failed.
    pub plugin_failures: usize,
    /// Timers decided again because their case changed while they were being decided.
    pub retried: usize,
    /// Timers whose firing panicked in the host: logged, left due for the next sweep, and
    /// the sweep went on with the others.
    pub panicked: usize,
    /// Firings refused because this host lost the case's sweep partition to another host
    /// meanwhile (that host fires them).
    pub fenced: usize,
}

/// How long a host's lease on a sweep partition lasts without renewal. Each sweep renews
/// them (every second by default), so a host that dies, or is stopped, has its partitions
/// taken over by the next sweep of another host after at most this long.
pub const LEASE_TTL: Millis = 5_000;

/// The leases this host holds, by partition; `None` when the engine is one process's and
/// the sweep is not partitioned.
type Fences = Option<std::collections::HashMap<u32, Lease>>;

/// Fires every timer due at `now` (at most `limit`), using up to `threads` threads, and
/// makes all of it durable with one flush.
///
/// Each thread reads, decides and writes its share of the firings one by one. A firing is
/// written as single operations (see [`crate::store::CaseStore::write`]), not as a sled
/// batch, because sled applies a batch under a lock that stops every reader: with batches,
/// one thread's write stopped the other's reading. Each case is written only if it is still
/// as it was when its timer was decided; a case changed meanwhile (a handler signed it,
/// say) is decided again from its new state, alone.
pub fn sweep(
    svc: &Service,
    now: Millis,
    limit: usize,
    threads: usize,
) -> Result<SweepReport, ServiceError> {
    let dir = svc.directory()?;
    let mut report = SweepReport::default();
    // On a store several hosts share, this host sweeps the partitions it holds a lease on,
    // and each firing carries the lease so a host that lost it cannot write.
    let fences: Fences = svc
        .store()
        .sweep_leases(svc.node(), now, LEASE_TTL)?
        .map(|held| held.into_iter().map(|l| (l.partition, l)).collect());
    let partitions: Option<Vec<u32>> = fences.as_ref().map(|f| f.keys().copied().collect());
    if let Some(p) = &partitions {
        svc.sweep_heartbeat().partitions(p.len());
    }
    if partitions.as_ref().is_some_and(Vec::is_empty) {
        return Ok(report);
    }
    let mut failed = None;
    // The index holds each case's earliest timer, and a firing re-indexes its case under
    // the next one; so a case with several timers due (sign-off and first contact often
    // fall together) has them fired round by round, each decided from the case as the
    // previous one left it. New deadlines are always in the future, and a case holds one
    // timer per kind, so the rounds end.
    for _ in 0..=TIMER_KINDS {
        let room = limit.saturating_sub(report.due);
        let due = match &partitions {
            None => svc.store().due_timers(now, room)?,
            Some(p) => svc.store().due_timers_in(now, room, p)?,
        };
        if due.is_empty() {
            break;
        }
        report.due += due.len();
        let fired = report.fired;
        if let Err(e) = fire_round(svc, &dir, &fences, &due, now, threads, &mut report) {
            failed = Some(e);
            break;
        }
        if report.fired == fired || report.due >= limit {
            break;
        }
    }
    // What was written is made durable even if a round failed; its timers fire next time.
    if report.fired > 0 {
        svc.store().sync()?;
    }
    failed.map_or(Ok(report), Err)
}

/// How many timers a case can hold at once: one per kind.
const TIMER_KINDS: usize = 6;

/// Fires one scan's due timers (at most one per case) on up to `threads` threads; the
/// timers whose case changed while they were decided are decided again, one by one.
fn fire_round(
    svc: &Service,
    dir: &Arc<Directory>,
    fences: &Fences,
    due: &[DueTimer],
    now: Millis,
    threads: usize,
    report: &mut SweepReport,
) -> Result<(), ServiceError> {
    let threads = threads.clamp(1, 8).min(due.len().max(1));
    let chunk = due.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Part, ServiceError>> = std::thread::scope(|s| {
        let handles: Vec<_> = due
            .chunks(chunk)
            .map(|timers| {
                let dir = dir.clone();
                s.spawn(move || fire_part(svc, &dir, fences, timers, now))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(ServiceError::Unavailable(
                        "a sweep worker panicked; its timers fire at the next sweep".into(),
                    ))
                })
            })
            .collect()
    });
    let mut retry = Vec::new();
    let mut failed = None;
    for part in parts {
        match part {
            Ok(p) => {
                report.add(&p.report);
                retry.extend(p.retry);
            }
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    report.retried += retry.len();
    if let Some(e) = failed {
        return Err(e);
    }
    for t in &retry {
        fire_alone(svc, dir, fences, t, now, report)?;
    }
    Ok(())
}

/// What one thread of a sweep did: its counts, and the timers whose case changed between
/// deciding and writing.
struct Part {
    report: SweepReport,
    retry: Vec<DueTimer>,
}

/// Decided firings a sweep thread hands to the store in one write call: an engine that
/// commits each call (PostgreSQL) makes them durable with one commit instead of one each;
/// each is still written only if its case is unchanged.
const WRITE_BATCH: usize = 32;

/// Decides a share of a sweep's timers and writes them [`WRITE_BATCH`] at a time. On an
/// error, what was already written stays written (each firing is atomic on its own).
fn fire_part(
    svc: &Service,
    dir: &Arc<Directory>,
    fences: &Fences,
    timers: &[DueTimer],
    now: Millis,
) -> Result<Part, ServiceError> {
    let mut part = Part {
        report: SweepReport::default(),
        retry: Vec::new(),
    };
    let mut decided: Vec<(DueTimer, Firing, Versioned)> = Vec::with_capacity(WRITE_BATCH);
    for (i, t) in timers.iter().enumerate() {
        match contain(t, || prepare(svc, dir, fences, t, now)) {
            Err(Panicked) => part.report.panicked += 1,
            Ok(Err(e)) => {
                write_decided(svc, std::mem::take(&mut decided), &mut part)?;
                return Err(e);
            }
            Ok(Ok(None)) => part.report.skipped += 1,
            Ok(Ok(Some((f, w)))) => decided.push((t.clone(), f, w)),
        }
        if decided.len() == WRITE_BATCH || i + 1 == timers.len() {
            write_decided(svc, std::mem::take(&mut decided), &mut part)?;
        }
    }
    Ok(part)
}

/// Writes decided firings in one call: each case that changed since its timer was decided
/// goes back to be decided again alone; a panic in the write costs these firings alone
/// (their timers stay due).
fn write_decided(
    svc: &Service,
    decided: Vec<(DueTimer, Firing, Versioned)>,
    part: &mut Part,
) -> Result<(), ServiceError> {
    let Some((first, _, _)) = decided.first() else {
        return Ok(());
    };
    let first = first.clone();
    let (meta, writes): (Vec<(DueTimer, Firing)>, Vec<Versioned>) =
        decided.into_iter().map(|(t, f, w)| ((t, f), w)).unzip();
    let written = match contain(&first, || svc.store().write(writes)) {
        Ok(w) => w?,
        Err(Panicked) => {
            part.report.panicked += meta.len();
            return Ok(());
        }
    };
    for ((t, f), result) in meta.into_iter().zip(written) {
        match result {
            Ok(_) => part.report.count(&f),
            Err(StoreError::Conflict { .. }) => part.retry.push(t),
            Err(StoreError::NotFound(_)) => part.report.skipped += 1,
            Err(StoreError::Fenced { .. }) => part.report.fenced += 1,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// What trying to fire one timer came to.
enum Outcome {
    /// Written.
    Fired(Firing),
    /// The timer is no longer on its case.
    Gone,
    /// Its case changed between deciding and writing; nothing was written.
    Changed,
    /// Another host took the case's sweep partition over; nothing was written.
    Fenced,
    /// The host panicked firing it; nothing was written and it stays due.
    Panicked,
}

/// Decides and writes one due timer, with any panic contained to it.
fn fire_one(
    svc: &Service,
    dir: &Arc<Directory>,
    fences: &Fences,
    t: &DueTimer,
    now: Millis,
) -> Result<Outcome, ServiceError> {
    let fired = contain(t, || {
        let Some((f, staged)) = prepare(svc, dir, fences, t, now)? else {
            return Ok(Outcome::Gone);
        };
        Ok(match write_firing(svc, staged) {
            Ok(true) => Outcome::Fired(f),
            Ok(false) => Outcome::Changed,
            Err(ServiceError::Store(StoreError::Fenced { .. })) => Outcome::Fenced,
            Err(e) => return Err(e),
        })
    });
    fired.unwrap_or(Ok(Outcome::Panicked))
}

/// A timer's firing panicked in the host.
struct Panicked;

/// Runs one timer's firing so that a panic in it (a bug in the host, never a plug-in's
/// trap, which is an error value) is logged and costs that timer alone: the timer stays due
/// and the sweep goes on with the others. A panic that escaped once stopped every
/// deadline in the city.
fn contain<T>(t: &DueTimer, f: impl FnOnce() -> T) -> Result<T, Panicked> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a non-text panic".into());
        tracing::error!(
            case = %t.case_id,
            timer = ?t.kind,
            panic = %crate::text::escape_for_log(&message),
            "firing a timer panicked; it stays due and the sweep goes on"
        );
        Panicked
    })
}

/// Writes one decided firing: `false` if its case changed since it was decided (nothing
/// was written).
fn write_firing(svc: &Service, staged: Versioned) -> Result<bool, ServiceError> {
    let mut written = svc.store().write(vec![staged])?;
    match written.pop().expect("one result per write") {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A decided timer and what it did; its write travels beside it as a [`Versioned`] write.
struct Firing {
    actions: usize,
    failed: bool,
}

impl SweepReport {
    fn add(&mut self, other: &SweepReport) {
        self.fired += other.fired;
        self.skipped += other.skipped;
        self.actions += other.actions;
        self.plugin_failures += other.plugin_failures;
        self.panicked += other.panicked;
        self.fenced += other.fenced;
    }

    fn count(&mut self, f: &Firing) {
        self.fired += 1;
        self.actions += f.actions;
        self.plugin_failures += usize::from(f.failed);
    }
}

/// Fires one timer on its own, deciding again while its case keeps changing under it.
fn fire_alone(
    svc: &Service,
    dir: &Arc<Directory>,
    fences: &Fences,
    t: &DueTimer,
    now: Millis,
    report: &mut SweepReport,
) -> Result<(), ServiceError> {
    for _ in 0..5 {
        match fire_one(svc, dir, fences, t, now)? {
            Outcome::Panicked => report.panicked += 1,
            Outcome::Gone => report.skipped += 1,
            Outcome::Fenced => report.fenced += 1,
            Outcome::Fired(f) => report.count(&f),
            Outcome::Changed => {
                report.retried += 1;
                continue;
            }
        }
        return Ok(());
    }
    // The case changes faster than it can be decided: leave the timer for the next sweep.
    Ok(())
}

/// Decides one due timer against its case as stored now: `None` if the timer is no longer
/// on the case (already fired, or the case moved on); else what it did and its staged write.
fn prepare(
    svc: &Service,
    dir: &Arc<Directory>,
    fences: &Fences,
    t: &DueTimer,
    now: Millis,
) -> Result<Option<(Firing, Versioned)>, ServiceError> {
    #[cfg(test)]
    tests::panic_point(svc, &t.case_id);
    let Some(case) = svc.store().get_case(&t.case_id)? else {
        return Ok(None);
    };
    let pending = PendingTimer {
        kind: t.kind,
        due_at: t.due_at,
    };
    if !case.timers.contains(&pending) {
        return Ok(None);
    }
    let timer = wit::Timer {
        kind: t.kind.into(),
        due_at: t.due_at,
        working_days_overdue: svc.calendar().working_days_between(t.due_at, now),
    };
    let input = RecordedInput {
        case: case.to_wit(),
        now,
        recent_cases: vec![],
        timer: Some(timer),
    };
    let evaluate =
        |p: &crate::runtime::Plugin, i: &crate::runtime::Input<'_>| svc.runtime().evaluate(p, i);
    let decided = decide::decide(
        &decide::Deciders {
            registry: svc.registry(),
            metrics: svc.metrics(),
            evaluate: &evaluate,
        },
        &decide::Request {
            district: &case.district,
            hook: Hook::Escalation,
            directory: dir,
            input: &input,
            now,
            city_default_on_failure: true,
        },
    );
    let mut events: Vec<(Millis, String, EventBody)> = decided
        .events
        .into_iter()
        .map(|(who, e)| (now, who, e))
        .collect();
    let handler = case
        .handler
        .clone()
        .unwrap_or_else(|| case.district.clone());
    let actions = match decided.decision.and_then(|d| d.into_escalation()) {
        Some(d) => d.actions,
        None if decided.failed => vec![
            wit::Action::Remind(handler),
            wit::Action::Supervise(case.district.clone()),
        ],
        None => vec![],
    };
    let decided_something = events
        .iter()
        .any(|(_, _, e)| matches!(e, EventBody::Decision(_)));
    // Consuming the timer in the same write as its events is what makes firing exactly-once.
    let mut c = lifecycle::apply(
        &case,
        &lifecycle::Action::TimerFired { timer: pending },
        now,
    )?;
    for a in &actions {
        let (name, detail) = apply(svc.calendar(), &mut c, a, now);
        events.push((
            now,
            "system".into(),
            EventBody::Escalation {
                timer: t.kind,
                action: name.into(),
                detail,
            },
        ));
    }
    if decided.failed && actions.len() == 2 && !decided_something {
        events.push((
            now,
            "system".into(),
            EventBody::Escalation {
                timer: t.kind,
                action: "host-fallback".into(),
                detail: "no escalation plug-in decided; reminded and supervised".into(),
            },
        ));
    }
    let fence = fences
        .as_ref()
        .and_then(|held| held.get(&partition_of(&case.id)).cloned());
    let staged = Versioned {
        read: case,
        change: Change { case: c, events },
        fence,
    };
    Ok(Some((
        Firing {
            actions: actions.len(),
            failed: decided.failed,
        },
        staged,
    )))
}

/// Applies one escalation action to a case through the state machine; returns the
/// action's name and detail as the history records them. An action the state machine
/// refuses for the case as it is (a deadline in the past, a move of a case nobody works
/// on) is recorded as skipped, with why.
fn apply(
    cal: &crate::calendar::Calendar,
    c: &mut Case,
    a: &wit::Action,
    now: Millis,
) -> (&'static str, String) {
    use lifecycle::Action as L;
    let (change, name, skipped, detail) = match a {
        wit::Action::Remind(u) => return ("remind", u.clone()),
        wit::Action::PublicNotice(text) => return ("public-notice", text.clone()),
        wit::Action::Supervise(u) => (
            L::Supervise { unit: u.clone() },
            "supervise",
            "supervise-skipped",
            u.clone(),
        ),
        wit::Action::Flag(f) => (
            L::Mark { name: f.clone() },
            "flag",
            "flag-skipped",
            f.clone(),
        ),
        wit::Action::SetDeadline(d) => {
            let kind: TimerKind = d.kind.into();
            (
                L::SetDeadline {
                    kind,
                    due_at: d.due_at,
                },
                "set-deadline",
                "set-deadline-skipped",
                format!("{kind:?} → {}", d.due_at),
            )
        }
        wit::Action::MoveTo(u) => {
            // The new unit must sign for it in turn.
            let sign_off = if c.urgency == Urgency::Urgent {
                cal.add_minutes(now, 30)
            } else {
                cal.add_working_days(now, 1)
            };
            (
                L::MoveTo {
                    unit: u.clone(),
                    sign_off,
                },
                "move-to",
                "move-skipped",
                u.clone(),
            )
        }
    };
    match lifecycle::apply(c, &change, now) {
        Ok(next) => {
            *c = next;
            (name, detail)
        }
        Err(e) => (skipped, e.why),
    }
}

/// A case on a dispatcher's warning board.
#[derive(Debug, Clone, Serialize)]
pub struct Flagged {
    /// The case id.
    pub id: String,
    /// The light.
    pub light: Light,
    /// Its status.
    pub status: CaseStatus,
    /// Who handles it.
    pub handler: Option<String>,
    /// The resolution deadline.
    pub resolution: Option<Millis>,
    /// Working days overdue (red only).
    pub working_days_overdue: u32,
}

/// The district's open cases with a yellow or red light, reddest and oldest first.
pub fn board(
    svc: &Service,
    district: &str,
    now: Millis,
    only_red: bool,
) -> Result<Vec<Flagged>, ServiceError> {
    let mut out = Vec::new();
    let filter = crate::store::Filter {
        district: Some(district.to_owned()),
        ..Default::default()
    };
    crate::store::for_each_open_case(&**svc.store(), &filter, &mut |c| {
        if let Some(l) = c.alert(now) {
            if only_red && l != Light::Red {
                return;
            }
            out.push(Flagged {
                working_days_overdue: c
                    .deadlines
                    .resolution
                    .map(|r| svc.calendar().working_days_between(r, now))
                    .unwrap_or(0),
                light: l,
                status: c.status,
                resolution: c.deadlines.resolution,
                handler: c.handler,
                id: c.id,
            });
        }
    })?;
    out.sort_by(|a, b| {
        (b.light == Light::Red)
            .cmp(&(a.light == Light::Red))
            .then(a.resolution.cmp(&b.resolution))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;
    use crate::intake::NewCase;
    use crate::service::ServiceConfig;

    /// (service address, case id): firing that case's timers on that service panics.
    static PANIC_ON: parking_lot::Mutex<Vec<(usize, String)>> = parking_lot::Mutex::new(Vec::new());

    pub(super) fn panic_point(svc: &Service, id: &str) {
        let me = svc as *const Service as usize;
        if PANIC_ON.lock().iter().any(|(s, c)| *s == me && c == id) {
            panic!("test: the host panics firing a timer of {id}");
        }
    }

    fn service(dir: &std::path::Path, clock: Arc<ManualClock>) -> Service {
        let svc = Service::open(&ServiceConfig::new(dir), clock).unwrap();
        svc.bootstrap(dir).unwrap();
        svc
    }

    fn take_in(svc: &Service, district: &str, grid: &str, phone: &str) -> String {
        let new: NewCase = serde_json::from_value(serde_json::json!({
            "district": district, "category": "noise",
            "location": {"grid": grid}, "caller": {"phone": phone}
        }))
        .unwrap();
        svc.intake(&new, "agent").unwrap().case.id
    }

    fn all_fired(svc: &Service, id: &str, now: Millis) -> bool {
        svc.case(id).unwrap().timers.iter().all(|t| t.due_at > now)
    }

    /// A panic while firing one case's timer costs that timer alone: the sweep goes on
    /// with the others and reports it, and the timer fires once the fault is gone.
    #[test]
    fn a_panic_firing_one_timer_leaves_it_due_and_the_sweep_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_796_000_400_000));
        let svc = service(dir.path(), clock.clone());
        let poisoned = take_in(&svc, "jiyang", "jiyang/yuehe/grid-01", "13500000001");
        let healthy = take_in(&svc, "tianya", "tianya/maling/grid-01", "13500000002");
        let me = (&svc as *const Service as usize, poisoned.clone());
        PANIC_ON.lock().push(me.clone());
        clock.advance(40 * 86_400_000);
        let now = clock.now_ms();
        for threads in [2, 1] {
            let r = sweep(&svc, now, 10_000, threads).unwrap();
            assert!(r.panicked >= 1, "{r:?}");
        }
        assert!(all_fired(&svc, &healthy, now));
        assert!(
            !all_fired(&svc, &poisoned, now),
            "the poisoned timer stays due"
        );
        PANIC_ON.lock().retain(|x| *x != me);
        let r = sweep(&svc, now, 10_000, 2).unwrap();
        assert_eq!(r.panicked, 0);
        assert!(all_fired(&svc, &poisoned, now));
    }

    /// The background sweeper survives panics and says so in its heartbeat.
    #[test]
    fn the_background_sweeper_survives_a_panic_and_keeps_its_heartbeat() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_796_000_400_000));
        let svc = Arc::new(service(dir.path(), clock.clone()));
        assert_eq!(svc.sweep_heartbeat().health().status, "not-running");
        let poisoned = take_in(&svc, "jiyang", "jiyang/yuehe/grid-01", "13500000003");
        let me = (Arc::as_ptr(&svc) as usize, poisoned.clone());
        PANIC_ON.lock().push(me.clone());
        clock.advance(40 * 86_400_000);
        let sweeper =
            crate::sweeper::Sweeper::start(svc.clone(), Duration::from_millis(10)).unwrap();
        // Wait (without a time bound on correctness) until it has swept at least twice.
        let node = format!("node=\"{}\",", svc.node());
        let metric = |outcome: &str| {
            svc.metrics()
                .render()
                .replace(&node, "")
                .lines()
                .find(|l| {
                    l.starts_with(&format!(
                        "civic_timer_sweeps_total{{outcome=\"{outcome}\"}}"
                    ))
                })
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        while metric("ok") < 2 {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            svc.metrics()
                .render()
                .contains("civic_timer_firing_panics_total")
        );
        assert!(!all_fired(&svc, &poisoned, clock.now_ms()));
        PANIC_ON.lock().retain(|x| *x != me);
        while !all_fired(&svc, &poisoned, clock.now_ms()) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(svc.sweep_heartbeat().health().status, "ok");
        sweeper.stop();
    }
}

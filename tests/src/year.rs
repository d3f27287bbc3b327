//! A year of cases on one machine: takes cases in through the real service (real plug-in
//! decisions and decision records) spread over simulated days, handles a share of them as
//! units and the callback desk would (sign, first contact, reply, callback, close, some
//! returns), fires the timers due at the end of each day, and then measures what an
//! operator sees: disk, memory, start-up, `/metrics` and every desk view, through the real
//! router.
//!
//! The `year` bench runs it at a million cases; a test runs it small and checks that the
//! figures it prints agree with each other and with a full count (not how fast they are).

use std::sync::Arc;
use std::time::Instant;

use civic_host::clock::ManualClock;
use civic_host::intake::NewCase;
use civic_host::service::{CaseAction, Service, ServiceConfig};
use civic_host::sweeper::{SWEEP_LIMIT, SWEEP_THREADS};

/// 2026-01-01T00:00:00+08:00.
pub const YEAR_START: i64 = 1_767_196_800_000;
const DAY_MS: i64 = 86_400_000;
/// Days after intake that the late share of cases is signed.
const LATE: usize = 30;
/// Threads taking cases in and handling them, as many agents and desks work at once (with
/// durable writes, concurrent writers share each flush).
const WRITERS: usize = 16;

/// What to load.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Cases in all.
    pub cases: usize,
    /// Days they are spread over (the clock ends on the day after the last).
    pub days: usize,
    /// Of every ten cases, how many their units handle within days; the rest are handled a
    /// month late, after their timers fired.
    pub handled_of_ten: usize,
}

/// What one run measured. Times are milliseconds of wall clock on this machine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figures {
    /// Cases stored.
    pub cases: u64,
    /// Seconds the load took (intake, handling and sweeps).
    pub load_seconds: f64,
    /// Cases taken in per second of load.
    pub intake_per_second: f64,
    /// Lifecycle actions applied.
    pub actions: u64,
    /// Timers fired by the daily sweeps.
    pub fired: u64,
    /// Bytes of the store's files.
    pub disk_bytes: u64,
    /// `disk_bytes / cases`.
    pub bytes_per_case: u64,
    /// Resident memory of this process after the load (bytes).
    pub rss_after_load: u64,
    /// Bringing the closed store's snapshot up to date, as `civic serve` does when it
    /// stops (see `SledStore::checkpoint`).
    pub checkpoint_ms: f64,
    /// Opening the service again on the loaded store (store, registry, plug-ins).
    pub startup_ms: f64,
    /// Resident memory right after that reopening (bytes).
    pub rss_after_restart: u64,
    /// `GET /metrics`.
    pub metrics_ms: f64,
    /// `GET /v1/districts/jiyang/overview?days=7`.
    pub overview_ms: f64,
    /// `GET /v1/districts/jiyang/warnings`.
    pub warnings_ms: f64,
    /// `GET /v1/districts/jiyang/overdue`.
    pub overdue_ms: f64,
    /// `GET /v1/cases?district=jiyang&limit=50`, five pages following the cursor: the slowest.
    pub board_page_ms: f64,
    /// `GET /v1/cases?district=jiyang&order=urgent&limit=50`.
    pub urgent_ms: f64,
    /// Unauthenticated Open311 `GET requests.json` for a past window with no cases.
    pub open311_empty_ms: f64,
    /// Unauthenticated Open311 `GET requests.json` for the last week.
    pub open311_week_ms: f64,
    /// One timer sweep with nothing due.
    pub idle_sweep_ms: f64,
    /// Open cases by `/metrics`' counts (every district).
    pub open_by_metrics: u64,
    /// All cases by `/metrics`' counts.
    pub all_by_metrics: u64,
    /// Open cases of jiyang by the overview.
    pub jiyang_open_by_overview: u64,
    /// Open cases of jiyang by a walk of every case.
    pub jiyang_open_by_walk: u64,
    /// Jiyang's cases on the warning board.
    pub jiyang_warnings: u64,
    /// Jiyang's red and yellow cases by a walk of every case.
    pub jiyang_alerts_by_walk: u64,
    /// Jiyang's overdue cases.
    pub jiyang_overdue: u64,
    /// Decisions the overview counts over its 7 days.
    pub overview_decisions: u64,
    /// `GET /v1/assessment?month=…` as the city admin, for the month a fortnight before the
    /// end of the load (every district and unit).
    pub assessment_ms: f64,
    /// The same request again, answered from the counts kept for each ended day.
    pub assessment_kept_ms: f64,
    /// Whether the two answers were the same.
    pub assessment_kept_same: bool,
    /// Districts' ended days of the last 62 the day keeper counted after those requests
    /// (`civic serve` runs it every ten minutes), and how long it took.
    pub days_kept: usize,
    /// Milliseconds the keeper took.
    pub days_kept_ms: f64,
    /// What it counted when run again at once (nothing: every day is kept).
    pub days_kept_again: usize,
    /// Cases dispatched in that month by the assessment's city totals.
    pub assessment_dispatched: u64,
    /// The same by a walk of every case's history (runs of up to 100,000 cases only).
    pub dispatched_by_walk: Option<u64>,
}

/// The intake bodies: the sample cases, each sent with a caller of its own.
fn bodies() -> Vec<serde_json::Value> {
    crate::sample_cases()
}

/// Resident memory of this process, from `/proc/self/status`.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Bytes of every file under `dir`.
pub fn disk_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            total += disk_bytes(&e.path());
        } else {
            total += meta.len();
        }
    }
    total
}

/// Loads `plan` into a store configured by `config` (its data directory is where the
/// bundled plug-ins are bootstrapped from), then measures. `say` gets progress lines.
pub fn run(plan: &Plan, config: &ServiceConfig, say: &mut dyn FnMut(&str)) -> Figures {
    let clock = Arc::new(ManualClock::new(YEAR_START));
    let svc = Arc::new(Service::open(config, clock.clone()).expect("open the service"));
    let boot = svc.bootstrap(&config.data_dir).expect("bootstrap");
    let admin = boot
        .admin_token
        .expect("a fresh store makes an admin token");
    let bodies = bodies();
    let per_day = plan.cases.div_ceil(plan.days).max(1);
    let threads = SWEEP_THREADS.max(svc.store().writers());
    let mut taken: Vec<Vec<String>> = Vec::with_capacity(plan.days);
    let (mut actions, mut fired, mut n) = (0u64, 0u64, 0usize);
    let started = Instant::now();
    for day in 0..plan.days {
        let morning = YEAR_START + day as i64 * DAY_MS + 8 * 3_600_000;
        clock.set(morning);
        let count = per_day.min(plan.cases - n);
        let step = (10 * 3_600_000 / per_day as i64).max(1);
        // Many callers at once, as the hotline's agents are: writers share each flush.
        let today: Vec<String> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let (svc, clock, bodies) = (&svc, &clock, &bodies);
                    s.spawn(move || {
                        let mut ids = Vec::new();
                        for k in (w..count).step_by(WRITERS) {
                            let i = n + k;
                            let mut b = bodies[i % bodies.len()].clone();
                            b["caller"] = serde_json::json!({"phone": format!("1{i:010}")});
                            let new: NewCase = serde_json::from_value(b).expect("a sample case");
                            ids.push(svc.intake(&new, "year").expect("intake").case.id);
                            clock.advance(step);
                        }
                        ids
                    })
                })
                .collect();
            let mut ids: Vec<String> = workers
                .into_iter()
                .flat_map(|h| h.join().expect("an intake worker"))
                .collect();
            ids.sort();
            ids
        });
        n += count;
        taken.push(today);
        // The units' and the callback desk's day: cases from earlier days move on.
        clock.set(morning + 11 * 3_600_000);
        // Most cases are handled within days; the rest a month late, after their
        // deadlines fired (the escalation plug-in moves them up meanwhile).
        let steps = [
            (1, Step::Sign, false),
            (3, Step::Reply, false),
            (5, Step::Close, false),
            (LATE, Step::Sign, true),
            (LATE + 2, Step::Reply, true),
            (LATE + 4, Step::Close, true),
        ];
        for (back, step, late) in steps {
            let Some(ids) = day.checked_sub(back).and_then(|d| taken.get(d)) else {
                continue;
            };
            actions += std::thread::scope(|s| {
                let workers: Vec<_> = (0..WRITERS)
                    .map(|w| {
                        let svc = &svc;
                        s.spawn(move || {
                            let mut applied = 0;
                            for (i, id) in ids.iter().enumerate().skip(w).step_by(WRITERS) {
                                if (i % 10 >= plan.handled_of_ten) == late {
                                    applied += step.apply(svc, id, i);
                                }
                            }
                            applied
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|h| h.join().expect("a desk worker"))
                    .sum::<u64>()
            });
        }
        // The end of the day: every timer due fires.
        clock.set(morning + 15 * 3_600_000);
        loop {
            let r = civic_host::timers::sweep(&svc, clock.now_ms(), SWEEP_LIMIT, threads)
                .expect("sweep");
            fired += r.fired as u64;
            if r.due < SWEEP_LIMIT {
                break;
            }
        }
        if day % 30 == 29 {
            say(&format!(
                "day {}: {n} cases, {actions} actions, {fired} timers fired, {:.0} s",
                day + 1,
                started.elapsed().as_secs_f64()
            ));
        }
    }
    let load_seconds = started.elapsed().as_secs_f64();
    svc.store().sync().expect("sync");
    let rss_after_load = rss_bytes();
    drop(taken);
    // Start-up: the same store opened again, as a restart would.
    drop(svc);
    let t = Instant::now();
    config
        .store
        .checkpoint()
        .expect("checkpoint the closed store");
    let checkpoint_ms = ms(t);
    let t = Instant::now();
    let svc = Arc::new(Service::open(config, clock.clone()).expect("reopen the service"));
    svc.bootstrap(&config.data_dir).expect("bootstrap again");
    let startup_ms = ms(t);
    let rss_after_restart = rss_bytes();
    let disk = disk_bytes(&config.data_dir);
    let app = civic_host::api::app(svc.clone(), civic_host::api::ApiConfig::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let get = |path: &str, token: Option<&str>| -> (f64, serde_json::Value) {
        let t = Instant::now();
        let (status, body) = rt.block_on(send(&app, path, token));
        let took = ms(t);
        assert_eq!(status, 200, "GET {path}: {body}");
        (
            took,
            serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        )
    };
    let (metrics_ms, _) = timed_text(&rt, &app, "/metrics", None);
    let metrics_text = rt.block_on(send(&app, "/metrics", None)).1;
    let (overview_ms, overview) = get("/v1/districts/jiyang/overview?days=7", Some(&admin));
    let (warnings_ms, warnings) = get("/v1/districts/jiyang/warnings", Some(&admin));
    let (overdue_ms, overdue) = get("/v1/districts/jiyang/overdue", Some(&admin));
    let mut board_page_ms: f64 = 0.0;
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let path = match &cursor {
            None => "/v1/cases?district=jiyang&limit=50".to_owned(),
            Some(c) => format!("/v1/cases?district=jiyang&limit=50&cursor={c}"),
        };
        let (took, page) = get(&path, Some(&admin));
        board_page_ms = board_page_ms.max(took);
        cursor = page["next"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let (urgent_ms, _) = get(
        "/v1/cases?district=jiyang&order=urgent&limit=50",
        Some(&admin),
    );
    let (open311_empty_ms, _) = get(
        "/open311/v2/requests.json?start_date=2020-01-01T00:00:00%2B08:00&end_date=2020-03-01T00:00:00%2B08:00",
        None,
    );
    let now = clock.now_ms();
    let week_ago = civic_host::calendar::format_datetime(now - 7 * DAY_MS, 480);
    let (open311_week_ms, _) = get(
        &format!(
            "/open311/v2/requests.json?start_date={}",
            week_ago.replace('+', "%2B")
        ),
        None,
    );
    let t = Instant::now();
    civic_host::timers::sweep(&svc, now, SWEEP_LIMIT, threads).expect("sweep");
    let idle_sweep_ms = ms(t);
    let cal = svc.calendar();
    let month = civic_host::calendar::format_month(cal.day_of(now - 15 * DAY_MS));
    let (assessment_ms, assessment) = get(&format!("/v1/assessment?month={month}"), Some(&admin));
    let (assessment_kept_ms, again) = get(&format!("/v1/assessment?month={month}"), Some(&admin));
    let figures = |v: &serde_json::Value| {
        (
            v["city"].clone(),
            v["districts"].clone(),
            v["units"].clone(),
        )
    };
    let assessment_kept_same = figures(&assessment) == figures(&again);
    let t = Instant::now();
    let days_kept = civic_host::views::keep_ended_days(&svc, 62).expect("keep days");
    let days_kept_ms = ms(t);
    let days_kept_again = civic_host::views::keep_ended_days(&svc, 62).expect("keep days");
    let assessment_dispatched = assessment["city"]["figures"]["counts"]["dispatched"]
        .as_u64()
        .unwrap_or(0);
    let dispatched_by_walk = (n <= 100_000).then(|| {
        let (first, last) = civic_host::calendar::parse_month(&month).expect("a month");
        let period = cal.start_of(first)..cal.start_of(last + 1);
        let mut count = 0;
        let store = svc.store();
        let mut ids = Vec::new();
        store
            .for_each_case(&Default::default(), &mut |c| ids.push(c.id))
            .expect("walk");
        for id in ids {
            for e in store.history(&id).expect("history") {
                if let civic_host::model::EventBody::Transition { action, .. } = &e.what
                    && matches!(
                        action,
                        civic_host::model::Action::Dispatch { .. }
                            | civic_host::model::Action::MoveTo { .. }
                    )
                    && period.contains(&e.at)
                {
                    count += 1;
                }
            }
        }
        count
    });

    // The figures checked against each other: counts by a walk of every case.
    let (mut jiyang_open_by_walk, mut jiyang_alerts_by_walk) = (0, 0);
    svc.store()
        .for_each_case(&Default::default(), &mut |c| {
            if c.district == "jiyang" && c.is_open() {
                jiyang_open_by_walk += 1;
                if c.alert(now).is_some() {
                    jiyang_alerts_by_walk += 1;
                }
            }
        })
        .expect("walk");
    let (mut open_by_metrics, mut all_by_metrics) = (0, 0);
    for line in metrics_text.lines() {
        let Some(rest) = line
            .strip_prefix("civic_cases{")
            .or_else(|| line.strip_prefix("cases{"))
        else {
            continue;
        };
        let n: u64 = rest
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64;
        all_by_metrics += n;
        let status = rest
            .split("status=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("");
        if status
            .parse::<civic_host::model::CaseStatus>()
            .is_ok_and(|s| !s.is_terminal())
        {
            open_by_metrics += n;
        }
    }
    let sum = |v: &serde_json::Value| -> u64 {
        v.as_object()
            .map(|o| o.values().filter_map(|x| x.as_u64()).sum())
            .unwrap_or(0)
    };
    let overview_decisions = overview["days"]
        .as_array()
        .map(|days| days.iter().map(|d| sum(&d["decisions"])).sum())
        .unwrap_or(0);
    let cases = svc.store().case_count().expect("count");
    Figures {
        cases,
        load_seconds,
        intake_per_second: n as f64 / load_seconds,
        actions,
        fired,
        disk_bytes: disk,
        bytes_per_case: disk / cases.max(1),
        rss_after_load,
        checkpoint_ms,
        startup_ms,
        rss_after_restart,
        metrics_ms,
        overview_ms,
        warnings_ms,
        overdue_ms,
        board_page_ms,
        urgent_ms,
        open311_empty_ms,
        open311_week_ms,
        idle_sweep_ms,
        open_by_metrics,
        all_by_metrics,
        jiyang_open_by_overview: sum(&overview["open_by_status"]),
        jiyang_open_by_walk,
        jiyang_warnings: warnings["cases"].as_array().map_or(0, |a| a.len() as u64),
        jiyang_alerts_by_walk,
        jiyang_overdue: overdue["cases"].as_array().map_or(0, |a| a.len() as u64),
        overview_decisions,
        assessment_ms,
        assessment_kept_ms,
        assessment_kept_same,
        days_kept,
        days_kept_ms,
        days_kept_again,
        assessment_dispatched,
        dispatched_by_walk,
    }
}

/// One step of a case's handling, applied on a later day.
#[derive(Clone, Copy)]
enum Step {
    /// Sign and make first contact (one case in fifty is returned first).
    Sign,
    /// The unit's reply.
    Reply,
    /// The callback, then close.
    Close,
}

impl Step {
    /// Applies the step to case `id` (the `i`th of its day); returns the actions applied.
    /// A case the sweep escalated or a plug-in left unassigned may refuse a step: that is
    /// the case as a real desk would find it, so it is skipped, not an error.
    fn apply(self, svc: &Service, id: &str, i: usize) -> u64 {
        let actions: Vec<CaseAction> = match self {
            Step::Sign if i % 50 == 7 => vec![
                CaseAction::Return("not ours: wrong grid".into()),
                CaseAction::Sign,
                CaseAction::Start,
            ],
            Step::Sign => vec![CaseAction::Sign, CaseAction::Start],
            Step::Reply => vec![CaseAction::Reply("done: see the photos".into())],
            Step::Close => vec![
                CaseAction::Callback {
                    satisfied: i % 20 != 3,
                    resolved: i % 20 != 3,
                    note: "called back".into(),
                },
                CaseAction::Close,
            ],
        };
        let mut applied = 0;
        for a in &actions {
            if svc.act(id, a, "desk", None).is_ok() {
                applied += 1;
            }
        }
        applied
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

async fn send(app: &axum::Router, path: &str, token: Option<&str>) -> (u16, String) {
    use tower::ServiceExt;
    let mut req = axum::http::Request::builder().method("GET").uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(axum::body::Body::empty()).expect("a request"))
        .await
        .expect("the router answers");
    let status = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("a body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn timed_text(
    rt: &tokio::runtime::Runtime,
    app: &axum::Router,
    path: &str,
    token: Option<&str>,
) -> (f64, String) {
    let t = Instant::now();
    let (status, body) = rt.block_on(send(app, path, token));
    let took = ms(t);
    assert_eq!(status, 200, "GET {path}: {body}");
    (took, body)
}

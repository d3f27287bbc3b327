//! The store contract as tests: every engine must pass every check here, written once
//! against [`CaseStore`]. The integration tests run them on sled and on a PostgreSQL they
//! start themselves, one `#[test]` per check and engine, through
//! [`store_contract_tests!`](crate::store_contract_tests).
//!
//! A check panics (like an assertion) on the first way the engine breaks the contract.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::{
    CaseStore, Change, DirectoryRecord, Filter, MAX_PAGE, StoreError, Versioned, backup, retention,
    update_record,
};
use crate::model::{Case, CaseStatus, Channel, EventBody, PendingTimer, TimerKind};

/// A fresh, empty store and whatever keeps it alive (a temp dir, a database).
pub struct Fresh {
    /// The store.
    pub store: Arc<dyn CaseStore>,
    /// Dropped with the store.
    pub keep: Box<dyn std::any::Any + Send>,
}

/// Makes a fresh, empty store of the engine under test.
pub type Factory<'a> = &'a dyn Fn() -> Fresh;

/// Generates one `#[test]` per contract check, each on stores `$fresh` makes.
#[macro_export]
macro_rules! store_contract_tests {
    ($fresh:expr) => {
        $crate::store_contract_tests!(@each $fresh;
            creates_reads_and_refuses_stale_writes,
            writes_each_case_of_a_batch_on_its_own,
            lists_every_filter_newest_first_across_pages,
            pages_have_no_duplicates_or_gaps_while_writes_go_on,
            refuses_cursors_of_other_listings,
            gives_due_timers_in_time_order,
            answers_the_callers_window,
            keeps_opaque_records,
            keeps_directory_versions,
            counts_cases_by_district_and_status,
            counts_rule_activity_per_hour,
            hands_out_ids_once,
            exports_and_imports_with_nothing_lost,
            refuses_imports_it_cannot_take_whole,
            removes_cases_only_at_the_version_read,
            archives_old_finished_cases_and_takes_them_back_identically,
            keeps_assessment_facts_with_every_write,
        );
    };
    (@each $fresh:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::store::contract::$name(&$fresh)
            }
        )*
    };
}

const T0: i64 = 1_796_000_400_000;
const MINUTE: i64 = 60_000;

/// A new case: `n`-th of a run, `minutes` after T0.
fn case(s: &dyn CaseStore, district: &str, category: &str, minutes: i64) -> Case {
    let mut c = Case::received(
        s.next_case_id().expect("an id"),
        district.into(),
        category.into(),
        "token-a".into(),
        T0 + minutes * MINUTE,
    );
    c.caller_key = format!("caller-{}", minutes % 3);
    c
}

fn received(at: i64) -> Vec<(i64, String, EventBody)> {
    vec![(
        at,
        "agent".into(),
        EventBody::Received {
            channel: Channel::Phone,
        },
    )]
}

fn create(s: &dyn CaseStore, c: Case) -> Case {
    let at = c.created_at;
    s.create_case(Change {
        case: c,
        events: received(at),
    })
    .expect("create")
}

/// A change moving `c` to `status` with `unit` leading and one event.
fn moved(c: &Case, status: CaseStatus, unit: Option<&str>) -> Change {
    let mut n = c.clone();
    n.status = status;
    n.handler = unit.map(str::to_owned);
    Change {
        case: n,
        events: vec![(
            c.created_at + 1,
            "tester".into(),
            EventBody::Escalation {
                timer: TimerKind::Warning,
                action: "mark".into(),
                detail: format!("to {status}"),
            },
        )],
    }
}

/// Writes `change` to the case as `read` showed it.
fn write1(s: &dyn CaseStore, read: &Case, change: Change) -> Result<Case, StoreError> {
    let mut out = s
        .write(vec![Versioned {
            read: read.clone(),
            change,
            fence: None,
        }])
        .expect("the write call");
    s.sync().expect("sync");
    out.pop().expect("one result")
}

/// Create, read, a duplicate refused, a stale write refused with nothing written, a
/// current one written with the next version and its events counted.
pub fn creates_reads_and_refuses_stale_writes(fresh: Factory<'_>) {
    let f = fresh();
    let s = &*f.store;
    let a = create(s, case(s, "jiyang", "noise", 0));
    assert_eq!((a.version, a.event_count), (1, 1));
    assert_eq!(s.get_case(&a.id).unwrap().as_ref(), Some(&a));
    assert!(s.get_case("c-9999999999").unwrap().is_none());
    assert!(matches!(
        s.create_case(Change {
            case: a.clone(),
            events: vec![]
        }),
        Err(StoreError::Exists(_))
    ));

    let b = write1(
        s,
        &a,
        moved(&a, CaseStatus::Dispatched, Some("jiyang/yuehe")),
    )
    .unwrap();
    assert_eq!((b.version, b.event_count), (2, 2));
    assert_eq!(s.get_case(&a.id).unwrap().unwrap(), b);
    let stale = write1(s, &a, moved(&a, CaseStatus::Closed, None));
    assert!(
        matches!(
            stale,
            Err(StoreError::Conflict {
                expected: 1,
                actual: 2,
                ..
            })
        ),
        "{stale:?}"
    );
    assert_eq!(
        s.get_case(&a.id).unwrap().unwrap(),
        b,
        "nothing of a stale write"
    );
    assert_eq!(s.history(&a.id).unwrap().len(), 2);

    let mut ghost = a.clone();
    ghost.id = "c-0000999999".into();
    assert!(matches!(
        write1(s, &ghost, moved(&ghost, CaseStatus::Closed, None)),
        Err(StoreError::NotFound(_))
    ));
    let mut other_district = moved(&b, CaseStatus::Closed, None);
    other_district.case.district = "yazhou".into();
    assert!(matches!(
        write1(s, &b, other_district),
        Err(StoreError::Invalid(_))
    ));

    // update_case: with a stale version a conflict, without one it retries on the newest.
    assert!(matches!(
        s.update_case(&a.id, Some(1), &|c| Ok(moved(c, CaseStatus::Closed, None))),
        Err(StoreError::Conflict { .. })
    ));
    let c = s
        .update_case(&a.id, None, &|c| {
            Ok(moved(c, CaseStatus::Signed, Some("x")))
        })
        .unwrap();
    assert_eq!(
        (c.version, c.event_count, c.status),
        (3, 3, CaseStatus::Signed)
    );
    let h = s.history(&a.id).unwrap();
    assert_eq!(h.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(
        s.history_of(&a.id, 2).unwrap().len(),
        2,
        "what a read case counts"
    );
    let r = s.check_consistency().unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!((r.cases, r.events), (1, 3));
}

/// A batch writes each case that is current and refuses each that is stale; a case named
/// twice refuses the call before anything is written.
pub fn writes_each_case_of_a_batch_on_its_own(fresh: Factory<'_>) {
    let f = fresh();
    let s = &*f.store;
    let a = create(s, case(s, "jiyang", "noise", 0));
    let b = create(s, case(s, "jiyang", "noise", 1));
    let b2 = write1(s, &b, moved(&b, CaseStatus::Dispatched, Some("u1"))).unwrap();
    let out = s
        .write(vec![
            Versioned {
                read: a.clone(),
                change: moved(&a, CaseStatus::Dispatched, Some("u2")),
                fence: None,
            },
            Versioned {
                read: b.clone(),
                change: moved(&b, CaseStatus::Closed, None),
                fence: None,
            },
        ])
        .unwrap();
    s.sync().unwrap();
    assert!(out[0].as_ref().is_ok_and(|c| c.version == 2));
    assert!(matches!(out[1], Err(StoreError::Conflict { .. })));
    assert_eq!(s.get_case(&b.id).unwrap().unwrap(), b2);
    let a2 = s.get_case(&a.id).unwrap().unwrap();
    let twice = s.write(vec![
        Versioned {
            read: a2.clone(),
            change: moved(&a2, CaseStatus::Signed, Some("u2")),
            fence: None,
        },
        Versioned {
            read: a2.clone(),
            change: moved(&a2, CaseStatus::Closed, None),
            fence: None,
        },
    ]);
    assert!(matches!(twice, Err(StoreError::Invalid(_))));
    assert_eq!(s.get_case(&a.id).unwrap().unwrap(), a2, "nothing written");
}

/// A varied set of cases: two districts, statuses, units (lead and co-handler),
/// categories, two creators, one minute apart.
fn populate(s: &dyn CaseStore, n: i64) -> Vec<Case> {
    let statuses = [
        CaseStatus::Received,
        CaseStatus::Dispatched,
        CaseStatus::Signed,
        CaseStatus::Closed,
    ];
    (0..n)
        .map(|i| {
            let district = if i % 3 == 0 { "yazhou" } else { "jiyang" };
            let category = if i % 2 == 0 { "noise" } else { "street-light" };
            let mut c = case(s, district, category, i);
            if i % 4 == 1 {
                c.created_by = "token-b".into();
            }
            let c = create(s, c);
            if i % 5 == 0 {
                return c;
            }
            let mut change = moved(
                &c,
                statuses[(i % 4) as usize],
                Some(&format!("{district}/u{}", i % 2)),
            );
            if i % 7 == 0 {
                change.case.co_handlers = vec!["police".into()];
            }
            write1(s, &c, change).unwrap()
        })
        .collect()
}

/// Pages through a listing, `limit` at a time; panics on a duplicate.
fn all_pages(s: &dyn CaseStore, f: &Filter, limit: usize) -> Vec<Case> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let page = s.list(f, cursor.as_deref(), limit).expect("list");
        assert!(page.cases.len() <= limit.min(MAX_PAGE));
        for c in page.cases {
            assert!(seen.insert(c.id.clone()), "{} listed twice for {f:?}", c.id);
            out.push(c);
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => return out,
        }
    }
    panic!("the listing {f:?} never ended");
}

fn newest_first(cases: &mut [Case]) {
    cases.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
}

fn filters() -> Vec<Filter> {
    let d = |x: &str| Some(x.to_owned());
    vec![
        Filter::default(),
        Filter {
            district: d("jiyang"),
            ..Filter::default()
        },
        Filter {
            district: d("jiyang"),
            status: Some(CaseStatus::Dispatched),
            ..Filter::default()
        },
        Filter {
            status: Some(CaseStatus::Closed),
            ..Filter::default()
        },
        Filter {
            unit: d("jiyang/u1"),
            ..Filter::default()
        },
        Filter {
            unit: d("police"),
            ..Filter::default()
        },
        Filter {
            district: d("yazhou"),
            category: d("noise"),
            ..Filter::default()
        },
        Filter {
            created_by: d("token-b"),
            ..Filter::default()
        },
        Filter {
            district: d("jiyang"),
            created_from: Some(T0 + 10 * MINUTE),
            created_to: Some(T0 + 30 * MINUTE),
            ..Filter::default()
        },
        Filter {
            created_from: Some(T0 + 20 * MINUTE),
            ..Filter::default()
        },
        Filter {
            created_to: Some(T0 + 5 * MINUTE),
            ..Filter::default()
        },
        Filter {
            unit: d("jiyang/u0"),
            status: Some(CaseStatus::Signed),
            created_from: Some(T0 + 3 * MINUTE),
            ..Filter::default()
        },
        Filter {
            district: d("nowhere"),
            ..Filter::default()
        },
    ]
}

/// Every filter, paged at several sizes, lists exactly the matching cases, newest first.
pub fn lists_every_filter_newest_first_across_pages(fresh: Factory<'_>) {
    let f = fresh();
    let s = &*f.store;
    let all = populate(s, 45);
    for filter in filters() {
        let mut want: Vec<Case> = all.iter().filter(|c| filter.matches(c)).cloned().collect();
        newest_first(&mut want);
        for limit in [1, 7, 50] {
            let got = all_pages(s, &filter, limit);
            let ids = |v: &[Case]| v.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
            assert_eq!(ids(&got), ids(&want), "{filter:?} at {limit} a page");
        }
    }
    let one = s.list(&Filter::default(), None, 10_000).unwrap();
    assert_eq!(one.cases.len(), MAX_PAGE.min(45), "a page is capped");
}

/// While a listing is paged, cases are created and changed: no case is listed twice, and
/// every case that matched throughout is listed.
pub fn pages_have_no_duplicates_or_gaps_while_writes_go_on(fresh: Factory<'_>) {
    let f = fresh();
    let s = &*f.store;
    let all = populate(s, 40);
    for filter in [
        Filter::default(),
        Filter {
            district: Some("jiyang".into()),
            ..Filter::default()
        },
    ] {
        let stable: Vec<String> = all
            .iter()
            .filter(|c| filter.matches(c))
            .map(|c| c.id.clone())
            .collect();
        let mut seen = HashSet::new();
        let mut cursor: Option<String> = None;
        let mut minute = 1_000;
        loop {
            let page = s.list(&filter, cursor.as_deref(), 4).unwrap();
            for c in &page.cases {
                assert!(seen.insert(c.id.clone()), "{} twice", c.id);
            }
            // Writes between pages: a new case, and a change to one already listed.
            create(s, case(s, "jiyang", "noise", minute));
            minute += 1;
            if let Some(c) = page.cases.first() {
                let cur = s.get_case(&c.id).unwrap().unwrap();
                let mut change = moved(&cur, cur.status, cur.handler.as_deref());
                change.case.marks.push("touched".into());
                write1(s, &cur, change).unwrap();
            }
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        for id in &stable {
            assert!(seen.contains(id), "{id} was never listed for {filter:?}");
        }
    }
}

/// A cursor is only good for the listing that gave it; garbage is refused, not a panic.
pub fn refuses_cursors_of_other_listings(fresh: Factory<'_>) {
    let f = fresh();
    let s = &*f.store;
    populate(s, 12);
    let jiyang = Filter {
        district: Some("jiyang".into()),
        ..Filter::default()
    };
    let next = s
        .list(&jiyang, None, 2)
        .unwrap()
        .next
        .expect("more than a page");
    let yazhou = Filter {
        district: Some("yazhou".into()),
        ..Filter::default()
    };
    assert!(matches!(
        s.list(&yazhou, Some(&next), 2),
        Err(StoreError::Invalid(_))
    ));
    for junk in ["", "zz", "not a cursor", "00.1.c", "ffffffffffffffffffff"] {
        assert!(
            matches!(s.list(&jiyang, Some(junk), 2), Err(StoreError::Invalid(_))),
            "{junk:?}"
        );
    }
}

/// Each case's earliest pending timer, due ones only, earliest first, at most `limit`; a
/// timer removed by a write is gone.
pub fn gives_due_timers_in_time_order(fresh: Factory<'_>) {
    let f = fresh();
    let s = &*f.store;
    let mut ids = Vec::new();
    for (i, dues) in [
        vec![(TimerKind::Resolution, 50), (TimerKind::SignOff, 10)],
        vec![(TimerKind::Warning, 30)],
        vec![],
        vec![(TimerKind::FirstContact, 5), (TimerKind::Overdue, 500)],
        vec![(TimerKind::Repeat, 400)],
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = case(s, "jiyang", "noise", i as i64);
        c.timers = dues
            .into_iter()
            .map(|(kind, m)| PendingTimer {
                kind,
                due_at: T0 + m * MINUTE,
            })
            .collect();
        ids.push(create(s, c).id);
    }
    let due = s.due_timers(T0 + 100 * MINUTE, 100).unwrap();
    let got: Vec<(String, TimerKind, i64)> = due
        .iter()
        .map(|d| (d.case_id.clone(), d.kind, (d.due_at - T0) / MINUTE))
        .collect();
    assert_eq!(
        got,
        vec![
            (ids[3].clone(), TimerKind::FirstContact, 5),
            (ids[0].clone(), TimerKind::SignOff, 10),
            (ids[1].clone(), TimerKind::Warning, 30),
        ]
    );
    assert_eq!(s.due_timers(T0 + 100 * MINUTE, 2).unwrap().len(), 2);
    assert!(s.due_timers(T0, 100).unwrap().is_empty());
    // Firing the earliest re-indexes the case under its next timer.
    let c0 = s.get_case(&ids[0]).unwrap().unwrap();
    let mut change = moved(&c0, c0.status, None);
    change.case.timers.retain(|t| t.kind != TimerKind::SignOff);
    write1(s, &c0, change).unwrap();
    let due = s.due_timers(T0 + 100 * MINUTE, 100).unwrap();
    assert_eq!(
        due.iter()
            .map(|d| (d.case_id.as_str(), (d.due_at - T0) / MINUTE))
            .collect::<Vec<_>>(),
        vec![
            (ids[3].as_str(), 5),
            (ids[1].as_str(), 30),
            (ids[0].as_str(), 50)
        ]
    );
    // A case whose last timer is consumed leaves the scan; a write that keeps its timer
    // keeps it there.
    let c1 = s.get_case(&ids[1]).unwrap().unwrap();
    let mut change = moved(&c1, c1.status, None);
    change.case.timers.clear();
    write1(s, &c1, change).unwrap();
    let c3 = s.get_case(&ids[3]).unwrap().unwrap();
    let same = moved(&c3, CaseStatus::Signed, Some("u9"));
    write1(s, &c3, same).unwrap();
    let due = s.due_timers(T0 + 100 * MINUTE, 100).unwrap();
    assert_eq!(
        due.iter()
            .map(|d| (d.case_id.as_str(), d.kind))
            .collect::<Vec<_>>(),
        vec![
            (ids[3].as_str(), TimerKind::FirstContact),
            (ids[0].as_str(), TimerKind::Resolution)
        ]
    );
    let r = s.check_consistency().unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
}

/// The repeat rule's window: a caller's cases since a time, newest first, at most `limit`.
pub fn answers_the_callers_window(fresh: Factory<'_>) {
    let f = fresh();
    let s = &*f.store;
    let all = populate(s, 20);
    let key = "caller-1";
    let since = T0 + 4 * MINUTE;
    let mut want: Vec<Case> = all
        .iter()
        .filter(|c| c.caller_key == key && c.created_at >= since)
        .cloned()
        .collect();
    newest_first(&mut want);
    let got = s.caller_cases(key, since, 100).unwrap();
    assert_eq!(got, want);
    assert_eq!(s.caller_cases(key, since, 2).unwrap(), want[..2].to_vec());
    assert!(s.caller_cases("nobody", T0, 10).unwrap().is_empty());
    assert!(s.caller_cases(key, since, 0).unwrap().is_empty());
}

/// Records: put, get, prefix scan in key order, atomic change, remove, collections.
pub fn keeps_opaque_records(fresh: Factory<'_>) {
    let f = fresh();
    let s = &*f.store;
    let bytes = |x: &str| x.as_bytes().to_vec();
    s.record_put(
        "plugins",
        &[
            ("jiyang/routing/b".into(), bytes("B")),
            ("jiyang/routing/a".into(), vec![0, 255, 1]),
            // Byte order puts capitals first; a linguistic collation does not.
            ("jiyang/Routing/c".into(), bytes("C")),
            ("jiyangx".into(), bytes("X")),
            ("yazhou/routing/a".into(), bytes("Y")),
        ],
    )
    .unwrap();
    s.record_put("tokens", &[("t1".into(), bytes("{}"))])
        .unwrap();
    assert_eq!(
        s.record_get("plugins", "jiyang/routing/a").unwrap(),
        Some(vec![0, 255, 1])
    );
    assert_eq!(s.record_get("plugins", "nope").unwrap(), None);
    assert_eq!(s.record_get("other", "t1").unwrap(), None);
    let keys: Vec<String> = s
        .record_scan("plugins", "jiyang/")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        vec!["jiyang/Routing/c", "jiyang/routing/a", "jiyang/routing/b"],
        "a prefix's records, in byte order"
    );
    assert_eq!(s.record_scan("plugins", "").unwrap().len(), 5);
    let n: u32 = update_record(s, "counters", "c", |cur| {
        let n = cur.map_or(0, |b| {
            std::str::from_utf8(b).unwrap().parse::<u32>().unwrap()
        });
        Ok((Some((n + 1).to_string().into_bytes()), n + 1))
    })
    .unwrap();
    assert_eq!(n, 1);
    let again: u32 = update_record(s, "counters", "c", |cur| {
        let n: u32 = std::str::from_utf8(cur.unwrap()).unwrap().parse().unwrap();
        Ok((Some((n + 1).to_string().into_bytes()), n + 1))
    })
    .unwrap();
    assert_eq!(again, 2);
    let refused = update_record(
        s,
        "counters",
        "c",
        |_| -> Result<(Option<Vec<u8>>, ()), _> { Err(StoreError::Invalid("no".into())) },
    );
    assert!(refused.is_err());
    assert_eq!(
        s.record_get("counters", "c").unwrap(),
        Some(bytes("2")),
        "a refused change writes nothing"
    );
    update_record(s, "counters", "c", |_| Ok((None, ()))).unwrap();
    assert_eq!(s.record_get("counters", "c").unwrap(), None);
    s.record_remove("plugins", "yazhou/routing/a").unwrap();
    s.record_remove("plugins", "absent").unwrap();
    assert_eq!(s.record_scan("plugins", "").unwrap().len(), 4);
    let cols: HashSet<String> = s.record_collections().unwrap().into_iter().collect();
    assert!(
        cols.contains("plugins") && cols.contains("tokens"),
        "{cols:?}"
    );
}

fn sample_directory() -> DirectoryRecord {
    DirectoryRecord {
        directory: crate::directory::SAMPLE_DIRECTORY.into(),
        categories: crate::directory::SAMPLE_CATEGORIES.into(),
    }
}

/// Directory versions are numbered from 1, kept, and the newest is current.
pub fn keeps_directory_versions(fresh: Factory<'_>) {
    let f = fresh();
    let s = &*f.store;
    assert_eq!(s.current_directory_version().unwrap(), None);
    assert!(s.directory_versions().unwrap().is_empty());
    let one = sample_directory();
    let mut two = sample_directory();
    two.categories.push(' ');
    assert_eq!(s.put_directory(&one).unwrap(), 1);
    assert_eq!(s.put_directory(&two).unwrap(), 2);
    assert_eq!(s.current_directory_version().unwrap(), Some(2));
    assert_eq!(s.directory_versions().unwrap(), vec![1, 2]);
    assert_eq!(s.directory_record(1).unwrap(), Some(one));
    assert_eq!(s.directory_record(2).unwrap(), Some(two));
    assert_eq!(s.directory_record(3).unwrap(), None);
}

/// The case count and the counts by district and status agree with what was written.
pub fn counts_cases_by_district_and_status(fresh: Factory<'_>) {
    let f = fresh();
    let s = &*f.store;
    assert_eq!(s.case_count().unwrap(), 0);
    let all = populate(s, 30);
    assert_eq!(s.case_count().unwrap(), 30);
    let mut want: BTreeMap<(String, CaseStatus), u64> = BTreeMap::new();
    for c in &all {
        *want.entry((c.district.clone(), c.status)).or_default() += 1;
    }
    let got: BTreeMap<_, _> = s.status_counts().unwrap().into_iter().collect();
    assert_eq!(got, want);
}

/// A decision event by plug-in `plugin` at `at`.
fn decision(at: i64, plugin: &str) -> (i64, String, EventBody) {
    (
        at,
        "rules".into(),
        EventBody::Decision(Box::new(crate::model::DecisionRecord {
            hook: crate::runtime::Hook::Routing,
            plugin: crate::runtime::PluginRef {
                name: plugin.into(),
                version: "0123456789abcdef".into(),
            },
            contract_version: "0.1.0".into(),
            directory_version: 1,
            input_digest: "d".into(),
            input: crate::model::RawJson::of(&serde_json::json!({"n": at})),
            output: crate::model::RawJson::of(&serde_json::Value::Null),
            reasons: vec![],
            fuel_used: 1,
            duration_us: 1,
            fallback: false,
        })),
    )
}

/// A rule failure event at `at`.
fn failure(at: i64) -> (i64, String, EventBody) {
    (
        at,
        "rules".into(),
        EventBody::RuleFailure {
            hook: crate::runtime::Hook::Routing,
            plugin: crate::runtime::PluginRef {
                name: "district-rules".into(),
                version: "0123456789abcdef".into(),
            },
            failure: crate::runtime::PluginFailure::OutOfFuel { budget: 1 },
            fallback: "city-default".into(),
        },
    )
}

/// Decisions per plug-in and failures per hour, at intake and on later writes, are what
/// was written: per district, per hour, only the hours asked for; status counts follow
/// cases moved back and forth.
pub fn counts_rule_activity_per_hour(fresh: Factory<'_>) {
    use super::Activity;
    const HOUR: i64 = super::tally::HOUR_MS;
    let f = fresh();
    let s = &*f.store;
    // Hour-aligned start, so "the hours from T" are whole.
    let h0 = T0.div_euclid(HOUR) * HOUR;
    let mut want: BTreeMap<(String, i64, Option<String>), u64> = BTreeMap::new();
    let mut cases = Vec::new();
    for i in 0..12i64 {
        let district = if i % 3 == 0 { "yazhou" } else { "jiyang" };
        let at = h0 + i * 20 * MINUTE;
        let c = Case::received(
            s.next_case_id().unwrap(),
            district.into(),
            "noise".into(),
            "token-a".into(),
            at,
        );
        let plugin = if i % 2 == 0 {
            "city-default"
        } else {
            "district-rules"
        };
        let mut events = received(at);
        events.push(decision(at, plugin));
        *want
            .entry((
                district.into(),
                at.div_euclid(HOUR) * HOUR,
                Some(format!("{plugin}@0123456789abcdef")),
            ))
            .or_default() += 1;
        let c = s.create_case(Change { case: c, events }).unwrap();
        cases.push(c);
    }
    // Later writes: a failure and a decision hours later, and status changes back and forth.
    for (i, c) in cases.iter().enumerate() {
        let later = h0 + (5 + i as i64 % 2) * HOUR + 7 * MINUTE;
        let mut change = moved(c, CaseStatus::Dispatched, Some("jiyang/u1"));
        change.case.updated_at = later;
        change.events = vec![failure(later), decision(later, "escalation")];
        *want
            .entry((c.district.clone(), later.div_euclid(HOUR) * HOUR, None))
            .or_default() += 1;
        *want
            .entry((
                c.district.clone(),
                later.div_euclid(HOUR) * HOUR,
                Some("escalation@0123456789abcdef".into()),
            ))
            .or_default() += 1;
        let c = write1(s, c, change).unwrap();
        if i % 4 == 0 {
            let back = moved(&c, CaseStatus::Received, None);
            let c = write1(s, &c, back).unwrap();
            let mut again = moved(&c, CaseStatus::Closed, None);
            again.events.clear();
            write1(s, &c, again).unwrap();
        }
    }
    for district in ["jiyang", "yazhou", "tianya"] {
        let expect = |from: i64, to: i64| -> Vec<Activity> {
            want.iter()
                .filter(|((d, h, _), _)| d == district && (from..to).contains(h))
                .map(|((_, h, p), n)| Activity {
                    hour: *h,
                    plugin: p.clone(),
                    count: *n,
                })
                .collect()
        };
        let end = h0 + 10 * HOUR;
        assert_eq!(
            s.activity(district, h0, end).unwrap(),
            expect(h0, end),
            "{district}, all hours"
        );
        let (from, to) = (h0 + HOUR, h0 + 6 * HOUR);
        assert_eq!(
            s.activity(district, from, to).unwrap(),
            expect(from, to),
            "{district}, hours 1-5"
        );
        assert!(s.activity(district, end, end + HOUR).unwrap().is_empty());
    }
    let mut by_walk: BTreeMap<(String, CaseStatus), u64> = BTreeMap::new();
    s.for_each_case(&Filter::default(), &mut |c| {
        *by_walk.entry((c.district, c.status)).or_default() += 1
    })
    .unwrap();
    let got: BTreeMap<_, _> = s.status_counts().unwrap().into_iter().collect();
    assert_eq!(got, by_walk);
    assert_eq!(
        got.get(&("jiyang".to_owned(), CaseStatus::Closed)),
        Some(&2)
    );
}

/// Ids are never handed out twice, from any number of threads.
pub fn hands_out_ids_once(fresh: Factory<'_>) {
    let f = fresh();
    let s = &*f.store;
    let ids: Vec<String> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                sc.spawn(|| {
                    (0..150)
                        .map(|_| s.next_case_id().unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "an id was handed out twice");
    assert!(
        ids.iter().all(|i| super::id_number(i) > 0 && i.len() == 12),
        "{:?}",
        &ids[..3]
    );
}

/// A populated store exported and imported into a fresh one (and back out) has the same
/// cases, histories, records and directory versions, and a clean consistency report;
/// new ids do not collide with imported ones.
pub fn exports_and_imports_with_nothing_lost(fresh: Factory<'_>) {
    let a = fresh();
    let s = &*a.store;
    s.put_directory(&sample_directory()).unwrap();
    let all = populate(s, 25);
    s.record_put("tokens", &[("t1".into(), b"{\"x\":1}".to_vec())])
        .unwrap();
    s.record_put("plugins", &[("k".into(), vec![0, 1, 2, 255])])
        .unwrap();
    let mut first = Vec::new();
    let moved = backup::export(s, &mut first, &|_| {}).unwrap();
    assert_eq!(moved.cases, 25);

    let b = fresh();
    let t = &*b.store;
    let back = backup::import(t, std::io::Cursor::new(&first), &|_| {}).unwrap();
    assert_eq!((back.cases, back.events), (moved.cases, moved.events));
    let (ra, rb) = (
        s.check_consistency().unwrap(),
        t.check_consistency().unwrap(),
    );
    assert!(rb.problems.is_empty(), "{:?}", rb.problems);
    assert_eq!((ra.cases, ra.events), (rb.cases, rb.events));
    for c in &all {
        assert_eq!(t.get_case(&c.id).unwrap().as_ref(), Some(c));
        assert_eq!(t.history(&c.id).unwrap(), s.history(&c.id).unwrap());
    }
    assert_eq!(t.current_directory_version().unwrap(), Some(1));
    assert_eq!(
        t.record_get("plugins", "k").unwrap(),
        Some(vec![0, 1, 2, 255])
    );
    let mut second = Vec::new();
    backup::export(t, &mut second, &|_| {}).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&second),
        String::from_utf8_lossy(&first),
        "export → import → export is the same"
    );
    let newest = all.iter().map(|c| super::id_number(&c.id)).max().unwrap();
    assert!(super::id_number(&t.next_case_id().unwrap()) > newest);
    // The listings and the sweep work on what was imported.
    let jiyang = Filter {
        district: Some("jiyang".into()),
        ..Filter::default()
    };
    assert_eq!(
        all_pages(t, &jiyang, 5).len(),
        all.iter().filter(|c| jiyang.matches(c)).count()
    );
}

/// An import into a store that holds cases is refused; a bad line is refused with its
/// number; an empty input is not an export.
pub fn refuses_imports_it_cannot_take_whole(fresh: Factory<'_>) {
    let a = fresh();
    let s = &*a.store;
    populate(s, 3);
    let mut out = Vec::new();
    backup::export(s, &mut out, &|_| {}).unwrap();
    assert!(matches!(
        backup::import(s, std::io::Cursor::new(&out), &|_| {}),
        Err(StoreError::Invalid(m)) if m.contains("without cases")
    ));
    let b = fresh();
    let t = &*b.store;
    let e = backup::import(t, std::io::Cursor::new(b""), &|_| {}).unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    let e = backup::import(t, std::io::Cursor::new(b"{\"line\":\"case\"}\n"), &|_| {}).unwrap_err();
    assert!(matches!(e, StoreError::Import { line: 1, .. }), "{e}");
    let mut bad = out.clone();
    bad.extend_from_slice(b"{\"line\":\"event\",\"case\":1}\n");
    let lines = bad.iter().filter(|b| **b == b'\n').count();
    let e = backup::import(t, std::io::Cursor::new(&bad), &|_| {}).unwrap_err();
    assert!(
        matches!(e, StoreError::Import { line, .. } if line == lines),
        "{e}"
    );
    assert_eq!(
        t.case_count().unwrap(),
        0,
        "lines before a bad one in the same batch are not written"
    );
}

/// Every listing a case can be found through, with the case's own filters: none may still
/// name a removed case.
fn findable(s: &dyn CaseStore, c: &Case) -> bool {
    let by_district = Filter {
        district: Some(c.district.clone()),
        ..Filter::default()
    };
    let by_status = Filter {
        status: Some(c.status),
        ..by_district.clone()
    };
    let mut listings = vec![Filter::default(), by_district, by_status];
    for unit in c.handler.iter().chain(&c.co_handlers) {
        listings.push(Filter {
            unit: Some(unit.clone()),
            ..Filter::default()
        });
    }
    listings
        .iter()
        .any(|f| all_pages(s, f, 50).iter().any(|x| x.id == c.id))
        || s.caller_cases(&c.caller_key, i64::MIN, 1000)
            .unwrap()
            .iter()
            .any(|x| x.id == c.id)
        || s.due_timers(i64::MAX, 1000)
            .unwrap()
            .iter()
            .any(|d| d.case_id == c.id)
}

/// A removal is version-checked like a write: a stale one is refused and leaves the case
/// whole; a current one takes the case, its events and every index entry (no listing, caller
/// window or timer scan names it, the counts drop it); a second one finds nothing.
pub fn removes_cases_only_at_the_version_read(fresh: Factory<'_>) {
    let f = fresh();
    let s = &*f.store;
    let all = populate(s, 12);
    let mut c = case(s, "jiyang", "noise", 30);
    c.timers = vec![PendingTimer {
        kind: TimerKind::Warning,
        due_at: T0,
    }];
    let timed = create(s, c);
    let target = all
        .iter()
        .find(|c| !c.co_handlers.is_empty() && c.handler.is_some())
        .expect("a case with a lead and a co-handler")
        .clone();
    let before = s.status_counts().unwrap();

    let stale = {
        let mut x = target.clone();
        x.version -= 1;
        x
    };
    let out = s.remove_cases(&[stale]).unwrap();
    assert!(
        matches!(&out[..], [Err(StoreError::Conflict { actual, .. })] if *actual == target.version),
        "{out:?}"
    );
    assert_eq!(s.get_case(&target.id).unwrap().as_ref(), Some(&target));
    assert!(findable(s, &target));

    let out = s.remove_cases(&[target.clone(), timed.clone()]).unwrap();
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    for gone in [&target, &timed] {
        assert_eq!(s.get_case(&gone.id).unwrap(), None);
        assert!(s.history(&gone.id).unwrap().is_empty());
        assert!(!findable(s, gone), "{} is still listed", gone.id);
    }
    let after = s.status_counts().unwrap();
    let key = (target.district.clone(), target.status);
    assert_eq!(after.get(&key).copied().unwrap_or(0) + 1, before[&key]);
    assert_eq!(s.case_count().unwrap(), all.len() as u64 - 1);
    let r = s.check_consistency().unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    // The others are as they were.
    for c in all.iter().filter(|c| c.id != target.id) {
        assert_eq!(s.get_case(&c.id).unwrap().as_ref(), Some(c));
    }
    let out = s.remove_cases(std::slice::from_ref(&target)).unwrap();
    assert!(
        matches!(&out[..], [Err(StoreError::NotFound(_))]),
        "{out:?}"
    );
}

/// A retention run archives the finished cases last changed before its cut-off, with
/// their histories, and removes them; open cases, recently finished ones and a case merged
/// into an open one stay. The archive imports back into the same store (the histories
/// identical, the store consistent, the counts as before) and into an empty one; a second
/// import is refused. The run's audit record names the archive's sha256.
pub fn archives_old_finished_cases_and_takes_them_back_identically(fresh: Factory<'_>) {
    let a = fresh();
    let s = &*a.store;
    let cutoff = T0 + 100 * MINUTE;
    let mut made = Vec::new();
    // (district, status, minutes of the last change, merged into the open case)
    let plan = [
        ("jiyang", CaseStatus::Closed, 10, false),
        ("jiyang", CaseStatus::Closed, 20, false),
        ("yazhou", CaseStatus::Rejected, 30, false),
        ("jiyang", CaseStatus::AnsweredAtIntake, 40, false),
        ("jiyang", CaseStatus::Signed, 50, false), // open: stays
        ("yazhou", CaseStatus::Received, 5, false), // open: stays
        ("jiyang", CaseStatus::Closed, 150, false), // finished after the cut-off: stays
        ("jiyang", CaseStatus::Merged, 60, true),  // merged into an open case: stays
        ("yazhou", CaseStatus::Merged, 70, false), // merged into a finished one: goes
    ];
    let open_target = plan.iter().position(|p| p.1 == CaseStatus::Signed).unwrap();
    for (i, (district, status, minutes, _)) in plan.iter().enumerate() {
        let c = create(s, case(s, district, "noise", i as i64));
        let mut change = moved(&c, *status, Some(&format!("{district}/u1")));
        change.case.updated_at = T0 + minutes * MINUTE;
        made.push(write1(s, &c, change).unwrap());
    }
    for (i, p) in plan.iter().enumerate() {
        if p.1 != CaseStatus::Merged {
            continue;
        }
        let into = if p.3 { open_target } else { 0 };
        let c = made[i].clone();
        let mut change = moved(&c, CaseStatus::Merged, None);
        change.case.merged_into = Some(made[into].id.clone());
        change.case.updated_at = c.updated_at;
        made[i] = write1(s, &c, change).unwrap();
    }
    let goes: Vec<&Case> = made
        .iter()
        .enumerate()
        .filter(|(i, c)| c.status.is_terminal() && c.updated_at < cutoff && !plan[*i].3)
        .map(|(_, c)| c)
        .collect();
    assert_eq!(goes.len(), 5);
    let histories: BTreeMap<String, _> = made
        .iter()
        .map(|c| (c.id.clone(), s.history(&c.id).unwrap()))
        .collect();
    let counts = s.status_counts().unwrap();

    let file = TempFile::new("archive.jsonl");
    let path = file.0.clone();
    let policy = retention::Policy {
        closed_before: cutoff,
    };
    let run = retention::run(s, &policy, &path, "tester", T0 + 1000 * MINUTE, &|_| true).unwrap();
    assert_eq!((run.cases, run.kept_changed), (5, 0));
    assert_eq!(
        run.events,
        goes.iter()
            .map(|c| histories[&c.id].len() as u64)
            .sum::<u64>()
    );
    for c in &made {
        let live = s.get_case(&c.id).unwrap();
        if goes.iter().any(|g| g.id == c.id) {
            assert_eq!(live, None, "{} should be archived", c.id);
        } else {
            assert_eq!(live.as_ref(), Some(c), "{} should stay", c.id);
        }
    }
    let r = s.check_consistency().unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let bytes = std::fs::read(&path).unwrap();
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    assert_eq!(
        retention::runs(s).unwrap(),
        vec![retention::Run {
            state: "finished".into(),
            bytes: bytes.len() as u64,
            sha256: digest,
            ..run.clone()
        }]
    );
    assert!(
        retention::run(s, &policy, &path, "tester", T0, &|_| true).is_err(),
        "an archive is never overwritten"
    );

    // Into an empty store, for reading.
    let b = fresh();
    let t = &*b.store;
    let moved = backup::import(t, std::io::Cursor::new(&bytes), &|_| {}).unwrap();
    assert_eq!(moved.cases, 5);
    for g in &goes {
        assert_eq!(t.get_case(&g.id).unwrap().as_ref(), Some(*g));
        assert_eq!(t.history(&g.id).unwrap(), histories[&g.id]);
    }
    // Back into the store it came from: everything as before the run.
    backup::import(s, std::io::Cursor::new(&bytes), &|_| {}).unwrap();
    for c in &made {
        let back = s.get_case(&c.id).unwrap();
        assert_eq!(back.as_ref(), Some(c));
        assert_eq!(s.history(&c.id).unwrap(), histories[&c.id]);
    }
    assert_eq!(s.status_counts().unwrap(), counts);
    let r = s.check_consistency().unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let again = backup::import(s, std::io::Cursor::new(&bytes), &|_| {}).unwrap_err();
    assert!(
        again.to_string().contains("already"),
        "a second import is refused: {again}"
    );
}

/// A file path in the temp dir, removed when dropped (the contract is library code, without
/// the test-only `tempfile`).
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Self(std::env::temp_dir().join(format!(
            "civic-contract-{}-{n}-{nanos}-{name}",
            std::process::id()
        )))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Applies a lifecycle action to the case as `read` showed it, at `at`, as the service
/// records it (one transition event).
fn act(s: &dyn CaseStore, read: &Case, action: crate::model::Action, at: i64) -> Case {
    let next = crate::lifecycle::apply(read, &action, at).expect("a legal action");
    let to = next.status;
    write1(
        s,
        read,
        Change {
            case: next,
            events: vec![(
                at,
                "tester".into(),
                EventBody::Transition {
                    action,
                    from: read.status,
                    to,
                },
            )],
        },
    )
    .expect("written")
}

/// A district's period is counted from the facts kept with each write, and those counts
/// are what the cases' histories derive: met and missed deadlines at the deadline's time,
/// deadlines still owed (and passed), callbacks, a reopening; what a removed case owed goes
/// with it, what its unit did stays; an export → import keeps every fact.
pub fn keeps_assessment_facts_with_every_write(fresh: Factory<'_>) {
    use crate::assessment::{self, Count, Measure};
    use crate::model::{Action, Deadlines};
    const HOUR: i64 = 60 * MINUTE;
    let a = fresh();
    let s = &*a.store;
    let dispatch = |c: &Case, unit: &str, at: i64| {
        let c = act(s, c, Action::QueueForDispatch, at);
        act(
            s,
            &c,
            Action::Dispatch {
                lead: unit.into(),
                co_handlers: vec![],
                deadlines: Deadlines {
                    sign_off: Some(at + HOUR),
                    first_contact: Some(at + 2 * HOUR),
                    resolution: Some(at + 100 * HOUR),
                    warning: None,
                },
                timers: vec![],
            },
            at,
        )
    };
    // Handled through to a reopening: signed on time, first contact late, replied on time.
    let one = dispatch(&create(s, case(s, "jiyang", "noise", 0)), "jiyang/a", T0);
    let one = act(
        s,
        &one,
        Action::Sign {
            unit: "jiyang/a".into(),
        },
        T0 + 30 * MINUTE,
    );
    let one = act(s, &one, Action::Start, T0 + 3 * HOUR);
    let one = act(
        s,
        &one,
        Action::Reply {
            text: "fixed".into(),
        },
        T0 + 50 * HOUR,
    );
    let one = act(
        s,
        &one,
        Action::Callback {
            satisfied: true,
            resolved: false,
            note: String::new(),
        },
        T0 + 51 * HOUR,
    );
    let one = act(s, &one, Action::Close, T0 + 52 * HOUR);
    let one = act(
        s,
        &one,
        Action::Reopen {
            reason: "back".into(),
        },
        T0 + 53 * HOUR,
    );
    // Never signed: owes all three deadlines, the first two passed by `now`.
    let two = dispatch(
        &create(s, case(s, "jiyang", "noise", 1)),
        "jiyang/a",
        T0 + MINUTE,
    );
    // Another district's: never in jiyang's figures.
    dispatch(&create(s, case(s, "tianya", "noise", 2)), "tianya/b", T0);
    let now = T0 + 10 * HOUR;
    let (from, to) = (T0 - HOUR, T0 + 200 * HOUR);
    let counts = s.assessment("jiyang", from, to, now).expect("assessment");
    let count = |m: Measure| {
        counts
            .get(&("jiyang".to_owned(), "jiyang/a".to_owned(), m))
            .copied()
            .unwrap_or_default()
    };
    let done = |n| Count {
        done: n,
        open: 0,
        overdue: 0,
    };
    assert_eq!(count(Measure::Dispatched), done(2));
    assert_eq!(
        count(Measure::SignOffDue),
        Count {
            done: 1,
            open: 1,
            overdue: 1
        }
    );
    assert_eq!(count(Measure::SignedOnTime), done(1));
    assert_eq!(
        count(Measure::ContactDue),
        Count {
            done: 1,
            open: 1,
            overdue: 1
        }
    );
    assert_eq!(
        count(Measure::ContactedOnTime),
        Count::default(),
        "first contact was late"
    );
    assert_eq!(
        count(Measure::ResolutionDue),
        Count {
            done: 1,
            open: 1,
            overdue: 0
        }
    );
    assert_eq!(count(Measure::RepliedOnTime), done(1));
    assert_eq!(
        (
            count(Measure::CallbackAnswered),
            count(Measure::Satisfied),
            count(Measure::Resolved)
        ),
        (done(1), done(1), Count::default())
    );
    assert_eq!(
        (count(Measure::Closed), count(Measure::Reopened)),
        (done(1), done(1))
    );
    assert!(
        counts
            .keys()
            .all(|(d, u, _)| d == "jiyang" && u == "jiyang/a"),
        "{counts:?}"
    );
    // The same counts from the histories.
    let recount = |st: &dyn CaseStore, now: i64| {
        let mut out = assessment::Counts::new();
        for c in [&one, &two] {
            let Some(c) = st.get_case(&c.id).unwrap() else {
                continue;
            };
            let facts = assessment::case_facts(&c, &st.history(&c.id).unwrap());
            assessment::count(
                &mut out,
                facts.into_iter().filter(|f| (from..to).contains(&f.at)),
                now,
            );
        }
        out
    };
    assert_eq!(counts, recount(s, now));
    // A window that ends before the deadlines of the second case leaves them out.
    let early = s.assessment("jiyang", from, T0 + 90 * MINUTE, now).unwrap();
    assert_eq!(
        early.get(&("jiyang".into(), "jiyang/a".into(), Measure::SignOffDue)),
        Some(&Count {
            done: 1,
            open: 1,
            overdue: 1
        })
    );
    assert_eq!(
        early.get(&("jiyang".into(), "jiyang/a".into(), Measure::ContactDue)),
        None
    );
    let report = s.check_consistency().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // Export → import: the same figures.
    let mut out = Vec::new();
    backup::export(s, &mut out, &|_| {}).unwrap();
    let b = fresh();
    backup::import(&*b.store, std::io::Cursor::new(&out), &|_| {}).unwrap();
    assert_eq!(b.store.assessment("jiyang", from, to, now).unwrap(), counts);
    let report = b.store.check_consistency().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // Removing the unsigned case takes what it owed, and leaves its dispatch counted.
    let two = s.get_case(&two.id).unwrap().unwrap();
    assert!(s.remove_cases(std::slice::from_ref(&two)).unwrap()[0].is_ok());
    let after = s.assessment("jiyang", from, to, now).unwrap();
    let key = |m| ("jiyang".to_owned(), "jiyang/a".to_owned(), m);
    assert_eq!(after.get(&key(Measure::Dispatched)), Some(&done(2)));
    assert_eq!(after.get(&key(Measure::SignOffDue)), Some(&done(1)));
    let report = s.check_consistency().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

use super::*;
use crate::lifecycle::{self, Action};
use crate::model::EventBody;
use crate::model::{Channel, Deadlines, PendingTimer};
use crate::store::{CaseStore, backup};

const T0: i64 = 1_796_000_400_000;

fn store() -> (tempfile::TempDir, SledStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(&dir.path().join("data"), Durability::GroupCommit).unwrap();
    (dir, s)
}

fn new_case(s: &SledStore, district: &str, category: &str, caller: &str, at: i64) -> Case {
    try_new_case(s, district, category, caller, at).unwrap()
}

fn try_new_case(
    s: &SledStore,
    district: &str,
    category: &str,
    caller: &str,
    at: i64,
) -> Result<Case, StoreError> {
    let mut c = Case::received(
        s.next_case_id().unwrap(),
        district.into(),
        category.into(),
        "agent-1".into(),
        at,
    );
    c.caller_key = caller.into();
    let events = vec![(
        at,
        "agent-1".to_string(),
        EventBody::Received {
            channel: Channel::Phone,
        },
    )];
    s.create_case(Change { case: c, events })
}

fn act(s: &SledStore, id: &str, action: Action) -> Result<Case, StoreError> {
    s.update_case(id, None, &|c| {
        let new = lifecycle::apply(c, &action, T0 + 10)?;
        let what = EventBody::Transition {
            action: action.clone(),
            from: c.status,
            to: new.status,
        };
        Ok(Change {
            case: new,
            events: vec![(T0 + 10, "tester".into(), what)],
        })
    })
}

fn dispatch(unit: &str, due: i64) -> Action {
    Action::Dispatch {
        lead: unit.into(),
        co_handlers: vec!["jiyang/police".into()],
        deadlines: Deadlines {
            sign_off: Some(due),
            ..Deadlines::default()
        },
        timers: vec![PendingTimer {
            kind: TimerKind::SignOff,
            due_at: due,
        }],
    }
}

#[test]
fn cases_and_their_history_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let id = {
        let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
        let c = new_case(&s, "jiyang", "noise", "k1", T0);
        act(&s, &c.id, Action::QueueForDispatch).unwrap();
        c.id
    };
    let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
    let c = s.get_case(&id).unwrap().unwrap();
    assert_eq!(
        (c.status, c.version, c.event_count),
        (CaseStatus::PendingDispatch, 2, 2)
    );
    let h = s.history(&id).unwrap();
    assert_eq!(h.len(), 2);
    assert!(matches!(
        &h[1].what,
        EventBody::Transition {
            from: CaseStatus::Received,
            to: CaseStatus::PendingDispatch,
            ..
        }
    ));
    assert_eq!(h.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1]);
}

/// The log position sled's newest snapshot covers (its file is named for it).
fn snapshot_lsn(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let hex = name.strip_prefix("snap.")?;
            u64::from_str_radix(hex, 16).ok()
        })
        .max()
        // A store never opened after its first writes has none yet.
        .unwrap_or(0)
}

#[test]
fn a_checkpoint_brings_the_snapshot_up_to_the_end_of_the_log() {
    // sled writes its snapshot only while opening: without a checkpoint the next start-up
    // reads every write made since the last one.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    assert!(!SledStore::checkpoint(&path).unwrap(), "no store there yet");
    let ids: Vec<String> = {
        let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
        (0..200)
            .map(|i| new_case(&s, "jiyang", "noise", &format!("k{i}"), T0 + i).id)
            .collect()
    };
    let before = snapshot_lsn(&path);
    assert!(SledStore::checkpoint(&path).unwrap());
    let after = snapshot_lsn(&path);
    assert!(
        after > before,
        "the snapshot still stands at {before:#x} after the checkpoint"
    );
    let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
    for id in &ids {
        assert!(s.get_case(id).unwrap().is_some(), "{id} lost");
    }
    // One process at a time: a store in use is not checkpointed behind its back.
    let e = SledStore::checkpoint(&path).unwrap_err().to_string();
    assert!(e.contains("another process"), "{e}");
}

#[test]
fn counts_are_saved_when_closed_and_rebuilt_when_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
    assert!(s.counts_rebuilt_on_open(), "a new store has nothing saved");
    for i in 0..6 {
        let c = new_case(
            &s,
            if i % 2 == 0 { "jiyang" } else { "yazhou" },
            "noise",
            "k",
            T0 + i,
        );
        if i % 3 == 0 {
            act(&s, &c.id, Action::QueueForDispatch).unwrap();
            act(&s, &c.id, dispatch("jiyang/u1", T0 + 1_000)).unwrap();
        }
    }
    let counts = s.status_counts().unwrap();
    assert_eq!(counts, s.status_counts_by_index().unwrap());
    assert_eq!(counts.values().sum::<u64>(), 6);
    drop(s);
    let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
    assert!(
        !s.counts_rebuilt_on_open(),
        "a clean close saves the counts"
    );
    assert_eq!(s.status_counts().unwrap(), counts);
    assert!(
        s.meta.get(META_TALLIES).unwrap().is_none(),
        "opening takes the saved counts away, so a crash from now on leaves none"
    );
    new_case(&s, "tianya", "noise", "k", T0 + 9);
    // As after a write that failed half-way: the counts are not trusted, nor saved.
    s.tallies_exact
        .store(false, std::sync::atomic::Ordering::SeqCst);
    drop(s);
    let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
    assert!(s.counts_rebuilt_on_open());
    assert_eq!(
        s.status_counts().unwrap(),
        s.status_counts_by_index().unwrap()
    );
    assert_eq!(s.status_counts().unwrap().values().sum::<u64>(), 7);
}

#[test]
fn events_are_stored_compressed_and_plain_ones_still_read() {
    let (_dir, s) = store();
    let c = new_case(&s, "jiyang", "noise", "k", T0);
    let key = s.events.key(&keys::event_key(&c.id, 0));
    let stored = s.data.get(&key).unwrap().unwrap();
    assert!(
        stored.starts_with(&codec::ZSTD_MAGIC),
        "new events are compressed"
    );
    let history = s.history(&c.id).unwrap();
    assert_eq!(history.len(), 1);
    // As a store written before compression holds them: plain JSON, one array per write.
    s.data.insert(&key, encode(&history).unwrap()).unwrap();
    assert_eq!(s.history(&c.id).unwrap(), history);
    assert!(s.check_consistency().unwrap().problems.is_empty());
}

/// Once the store holds `TRAIN_AT` cases it trains its compression dictionaries (and keeps
/// them across a restart): cases and events written after are compressed with them, to a
/// fraction of what they took before; values written before still read; every case and
/// history reads the same after reopening, and moves through an export unchanged.
#[test]
fn a_store_trains_its_dictionaries_and_reads_values_from_before_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
    let districts = ["jiyang", "tianya", "yazhou", "haitang"];
    let categories = ["noise", "street-light", "wages", "e-bike-charging"];
    let make = |i: usize| -> Case {
        let c = new_case(
            &s,
            districts[i % 4],
            categories[i / 4 % 4],
            &format!("caller-{i}"),
            T0 + i as i64,
        );
        act(&s, &c.id, Action::QueueForDispatch).unwrap();
        act(
            &s,
            &c.id,
            dispatch(&format!("{}/unit-{}", districts[i % 4], i % 7), T0 + 99),
        )
        .unwrap()
    };
    let mut made: Vec<Case> = (0..codec::TRAIN_AT as usize + 300).map(make).collect();
    s.wait_for_training();
    assert!(s.has_dictionaries(), "trained at {} cases", codec::TRAIN_AT);
    // Training runs beside the writes: the case written once it has finished is the one
    // surely written with the dictionaries.
    made.push(make(codec::TRAIN_AT as usize + 300));
    let stored = |c: &Case| {
        let case = s.cases.get(c.id.as_bytes()).unwrap().unwrap();
        let events = s.events.get(&keys::event_key(&c.id, 2)).unwrap().unwrap();
        (case.to_vec(), events.to_vec())
    };
    // The first case's last write came before the training; the newest's after it.
    let (old_case, old_events) = stored(&made[0]);
    let (new_case_bytes, new_events) = stored(made.last().unwrap());
    assert!(old_case.starts_with(b"{"), "written before: plain JSON");
    assert!(zstd::zstd_safe::get_dict_id_from_frame(&new_case_bytes).is_some());
    assert!(zstd::zstd_safe::get_dict_id_from_frame(&new_events).is_some());
    assert!(
        new_case_bytes.len() * 4 < old_case.len(),
        "a case with the dictionary: {} bytes, without: {}",
        new_case_bytes.len(),
        old_case.len()
    );
    assert!(
        new_events.len() < old_events.len(),
        "events with the dictionary: {} bytes, without: {}",
        new_events.len(),
        old_events.len()
    );
    let histories: Vec<_> = made.iter().map(|c| s.history(&c.id).unwrap()).collect();
    let mut first = Vec::new();
    backup::export(&s, &mut first, &|_| {}).unwrap();
    let s = reopened(s, &path);
    assert!(s.has_dictionaries(), "the dictionaries are kept");
    for (c, h) in made.iter().zip(&histories) {
        assert_eq!(s.get_case(&c.id).unwrap().as_ref(), Some(c));
        assert_eq!(&s.history(&c.id).unwrap(), h);
    }
    consistent(&s, "after reopening");
    let (_d2, copy) = store();
    backup::import(&copy, first.as_slice(), &|_| {}).unwrap();
    let mut second = Vec::new();
    backup::export(&copy, &mut second, &|_| {}).unwrap();
    assert!(first == second, "export → import → export is the same");
}

#[test]
fn ids_are_unique_and_creating_twice_is_refused() {
    let (_d, s) = store();
    let a = s.next_case_id().unwrap();
    let b = s.next_case_id().unwrap();
    assert_ne!(a, b);
    let c = Case::received(a.clone(), "jiyang".into(), "noise".into(), "x".into(), T0);
    s.create_case(Change {
        case: c.clone(),
        events: vec![],
    })
    .unwrap();
    assert!(
        matches!(s.create_case(Change { case: c, events: vec![] }), Err(StoreError::Exists(id)) if id == a)
    );
}

#[test]
fn concurrent_updates_never_lose_a_write() {
    let (_d, s) = store();
    let c = new_case(&s, "jiyang", "noise", "k1", T0);
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (s, id) = (&s, c.id.clone());
            scope.spawn(move || {
                for i in 0..20 {
                    s.update_case(&id, None, &|c| {
                        let mut n = c.clone();
                        n.co_handlers.push(format!("u-{t}-{i}"));
                        Ok(Change {
                            case: n,
                            events: vec![(
                                T0,
                                "t".into(),
                                EventBody::Received {
                                    channel: Channel::App,
                                },
                            )],
                        })
                    })
                    .unwrap();
                }
            });
        }
    });
    let c = s.get_case(&c.id).unwrap().unwrap();
    assert_eq!(
        (c.co_handlers.len(), c.version, c.event_count),
        (160, 161, 161)
    );
    assert_eq!(s.history(&c.id).unwrap().len(), 161);
    assert!(s.check_consistency().unwrap().problems.is_empty());
}

/// Many writers on many cases at once: every case, event and index entry lands exactly as
/// written.
#[test]
fn concurrent_writers_on_many_cases_lose_nothing() {
    let (_d, s) = store();
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let s = &s;
                scope.spawn(move || {
                    (0..40)
                        .map(|i| {
                            let c = new_case(s, "jiyang", "noise", &format!("k{t}-{i}"), T0 + i);
                            act(s, &c.id, Action::QueueForDispatch).unwrap();
                            c.id
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(ids.len(), 320);
    for id in &ids {
        let c = s.get_case(id).unwrap().unwrap();
        assert_eq!(
            (c.status, c.version, c.event_count),
            (CaseStatus::PendingDispatch, 2, 2)
        );
        assert_eq!(s.history(id).unwrap().len(), 2);
    }
    let report = s.check_consistency().unwrap();
    assert_eq!(report.cases, 320);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn an_illegal_transition_changes_nothing() {
    let (_d, s) = store();
    let c = new_case(&s, "jiyang", "noise", "k1", T0);
    let e = act(&s, &c.id, Action::Close).unwrap_err();
    assert!(e.to_string().contains("cannot close case"), "{e}");
    assert_eq!(s.get_case(&c.id).unwrap().unwrap(), c);
    assert_eq!(s.history(&c.id).unwrap().len(), 1);
}

#[test]
fn indexes_follow_the_case() {
    let (_d, s) = store();
    let c = new_case(&s, "jiyang", "noise", "k1", T0);
    act(&s, &c.id, Action::QueueForDispatch).unwrap();
    act(&s, &c.id, dispatch("jiyang/yuehe/grid-01", T0 + 5000)).unwrap();
    let f = |district: Option<&str>, status: Option<CaseStatus>, unit: Option<&str>| Filter {
        district: district.map(Into::into),
        status,
        unit: unit.map(Into::into),
        ..Filter::default()
    };
    let ids = |f: Filter| {
        s.list(&f, None, 50)
            .unwrap()
            .cases
            .into_iter()
            .map(|c| c.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(f(Some("jiyang"), Some(CaseStatus::Dispatched), None)),
        [c.id.as_str()]
    );
    assert!(
        ids(f(Some("jiyang"), Some(CaseStatus::Received), None)).is_empty(),
        "old status entry removed"
    );
    assert_eq!(
        ids(f(None, None, Some("jiyang/yuehe/grid-01"))),
        [c.id.as_str()]
    );
    assert_eq!(
        ids(f(None, None, Some("jiyang/police"))),
        [c.id.as_str()],
        "co-handlers are indexed"
    );
    assert!(ids(f(Some("tianya"), None, None)).is_empty());
    assert_eq!(s.due_timers(T0 + 4999, 10).unwrap(), []);
    assert_eq!(
        s.due_timers(T0 + 5000, 10).unwrap(),
        [DueTimer {
            case_id: c.id.clone(),
            kind: TimerKind::SignOff,
            due_at: T0 + 5000
        }]
    );
    act(
        &s,
        &c.id,
        Action::Sign {
            unit: "jiyang/yuehe/grid-01".into(),
        },
    )
    .unwrap();
    assert_eq!(
        s.due_timers(i64::MAX - 1, 10).unwrap(),
        [],
        "signing consumed the sign-off timer"
    );
    act(
        &s,
        &c.id,
        Action::Return {
            unit: "jiyang/yuehe/grid-01".into(),
            reason: "not ours".into(),
        },
    )
    .unwrap();
    assert!(
        ids(f(None, None, Some("jiyang/yuehe/grid-01"))).is_empty(),
        "unit index entry removed"
    );
    let counts = s.status_counts().unwrap();
    assert_eq!(
        counts.get(&("jiyang".into(), CaseStatus::PendingDispatch)),
        Some(&1)
    );
    assert!(s.check_consistency().unwrap().problems.is_empty());
}

#[test]
fn listing_pages_newest_first_with_a_cursor() {
    let (_d, s) = store();
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(
            new_case(
                &s,
                if i % 2 == 0 { "jiyang" } else { "tianya" },
                "noise",
                "k",
                T0 + i,
            )
            .id,
        );
    }
    let filter = Filter {
        district: Some("jiyang".into()),
        ..Filter::default()
    };
    let p1 = s.list(&filter, None, 2).unwrap();
    assert_eq!(
        p1.cases.iter().map(|c| &c.id).collect::<Vec<_>>(),
        [&made[6], &made[4]]
    );
    let p2 = s.list(&filter, p1.next.as_deref(), 2).unwrap();
    assert_eq!(
        p2.cases.iter().map(|c| &c.id).collect::<Vec<_>>(),
        [&made[2], &made[0]]
    );
    let p3 = s.list(&filter, p2.next.as_deref(), 2).unwrap();
    assert!(p3.cases.is_empty() && p3.next.is_none());
    let ranged = Filter {
        created_from: Some(T0 + 2),
        created_to: Some(T0 + 5),
        ..Filter::default()
    };
    assert_eq!(s.list(&ranged, None, 10).unwrap().cases.len(), 3);
    assert!(matches!(
        s.list(&filter, Some("zz"), 2),
        Err(StoreError::Invalid(_))
    ));
    let other = s.list(&Filter::default(), None, 1).unwrap().next.unwrap();
    assert!(
        matches!(s.list(&filter, Some(&other), 2), Err(StoreError::Invalid(m)) if m.contains("another listing"))
    );
    assert!(
        matches!(s.list(&Filter::default(), p1.next.as_deref(), 2), Err(StoreError::Invalid(m)) if m.contains("another listing")),
        "a district listing's cursor is not a city-wide one"
    );
    // City-wide: the cases themselves, newest first, page by page.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s.list(&Filter::default(), cursor.as_deref(), 3).unwrap();
        seen.extend(page.cases.iter().map(|c| c.id.clone()));
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let mut newest_first = made.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    assert_eq!(
        s.list(&Filter::default(), None, 10_000)
            .unwrap()
            .cases
            .len(),
        7,
        "page size is capped, not refused"
    );
}

#[test]
fn caller_history_is_found_by_key() {
    let (_d, s) = store();
    new_case(&s, "jiyang", "noise", "caller-a", T0 - 40 * 86_400_000);
    let recent = new_case(&s, "jiyang", "noise", "caller-a", T0);
    new_case(&s, "jiyang", "noise", "caller-b", T0);
    let found = s
        .caller_cases("caller-a", T0 - 30 * 86_400_000, 10)
        .unwrap();
    assert_eq!(
        found.iter().map(|c| &c.id).collect::<Vec<_>>(),
        [&recent.id]
    );
    // The newest `limit`, newest first; a caller key that extends another is another caller.
    let later: Vec<String> = (1..=4)
        .map(|i| new_case(&s, "jiyang", "noise", "caller-a", T0 + i).id)
        .collect();
    new_case(&s, "jiyang", "noise", "caller-ab", T0 + 9);
    let found = s.caller_cases("caller-a", T0 - 30 * 86_400_000, 3).unwrap();
    assert_eq!(
        found.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [&later[3], &later[2], &later[1]]
    );
    assert!(s.caller_cases("caller-a", T0, 0).unwrap().is_empty());
    assert!(s.caller_cases("caller-c", T0, 5).unwrap().is_empty());
}

#[test]
fn concurrent_writers_share_flushes() {
    let (_d, s) = store();
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| {
                for _ in 0..10 {
                    new_case(&s, "jiyang", "noise", "k", T0);
                }
            });
        }
    });
    assert_eq!(s.case_count().unwrap(), 160);
    assert!(
        s.flush_count() < 160,
        "group commit: {} flushes for 160 writes",
        s.flush_count()
    );
    assert!(s.flush_count() > 0);
}

#[test]
fn unknown_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    {
        let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
        new_case(&s, "jiyang", "noise", "k", T0);
    }
    std::fs::write(path.join(MARKER), "civic-rules store schema 99\n").unwrap();
    let before = snapshot(&path);
    let e = SledStore::open(&path, Durability::GroupCommit)
        .err()
        .expect("refused");
    assert!(
        matches!(&e, StoreError::UnknownSchema { found, supported: SCHEMA_VERSION, .. } if found == "99"),
        "{e}"
    );
    assert!(e.to_string().contains("was not changed"));
    assert_eq!(
        snapshot(&path),
        before,
        "the refused store's files are unchanged"
    );
}

#[test]
fn something_else_is_not_opened() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "hello").unwrap();
    assert!(matches!(
        SledStore::open(&file, Durability::GroupCommit),
        Err(StoreError::NotAStore { .. })
    ));
    let sled_only = dir.path().join("sled-only");
    drop(sled::open(&sled_only).unwrap());
    let e = SledStore::open(&sled_only, Durability::GroupCommit)
        .err()
        .unwrap();
    assert!(e.to_string().contains("no CIVIC_STORE"), "{e}");
    let docs = dir.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    std::fs::write(docs.join("thesis.txt"), "years of work").unwrap();
    let e = SledStore::open(&docs, Durability::GroupCommit)
        .err()
        .unwrap();
    assert!(e.to_string().contains("thesis.txt"), "{e}");
    assert_eq!(
        std::fs::read_to_string(docs.join("thesis.txt")).unwrap(),
        "years of work"
    );
    assert_eq!(
        std::fs::read_dir(&docs).unwrap().count(),
        1,
        "nothing was created"
    );
}

fn snapshot(path: &std::path::Path) -> Vec<(String, u64, u64)> {
    use std::hash::{Hash, Hasher};
    let mut out = Vec::new();
    for e in walk(path) {
        let bytes = std::fs::read(&e).unwrap();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        out.push((e.display().to_string(), bytes.len() as u64, h.finish()));
    }
    out.sort();
    out
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            v.extend(walk(&e))
        } else {
            v.push(e)
        }
    }
    v
}

#[test]
fn records_are_updated_atomically() {
    let (_d, s) = store();
    let bump = |s: &SledStore| {
        crate::store::update_record(s, "counters", "n", |cur| {
            let n = cur.map(|b| b[0]).unwrap_or(0) + 1;
            Ok((Some(vec![n]), n))
        })
        .unwrap()
    };
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                (0..25).for_each(|_| {
                    bump(&s);
                })
            });
        }
    });
    assert_eq!(s.record_get("counters", "n").unwrap(), Some(vec![100]));
    s.record_put(
        "counters",
        &[
            ("a/1".into(), vec![1]),
            ("a/2".into(), vec![2]),
            ("b/1".into(), vec![3]),
        ],
    )
    .unwrap();
    assert_eq!(s.record_scan("counters", "a/").unwrap().len(), 2);
    crate::store::update_record(&s, "counters", "a/1", |_| Ok((None, ()))).unwrap();
    assert_eq!(s.record_get("counters", "a/1").unwrap(), None);
}

/// A write stores its events as one value; stores from before kept one value per event.
/// Both layouts, even mixed in one case's history, read back as the same ordered history,
/// count right in the consistency check and export event by event.
#[test]
fn events_read_back_whether_stored_one_per_value_or_per_write() {
    let (_dir, s) = store();
    let c = new_case(&s, "jiyang", "noise", "k1", T0);
    act(&s, &c.id, Action::QueueForDispatch).unwrap();
    // One value for the two events of this write.
    let before = s.events.scan_prefix(keys::events_prefix(&c.id)).count();
    let two = vec![
        (
            T0 + 5,
            "system".to_string(),
            EventBody::Received {
                channel: Channel::App,
            },
        ),
        (
            T0 + 6,
            "system".to_string(),
            EventBody::Received {
                channel: Channel::Web,
            },
        ),
    ];
    s.update_case(&c.id, None, &|old| {
        Ok(Change {
            case: old.clone(),
            events: two.clone(),
        })
    })
    .unwrap();
    assert_eq!(
        s.events.scan_prefix(keys::events_prefix(&c.id)).count(),
        before + 1
    );
    // An event written the old way, one value of its own, after them.
    let legacy = Event {
        seq: 4,
        at: T0 + 7,
        actor: "old-host".into(),
        what: EventBody::Received {
            channel: Channel::Phone,
        },
    };
    s.events
        .tree
        .insert(
            s.events.key(&keys::event_key(&c.id, 4)),
            encode(&legacy).unwrap(),
        )
        .unwrap();
    let mut stored = s.get_case(&c.id).unwrap().unwrap();
    stored.event_count = 5;
    s.cases
        .tree
        .insert(s.cases.key(c.id.as_bytes()), encode(&stored).unwrap())
        .unwrap();

    let h = s.history(&c.id).unwrap();
    assert_eq!(h.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    assert_eq!(h[2].at, T0 + 5);
    assert_eq!(h[3].at, T0 + 6);
    assert_eq!(h[4], legacy);
    let report = s.check_consistency().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    let mut out = Vec::new();
    backup::export(&s, &mut out, &|_| {}).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.matches("\"line\":\"event\"").count(), 5, "{text}");
}

/// A dispatched case with three timers, the earliest (first contact) due at `T0 + 5`.
fn case_with_three_timers(s: &SledStore) -> Case {
    let c = new_case(s, "jiyang", "noise", "k", T0);
    act(s, &c.id, Action::QueueForDispatch).unwrap();
    let timer = |kind, due_at| PendingTimer { kind, due_at };
    act(
        s,
        &c.id,
        Action::Dispatch {
            lead: "jiyang/yuehe/grid-01".into(),
            co_handlers: vec![],
            deadlines: Deadlines {
                sign_off: Some(T0 + 9),
                first_contact: Some(T0 + 5),
                resolution: Some(T0 + 90),
                ..Deadlines::default()
            },
            timers: vec![
                timer(TimerKind::SignOff, T0 + 9),
                timer(TimerKind::FirstContact, T0 + 5),
                timer(TimerKind::Resolution, T0 + 90),
            ],
        },
    )
    .unwrap()
}

fn due(s: &SledStore) -> Vec<(TimerKind, Millis)> {
    s.due_timers(i64::MAX - 1, 100)
        .unwrap()
        .into_iter()
        .map(|t| (t.kind, t.due_at))
        .collect()
}

#[test]
fn only_a_cases_earliest_timer_is_indexed_and_the_next_follows() {
    let (_d, s) = store();
    let c = case_with_three_timers(&s);
    assert_eq!(due(&s), [(TimerKind::FirstContact, T0 + 5)]);
    // Consuming the earliest (as a sweep does) indexes the next one in the same write.
    let set_timers = |change: &dyn Fn(&mut Vec<PendingTimer>)| {
        s.update_case(&c.id, None, &|c| {
            let mut n = c.clone();
            change(&mut n.timers);
            Ok(Change {
                case: n,
                events: vec![],
            })
        })
        .unwrap()
    };
    let next = set_timers(&|t| t.retain(|t| t.kind != TimerKind::FirstContact));
    assert_eq!(next.timers.len(), 2);
    assert_eq!(due(&s), [(TimerKind::SignOff, T0 + 9)]);
    // Two timers due at once: the one the index sorts first (by kind name) is indexed.
    let tie = set_timers(&|t| {
        *t = [TimerKind::SignOff, TimerKind::FirstContact]
            .map(|kind| PendingTimer {
                kind,
                due_at: T0 + 7,
            })
            .to_vec()
    });
    assert_eq!(tie.timers.len(), 2);
    assert_eq!(due(&s), [(TimerKind::FirstContact, T0 + 7)]);
    assert!(s.check_consistency().unwrap().problems.is_empty());
}

/// Turns a schema-2 store into what schema 1 wrote: every pending timer indexed, an index
/// by creation time, the schema recorded as 1 inside and in the marker.
/// Removes every assessment fact, as a store of schema 1 or 2 had none.
fn forget_facts(s: &SledStore) {
    let keys: Vec<_> = s.facts.iter().map(|kv| kv.unwrap().0).collect();
    assert!(!keys.is_empty(), "the store had facts to forget");
    for k in keys {
        s.data.remove(s.facts.key(&k)).unwrap();
    }
}

/// A store of schema 2 gets its cases' assessment facts derived from their histories when
/// first opened by this build, and says schema 3 after; one interrupted before it recorded
/// that derives them again.
#[test]
fn a_schema_2_store_gets_its_facts_from_the_histories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let period = (T0 - 86_400_000, T0 + 400 * 86_400_000);
    let before = {
        let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
        case_with_three_timers(&s);
        let counts = s.assessment("jiyang", period.0, period.1, T0).unwrap();
        assert!(!counts.is_empty(), "the case has facts to derive");
        forget_facts(&s);
        assert!(
            s.assessment("jiyang", period.0, period.1, T0)
                .unwrap()
                .is_empty()
        );
        s.meta.insert(META_SCHEMA, b"2").unwrap();
        s.db.flush().unwrap();
        counts
    };
    std::fs::write(path.join(MARKER), "civic-rules store schema 2\n").unwrap();
    let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
    assert_eq!(
        s.assessment("jiyang", period.0, period.1, T0).unwrap(),
        before
    );
    assert!(s.check_consistency().unwrap().problems.is_empty());
    drop(s);
    assert_eq!(
        std::fs::read_to_string(path.join(MARKER)).unwrap(),
        format!("civic-rules store schema {SCHEMA_VERSION}\n")
    );
}

fn make_schema_1(path: &std::path::Path) {
    let s = SledStore::open(path, Durability::GroupCommit).unwrap();
    let mut c = 0;
    for kv in s.cases.iter() {
        let (k, v) = kv.unwrap();
        let case: Case = decode(&k, &v).unwrap();
        for t in &case.timers {
            s.idx
                .tree
                .insert(s.idx.key(&keys::timer_key(t.due_at, &case.id, t.kind)), &[])
                .unwrap();
            c += 1;
        }
        let created = keys::key(
            keys::SCHEMA_1_BY_CREATED,
            &[&time_key(case.created_at), case.id.as_bytes()],
        );
        s.idx.tree.insert(s.idx.key(&created), &[]).unwrap();
    }
    assert!(c > 0);
    forget_facts(&s);
    s.meta.insert(META_SCHEMA, b"1").unwrap();
    s.db.flush().unwrap();
    std::fs::write(path.join(MARKER), "civic-rules store schema 1\n").unwrap();
}

#[test]
fn a_schema_1_store_is_upgraded_in_place_and_an_interrupted_upgrade_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let id = {
        let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
        case_with_three_timers(&s).id
    };
    make_schema_1(&path);
    {
        // As schema 1 left it: three timer entries for one case, which schema 2 reads as
        // two entries that belong to no case.
        let s = SledStore::open(&path, Durability::GroupCommit);
        let s = s.unwrap();
        assert_eq!(due(&s), [(TimerKind::FirstContact, T0 + 5)]);
        assert!(s.check_consistency().unwrap().problems.is_empty());
        assert_eq!(s.get_case(&id).unwrap().unwrap().timers.len(), 3);
    }
    assert_eq!(
        std::fs::read_to_string(path.join(MARKER)).unwrap(),
        format!("civic-rules store schema {SCHEMA_VERSION}\n")
    );

    // Interrupted after recording schema 2 inside, before the marker: opens and finishes.
    make_schema_1(&path);
    {
        let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
        s.meta
            .insert(META_SCHEMA, SCHEMA_VERSION.to_string().as_bytes())
            .unwrap();
        s.db.flush().unwrap();
    }
    std::fs::write(path.join(MARKER), "civic-rules store schema 1\n").unwrap();
    let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
    assert_eq!(due(&s), [(TimerKind::FirstContact, T0 + 5)]);
    assert!(s.check_consistency().unwrap().problems.is_empty());
    drop(s);

    // A marker that says 2 over contents that say 1 is not guessed at.
    make_schema_1(&path);
    std::fs::write(
        path.join(MARKER),
        format!("civic-rules store schema {SCHEMA_VERSION}\n"),
    )
    .unwrap();
    let e = SledStore::open(&path, Durability::GroupCommit)
        .err()
        .unwrap();
    assert!(e.to_string().contains("disagree"), "{e}");
}

#[test]
fn a_schema_1_export_imports() {
    let (_d, s) = store();
    let c = case_with_three_timers(&s);
    let mut buf = Vec::new();
    backup::export(&s, &mut buf, &|_| {}).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let v1 = text.replacen(&format!("\"schema\":{}", backup::FORMAT), "\"schema\":1", 1);
    assert_ne!(v1, text);
    let (_d2, t) = store();
    backup::import(&t, std::io::Cursor::new(v1.as_bytes()), &|_| {}).unwrap();
    assert_eq!(t.get_case(&c.id).unwrap(), s.get_case(&c.id).unwrap());
    assert_eq!(due(&t), [(TimerKind::FirstContact, T0 + 5)]);
    let (_d3, u) = store();
    let v9 = text.replacen(&format!("\"schema\":{}", backup::FORMAT), "\"schema\":9", 1);
    assert!(matches!(
        backup::import(&u, std::io::Cursor::new(v9.as_bytes()), &|_| {}),
        Err(StoreError::Import { line: 1, .. })
    ));
}

/// Asserts the store is consistent (`what` says when, for the message); returns the report.
fn consistent(s: &SledStore, what: &str) -> Consistency {
    let report = s.check_consistency().unwrap();
    assert!(report.problems.is_empty(), "{what}: {:?}", report.problems);
    report
}

/// The timer sweep's kind of change to `c`: moved up to another unit, its earliest timer
/// consumed, and an escalation event.
fn fired(c: &Case) -> Versioned {
    let mut next = c.clone();
    next.handler = Some("jiyang/yuehe".into());
    next.escalation_level += 1;
    next.timers.retain(|t| t.kind != TimerKind::FirstContact);
    let event = EventBody::Escalation {
        timer: TimerKind::FirstContact,
        action: "move-to".into(),
        detail: "jiyang/yuehe".into(),
    };
    Versioned {
        read: c.clone(),
        change: Change {
            case: next,
            events: vec![(T0 + 6, "system".into(), event)],
        },
        fence: None,
    }
}

/// A write that moves assessment facts — a sign-off: the deadline owed goes, the deadline
/// missed is counted — cut short after any of its operations is settled with the case:
/// the facts are the ones the case's history derives, and the district's counts are the
/// case's as it stands (before or after).
#[test]
fn a_write_of_assessment_facts_cut_short_anywhere_is_settled_with_its_case() {
    for cut in 0.. {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
        let before = case_with_three_timers(&s);
        let action = Action::Sign {
            unit: "jiyang/yuehe/grid-01".into(),
        };
        let after = lifecycle::apply(&before, &action, T0 + 10).unwrap();
        let event = EventBody::Transition {
            action,
            from: before.status,
            to: after.status,
        };
        let staged = Versioned {
            read: before.clone(),
            change: Change {
                case: after,
                events: vec![(T0 + 10, "tester".into(), event)],
            },
            fence: None,
        };
        s.crash_after
            .store(cut, std::sync::atomic::Ordering::SeqCst);
        let whole = s.write(vec![staged]).is_ok();
        s.sync().unwrap();
        drop(s);
        let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
        let now = s.get_case(&before.id).unwrap().unwrap();
        consistent(&s, &format!("cut after {cut}"));
        let mut want = crate::assessment::Counts::new();
        let facts = crate::assessment::case_facts(&now, &s.history(&now.id).unwrap());
        crate::assessment::count(&mut want, facts, T0 + 100);
        assert_eq!(
            s.assessment("jiyang", T0 - 1, T0 + 1_000, T0 + 100)
                .unwrap(),
            want,
            "cut after {cut}"
        );
        if whole {
            assert_eq!(now.status, CaseStatus::Signed);
            assert!(cut > 2, "a write is more than two operations");
            break;
        }
    }
}

/// A staged write is single sled operations inside a pending record. Cut short after any
/// of them — as a crash would — readers see the case's history as its stored version
/// counts it, and opening the store again settles the write: the case is wholly as before
/// or wholly as written (index entries, events, timers), and nothing else is left.
#[test]
fn a_staged_write_cut_short_anywhere_is_settled_when_the_store_opens() {
    let (mut undone, mut finished) = (0, 0);
    for cut in 0.. {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
        let before = case_with_three_timers(&s);
        let staged = fired(&before);
        let after = crate::store::next_version(&before, staged.change.clone())
            .unwrap()
            .0;
        s.crash_after
            .store(cut, std::sync::atomic::Ordering::SeqCst);
        let result = s.write(vec![staged]);
        let stored = s.get_case(&before.id).unwrap().unwrap();
        assert_eq!(
            s.history(&before.id).unwrap().len() as u64,
            stored.event_count,
            "cut after {cut}: the history shows the events the stored case counts"
        );
        if result.is_ok() {
            // Past the last operation: the write is whole and nothing needs settling.
            assert_eq!(stored, after);
            consistent(&s, "");
            assert!(cut > 2, "a write is more than two operations");
            break;
        }
        s.sync().unwrap();
        drop(s);

        let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
        let now = s.get_case(&before.id).unwrap().unwrap();
        let settled = s.settled_on_open();
        if now == before {
            assert_eq!(
                settled,
                Settled {
                    finished: 0,
                    undone: 1
                },
                "cut after {cut}"
            );
            assert_eq!(due(&s), [(TimerKind::FirstContact, T0 + 5)]);
            undone += 1;
        } else {
            assert_eq!(now, after, "cut after {cut}");
            assert_eq!(
                settled,
                Settled {
                    finished: 1,
                    undone: 0
                },
                "cut after {cut}"
            );
            assert_eq!(due(&s), [(TimerKind::SignOff, T0 + 9)]);
            finished += 1;
        }
        assert_eq!(s.history(&before.id).unwrap().len() as u64, now.event_count);
        consistent(&s, &format!("cut after {cut}"));
        // The store writes on as usual.
        let again = fired(&now);
        assert!(s.write(vec![again]).unwrap()[0].is_ok());
        consistent(&s, "");
    }
    assert!(
        undone > 0 && finished > 0,
        "cut both before the case was written ({undone}) and after ({finished})"
    );
}

/// A staged write that fails half-way for a reason other than a crash is settled at once,
/// in the running process: the store stays consistent and the case can be written again.
#[test]
fn a_staged_write_that_fails_half_way_is_settled_at_once() {
    let (_dir, s) = store();
    let before = case_with_three_timers(&s);
    s.settle_when_cut
        .store(true, std::sync::atomic::Ordering::SeqCst);
    s.crash_after.store(2, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(
        s.write(vec![fired(&before)]),
        Err(StoreError::Io(_))
    ));
    s.crash_after
        .store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(s.get_case(&before.id).unwrap().unwrap(), before);
    consistent(&s, "");
    assert_eq!(due(&s), [(TimerKind::FirstContact, T0 + 5)]);
    let written = s.write(vec![fired(&before)]).unwrap();
    assert_eq!(written[0].as_ref().unwrap().version, before.version + 1);
    consistent(&s, "");
}

/// An export holds each case's events as far as the exported case counts them, so one
/// taken while a write is under way (its events stored, its case not yet) imports into a
/// consistent store.
#[test]
fn an_export_holds_only_the_events_its_cases_count() {
    let (_dir, s) = store();
    let before = case_with_three_timers(&s);
    // The write's events are stored; then it stops, before its case.
    s.crash_after.store(1, std::sync::atomic::Ordering::SeqCst);
    assert!(s.write(vec![fired(&before)]).is_err());
    let mut out = Vec::new();
    backup::export(&s, &mut out, &|_| {}).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text.matches("\"line\":\"event\"").count() as u64,
        before.event_count,
        "{text}"
    );
    let (_dir2, copy) = store();
    backup::import(&copy, text.as_bytes(), &|_| {}).unwrap();
    consistent(&copy, "");
    assert_eq!(copy.get_case(&before.id).unwrap().unwrap(), before);
}

/// A new case is written as single operations too (its events and index entries before
/// it). Cut short after any of them, listings and the caller index show the case only once
/// it is written — entries written ahead of it are skipped, without an error — and opening
/// the store again settles the write: the case is wholly there or not at all, and nothing
/// else is left.
#[test]
fn a_new_case_cut_short_anywhere_is_settled_when_the_store_opens() {
    let (mut undone, mut finished) = (0, 0);
    for cut in 0.. {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
        let first = new_case(&s, "jiyang", "noise", "k1", T0);
        s.crash_after
            .store(cut, std::sync::atomic::Ordering::SeqCst);
        let result = try_new_case(&s, "jiyang", "noise", "k1", T0 + 1);
        s.crash_after
            .store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
        let second = "c-0000000002";
        let listed = |s: &SledStore, status: Option<CaseStatus>| {
            let filter = Filter {
                district: Some("jiyang".into()),
                status,
                ..Filter::default()
            };
            let page = s.list(&filter, None, MAX_PAGE).unwrap();
            page.cases.into_iter().map(|c| c.id).collect::<Vec<_>>()
        };
        let callers = |s: &SledStore| {
            let found = s.caller_cases("k1", T0, 10).unwrap();
            found.into_iter().map(|c| c.id).collect::<Vec<_>>()
        };
        if result.is_ok() {
            assert_eq!(listed(&s, None), [second, &first.id]);
            consistent(&s, "");
            assert!(cut > 2, "a new case is more than two operations");
            break;
        }
        let there = s.get_case(second).unwrap().is_some();
        let expected: Vec<&str> = if there {
            vec![second, &first.id]
        } else {
            vec![&first.id]
        };
        for status in [None, Some(CaseStatus::Received)] {
            assert_eq!(listed(&s, status), expected, "cut after {cut}");
        }
        assert_eq!(callers(&s), expected, "cut after {cut}");
        s.sync().unwrap();
        drop(s);

        let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
        let settled = s.settled_on_open();
        if there {
            assert_eq!(
                settled,
                Settled {
                    finished: 1,
                    undone: 0
                },
                "cut after {cut}"
            );
            finished += 1;
        } else {
            assert_eq!(
                settled,
                Settled {
                    finished: 0,
                    undone: 1
                },
                "cut after {cut}"
            );
            undone += 1;
        }
        assert_eq!(listed(&s, None), expected);
        assert_eq!(callers(&s), expected);
        let report = consistent(&s, &format!("cut after {cut}"));
        assert_eq!(report.cases, expected.len());
        // The store writes on as usual.
        new_case(&s, "jiyang", "noise", "k1", T0 + 2);
        consistent(&s, "");
    }
    assert!(
        undone > 2 && finished > 0,
        "cut at every step of the write ({undone} undone, {finished} finished)"
    );
}

/// A store that is open elsewhere is refused with a message that says so (after waiting
/// for the lock a little, as a restart needs); once it is closed it opens again.
#[test]
fn a_store_in_use_is_refused_and_opens_once_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let first = SledStore::open(&path, Durability::GroupCommit).unwrap();
    let id = new_case(&first, "jiyang", "noise", "k1", T0).id;
    let started = std::time::Instant::now();
    match SledStore::open(&path, Durability::GroupCommit) {
        Err(StoreError::Open { message, .. }) => {
            assert!(message.contains("another process is using it"), "{message}")
        }
        other => panic!("opened twice: {:?}", other.map(|_| ())),
    }
    assert!(started.elapsed() >= LOCK_WAIT);
    drop(first);
    let again = SledStore::open(&path, Durability::GroupCommit).unwrap();
    assert!(again.get_case(&id).unwrap().is_some());
}

/// A write that fails half-way and cannot even be settled leaves the store refusing writes
/// (with an error that says to restart) rather than writing over the half-made one; opening
/// the store again settles it and writing goes on.
#[test]
fn a_write_that_cannot_be_settled_stops_writes_until_the_store_is_opened_again() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
    let before = case_with_three_timers(&s);
    s.settle_when_cut.store(true, SeqCst);
    s.settling_fails.store(true, SeqCst);
    s.crash_after.store(2, SeqCst);
    assert!(s.write(vec![fired(&before)]).is_err());
    s.crash_after.store(usize::MAX, SeqCst);
    s.settling_fails.store(false, SeqCst);
    match try_new_case(&s, "jiyang", "noise", "k2", T0) {
        Err(StoreError::Io(m)) => assert!(m.contains("restart"), "{m}"),
        other => panic!("wrote after an unsettled failure: {other:?}"),
    }
    assert!(s.write(vec![fired(&before)]).is_err());
    let s = reopened(s, &path);
    assert_eq!(
        s.settled_on_open(),
        Settled {
            finished: 0,
            undone: 1
        }
    );
    assert_eq!(s.get_case(&before.id).unwrap().unwrap(), before);
    consistent(&s, "");
    let written = s.write(vec![fired(&before)]).unwrap();
    assert!(written[0].is_ok());
    new_case(&s, "jiyang", "noise", "k2", T0);
    consistent(&s, "");
}

mod cut_short {
    use super::*;
    use proptest::prelude::*;

    /// Any change a write can make to a dispatched case's indexed fields — status, lead,
    /// co-handlers, pending timers — with zero to two events, and a point to cut it short.
    fn change() -> impl Strategy<Value = (CaseStatus, usize, Vec<usize>, Vec<bool>, usize, usize)> {
        (
            prop::sample::select(vec![
                CaseStatus::Dispatched,
                CaseStatus::Signed,
                CaseStatus::InProgress,
                CaseStatus::Replied,
            ]),
            0..UNITS.len(),
            prop::collection::vec(0..UNITS.len(), 0..3),
            prop::collection::vec(any::<bool>(), 3),
            0..3usize,
            0..14usize,
        )
    }

    const UNITS: [&str; 3] = ["jiyang/yuehe/grid-01", "jiyang/yuehe", "jiyang/police"];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever a write changes and wherever it is cut short, opening the store again
        /// leaves the case wholly as before or wholly as written, its indexes and history
        /// consistent with it, and the timer index holding its earliest timer.
        #[test]
        fn any_write_cut_anywhere_is_settled_whole(
            (status, lead, co, keep, events, cut) in change()
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("data");
            let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
            let before = case_with_three_timers(&s);
            let mut next = before.clone();
            next.status = status;
            next.handler = Some(UNITS[lead].into());
            next.co_handlers = co.iter().map(|&i| UNITS[i].to_string()).collect();
            next.co_handlers.dedup();
            let mut kept = keep.iter();
            next.timers.retain(|_| *kept.next().unwrap());
            let events = (0..events)
                .map(|i| {
                    let what = EventBody::Received {
                        channel: Channel::Web,
                    };
                    (T0 + 20 + i as i64, "tester".to_string(), what)
                })
                .collect();
            let staged = Versioned {
                read: before.clone(),
                change: Change { case: next, events },
                fence: None,
            };
            let after = crate::store::next_version(&before, staged.change.clone()).unwrap().0;
            s.crash_after.store(cut, std::sync::atomic::Ordering::SeqCst);
            let whole = s.write(vec![staged]).is_ok();
            s.sync().unwrap();
            drop(s);

            let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
            let now = s.get_case(&before.id).unwrap().unwrap();
            prop_assert!(now == before || now == after, "cut after {}: {:?}", cut, now);
            if whole {
                prop_assert_eq!(&now, &after);
                prop_assert_eq!(s.settled_on_open(), Settled::default());
            }
            let report = s.check_consistency().unwrap();
            prop_assert!(report.problems.is_empty(), "cut after {}: {:?}", cut, report.problems);
            prop_assert_eq!(s.history(&now.id).unwrap().len() as u64, now.event_count);
            let earliest = crate::store::next_timer(&now).map(|t| (t.kind, t.due_at));
            prop_assert_eq!(due(&s).first().copied(), earliest);
            prop_assert!(due(&s).len() <= 1);
        }
    }
}

/// A creation-date window is read from the day markers (city-wide) or the index's time
/// order (a district), never by walking every case: a window of one day in the middle of
/// ten reads that day's cases and at most a day either side.
#[test]
fn date_windows_read_only_their_span() {
    let (_d, s) = store();
    const DAY: i64 = 86_400_000;
    let mut by_day: Vec<Vec<String>> = Vec::new();
    for day in 0..10 {
        let mut ids = Vec::new();
        for i in 0..5 {
            let district = if i % 2 == 0 { "jiyang" } else { "tianya" };
            ids.push(new_case(&s, district, "noise", "k", T0 + day * DAY + i * 1000).id);
        }
        by_day.push(ids);
    }
    let from = T0 + 5 * DAY;
    let to = from + DAY;
    let window = Filter {
        created_from: Some(from),
        created_to: Some(to),
        ..Filter::default()
    };
    let page = s.list(&window, None, MAX_PAGE).unwrap();
    let mut got: Vec<String> = page.cases.iter().map(|c| c.id.clone()).collect();
    got.sort();
    assert_eq!(got, by_day[5], "exactly the window's cases");
    assert!(
        page.scanned <= 3 * 5,
        "read {} cases for a one-day window",
        page.scanned
    );
    let district = Filter {
        district: Some("jiyang".into()),
        ..window.clone()
    };
    let page = s.list(&district, None, MAX_PAGE).unwrap();
    assert_eq!(page.cases.len(), 3);
    assert_eq!(page.scanned, 3, "the district index is in time order");
    // Opening the store again keeps the markers; a store without them gets them at open.
    let path = s.path().to_owned();
    drop(s);
    let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
    s.meta.remove(META_DAYS_MARKED).unwrap();
    for kv in s.meta.scan_prefix(META_DAY) {
        s.meta.remove(kv.unwrap().0).unwrap();
    }
    assert!(
        s.list(&window, None, MAX_PAGE).unwrap().scanned >= 40,
        "no markers: a walk"
    );
    drop(s);
    let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
    let page = s.list(&window, None, MAX_PAGE).unwrap();
    assert_eq!(page.cases.len(), 5);
    assert!(
        page.scanned <= 15,
        "markers rebuilt at open: read {}",
        page.scanned
    );
}

/// A filter that matches little returns a short page with a cursor once it has read its
/// budget, and following the cursors finds every match exactly once.
#[test]
fn a_listing_stops_at_its_scan_budget_with_a_cursor() {
    let (_d, s) = store();
    let mut mine = Vec::new();
    for i in 0..20 {
        let mut c = Case::received(
            s.next_case_id().unwrap(),
            "jiyang".into(),
            "noise".into(),
            if i % 7 == 0 { "agent-x" } else { "agent-1" }.into(),
            T0 + i,
        );
        c.caller_key = "k".into();
        let c = s
            .create_case(Change {
                case: c,
                events: vec![],
            })
            .unwrap();
        if i % 7 == 0 {
            mine.push(c.id);
        }
    }
    let filter = Filter {
        created_by: Some("agent-x".into()),
        ..Filter::default()
    };
    let mut found = Vec::new();
    let mut cursor = None;
    let mut calls = 0;
    loop {
        let page = s.list_scanning(&filter, cursor.as_deref(), 50, 4).unwrap();
        assert!(page.scanned <= 4);
        calls += 1;
        found.extend(page.cases.into_iter().map(|c| c.id));
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    found.sort();
    mine.sort();
    assert_eq!(found, mine);
    assert!(calls >= 5, "{calls}");
}

/// A removal (retention) is single sled operations inside a pending record, the case
/// first. Cut short after any of them, the case is already gone for readers, and opening
/// the store again finishes the removal: no event or index entry of it is left.
#[test]
fn a_removal_cut_short_anywhere_is_finished_when_the_store_opens() {
    for cut in 0.. {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
        let keep = case_with_three_timers(&s);
        let gone = case_with_three_timers(&s);
        s.crash_after
            .store(cut, std::sync::atomic::Ordering::SeqCst);
        let result = s.remove_cases(std::slice::from_ref(&gone));
        if let Ok(out) = result {
            assert!(out[0].is_ok());
            consistent(&s, "");
            assert!(
                cut > 3,
                "a removal is the case, its events and its index entries"
            );
            break;
        }
        if cut > 0 {
            assert_eq!(s.get_case(&gone.id).unwrap(), None, "cut after {cut}");
        }
        let s = reopened(s, &path);
        assert_eq!(
            s.settled_on_open(),
            Settled {
                finished: 1,
                undone: 0
            },
            "cut after {cut}"
        );
        assert_eq!(s.get_case(&gone.id).unwrap(), None);
        assert_eq!(s.get_case(&keep.id).unwrap().unwrap(), keep);
        consistent(&s, &format!("cut after {cut}"));
        let by_index = s.status_counts_by_index().unwrap();
        assert_eq!(by_index.values().sum::<u64>(), 1, "cut after {cut}");
    }
}

/// `s` synced, closed and opened again (settling what it left half-made).
fn reopened(s: SledStore, path: &std::path::Path) -> SledStore {
    s.sync().unwrap();
    drop(s);
    SledStore::open(path, Durability::GroupCommit).unwrap()
}

/// Compacting rewrites the store into a fresh one and swaps them: every case, history,
/// record and directory version is as before (the exports are the same), the store is
/// consistent and takes less disk, and nothing of the copy is left beside it.
#[test]
fn compacting_keeps_everything_and_gives_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
    s.record_put("tokens", &[("t".into(), b"{}".to_vec())])
        .unwrap();
    for i in 0..300 {
        let c = new_case(&s, "jiyang", "noise", &format!("k{i}"), T0 + i);
        // Many versions of each case: what sled's log keeps until it is cleaned.
        for v in 0..8 {
            s.update_case(&c.id, None, &|c| {
                let mut n = c.clone();
                n.co_handlers = vec![format!("jiyang/unit-{v}")];
                Ok(Change {
                    case: n,
                    events: vec![],
                })
            })
            .unwrap();
        }
    }
    let mut before = Vec::new();
    backup::export(&s, &mut before, &|_| {}).unwrap();
    drop(s);
    let config = SledConfig::new(&path);
    let done = compact::compact(&config, &|_| {}).unwrap();
    assert_eq!(done.cases, 300);
    assert!(
        done.bytes_after < done.bytes_before,
        "{} bytes after, {} before",
        done.bytes_after,
        done.bytes_before
    );
    assert!(!compact::scratch(&path).exists(), "the old files are gone");
    let s = SledStore::open(&path, Durability::GroupCommit).unwrap();
    consistent(&s, "compacted");
    let mut after = Vec::new();
    backup::export(&s, &mut after, &|_| {}).unwrap();
    assert!(before == after, "the compacted store exports the same");
}

//! Crash recovery in the spirit of sled's `test_crash_recovery`: a child process writes
//! cases from several threads — new cases, updates, and staged writes as the timer sweep
//! makes them, each as single operations inside a pending record — and prints each
//! acknowledged write; it is killed with SIGKILL
//! at a random moment; the store is reopened and every acknowledged case, its last
//! acknowledged version and its index entries must be there and consistent.
//!
//! `CIVIC_CRASH_ROUNDS=300 cargo test -p civic-host --test store_crash --release` runs a long one.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use civic_host::lifecycle::{self, Action};
use civic_host::model::{Case, Deadlines, EventBody, PendingTimer, TimerKind};
use civic_host::store::sled::{Durability, SledStore as Store};
use civic_host::store::{CaseStore, Change, Versioned};

const CHILD_ENV: &str = "CIVIC_CRASH_CHILD";

/// Not a test on its own: the body of the child process.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::open(std::path::Path::new(&dir), Durability::GroupCommit)
        .expect("child opens the store");
    let out = std::sync::Mutex::new(std::io::stdout());
    std::thread::scope(|s| {
        for t in 0..4 {
            let (store, out) = (&store, &out);
            s.spawn(move || {
                for i in 0.. {
                    let id = store.next_case_id().unwrap();
                    let mut c = Case::received(
                        id.clone(),
                        "jiyang".into(),
                        "noise".into(),
                        format!("t{t}"),
                        1_796_000_400_000 + i,
                    );
                    c.caller_key = format!("caller-{t}");
                    store
                        .create_case(Change {
                            case: c,
                            events: vec![],
                        })
                        .unwrap();
                    writeln!(out.lock().unwrap(), "ACK {id} 1").unwrap();
                    let mut version = 1;
                    for action in [
                        Action::QueueForDispatch,
                        Action::Dispatch {
                            lead: "jiyang/yuehe/grid-01".into(),
                            co_handlers: vec![],
                            deadlines: Deadlines::default(),
                            timers: vec![PendingTimer {
                                kind: TimerKind::SignOff,
                                due_at: 1_796_000_500_000 + i,
                            }],
                        },
                    ] {
                        let c = store
                            .update_case(&id, Some(version), &|c| {
                                Ok(Change {
                                    case: lifecycle::apply(c, &action, 1)?,
                                    events: vec![],
                                })
                            })
                            .unwrap();
                        version = c.version;
                        writeln!(out.lock().unwrap(), "ACK {id} {version}").unwrap();
                    }
                    // The timer sweep's way of writing (staged off the lock, checked
                    // against the version at write time): the handler and the timer
                    // change, so index entries come and go.
                    let old = store.get_case(&id).unwrap().unwrap();
                    let mut next = old.clone();
                    next.handler = Some("jiyang/yuehe".into());
                    next.escalation_level += 1;
                    next.timers = vec![PendingTimer {
                        kind: TimerKind::SignOff,
                        due_at: 1_796_000_600_000 + i,
                    }];
                    let staged = Versioned {
                        read: old.clone(),
                        change: Change {
                            case: next,
                            events: vec![(
                                1_796_000_500_000 + i,
                                "system".into(),
                                EventBody::Escalation {
                                    timer: TimerKind::SignOff,
                                    action: "move-to".into(),
                                    detail: "jiyang/yuehe".into(),
                                },
                            )],
                        },
                        fence: None,
                    };
                    let written = store.write(vec![staged]).unwrap();
                    let c = written.into_iter().next().unwrap().unwrap();
                    store.sync().unwrap();
                    writeln!(out.lock().unwrap(), "ACK {id} {}", c.version).unwrap();
                }
            });
        }
    });
}

fn rounds() -> usize {
    std::env::var("CIVIC_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let exe = std::env::current_exe().unwrap();
    let mut total_acked = std::collections::HashMap::<String, u64>::new();
    let (mut finished, mut undone) = (0, 0);
    for round in 0..rounds() {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ACK ") {
                    let (id, v) = rest.split_once(' ').unwrap();
                    acked.push((id.to_owned(), v.parse::<u64>().unwrap()));
                }
            }
            acked
        });
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
        std::thread::sleep(Duration::from_millis(150 + nanos % 400));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        for (id, v) in acked {
            let e = total_acked.entry(id).or_default();
            *e = (*e).max(v);
        }

        let store =
            Store::open(&path, Durability::GroupCommit).expect("the store reopens after SIGKILL");
        let settled = store.settled_on_open();
        finished += settled.finished;
        undone += settled.undone;
        for (id, version) in &total_acked {
            let c = store
                .get_case(id)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: acknowledged case {id} lost"));
            assert!(
                c.version >= *version,
                "round {round}: case {id} at version {} but {version} was acknowledged",
                c.version
            );
        }
        let report = store.check_consistency().unwrap();
        assert!(
            report.problems.is_empty(),
            "round {round}: {:?}",
            report.problems
        );
        assert!(report.cases >= total_acked.len());
        // The counts `/metrics` and the overview read were not saved by a killed process:
        // opening rebuilt them, and they agree with the index.
        assert!(store.counts_rebuilt_on_open(), "round {round}");
        assert_eq!(
            store.status_counts().unwrap(),
            store.status_counts_by_index().unwrap(),
            "round {round}: kept counts differ from the index"
        );
    }
    assert!(
        !total_acked.is_empty(),
        "the child acknowledged nothing; the test proved nothing"
    );
    assert!(
        total_acked.values().any(|v| *v >= 4),
        "no staged write was acknowledged; that path went untested"
    );
    eprintln!(
        "{} rounds, {} acknowledged cases all recovered; opening settled {finished} interrupted writes by finishing them and {undone} by undoing them",
        rounds(),
        total_acked.len()
    );
}

//! Retention through the real `civic` binary: `civic store archive` moves finished cases
//! past the retention period to an archive and removes them, leaving open and recent ones;
//! `civic store archives` shows the audit record; `civic store import` takes the archive
//! back and the histories are as they were.

use std::path::Path;
use std::process::Output;

use civic_host::model::{Case, CaseStatus, Channel, EventBody, Millis};
use civic_host::store::sled::SledConfig;
use civic_host::store::{CaseStore, Change, StoreConfig};

const DAY: Millis = 86_400_000;

mod common;
use common::{civic, http, start_with};

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn open(data: &Path) -> std::sync::Arc<dyn CaseStore> {
    StoreConfig::Sled(SledConfig::new(data.join("store")))
        .open()
        .unwrap()
}

/// A case created at `at` and left at `status`, last changed then.
fn case(s: &dyn CaseStore, status: CaseStatus, at: Millis) -> Case {
    let mut c = Case::received(
        s.next_case_id().unwrap(),
        "jiyang".into(),
        "noise".into(),
        "agent".into(),
        at,
    );
    c.status = status;
    s.create_case(Change {
        case: c,
        events: vec![
            (
                at,
                "agent".into(),
                EventBody::Received {
                    channel: Channel::Phone,
                },
            ),
            (
                at,
                "agent".into(),
                EventBody::Received {
                    channel: Channel::App,
                },
            ),
        ],
    })
    .unwrap()
}

fn now() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as Millis
}

#[test]
fn finished_cases_past_the_period_are_archived_removed_and_taken_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let now = now();
    let (old, recent) = (now - 4 * 365 * DAY, now - 30 * DAY);
    let (made, histories) = {
        let s = open(&data);
        let made = vec![
            case(&*s, CaseStatus::Closed, old),       // goes
            case(&*s, CaseStatus::Rejected, old + 1), // goes
            case(&*s, CaseStatus::Signed, old + 2),   // open: stays
            case(&*s, CaseStatus::Closed, recent),    // recent: stays
        ];
        let histories: Vec<_> = made.iter().map(|c| s.history(&c.id).unwrap()).collect();
        (made, histories)
    };
    let d = data.to_str().unwrap();
    let archive = dir.path().join("2022.jsonl");
    let a = archive.to_str().unwrap();
    let archive_by_cli = || {
        civic(&[
            "store",
            "archive",
            "--data",
            d,
            "--keep-years",
            "3",
            "--out",
            a,
        ])
    };

    for (args, says) in [
        (vec!["--keep-years", "0"], "0 years"),
        (vec!["--closed-before", "2999-01-01"], "in the future"),
        (vec!["--closed-before", "last year"], "not a date"),
        (vec![], "--keep-years"),
    ] {
        let o = civic(&[&["store", "archive", "--data", d, "--out", a][..], &args].concat());
        assert!(!o.status.success(), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(says),
            "{}",
            text(&o)
        );
        assert!(!archive.exists(), "a refused run writes nothing");
    }

    let o = archive_by_cli();
    assert!(o.status.success(), "{}", text(&o));
    let run: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (run["cases"].as_u64(), run["events"].as_u64()),
        (Some(2), Some(4)),
        "{run}"
    );
    assert_eq!(run["state"], "finished");
    let bytes = std::fs::read(&archive).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    assert_eq!(run["sha256"], sha.as_str());

    let o = archive_by_cli();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("never overwritten"),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read(&archive).unwrap(),
        bytes,
        "the archive is untouched"
    );

    {
        let s = open(&data);
        let live: Vec<bool> = made
            .iter()
            .map(|c| s.get_case(&c.id).unwrap().is_some())
            .collect();
        assert_eq!(live, [false, false, true, true]);
        assert!(s.check_consistency().unwrap().problems.is_empty());
    }
    let o = civic(&["store", "archives", "--data", d]);
    assert!(o.status.success(), "{}", text(&o));
    let runs: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs, vec![run], "the audit record of the one finished run");

    let o = civic(&["store", "import", "--data", d, "--file", a]);
    assert!(o.status.success(), "{}", text(&o));
    let s = open(&data);
    for (c, h) in made.iter().zip(&histories) {
        assert_eq!(s.get_case(&c.id).unwrap().as_ref(), Some(c));
        assert_eq!(&s.history(&c.id).unwrap(), h);
    }
    drop(s);
    let o = civic(&["store", "import", "--data", d, "--file", a]);
    assert!(
        !o.status.success(),
        "a second import is refused: {}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already"),
        "{}",
        text(&o)
    );
}

/// `civic serve --keep-years 3` applies the policy itself, while serving: the old finished
/// case goes to an archive in DATA/archives and answers 404; the old open case and the
/// recent finished one are still served.
#[test]
fn the_server_applies_its_retention_policy_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let old = now() - 4 * 365 * DAY;
    let made = {
        let s = open(&data);
        vec![
            case(&*s, CaseStatus::Closed, old),
            case(&*s, CaseStatus::Signed, old + 1),
            case(&*s, CaseStatus::Closed, now() - DAY),
        ]
    };
    let server = start_with(&data, &["--keep-years", "3"]);
    let token = server
        .token_line
        .as_deref()
        .and_then(|l| l.rsplit(' ').next())
        .expect("the first start prints the admin token")
        .to_owned();
    let status = |c: &Case| {
        http(
            &server.addr,
            "GET",
            &format!("/v1/cases/{}", c.id),
            &token,
            "",
        )
        .0
    };
    // The run starts with the server; wait for it to be done (this waits for an event,
    // with a bound only so a broken build cannot hang the suite).
    let archives = data.join("archives");
    let mut waited = 0;
    while status(&made[0]) != 404 {
        assert!(waited < 600, "the policy never archived {}", made[0].id);
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
    }
    assert_eq!((status(&made[1]), status(&made[2])), (200, 200));
    let files: Vec<_> = std::fs::read_dir(&archives)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    drop(server);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains(&made[0].id));
    assert!(!text.contains(&made[1].id) && !text.contains(&made[2].id));
    let o = civic(&["store", "archives", "--data", data.to_str().unwrap()]);
    let run: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one audit record");
    assert_eq!(
        (run["by"].as_str(), run["cases"].as_u64()),
        (Some("policy"), Some(1))
    );
}

/// `civic store compact` rewrites the store in place: the same cases and histories after,
/// no copy left beside it; a PostgreSQL store is refused with what to do instead.
#[test]
fn compacting_through_the_cli_keeps_every_case() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (made, histories) = {
        let s = open(&data);
        let made: Vec<Case> = (0..20)
            .map(|i| case(&*s, CaseStatus::Closed, now() - i * DAY))
            .collect();
        let histories: Vec<_> = made.iter().map(|c| s.history(&c.id).unwrap()).collect();
        (made, histories)
    };
    let o = civic(&["store", "compact", "--data", data.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let done: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(done["cases"], 20, "{done}");
    assert!(!data.join("store.compacting").exists());
    let s = open(&data);
    for (c, h) in made.iter().zip(&histories) {
        assert_eq!(s.get_case(&c.id).unwrap().as_ref(), Some(c));
        assert_eq!(&s.history(&c.id).unwrap(), h);
    }
    let o = civic(&[
        "store",
        "compact",
        "--store",
        "postgres://civic@127.0.0.1:1/civic",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("VACUUM"),
        "{}",
        text(&o)
    );
}

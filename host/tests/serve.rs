//! `civic serve` as a newcomer runs it: first start on an empty data directory, real socket,
//! the printed admin token, a case created and read over HTTP, and a restart that keeps it.

use std::process::Command;

mod common;
use common::{http, serve_command, start, start_with};

#[test]
fn first_start_then_restart_over_a_real_socket() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("civic-data");
    let server = start(&data);
    let printed = server
        .token_line
        .clone()
        .expect("first start prints the admin token");
    let token = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(printed.ends_with(&token), "printed {printed:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("admin-token"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "only its owner may read the admin token");
    }
    let (status, created) = http(
        &server.addr,
        "POST",
        "/v1/cases",
        &token,
        r#"{"district":"yazhou","category":"maritime-fishing","location":{"grid":"yazhou/port/grid-01"},"caller":{"phone":"13800000012"}}"#,
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["handler"], "yazhou/port-station");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        http(&server.addr, "GET", "/v1/cases", "civic_bad_token", "").0,
        401
    );
    let replay = Command::new(env!("CARGO_BIN_EXE_civic"))
        .args([
            "replay",
            &id,
            "--server",
            &format!("http://{}", server.addr),
            "--token",
            &token,
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(
        out.contains("routing")
            && out.contains("identical")
            && out.contains("every decision replays identically"),
        "{out}"
    );
    drop(server);

    let server = start(&data);
    assert!(
        server.token_line.is_none(),
        "the admin token is printed once, on first start"
    );
    let (status, case) = http(&server.addr, "GET", &format!("/v1/cases/{id}"), &token, "");
    assert_eq!(status, 200);
    assert_eq!(case["handler"], "yazhou/port-station");
    let (status, plugins) = http(
        &server.addr,
        "GET",
        "/v1/districts/yazhou/plugins/routing",
        &token,
        "",
    );
    assert_eq!(status, 200);
    assert_eq!(
        plugins["versions"].as_array().unwrap().len(),
        1,
        "bundled plug-ins are deployed once"
    );
}

/// The newest sled snapshot's log position (the file is named for it; 0 when none).
fn snapshot_lsn(store: &std::path::Path) -> u64 {
    std::fs::read_dir(store)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            u64::from_str_radix(name.strip_prefix("snap.")?, 16).ok()
        })
        .max()
        .unwrap_or(0)
}

/// sled writes its snapshot only while opening; a server stopped cleanly brings it up to
/// date as it stops, so its next start-up does not read everything written meanwhile.
#[test]
fn a_clean_stop_leaves_the_store_quick_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("civic-data");
    let server = start(&data);
    let token = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let running = snapshot_lsn(&data.join("store"));
    for i in 0..20 {
        let body = format!(
            r#"{{"district":"yazhou","category":"maritime-fishing","location":{{"grid":"yazhou/port/grid-01"}},"caller":{{"phone":"1380000{i:04}"}}}}"#
        );
        let (status, created) = http(&server.addr, "POST", "/v1/cases", &token, &body);
        assert_eq!(status, 201, "{created}");
    }
    assert_eq!(
        snapshot_lsn(&data.join("store")),
        running,
        "sled snapshots only while opening"
    );
    let status = server.terminate();
    assert!(status.success(), "{status}");
    let stopped = snapshot_lsn(&data.join("store"));
    assert!(
        stopped > running,
        "the snapshot stands at {running:#x} as when the server started"
    );
    let server = start(&data);
    let (status, list) = http(&server.addr, "GET", "/v1/cases?district=yazhou", &token, "");
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["cases"].as_array().unwrap().len(), 20, "{list}");
}

/// The server fires due timers by itself: the third case from one caller in a category is
/// due for escalation at once, and the background sweeper supervises it within seconds.
#[test]
fn the_server_fires_due_timers_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("civic-data");
    let server = start(&data);
    let token = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let body = r#"{"district":"yucai","category":"noise","location":{"grid":"yucai/qingfa/grid-01"},"caller":{"phone":"13700000077"}}"#;
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let (status, created) = http(&server.addr, "POST", "/v1/cases", &token, body);
            assert_eq!(status, 201, "{created}");
            created["id"].as_str().unwrap().to_owned()
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let third = loop {
        let (status, case) = http(
            &server.addr,
            "GET",
            &format!("/v1/cases/{}", ids[2]),
            &token,
            "",
        );
        assert_eq!(status, 200);
        if case["supervised_by"] == "yucai" {
            break case;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the repeat was never escalated: {case}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(third["marks"], serde_json::json!(["repeat"]));
    let (_, first) = http(
        &server.addr,
        "GET",
        &format!("/v1/cases/{}", ids[0]),
        &token,
        "",
    );
    assert_eq!(first["supervised_by"], serde_json::Value::Null, "{first}");
}

#[test]
fn a_data_directory_holding_something_else_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("store"), "not a store").unwrap();
    let out = serve_command(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a civic-rules store"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("store")).unwrap(),
        "not a store"
    );
}

#[test]
fn a_cache_size_sweep_interval_or_node_name_out_of_range_is_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bad_args = [
        ("--cache-mb", "0"),
        ("--cache-mb", "8"),
        ("--cache-mb", "lots"),
        ("--sweep-ms", "0"),
        ("--sweep-ms", "3600001"),
        ("--sweep-ms", "soon"),
        ("--node", ""),
        ("--node", "two words"),
        ("--node", "北京"),
        ("--node", &"n".repeat(65)),
    ];
    for (flag, bad) in bad_args {
        let out = serve_command(&data).args([flag, bad]).output().unwrap();
        assert!(!out.status.success(), "{flag} {bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{err}");
    }
    assert!(!data.exists(), "nothing created for a refused command line");
}

/// An operator's calendar file replaces the bundled one: with the next 40 days declared
/// holidays, a case taken in today is due for resolution only after them.
#[test]
fn an_operators_calendar_file_sets_the_working_days() {
    use civic_host::calendar::{Calendar, format_date};
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let today = Calendar::bundled().day_of(now);
    let mut years: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for d in today..today + 40 {
        let date = format_date(d);
        years.entry(date[..4].to_owned()).or_default().push(date);
    }
    let years: serde_json::Map<String, serde_json::Value> = years
        .into_iter()
        .map(|(y, days)| {
            let year = serde_json::json!({"checked_against_official_notice": true, "holidays": days, "makeup_workdays": []});
            (y, year)
        })
        .collect();
    let file = dir.path().join("calendar.json");
    std::fs::write(
        &file,
        serde_json::json!({"utc_offset_minutes": 480, "years": years}).to_string(),
    )
    .unwrap();
    let data = dir.path().join("civic-data");
    let server = start_with(&data, &["--calendar", file.to_str().unwrap()]);
    let token = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let (status, created) = http(
        &server.addr,
        "POST",
        "/v1/cases",
        &token,
        r#"{"district":"jiyang","category":"noise","location":{"grid":"jiyang/yuehe/grid-01"},"caller":{"phone":"13800000013"}}"#,
    );
    assert_eq!(status, 201, "{created}");
    let resolution = created["deadlines"]["resolution"].as_i64().unwrap();
    let first_working_day = Calendar::bundled().start_of(today + 40);
    assert!(
        resolution > first_working_day,
        "resolution {resolution} falls inside the declared holidays (first working day {first_working_day}): {created}"
    );
}

/// A calendar file that cannot be read or parsed refuses to start, naming the file, and
/// creates nothing.
#[test]
fn a_bad_calendar_file_is_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bad = dir.path().join("calendar.json");
    std::fs::write(&bad, r#"{"utc_offset_minutes": 480, "years": {"2026": {"holidays": ["not a date"], "makeup_workdays": []}}}"#).unwrap();
    for file in [bad.clone(), dir.path().join("missing.json")] {
        let out = serve_command(&data)
            .arg("--calendar")
            .arg(&file)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(file.to_str().unwrap()) && err.contains("calendar"),
            "{err}"
        );
    }
    assert!(!data.exists(), "nothing created for a refused calendar");
}

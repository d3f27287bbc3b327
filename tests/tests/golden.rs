//! Golden fixtures of every bundled plug-in, run through the real Wasm runtime (the one the
//! server uses), each within its fuel budget; and the fixture runner reports mismatches.

use std::path::Path;

use civic_host::author::{EnvArgs, run_fixtures};

fn bundled(package: &str) -> std::path::PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join(format!("{package}.wasm"));
    std::fs::write(&path, civic_plugin_bundle::get(package).unwrap().component).unwrap();
    path
}

fn env() -> EnvArgs {
    EnvArgs::default()
}

#[test]
fn every_bundled_plugin_passes_its_golden_fixtures() {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let all = civic_plugin_bundle::all();
    assert_eq!(all.len(), 6, "the city default and five districts");
    for b in all {
        let name = b.package.strip_prefix("civic-plugin-").unwrap();
        let fixtures = plugins.join(name).join("fixtures");
        assert!(fixtures.is_dir(), "{name} has no fixtures");
        let mut out = Vec::new();
        let failed = run_fixtures(&bundled(b.package), &fixtures, &env(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(failed, 0, "{name}:\n{text}");
        assert!(
            text.lines().filter(|l| l.starts_with("ok")).count() >= 3,
            "{name} has at least 3 fixtures:\n{text}"
        );
    }
}

#[test]
fn a_wrong_expectation_or_a_slower_rule_fails_with_expected_against_actual() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../plugins/jiyang/fixtures/03-parking-to-police.json"),
    )
    .unwrap();
    let mut wrong: serde_json::Value = serde_json::from_str(&good).unwrap();
    wrong["expect"]["lead"] = "jiyang/yuehe/grid-01".into();
    std::fs::write(dir.path().join("wrong.json"), wrong.to_string()).unwrap();
    let mut slow: serde_json::Value = serde_json::from_str(&good).unwrap();
    slow["max_fuel"] = 100.into();
    std::fs::write(dir.path().join("slow.json"), slow.to_string()).unwrap();
    let mut out = Vec::new();
    let failed = run_fixtures(
        &bundled("civic-plugin-jiyang"),
        dir.path(),
        &env(),
        &mut out,
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(failed, 2, "{text}");
    assert!(
        text.contains("at .lead: expected \"jiyang/yuehe/grid-01\", got \"jiyang/police\""),
        "{text}"
    );
    assert!(text.contains("at fuel: expected \"at most 100\""), "{text}");
    assert!(text.contains("0 passed, 2 failed"), "{text}");
}

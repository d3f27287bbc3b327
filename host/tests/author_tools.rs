//! A district IT developer's path, with the real `civic` binary: scaffold → native test →
//! build → run → golden test → deploy to a running server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;

fn civic(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_civic"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Target dirs shared between runs, so the scaffold's dependencies build once.
fn shared_target(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(name)
}

#[test]
fn scaffold_build_run_test_deploy() {
    let tmp = tempfile::tempdir().unwrap();
    let o = civic(&[
        "plugin",
        "new",
        "demo-rules",
        "--dir",
        tmp.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let root = tmp.path().join("demo-rules");
    for f in [
        "Cargo.toml",
        "src/lib.rs",
        "fixtures/noise-goes-to-its-grid.json",
        "case.json",
        "rust-toolchain.toml",
        "README.md",
    ] {
        assert!(root.join(f).exists(), "scaffold lacks {f}");
    }
    let again = civic(&[
        "plugin",
        "new",
        "demo-rules",
        "--dir",
        tmp.path().to_str().unwrap(),
    ]);
    assert!(!again.status.success() && text(&again).contains("already exists"));
    assert!(text(&civic(&["plugin", "new", "Bad Name"])).contains("is not a plug-in name"));

    // The scaffold's own test passes natively.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let t = Command::new(&cargo)
        .args([
            "test",
            "--manifest-path",
            root.join("Cargo.toml").to_str().unwrap(),
        ])
        .env("CARGO_TARGET_DIR", shared_target("scaffold-native"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(t.status.success(), "{}", text(&t));
    assert!(text(&t).contains("2 passed"), "{}", text(&t));

    // Build it into a component.
    let wasm = root.join("demo-rules.wasm");
    let o = civic(&[
        "plugin",
        "build",
        "--manifest-path",
        root.join("Cargo.toml").to_str().unwrap(),
        "--target-dir",
        shared_target("scaffold-guest").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(wasm.exists());

    // Run it on a case.
    let case = tmp.path().join("case.json");
    std::fs::write(
        &case,
        r#"{"district":"jiyang","category":"noise","location":{"grid":"jiyang/yuehe/grid-02"}}"#,
    )
    .unwrap();
    let o = civic(&[
        "plugin",
        "run",
        "--plugin",
        wasm.to_str().unwrap(),
        "--hook",
        "routing",
        "--case",
        case.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("\"lead\": \"jiyang/yuehe/grid-02\"")
            && out.contains("reasons:  route.noise-to-grid")
            && out.contains("fuel:"),
        "{out}"
    );

    // Golden fixtures pass; a broken one fails with expected against actual.
    let o = civic(&[
        "plugin",
        "test",
        "--plugin",
        wasm.to_str().unwrap(),
        "--fixtures",
        root.join("fixtures").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("1 passed, 0 failed"));
    let broken = tmp.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    let f = std::fs::read_to_string(root.join("fixtures/noise-goes-to-its-grid.json"))
        .unwrap()
        .replace("route.noise-to-grid", "route.somewhere-else");
    std::fs::write(broken.join("f.json"), f).unwrap();
    let o = civic(&[
        "plugin",
        "test",
        "--plugin",
        wasm.to_str().unwrap(),
        "--fixtures",
        broken.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("expected [\"route.somewhere-else\"], got [\"route.noise-to-grid\"]"),
        "{}",
        text(&o)
    );

    // Deploy to a running server and activate.
    let data = tmp.path().join("data");
    let server = common::start(&data);
    let addr = format!("http://{}", server.addr);
    let token = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let o = Command::new(env!("CARGO_BIN_EXE_civic"))
        .args([
            "plugin",
            "deploy",
            "--plugin",
            wasm.to_str().unwrap(),
            "--server",
            &addr,
            "--district",
            "jiyang",
            "--hook",
            "routing",
            "--activate",
        ])
        .env("CIVIC_TOKEN", &token)
        .output()
        .unwrap();
    let out = text(&o);
    drop(server);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("deployed version") && out.contains("activated"),
        "{out}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_civic"))
        .args([
            "plugin",
            "deploy",
            "--plugin",
            case.to_str().unwrap(),
            "--server",
            &addr,
            "--district",
            "jiyang",
            "--hook",
            "routing",
            "--token",
            "civic_x_y",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

/// One README step: the command of the first line of `readme` starting with `prefix`, split
/// into words, without its trailing comment.
fn readme_step(readme: &str, prefix: &str) -> Vec<String> {
    let line = readme
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("the README has no `{prefix}` step:\n{readme}"));
    let command = line.split('#').next().unwrap().trim();
    command.split_whitespace().map(str::to_owned).collect()
}

/// Scaffolds a plug-in in `lang` and checks it has `files`; returns its folder and README.
fn scaffold_in(tmp: &Path, name: &str, lang: &str, files: &[&str]) -> (PathBuf, String) {
    let o = civic(&[
        "plugin",
        "new",
        name,
        "--lang",
        lang,
        "--dir",
        tmp.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let root = tmp.join(name);
    for f in files {
        assert!(root.join(f).exists(), "{lang} scaffold lacks {f}");
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    (root, readme)
}

/// The README's `civic plugin build / run / test / deploy` steps, run as written with the
/// `civic` under test in the plug-in's folder, then a case from `case.json` taken in by the
/// server: it is routed by the plug-in (`name`).
fn civic_steps_then_a_case(tmp: &Path, root: &Path, readme: &str, name: &str) {
    for prefix in [
        "civic plugin build ",
        "civic plugin run ",
        "civic plugin test ",
    ] {
        let args = readme_step(readme, prefix);
        let o = Command::new(env!("CARGO_BIN_EXE_civic"))
            .args(&args[1..])
            .env("RUST_LOG", "warn")
            .current_dir(root)
            .output()
            .unwrap();
        assert!(o.status.success(), "{prefix}: {}", text(&o));
        let out = text(&o);
        match prefix {
            "civic plugin build " => assert!(out.contains("MiB)"), "{out}"),
            "civic plugin run " => assert!(
                out.contains("\"lead\": \"jiyang/yuehe/grid-01\"")
                    && out.contains("reasons:  route.noise-to-grid"),
                "{out}"
            ),
            _ => assert!(out.contains("1 passed, 0 failed"), "{out}"),
        }
    }
    assert!(root.join(format!("{name}.wasm")).exists());

    let data = tmp.join("data");
    let server = common::start(&data);
    let addr = format!("http://{}", server.addr);
    let token = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let deploy = readme_step(readme, "civic plugin deploy ");
    let o = Command::new(env!("CARGO_BIN_EXE_civic"))
        .args(&deploy[1..])
        .args(["--server", &addr])
        .env("CIVIC_TOKEN", &token)
        .env("RUST_LOG", "warn")
        .current_dir(root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("activated"), "{}", text(&o));
    let case = std::fs::read_to_string(root.join("case.json")).unwrap();
    let (status, c) = common::http(&server.addr, "POST", "/v1/cases", &token, &case);
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["handler"], "jiyang/yuehe/grid-01");
    let (_, h) = common::http(
        &server.addr,
        "GET",
        &format!("/v1/cases/{}/history", c["id"].as_str().unwrap()),
        &token,
        "",
    );
    let routing = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|e| e["what"]["type"] == "decision" && e["what"]["hook"] == "routing")
        .unwrap();
    assert_eq!(routing["what"]["plugin"]["name"], name, "{routing}");
}

/// The Python author's path, as the scaffold's README writes it: scaffold → bindings →
/// native test → build (componentize-py, stub WASI) → run → golden fixtures → deploy and
/// activate on a running server → a case decided by it.
#[test]
fn python_scaffold_build_run_test_deploy() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, readme) = scaffold_in(
        tmp.path(),
        "demo-py",
        "python",
        &[
            "app.py",
            "test_app.py",
            "civic_testing.py",
            "directory.json",
            "wit/rules.wit",
            "case.json",
            "fixtures/noise-goes-to-its-grid.json",
            "README.md",
        ],
    );
    // The README's bindings and native-test steps, run as written.
    let bindings = readme_step(&readme, "componentize-py ");
    let o = Command::new(&bindings[0])
        .args(&bindings[1..])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let unittest = readme_step(&readme, "PYTHONPATH=bindings ");
    let o = Command::new(&unittest[1])
        .args(&unittest[2..])
        .arg("-v")
        .env("PYTHONPATH", "bindings")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("Ran 2 tests"), "{}", text(&o));
    civic_steps_then_a_case(tmp.path(), &root, &readme, "demo-py");
}

/// The JavaScript author's path, as the scaffold's README writes it: scaffold → npm install
/// (componentize-js, pinned) → node's test runner → build (componentize-js, no WASI) → run →
/// golden fixtures → deploy and activate → a case decided by it.
#[test]
fn js_scaffold_build_run_test_deploy() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, readme) = scaffold_in(
        tmp.path(),
        "demo-js",
        "js",
        &[
            "app.js",
            "rules.js",
            "rules.test.js",
            "civic-testing.js",
            "package.json",
            "directory.json",
            "wit/rules.wit",
            "case.json",
            "fixtures/noise-goes-to-its-grid.json",
            "README.md",
        ],
    );
    for prefix in ["npm install", "node --test"] {
        let step = readme_step(&readme, prefix);
        let o = Command::new(&step[0])
            .args(&step[1..])
            .args(if prefix == "npm install" {
                &["--prefer-offline", "--no-audit", "--no-fund"][..]
            } else {
                &[][..]
            })
            .current_dir(&root)
            .output()
            .unwrap();
        assert!(o.status.success(), "{prefix}: {}", text(&o));
        if prefix == "node --test" {
            assert!(text(&o).contains("# pass 2"), "{}", text(&o));
        }
    }
    civic_steps_then_a_case(tmp.path(), &root, &readme, "demo-js");
}

/// `civic backtest` takes dates and datetimes as well as milliseconds; anything else is
/// refused before anything is asked of a server, saying what it accepts.
#[test]
fn backtest_takes_dates() {
    let args = |from: &str| {
        civic(&[
            "backtest",
            "--district",
            "jiyang",
            "--hook",
            "routing",
            "--version",
            "0123456789ab",
            "--from",
            from,
            "--to",
            "2026-10-01",
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "civic_x_y",
        ])
    };
    let bad = args("30/11/2026");
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("is not a date (2026-11-01)"),
        "{}",
        text(&bad)
    );
    // A date is accepted (and checked against --to before any request is made).
    let late = args("2026-11-01");
    assert!(!late.status.success());
    assert!(
        text(&late).contains("--from must be before --to"),
        "{}",
        text(&late)
    );
}

/// The Tianya scenario: a district engineer starts from Tianya's rules as the city runs
/// them (`--district tianya`, with the SDK vendored: no path of this machine in the
/// scaffold), changes one rule — illegal parking in 西岛 goes to its police post — and the
/// backtest against the active version changes only the parking case: the e-bike case keeps
/// its one-working-day deadline, the noise case its grid.
#[test]
fn one_changed_rule_from_the_districts_rules_changes_one_case() {
    let tmp = tempfile::tempdir().unwrap();
    let o = civic(&[
        "plugin",
        "new",
        "tianya-parking",
        "--district",
        "tianya",
        "--dir",
        tmp.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let root = tmp.path().join("tianya-parking");
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for entry in walk(&root) {
        let content = std::fs::read_to_string(&entry).unwrap_or_default();
        assert!(
            !content.contains(here.to_str().unwrap()),
            "{} names this machine's checkout",
            entry.display()
        );
    }
    let lib = root.join("src/lib.rs");
    let rules = std::fs::read_to_string(&lib).unwrap().replacen(
        "impl District for Tianya {",
        "impl District for Tianya {
    fn route_before_grid(case: &Case, _ctx: &Context, _grid: bool) -> Option<RoutingDecision> {
        (case.category == \"illegal-parking\"
            && case.location.community.as_deref() == Some(\"tianya/xidao\"))
        .then(|| route_to(\"tianya/xidao/police\").because(\"route.tianya.parking-police\"))
    }
",
        1,
    );
    std::fs::write(&lib, rules).unwrap();
    let o = civic(&[
        "plugin",
        "build",
        "--manifest-path",
        root.join("Cargo.toml").to_str().unwrap(),
        "--target-dir",
        shared_target("scaffold-guest").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let wasm = root.join("tianya-parking.wasm");
    // Today's decision, recorded by the scaffold, still holds for the noise case.
    let o = civic(&[
        "plugin",
        "test",
        "--plugin",
        wasm.to_str().unwrap(),
        "--fixtures",
        root.join("fixtures").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));

    let data = tmp.path().join("data");
    let server = common::start(&data);
    let token = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    for case in [
        r#"{"district":"tianya","category":"ev-charging","location":{"grid":"tianya/xidao/grid-01"}}"#,
        r#"{"district":"tianya","category":"illegal-parking","location":{"grid":"tianya/xidao/grid-01"}}"#,
        r#"{"district":"tianya","category":"noise","location":{"grid":"tianya/xidao/grid-02"}}"#,
    ] {
        let (status, c) = common::http(&server.addr, "POST", "/v1/cases", &token, case);
        assert_eq!(status, 201, "{c}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_civic"))
        .args([
            "plugin",
            "deploy",
            "--plugin",
            wasm.to_str().unwrap(),
            "--server",
            &format!("http://{}", server.addr),
            "--district",
            "tianya",
            "--hook",
            "routing",
        ])
        .env("CIVIC_TOKEN", &token)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let version = text(&o)
        .split_whitespace()
        .find(|w| w.len() == 64)
        .expect("the deploy prints the version")
        .to_owned();
    let (status, r) = common::http(
        &server.addr,
        "POST",
        "/v1/districts/tianya/plugins/routing/backtest",
        &token,
        &format!(r#"{{"version":"{}"}}"#, &version[..12]),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["evaluated"], 3, "{r}");
    assert_eq!(r["changed"], 1, "only the parking case: {r}");
    assert_eq!(
        r["changes"]["tianya/xidao/grid-01 → tianya/xidao/police"], 1,
        "{r}"
    );
    assert_eq!(r["by_kind"]["routing"], 1, "{r}");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `civic plugin build` installs nothing: without its build tool it says which one is
/// missing and the command that installs it.
#[test]
fn a_missing_build_tool_is_named_with_its_install_command() {
    let tmp = tempfile::tempdir().unwrap();
    for (lang, app, tool, install) in [
        (
            "python",
            "app.py",
            "COMPONENTIZE_PY",
            "pip install componentize-py==0.25.1",
        ),
        (
            "js",
            "app.js",
            "COMPONENTIZE_JS",
            "npm install --save-dev @bytecodealliance/componentize-js@0.19.3",
        ),
    ] {
        let name = format!("missing-{lang}");
        let o = civic(&[
            "plugin",
            "new",
            &name,
            "--lang",
            lang,
            "--dir",
            tmp.path().to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let o = Command::new(env!("CARGO_BIN_EXE_civic"))
            .args(["plugin", "build", "--manifest-path"])
            .arg(tmp.path().join(&name).join(app))
            .env(tool, tmp.path().join("no-such-tool"))
            .output()
            .unwrap();
        assert!(!o.status.success());
        let out = text(&o);
        assert!(
            out.contains("is not installed: install it with") && out.contains(install),
            "{out}"
        );
    }
}

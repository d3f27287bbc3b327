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
    assert!(text(&civic(&["plugin", "new", "Bad Name"])).contains("is not a crate name"));

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

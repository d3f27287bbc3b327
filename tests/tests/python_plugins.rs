//! Plug-ins written in Python (`plugins/python/`), built from source with componentize-py by
//! this crate's build script: their own native tests, their golden fixtures, the limits
//! the host gives an interpreter, and a deployed one deciding real intake and replaying
//! bit-for-bit — through the service and its store, as a Rust plug-in does.

use std::path::{Path, PathBuf};
use std::process::Command;

use civic_host::runtime::{INTERPRETER_FUEL, Limits, Runtime, RuntimeConfig};
use civic_tests::{TestServer, fixture, python_plugins};
use serde_json::json;

fn haitang() -> Vec<u8> {
    fixture(python_plugins::CIVIC_PLUGIN_HAITANG_PY)
}

fn source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/python")
        .join(name)
}

/// Every Python plug-in in `plugins/python/` was built, and each has a test here (as
/// wasmtime's test-programs check that every guest has one).
#[test]
fn every_python_plugin_is_built_and_tested() {
    let mut folders: Vec<String> = std::fs::read_dir(source(""))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("app.py").is_file())
        .map(|e| format!("civic-plugin-{}-py", e.file_name().to_string_lossy()))
        .collect();
    folders.sort();
    let built: Vec<String> = python_plugins::GUESTS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(folders, built);
    let this = include_str!("python_plugins.rs");
    for (name, _) in python_plugins::GUESTS {
        let constant = name.to_uppercase().replace('-', "_");
        assert!(
            this.matches(&format!("python_plugins::{constant}")).count() >= 1,
            "no test uses {name}"
        );
    }
}

/// The plug-in's own unit tests pass natively, against the contract's generated Python
/// bindings and the SDK's in-memory directory.
#[test]
fn the_python_plugin_passes_its_own_native_tests() {
    let bindings = tempfile::tempdir().unwrap();
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/wit/since_v0.1.0");
    civic_guest_build::python::bindings(&wit, bindings.path()).unwrap();
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/python");
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sanya-directory.json");
    let out = Command::new("python3")
        .args(["-B", "-m", "unittest", "-v", "test_app"])
        .current_dir(source("haitang"))
        .env(
            "PYTHONPATH",
            format!("{}:{}", bindings.path().display(), sdk.display()),
        )
        .env("CIVIC_DIRECTORY", directory)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Ran 4 tests"), "{text}");
}

/// Its golden fixtures pass in the host's runtime, including one that expects no opinion.
#[test]
fn the_python_plugin_passes_its_golden_fixtures() {
    let mut out = Vec::new();
    let failed = civic_host::author::run_fixtures(
        Path::new(python_plugins::CIVIC_PLUGIN_HAITANG_PY),
        &source("haitang").join("fixtures"),
        &Default::default(),
        &mut out,
    )
    .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert_eq!(failed, 0, "{text}");
    assert!(text.contains("2 passed, 0 failed"), "{text}");
}

/// An interpreter arrives with its heap initialised: the host sizes a Python plug-in's
/// default memory from the component and gives it interpreter fuel, while a Rust plug-in
/// keeps the tight defaults; a cap below what the component starts with is refused when
/// it is loaded, naming the cap it needs.
#[test]
fn the_default_limits_fit_the_component() {
    let py = Limits::for_component(&haitang());
    assert_eq!(py.fuel, INTERPRETER_FUEL);
    assert!(
        py.memory_bytes > 12 << 20 && py.memory_bytes <= 32 << 20,
        "{py:?}"
    );
    let rust = civic_plugin_bundle::get("civic-plugin-haitang").unwrap();
    assert_eq!(Limits::for_component(rust.component), Limits::default());

    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    rt.load("haitang-py", &haitang(), py, "{}").unwrap();
    let e = rt
        .load(
            "haitang-py",
            &haitang(),
            Limits {
                memory_bytes: 4 << 20,
                ..py
            },
            "{}",
        )
        .unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("bytes of linear memory, more than its memory cap of 4194304 bytes")
            && m.contains(&format!("at least {} bytes", py.memory_bytes)),
        "{m}"
    );
}

/// Deployed through the API and activated on Haitang's routing hook, the Python plug-in
/// decides real intake: a village's suggestion goes to the village (its decision, recorded
/// with its version); a noise case gets no opinion and the city default routes it; every
/// recorded decision replays bit-for-bit; a deploy with too little memory is refused with
/// the cap it needs.
#[tokio::test]
async fn a_deployed_python_plugin_decides_intake_and_replays() {
    let s = TestServer::start();
    let refused = s
        .deploy(
            "/v1/districts/haitang/plugins/routing?name=haitang-py&memory_bytes=4194304",
            haitang(),
        )
        .await
        .unwrap_err();
    assert!(
        refused.contains("deploy it with a memory cap of at least"),
        "{refused}"
    );
    let record = s
        .deploy(
            "/v1/districts/haitang/plugins/routing?name=haitang-py",
            haitang(),
        )
        .await
        .unwrap();
    assert_eq!(record["limits"]["fuel"], INTERPRETER_FUEL);
    let version = record["version"].as_str().unwrap().to_owned();
    let act = s
        .json(
            "POST",
            &format!("/v1/districts/haitang/plugins/routing/versions/{version}/activate"),
            &s.admin,
            json!({}),
        )
        .await;
    assert_eq!(act.status, 200, "{:?}", act.json);

    let village = s
        .json(
            "POST",
            "/v1/cases",
            &s.admin,
            json!({"district": "haitang", "category": "suggestion", "location": {"community": "haitang/longjiang"}}),
        )
        .await;
    assert_eq!(village.status, 201, "{:?}", village.json);
    assert_eq!(village.json["handler"], "haitang/longjiang");
    let noise = s
        .json(
            "POST",
            "/v1/cases",
            &s.admin,
            json!({"district": "haitang", "category": "noise", "location": {"grid": "haitang/longjiang/grid-01"}}),
        )
        .await;
    assert_eq!(noise.status, 201, "{:?}", noise.json);
    assert_eq!(
        noise.json["handler"], "haitang/longjiang/grid-01",
        "no opinion: the city default routes it to its grid"
    );

    for (case, decided_by) in [
        (&village.json, "haitang-py"),
        (&noise.json, "civic-plugin-city-default"),
    ] {
        let id = case["id"].as_str().unwrap();
        let h = s.get(&format!("/v1/cases/{id}/history"), &s.admin).await;
        let routing: Vec<&serde_json::Value> = h.json["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["what"]["type"] == "decision" && e["what"]["hook"] == "routing")
            .collect();
        let last = routing.last().expect("a routing decision is recorded");
        assert_eq!(
            last["what"]["plugin"]["name"], decided_by,
            "{id}: {routing:?}"
        );
        if decided_by == "haitang-py" {
            assert_eq!(last["what"]["plugin"]["version"], version.as_str());
            assert_eq!(
                last["what"]["output"]["reasons"],
                json!(["route.haitang.night-talks"])
            );
        }
        let replay = s.get(&format!("/v1/cases/{id}/replay"), &s.admin).await;
        assert_eq!(replay.status, 200, "{:?}", replay.json);
        assert_eq!(replay.json["identical"], true, "{id}: {:?}", replay.json);
    }
}

/// A Python component takes seconds to compile; it is compiled once. A second runtime on
/// the same compiled cache (a restarted host) loads it even with no time at all allowed
/// for compiling, and one without the cache cannot.
#[test]
fn a_restarted_host_loads_the_python_plugin_without_compiling() {
    let cache = tempfile::tempdir().unwrap();
    let bytes = haitang();
    let limits = Limits::for_component(&bytes);
    let with_cache = |compile_timeout| RuntimeConfig {
        cache_dir: Some(cache.path().to_owned()),
        compile_timeout,
        ..RuntimeConfig::default()
    };
    Runtime::new(with_cache(std::time::Duration::from_secs(600)))
        .unwrap()
        .load("haitang-py", &bytes, limits, "{}")
        .unwrap();
    let restarted = Runtime::new(with_cache(std::time::Duration::ZERO)).unwrap();
    restarted.load("haitang-py", &bytes, limits, "{}").unwrap();
    let uncached = Runtime::new(RuntimeConfig {
        compile_timeout: std::time::Duration::ZERO,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let e = uncached
        .load("haitang-py", &bytes, limits, "{}")
        .unwrap_err();
    assert!(e.to_string().contains("compilation took longer than"), "{e}");
}

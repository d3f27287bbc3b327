//! Plug-ins written in Python (`plugins/python/`, componentize-py) and JavaScript
//! (`plugins/js/`, componentize-js), built from source by this crate's build script: their
//! own native tests, their golden fixtures, the limits the host gives an interpreter, and
//! deployed ones deciding real intake and replaying bit-for-bit — through the service and its
//! store, as a Rust plug-in does.

use std::path::{Path, PathBuf};
use std::process::Command;

use civic_host::runtime::{INTERPRETER_FUEL, Limits, Runtime, RuntimeConfig};
use civic_tests::{TestServer, fixture, js_plugins, python_plugins};
use serde_json::json;

fn haitang() -> Vec<u8> {
    fixture(python_plugins::CIVIC_PLUGIN_HAITANG_PY)
}

fn haitang_js() -> Vec<u8> {
    fixture(js_plugins::CIVIC_PLUGIN_HAITANG_JS)
}

/// Each language's Haitang: (language folder, built component path).
const HAITANGS: [(&str, &str); 2] = [
    ("python", python_plugins::CIVIC_PLUGIN_HAITANG_PY),
    ("js", js_plugins::CIVIC_PLUGIN_HAITANG_JS),
];

fn source(lang: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins")
        .join(lang)
        .join(name)
}

/// Every Python and JavaScript plug-in in `plugins/` was built, and each has a test here
/// (as wasmtime's test-programs check that every guest has one).
#[test]
fn every_plugin_in_every_language_is_built_and_tested() {
    let this = include_str!("plugin_languages.rs");
    for (lang, app, suffix, guests) in [
        ("python", "app.py", "py", python_plugins::GUESTS),
        ("js", "app.js", "js", js_plugins::GUESTS),
    ] {
        let mut folders: Vec<String> = std::fs::read_dir(source(lang, ""))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(app).is_file())
            .map(|e| format!("civic-plugin-{}-{suffix}", e.file_name().to_string_lossy()))
            .collect();
        folders.sort();
        let built: Vec<String> = guests.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(folders, built, "{lang}");
        for (name, _) in guests {
            let constant = name.to_uppercase().replace('-', "_");
            assert!(
                this.contains(&format!("_plugins::{constant}")),
                "no test uses {name}"
            );
        }
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
        .current_dir(source("python", "haitang"))
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

/// The JavaScript plug-in's own tests pass natively under node's test runner, against the
/// SDK's in-memory directory.
#[test]
fn the_js_plugin_passes_its_own_native_tests() {
    let out = Command::new("node")
        .args(["--test"])
        .current_dir(source("js", "haitang"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("# pass 4") && text.contains("# fail 0"),
        "{text}"
    );
}

/// Their golden fixtures pass in the host's runtime, including one that expects no opinion.
#[test]
fn each_language_passes_its_golden_fixtures() {
    for (lang, component) in HAITANGS {
        let mut out = Vec::new();
        let failed = civic_host::author::run_fixtures(
            Path::new(component),
            &source(lang, "haitang").join("fixtures"),
            &Default::default(),
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8_lossy(&out);
        assert_eq!(failed, 0, "{lang}: {text}");
        assert!(text.contains("2 passed, 0 failed"), "{lang}: {text}");
    }
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
    let js = Limits::for_component(&haitang_js());
    assert_eq!(js.fuel, INTERPRETER_FUEL);
    assert!(
        js.memory_bytes > 8 << 20 && js.memory_bytes <= 32 << 20,
        "{js:?}"
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

/// Deployed through the API and activated on Haitang's routing hook, the Python plug-in and
/// then the JavaScript one decide real intake: a village's suggestion goes to the village
/// (their decision, recorded with their version); a noise case gets no opinion and the city
/// default routes it; every recorded decision — the Python one's too, after the JavaScript
/// version replaced it — replays bit-for-bit; a deploy with too little memory is refused with
/// the cap it needs.
#[tokio::test]
async fn deployed_python_and_js_plugins_decide_intake_and_replay() {
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
    let mut decided = Vec::new();
    for (name, component) in [("haitang-py", haitang()), ("haitang-js", haitang_js())] {
        let record = s
            .deploy(
                &format!("/v1/districts/haitang/plugins/routing?name={name}"),
                component,
            )
            .await
            .unwrap();
        assert_eq!(record["limits"]["fuel"], INTERPRETER_FUEL, "{name}");
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
        assert_eq!(village.json["handler"], "haitang/longjiang", "{name}");
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
            "{name} has no opinion: the city default routes it to its grid"
        );
        decided.push((village.json, name, Some(version)));
        decided.push((noise.json, "civic-plugin-city-default", None));
    }

    for (case, decided_by, version) in &decided {
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
            last["what"]["plugin"]["name"], *decided_by,
            "{id}: {routing:?}"
        );
        if let Some(version) = version {
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
    assert!(
        e.failure.code() == "invalid-component" && e.to_string().contains("compil"),
        "{e}"
    );
}

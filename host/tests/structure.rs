//! The host's module structure, checked on its source: modules depend on each other one
//! way (no cycle, so the walk from the API down to the store never comes back up), and only
//! the store's code names sled, only the runtime's names wasmtime.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The top-level module a file belongs to (`store/ops.rs` → `store`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// A file's code without its unit-test module (tests may reach anywhere).
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Module → the modules its code names as `crate::<module>`.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in sources(src) {
        let m = module_of(src, &file);
        if m == "main" || m == "lib" || file.ends_with("tests.rs") {
            continue;
        }
        let text = code(&file);
        let deps = g.entry(m.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() && name != m {
                deps.insert(name);
            }
        }
    }
    g
}

/// A cycle in `g`, if there is one, as the path that closes it.
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        at: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == at) {
            let mut cycle = path[i..].to_vec();
            cycle.push(at.to_owned());
            return Some(cycle);
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.to_owned());
        for next in g.get(at).into_iter().flatten() {
            if g.contains_key(next)
                && let Some(c) = visit(g, next, path, done)
            {
                return Some(c);
            }
        }
        path.pop();
        done.insert(at.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|m| visit(g, m, &mut Vec::new(), &mut done))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn modules_depend_on_each_other_one_way() {
    let g = graph(&src());
    assert!(
        g.contains_key("service") && g["api"].contains("service"),
        "{g:?}"
    );
    if let Some(cycle) = find_cycle(&g) {
        panic!("the host's modules form a cycle: {}", cycle.join(" → "));
    }
    // The checker itself finds a cycle when there is one.
    let mut broken = g.clone();
    broken
        .get_mut("store")
        .unwrap()
        .insert("service".to_owned());
    assert!(find_cycle(&broken).is_some());
}

#[test]
fn only_the_store_touches_sled_and_only_the_runtime_touches_wasmtime() {
    let src = src();
    for file in sources(&src) {
        let m = module_of(&src, &file);
        let text = code(&file);
        // `store::sled::SledConfig` names the engine's module, not the sled crate.
        for (engine, owner) in [
            ("sled::Db", "store"),
            ("sled::Tree", "store"),
            ("sled::Config", "store"),
            ("tokio_postgres", "store"),
            ("deadpool_postgres", "store"),
            ("wasmtime::", "runtime"),
        ] {
            assert!(
                m == owner || !text.contains(engine),
                "{} names {engine} but only `{owner}` may",
                file.display()
            );
        }
    }
}

#[test]
fn api_handlers_go_through_the_service_not_the_store() {
    let api = src().join("api");
    for file in sources(&api) {
        let text = code(&file);
        for reach in [".store()", "&Store", "Arc<Store>", "Store::"] {
            assert!(
                !text.contains(reach),
                "{} reaches into the store ({reach}); add a service method",
                file.display()
            );
        }
    }
}

/// Inside the store, each engine alone names its database's crate: the contract, backup and
/// the other engine speak only the trait.
#[test]
fn each_engine_alone_touches_its_database() {
    let store = src().join("store");
    let engines: [(&str, &[&str]); 2] = [
        (
            "sled",
            &[
                "sled::Db",
                "sled::Tree",
                "sled::Batch",
                "sled::Config",
                "sled::Error",
                "sled::IVec",
                "sled::Mode",
                "sled::Result",
                "sled::transaction",
            ],
        ),
        ("postgres", &["tokio_postgres", "deadpool_postgres"]),
    ];
    for file in sources(&store) {
        let rel = file
            .strip_prefix(&store)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = code(&file);
        for (engine, names) in engines {
            let mine = rel == format!("{engine}.rs") || rel.starts_with(&format!("{engine}/"));
            for name in names {
                assert!(
                    mine || !text.contains(name),
                    "store/{rel} names {name}, which only the {engine} engine may"
                );
            }
        }
    }
    // The check sees through to the engines' own files.
    assert!(code(&store.join("postgres.rs")).contains("tokio_postgres"));
    assert!(code(&store.join("sled/mod.rs")).contains("sled::Tree"));
}

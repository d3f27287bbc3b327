//! `civic plugin new`: a plug-in that builds wherever the `civic` binary is copied.
//!
//! Everything a scaffold needs comes out of the binary: the contract, the sample city's
//! directory, and for Rust the SDK and the city's shared rules *vendored* into the crate
//! (their manifests resolved from this workspace's, so no path of the machine that built
//! `civic` is written anywhere). `--district` starts from that district's rules as the city
//! runs them, with a fixture recording what they decide today, so one changed rule changes
//! one thing and a fixture says when it changed more.

use std::path::Path;

use anyhow::{Context, bail};

use crate::directory::{SAMPLE_CATEGORIES, SAMPLE_DIRECTORY};
use crate::runtime::{Hook, Limits, Runtime, RuntimeConfig};

/// The contract this binary builds plug-ins against (the folder is frozen per version).
pub(crate) const CONTRACT_WIT: &str = include_str!("../../sdk/wit/since_v0.1.0/rules.wit");

/// The languages a plug-in can be written in.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// A crate against the Rust SDK, built with cargo.
    Rust,
    /// An `app.py` against the contract's Python bindings, built with componentize-py.
    Python,
    /// An `app.js` module exporting `hooks`, built with componentize-js.
    Js,
}

impl Lang {
    /// The module an interpreted plug-in is built from (`None` for Rust: a crate).
    pub(crate) fn app_file(self) -> Option<&'static str> {
        match self {
            Lang::Rust => None,
            Lang::Python => Some("app.py"),
            Lang::Js => Some(civic_guest_build::js::APP_MODULE),
        }
    }
}

/// The workspace manifest, whose `[workspace.package]` and `[workspace.dependencies]` the
/// vendored crates inherit from.
const WORKSPACE_MANIFEST: &str = include_str!("../../Cargo.toml");

/// The SDK's files, vendored into `vendor/civic-rules-sdk`.
const SDK: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../sdk/Cargo.toml")),
    ("src/lib.rs", include_str!("../../sdk/src/lib.rs")),
    ("src/builders.rs", include_str!("../../sdk/src/builders.rs")),
    ("src/bump.rs", include_str!("../../sdk/src/bump.rs")),
    (
        "src/directory.rs",
        include_str!("../../sdk/src/directory.rs"),
    ),
    ("src/log.rs", include_str!("../../sdk/src/log.rs")),
    ("src/testing.rs", include_str!("../../sdk/src/testing.rs")),
    ("wit/since_v0.1.0/rules.wit", CONTRACT_WIT),
];

/// The city default's steps, vendored into `vendor/civic-rules-common` (its sample city is
/// read from the scaffold's `data/`).
const COMMON: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../plugins/rules-common/Cargo.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../plugins/rules-common/src/lib.rs"),
    ),
    (
        "src/tests.rs",
        include_str!("../../plugins/rules-common/src/tests.rs"),
    ),
];

/// Each bundled district's rules, as the city runs them (a test checks every bundled
/// district is here).
pub const DISTRICT_RULES: &[(&str, &str)] = &[
    ("haitang", include_str!("../../plugins/haitang/src/lib.rs")),
    ("jiyang", include_str!("../../plugins/jiyang/src/lib.rs")),
    ("tianya", include_str!("../../plugins/tianya/src/lib.rs")),
    ("yazhou", include_str!("../../plugins/yazhou/src/lib.rs")),
    ("yucai", include_str!("../../plugins/yucai/src/lib.rs")),
];

/// Creates the plug-in `name` in `dir`.
pub fn create(name: &str, dir: &Path, lang: Lang, district: Option<&str>) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.as_bytes()[0].is_ascii_lowercase();
    if !valid {
        bail!(
            "`{name}` is not a plug-in name: use lowercase letters, digits and '-', starting with a letter"
        );
    }
    let district_rules = match district {
        None => None,
        Some(_) if lang != Lang::Rust => bail!(
            "--district starts from the district's Rust rules; write a Python or JavaScript plug-in without it (its \"no opinion\" leaves a case to the city default)"
        ),
        Some(d) => Some(
            DISTRICT_RULES
                .iter()
                .find(|(k, _)| *k == d)
                .map(|(_, src)| *src)
                .with_context(|| {
                    let known: Vec<&str> = DISTRICT_RULES.iter().map(|(k, _)| *k).collect();
                    format!(
                        "no bundled rules for district `{d}`; the sample city has {}",
                        known.join(", ")
                    )
                })?,
        ),
    };
    let root = dir.join(name);
    if root.exists() {
        bail!(
            "{} already exists; choose another name or folder",
            root.display()
        );
    }
    let ident = name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<String>();
    let mut files: Vec<(String, String)> = Vec::new();
    let mut add = |path: &str, text: &str| files.push((path.to_owned(), text.to_owned()));
    let fixture = include_str!("../scaffold/fixture.json.tmpl");
    let case = include_str!("../scaffold/case.json.tmpl");
    match lang {
        Lang::Rust => {
            add("Cargo.toml", include_str!("../scaffold/Cargo.toml.tmpl"));
            add(
                "rust-toolchain.toml",
                include_str!("../../rust-toolchain.toml"),
            );
            add("README.md", include_str!("../scaffold/README.md.tmpl"));
            add(".gitignore", "/target\n*.wasm\n");
            for (path, text) in SDK {
                let text = match *path {
                    "Cargo.toml" => vendored_manifest(text)?,
                    _ => text.to_string(),
                };
                add(&format!("vendor/civic-rules-sdk/{path}"), &text);
            }
            for (path, text) in COMMON {
                let text = match *path {
                    "Cargo.toml" => vendored_manifest(text)?,
                    _ => text.to_string(),
                };
                add(&format!("vendor/civic-rules-common/{path}"), &text);
            }
            // rules-common reads the sample city from `../../../data/` of its sources.
            add("data/sanya-directory.json", SAMPLE_DIRECTORY);
            add("data/categories.json", SAMPLE_CATEGORIES);
            match (district, district_rules) {
                (Some(d), Some(rules)) => {
                    add("src/lib.rs", rules);
                    let (case, fixture) = todays_decision(d)?;
                    add("case.json", &case);
                    add(&format!("fixtures/{d}-today.json"), &fixture);
                }
                _ => {
                    add("src/lib.rs", include_str!("../scaffold/lib.rs.tmpl"));
                    add("case.json", case);
                    add("fixtures/noise-goes-to-its-grid.json", fixture);
                }
            }
        }
        Lang::Python => {
            add("app.py", include_str!("../scaffold/python/app.py.tmpl"));
            add(
                "test_app.py",
                include_str!("../scaffold/python/test_app.py.tmpl"),
            );
            add(
                "civic_testing.py",
                include_str!("../../sdk/python/civic_testing.py"),
            );
            add("directory.json", SAMPLE_DIRECTORY);
            add("wit/rules.wit", CONTRACT_WIT);
            add("fixtures/noise-goes-to-its-grid.json", fixture);
            add("case.json", case);
            add(
                "README.md",
                include_str!("../scaffold/python/README.md.tmpl"),
            );
            add(".gitignore", "/bindings\n__pycache__/\n*.wasm\n");
        }
        Lang::Js => {
            add("app.js", include_str!("../scaffold/js/app.js.tmpl"));
            add("rules.js", include_str!("../scaffold/js/rules.js.tmpl"));
            add(
                "rules.test.js",
                include_str!("../scaffold/js/rules.test.js.tmpl"),
            );
            add(
                "civic-testing.js",
                include_str!("../../sdk/js/civic-testing.js"),
            );
            add(
                "package.json",
                include_str!("../scaffold/js/package.json.tmpl"),
            );
            add("directory.json", SAMPLE_DIRECTORY);
            add("wit/rules.wit", CONTRACT_WIT);
            add("fixtures/noise-goes-to-its-grid.json", fixture);
            add("case.json", case);
            add("README.md", include_str!("../scaffold/js/README.md.tmpl"));
            add(".gitignore", "node_modules/\n*.wasm\n");
        }
    }
    let max_fuel = match lang {
        Lang::Rust => "200000",
        // A Python decision runs through the interpreter: ~270k fuel here.
        Lang::Python => "2000000",
        // SpiderMonkey: ~1.7M here.
        Lang::Js => "10000000",
    };
    for (file, template) in files {
        let text = template
            .replace("{{name}}", name)
            .replace("{{Ident}}", &ident)
            .replace("{{district}}", district.unwrap_or("jiyang"))
            .replace("{{max_fuel}}", max_fuel)
            .replace(
                "{{componentize_py}}",
                civic_guest_build::python::COMPONENTIZE_PY_VERSION,
            )
            .replace(
                "{{componentize_js}}",
                civic_guest_build::js::COMPONENTIZE_JS_VERSION,
            );
        let path = root.join(&file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let how = match lang {
        Lang::Rust => format!(
            "`cargo test` runs its rules natively; `civic plugin build --manifest-path {}/Cargo.toml` builds it",
            root.display()
        ),
        Lang::Python => format!(
            "see its README.md — `python3 -m unittest` runs its rules natively (after generating the bindings); `civic plugin build --manifest-path {}/app.py` builds it",
            root.display()
        ),
        Lang::Js => format!(
            "see its README.md — `npm install` then `node --test` runs its rules natively; `civic plugin build --manifest-path {}/app.js` builds it",
            root.display()
        ),
    };
    match district {
        Some(d) => println!(
            "created {}, starting from {d}'s rules as the city runs them: {how}",
            root.display()
        ),
        None => println!("created {}: {how}", root.display()),
    }
    Ok(())
}

/// A case of `district` and what its bundled rules decide for it today: the scaffold's
/// `case.json` and a fixture expecting that decision, so a change to one rule that moves
/// this case fails it.
fn todays_decision(district: &str) -> anyhow::Result<(String, String)> {
    let package = format!("civic-plugin-{district}");
    let bundled = civic_plugin_bundle::get(&package)
        .with_context(|| format!("the bundled plug-in {package} is missing"))?;
    let dir = std::sync::Arc::new(crate::directory::sample_city());
    let grid = dir
        .units()
        .filter(|u| {
            u.kind == crate::directory::UnitKind::Grid && u.id.starts_with(&format!("{district}/"))
        })
        .map(|u| u.id.clone())
        .min()
        .with_context(|| format!("the sample city has no grid in {district}"))?;
    let case =
        serde_json::json!({"district": district, "category": "noise", "location": {"grid": grid}});
    let request: crate::dryrun::Request =
        serde_json::from_value(serde_json::json!({"case": case}))?;
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let plugin = runtime.load(
        &package,
        bundled.component,
        Limits::for_component(bundled.component),
        "{}",
    )?;
    let outcome = crate::dryrun::evaluate(
        &runtime,
        &dir,
        &plugin,
        Some(&plugin),
        Hook::Routing,
        &request,
        0,
        "scaffold",
    )?;
    if let Some(f) = &outcome.failure {
        bail!(
            "{district}'s bundled rules failed on a noise case: {}",
            f.message
        );
    }
    let decision = &outcome.decision;
    let fixture = serde_json::json!({
        "description": format!("a noise complaint in {grid}: what {district}'s rules decide today"),
        "hook": "routing",
        "request": {"case": case},
        "max_fuel": 200000,
        "expect": {"lead": decision["lead"], "co_handlers": decision["co_handlers"], "reasons": decision["reasons"]},
    });
    Ok((
        serde_json::to_string_pretty(&case)? + "\n",
        serde_json::to_string_pretty(&fixture)? + "\n",
    ))
}

/// A member's manifest as a crate of its own: `*.workspace = true` replaced by what the
/// workspace manifest says, workspace path dependencies pointing at the vendored copies.
fn vendored_manifest(member: &str) -> anyhow::Result<String> {
    let ws: toml::Table = toml::from_str(WORKSPACE_MANIFEST)?;
    let ws = ws
        .get("workspace")
        .and_then(|w| w.as_table())
        .context("the workspace manifest has no [workspace]")?;
    let ws_deps = ws.get("dependencies").and_then(|d| d.as_table());
    let ws_pkg = ws.get("package").and_then(|p| p.as_table());
    let m: toml::Table = toml::from_str(member)?;
    let mut out = String::new();
    let pkg = m
        .get("package")
        .and_then(|p| p.as_table())
        .context("no [package]")?;
    out.push_str("[package]\n");
    for (k, v) in pkg {
        let v = if v.as_table().is_some_and(|t| t.get("workspace").is_some()) {
            match ws_pkg.and_then(|p| p.get(k)) {
                Some(v) => v.clone(),
                None => continue,
            }
        } else {
            v.clone()
        };
        out.push_str(&format!("{k} = {}\n", literal(&v)));
    }
    for section in ["features", "dependencies", "dev-dependencies"] {
        let Some(t) = m.get(section).and_then(|t| t.as_table()) else {
            continue;
        };
        out.push_str(&format!("\n[{section}]\n"));
        for (k, v) in t {
            let v = match v.as_table() {
                Some(spec) if spec.get("workspace").is_some() => {
                    let mut merged = match ws_deps.and_then(|d| d.get(k)) {
                        Some(toml::Value::String(version)) => {
                            let mut t = toml::Table::new();
                            t.insert("version".into(), toml::Value::String(version.clone()));
                            t
                        }
                        Some(toml::Value::Table(t)) => t.clone(),
                        _ => bail!("the workspace does not declare `{k}`"),
                    };
                    if merged.contains_key("path") {
                        // A crate of this workspace: its vendored copy.
                        merged.remove("path");
                        merged.insert("path".into(), toml::Value::String(format!("../{k}")));
                    }
                    for (key, value) in spec {
                        match key.as_str() {
                            "workspace" => {}
                            "features" => {
                                let mut all = merged
                                    .get("features")
                                    .and_then(|f| f.as_array())
                                    .cloned()
                                    .unwrap_or_default();
                                for f in value.as_array().into_iter().flatten() {
                                    if !all.contains(f) {
                                        all.push(f.clone());
                                    }
                                }
                                merged.insert("features".into(), toml::Value::Array(all));
                            }
                            _ => {
                                merged.insert(key.clone(), value.clone());
                            }
                        }
                    }
                    toml::Value::Table(merged)
                }
                _ => v.clone(),
            };
            out.push_str(&format!("{k} = {}\n", literal(&v)));
        }
    }
    Ok(out)
}

/// A TOML value as inline TOML text.
fn literal(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(a) => {
            format!("[{}]", a.iter().map(literal).collect::<Vec<_>>().join(", "))
        }
        toml::Value::Table(t) => format!(
            "{{ {} }}",
            t.iter()
                .map(|(k, v)| format!("{k} = {}", literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every bundled district can be started from.
    #[test]
    fn every_bundled_district_has_its_rules_here() {
        let mut bundled: Vec<&str> = civic_plugin_bundle::all()
            .iter()
            .filter_map(|b| b.district)
            .collect();
        bundled.sort();
        let here: Vec<&str> = DISTRICT_RULES.iter().map(|(d, _)| *d).collect();
        assert_eq!(bundled, here);
    }

    /// Workspace inheritance is resolved: versions and features from the workspace, the
    /// workspace's own crates from their vendored copies, nothing left to inherit.
    #[test]
    fn a_vendored_manifest_inherits_nothing() {
        let sdk = vendored_manifest(SDK[0].1).unwrap();
        assert!(!sdk.contains("workspace"), "{sdk}");
        assert!(
            sdk.contains("wit-bindgen = {") && sdk.contains("version = \"0.61\""),
            "{sdk}"
        );
        assert!(sdk.contains("\"bitflags\""), "{sdk}");
        let common = vendored_manifest(COMMON[0].1).unwrap();
        assert!(
            common.contains("civic-rules-sdk = { path = \"../civic-rules-sdk\""),
            "{common}"
        );
        assert!(!common.contains("workspace"), "{common}");
    }
}

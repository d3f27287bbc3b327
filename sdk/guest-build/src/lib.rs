//! Builds plug-in crates into Wasm components from source.
//!
//! Plug-ins are compiled for `wasm32-unknown-unknown` (so they import no WASI at all and
//! the host links nothing it would have to emulate) with a small stack and a one-page
//! initial memory (so a fresh instance touches few pages), then wrapped into a component
//! with `wit-component`. Build scripts use [`build_script`]; the `civic plugin build`
//! command uses [`build`] directly.
#![deny(missing_docs)]

pub mod js;
pub mod python;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target plug-ins are compiled for.
pub const TARGET: &str = "wasm32-unknown-unknown";
/// The cargo profile plug-ins are compiled with (defined in the workspace manifest).
pub const PROFILE: &str = "guest";

/// Why a plug-in could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// cargo could not be started.
    #[error("could not run cargo: {0}")]
    Spawn(#[source] std::io::Error),
    /// cargo failed; its output was printed.
    #[error("cargo build of plug-ins {packages:?} failed with {status}")]
    Cargo {
        /// The packages being built.
        packages: Vec<String>,
        /// cargo's exit status.
        status: std::process::ExitStatus,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A package manifest is not valid TOML or lacks a package name.
    #[error("{path}: {message}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A tool the build needs is not installed.
    #[error("{tool} is not installed: install it with `{install}`")]
    MissingTool {
        /// The tool.
        tool: &'static str,
        /// The command that installs it.
        install: String,
    },
    /// A build tool failed; what it said follows.
    #[error("{tool} failed with {status}:\n{output}")]
    Tool {
        /// The tool.
        tool: &'static str,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on its error output.
        output: String,
    },
    /// The core module could not be turned into a component.
    #[error("could not componentize {path}: {message}")]
    Componentize {
        /// The core module.
        path: PathBuf,
        /// wit-component's explanation.
        message: String,
    },
}

/// Memory layout given to every plug-in at link time.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Shadow-stack size in bytes.
    pub stack_size: u32,
    /// Initial linear memory in bytes (a multiple of 64 KiB).
    pub initial_memory: u32,
}

impl Default for Layout {
    fn default() -> Self {
        // Measured: a 32 KiB stack and one 64 KiB page keep every page a decision touches
        // inside the pooling allocator's keep-resident window.
        Self {
            stack_size: 32 * 1024,
            initial_memory: 64 * 1024,
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct Request {
    /// The workspace (or plug-in crate) manifest.
    pub manifest_path: PathBuf,
    /// Packages to build; each must be a `cdylib`.
    pub packages: Vec<String>,
    /// Target directory for the nested build (kept apart from the host's).
    pub target_dir: PathBuf,
    /// Link-time memory layout.
    pub layout: Layout,
}

/// A built plug-in.
#[derive(Debug, Clone)]
pub struct Built {
    /// Package name.
    pub package: String,
    /// The component's bytes.
    pub component: Vec<u8>,
}

/// Compiles the packages and componentizes each.
pub fn build(req: &Request) -> Result<Vec<Built>, BuildError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(&req.manifest_path)
        .arg("--profile")
        .arg(PROFILE)
        .arg("--target")
        .arg(TARGET)
        .arg("--target-dir")
        .arg(&req.target_dir);
    for p in &req.packages {
        cmd.arg("-p").arg(p);
    }
    // The outer build's flags and wrappers are for the host target, not for guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd.env(
        "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
        format!(
            "-C link-arg=-zstack-size={} -C link-arg=--initial-memory={}",
            req.layout.stack_size, req.layout.initial_memory
        ),
    );
    let status = cmd.status().map_err(BuildError::Spawn)?;
    if !status.success() {
        return Err(BuildError::Cargo {
            packages: req.packages.clone(),
            status,
        });
    }
    let out = req.target_dir.join(TARGET).join(PROFILE);
    req.packages
        .iter()
        .map(|package| {
            let path = out.join(format!("{}.wasm", package.replace('-', "_")));
            let module = std::fs::read(&path).map_err(|source| BuildError::Io {
                path: path.clone(),
                source,
            })?;
            let component = componentize(&module)
                .map_err(|message| BuildError::Componentize { path, message })?;
            Ok(Built {
                package: package.clone(),
                component,
            })
        })
        .collect()
}

/// Wraps a core module that carries wit-bindgen's component-type section into a component.
pub fn componentize(module: &[u8]) -> Result<Vec<u8>, String> {
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(module)
        .and_then(|mut e| e.encode())
        .map_err(|e| format!("{e:#}"))
}

/// What the build needs to know of a package's `Cargo.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The package name.
    pub name: String,
    /// Whether it builds a `cdylib` (a plug-in crate does).
    pub cdylib: bool,
}

/// Reads a package manifest's name and crate types with a TOML parser, so a `name = ...`
/// in another table or a comment cannot be taken for the package's.
pub fn read_manifest(path: &Path) -> Result<Package, BuildError> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        package: Option<PackageTable>,
        lib: Option<LibTable>,
    }
    #[derive(serde::Deserialize)]
    struct PackageTable {
        name: String,
    }
    #[derive(serde::Deserialize)]
    struct LibTable {
        #[serde(rename = "crate-type", default)]
        crate_type: Vec<String>,
    }
    let text = std::fs::read_to_string(path).map_err(|source| BuildError::Io {
        path: path.to_owned(),
        source,
    })?;
    let bad = |message: String| BuildError::Manifest {
        path: path.to_owned(),
        message,
    };
    let m: Manifest = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let name = m
        .package
        .ok_or_else(|| bad("no [package] table (is this a workspace manifest?)".into()))?
        .name;
    let cdylib = m
        .lib
        .is_some_and(|l| l.crate_type.iter().any(|t| t == "cdylib"));
    Ok(Package { name, cdylib })
}

/// The `cdylib` packages in the immediate subfolders of `dir`, sorted by name.
pub fn cdylib_packages(dir: &Path) -> Result<Vec<(String, PathBuf)>, BuildError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BuildError::Io { path, source }
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let manifest = entry.path().join("Cargo.toml");
        if !manifest.is_file() {
            continue;
        }
        let package = read_manifest(&manifest)?;
        if package.cdylib {
            found.push((package.name, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// For a build script: builds every `cdylib` package under `guests_dir` into `OUT_DIR`,
/// and writes `OUT_DIR/guests.rs` with one constant per guest (its upper-cased name,
/// holding the component's path) and `GUESTS`, a list of `(name, path)`.
///
/// With `embed`, also writes `GUEST_BYTES`, a list of `(name, component bytes)` embedded
/// with `include_bytes!`. Reruns when the guests, the SDK or the contract change.
pub fn build_script(guests_dir: &Path, embed: bool) -> Result<(), BuildError> {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run from a build script"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("run from a build script"));
    let workspace = workspace_root(&manifest_dir);
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("guests");

    println!("cargo:rerun-if-changed={}", guests_dir.display());
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("sdk/src").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("sdk/wit").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("plugins/rules-common").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );

    let packages = cdylib_packages(guests_dir)?;
    let built = build(&Request {
        manifest_path: workspace.join("Cargo.toml"),
        packages: packages.iter().map(|(n, _)| n.clone()).collect(),
        target_dir,
        layout: Layout::default(),
    })?;

    write_guests(&out_dir, "guests.rs", &built, embed)
}

/// For a build script: builds every Python plug-in (a subfolder with an `app.py`) and every
/// JavaScript plug-in (one with an `app.js`) under `guests_dir` against the workspace's
/// contract into `OUT_DIR`, and writes `OUT_DIR/{file}` as [`build_script`] writes
/// `guests.rs`; packages are named `civic-plugin-{folder}-py` and `civic-plugin-{folder}-js`.
/// Needs componentize-py or componentize-js (see [`python::install_hint`],
/// [`js::install_hint`]).
pub fn interpreted_build_script(guests_dir: &Path, file: &str) -> Result<(), BuildError> {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run from a build script"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("run from a build script"));
    let wit = workspace_root(&manifest_dir).join(CONTRACT_DIR);
    println!("cargo:rerun-if-changed={}", guests_dir.display());
    println!("cargo:rerun-if-changed={}", wit.display());
    println!("cargo:rerun-if-env-changed=COMPONENTIZE_PY");
    println!("cargo:rerun-if-env-changed=COMPONENTIZE_JS");
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BuildError::Io { path, source }
    };
    let mut projects = Vec::new();
    for entry in std::fs::read_dir(guests_dir).map_err(io(guests_dir))? {
        let path = entry.map_err(io(guests_dir))?.path();
        if python::is_python_plugin(&path) || js::is_js_plugin(&path) {
            projects.push(path);
        }
    }
    projects.sort();
    let built = projects
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            Ok(if python::is_python_plugin(p) {
                Built {
                    package: format!("civic-plugin-{name}-py"),
                    component: python::build(p, &wit)?,
                }
            } else {
                Built {
                    package: format!("civic-plugin-{name}-js"),
                    component: js::build(p, &wit)?,
                }
            })
        })
        .collect::<Result<Vec<_>, BuildError>>()?;
    write_guests(&out_dir, file, &built, false)
}

/// The contract folder plug-ins are built against, relative to the workspace root.
pub const CONTRACT_DIR: &str = "sdk/wit/since_v0.1.0";

/// Writes the components into `out_dir` and `out_dir/file` with one constant per guest (its
/// upper-cased name, holding the component's path), `GUESTS`, and with `embed`
/// `GUEST_BYTES`.
fn write_guests(
    out_dir: &Path,
    file: &str,
    built: &[Built],
    embed: bool,
) -> Result<(), BuildError> {
    let mut consts = String::new();
    let mut bytes = String::from(
        "/// Every guest's component bytes: (package name, bytes).\npub const GUEST_BYTES: &[(&str, &[u8])] = &[\n",
    );
    let mut list = String::from(
        "/// Every guest built by this crate's build script: (package name, component path).\npub const GUESTS: &[(&str, &str)] = &[\n",
    );
    for b in built {
        let path = out_dir.join(format!("{}.wasm", b.package));
        std::fs::write(&path, &b.component).map_err(|source| BuildError::Io {
            path: path.clone(),
            source,
        })?;
        let ident = b.package.to_uppercase().replace('-', "_");
        consts.push_str(&format!(
            "/// Path of the `{}` component, built from source.\npub const {ident}: &str = {:?};\n",
            b.package,
            path.display().to_string()
        ));
        list.push_str(&format!("    ({:?}, {ident}),\n", b.package));
        bytes.push_str(&format!(
            "    ({:?}, include_bytes!({:?})),\n",
            b.package,
            path.display().to_string()
        ));
    }
    list.push_str("];\n");
    bytes.push_str("];\n");
    if embed {
        list.push_str(&bytes);
    }
    let rs = out_dir.join(file);
    std::fs::write(&rs, consts + &list).map_err(|source| BuildError::Io { path: rs, source })?;
    Ok(())
}

/// Runs a build tool to the end. A tool that is not there is [`BuildError::MissingTool`]
/// with the command that installs it; one that fails is [`BuildError::Tool`] with what it
/// printed on its error output, up to the Rust backtrace componentize-py appends to a
/// Python error.
pub(crate) fn run_tool(
    mut cmd: Command,
    tool: &'static str,
    install: fn() -> String,
) -> Result<(), BuildError> {
    let output = cmd.output().map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => BuildError::MissingTool {
            tool,
            install: install(),
        },
        _ => BuildError::Spawn(source),
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(BuildError::Tool {
        tool,
        status: output.status,
        output: String::from_utf8_lossy(&output.stderr)
            .lines()
            .take_while(|l| !l.starts_with("Stack backtrace"))
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_owned(),
    })
}

/// The nearest ancestor holding a `Cargo.lock` (the workspace root).
fn workspace_root(start: &Path) -> PathBuf {
    start
        .ancestors()
        .find(|p| p.join("Cargo.lock").exists())
        .unwrap_or(start)
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> Result<Package, BuildError> {
        let dir = std::env::temp_dir().join(format!("guest-build-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!(
            "{:x}.toml",
            text.len() * 31 + text.as_bytes()[0] as usize
        ));
        std::fs::write(&path, text).unwrap();
        let out = read_manifest(&path);
        std::fs::remove_file(&path).unwrap();
        out
    }

    /// The package name is the `[package]` table's, wherever that table stands and whatever
    /// other tables say `name = ...` first; crate types come from `[lib]`.
    #[test]
    fn a_manifest_is_read_as_toml() {
        let p = manifest(
            "# name = \"commented\"\n[lib]\nname = \"lib_name\"\ncrate-type = [\"cdylib\", \"rlib\"]\n\n[package]\nname = \"civic-plugin-x\"\nversion = \"0.1.0\"\n",
        )
        .unwrap();
        assert_eq!(
            p,
            Package {
                name: "civic-plugin-x".into(),
                cdylib: true
            }
        );
        let p = manifest("[package]\nname = \"helper\"\n").unwrap();
        assert!(!p.cdylib);
        let e = manifest("[workspace]\nmembers = []\n").unwrap_err();
        assert!(e.to_string().contains("no [package] table"), "{e}");
        let e = manifest("[package\nname = 1\n").unwrap_err();
        assert!(matches!(e, BuildError::Manifest { .. }), "{e}");
    }
}

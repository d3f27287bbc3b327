//! Python plug-ins: a folder with an `app.py` that defines `class Hooks`, built into a
//! component by componentize-py with stub WASI, so the component imports nothing but the
//! contract (the host provides no WASI).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::BuildError;

/// The componentize-py release plug-ins are built and tested with (`.ci/run` installs it).
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// The module componentize-py builds: `app.py` beside it, defining `class Hooks`.
pub const APP_MODULE: &str = "app";

/// The command that installs the pinned componentize-py.
pub fn install_hint() -> String {
    format!("python3 -m pip install componentize-py=={COMPONENTIZE_PY_VERSION}")
}

/// Whether `dir` is a Python plug-in (it has an `app.py`).
pub fn is_python_plugin(dir: &Path) -> bool {
    dir.join(format!("{APP_MODULE}.py")).is_file()
}

/// A quiet `componentize-py`: `COMPONENTIZE_PY` if set, else the one on `PATH`.
fn tool() -> Command {
    let mut cmd = Command::new(
        std::env::var_os("COMPONENTIZE_PY")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("componentize-py")),
    );
    cmd.arg("--quiet");
    cmd
}

/// Builds the Python plug-in in `project` against the contract in `wit_dir` and returns the
/// component's bytes. Installs nothing: a missing componentize-py is an error that says
/// how to install it.
pub fn build(project: &Path, wit_dir: &Path) -> Result<Vec<u8>, BuildError> {
    if !is_python_plugin(project) {
        return Err(BuildError::Io {
            path: project.join(format!("{APP_MODULE}.py")),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "a Python plug-in is a folder with an app.py defining `class Hooks`",
            ),
        });
    }
    let out = project.join(format!(".civic-build-{}.wasm", std::process::id()));
    let mut cmd = tool();
    cmd.arg("-d")
        .arg(wit_dir)
        .args(["-w", "plugin", "componentize", "--stub-wasi", "-p"])
        .arg(project)
        .arg(APP_MODULE)
        .arg("-o")
        .arg(&out)
        .current_dir(project);
    let ran = run(cmd);
    let bytes = ran.and_then(|()| {
        std::fs::read(&out).map_err(|source| BuildError::Io {
            path: out.clone(),
            source,
        })
    });
    let _ = std::fs::remove_file(&out);
    bytes
}

/// Writes componentize-py's Python bindings for the contract into `dest`, so a plug-in's
/// own tests can import `wit_world` natively (the directory functions there raise until a
/// test replaces them with an in-memory directory).
pub fn bindings(wit_dir: &Path, dest: &Path) -> Result<(), BuildError> {
    let mut cmd = tool();
    cmd.arg("-d")
        .arg(wit_dir)
        .args(["-w", "plugin", "bindings"])
        .arg(dest);
    run(cmd)
}

/// Runs componentize-py.
fn run(cmd: Command) -> Result<(), BuildError> {
    crate::run_tool(cmd, "componentize-py", install_hint)
}

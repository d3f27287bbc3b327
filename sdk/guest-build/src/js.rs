//! JavaScript plug-ins: a folder with an `app.js` that exports `hooks`, built into a
//! component by the Bytecode Alliance's componentize-js (StarlingMonkey, a SpiderMonkey
//! build for components) with every WASI feature it can disable disabled, so the component
//! imports nothing but the contract (the host provides no WASI).
//!
//! Why StarlingMonkey and not jco's QuickJS backend, which is about a seventh of the size:
//! a QuickJS component needs the component model's async feature (`task.cancel`) and,
//! built without it, three linear memories; the host enables neither (a decision is one
//! synchronous call into at most two memories), so a QuickJS plug-in is refused at upload.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::BuildError;

/// The componentize-js release plug-ins are built and tested with (`.ci/run` installs it
/// with `npm ci` in `plugins/js`; a scaffold pins it in its `package.json`).
pub const COMPONENTIZE_JS_VERSION: &str = "0.19.3";

/// The module componentize-js builds: `app.js`, exporting `hooks`.
pub const APP_MODULE: &str = "app.js";

/// WASI features componentize-js can leave out; all of them are.
const DISABLED: [&str; 5] = ["stdio", "random", "clocks", "http", "fetch-event"];

/// The command that installs the pinned componentize-js (in the plug-in's folder), with the
/// preview2-shim it loads without declaring it as a dependency npm installs.
pub fn install_hint() -> String {
    format!(
        "npm install --save-dev @bytecodealliance/componentize-js@{COMPONENTIZE_JS_VERSION} @bytecodealliance/preview2-shim@0.17.9"
    )
}

/// Whether `dir` is a JavaScript plug-in (it has an `app.js`).
pub fn is_js_plugin(dir: &Path) -> bool {
    dir.join(APP_MODULE).is_file()
}

/// The componentize-js to run: `COMPONENTIZE_JS` if set, else the nearest
/// `node_modules/.bin/componentize-js` from the project up (as node resolves packages),
/// else the one on `PATH`.
fn tool(project: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("COMPONENTIZE_JS") {
        return PathBuf::from(p);
    }
    project
        .ancestors()
        .map(|d| d.join("node_modules/.bin/componentize-js"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("componentize-js"))
}

/// Builds the JavaScript plug-in in `project` against the contract in `wit_dir` and
/// returns the component's bytes. Installs nothing: a missing componentize-js is an error
/// that says how to install it.
pub fn build(project: &Path, wit_dir: &Path) -> Result<Vec<u8>, BuildError> {
    if !is_js_plugin(project) {
        return Err(BuildError::Io {
            path: project.join(APP_MODULE),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "a JavaScript plug-in is a folder with an app.js exporting `hooks`",
            ),
        });
    }
    let out = project.join(format!(".civic-build-{}.wasm", std::process::id()));
    let mut cmd = Command::new(tool(project));
    cmd.arg(APP_MODULE)
        .arg("--wit")
        .arg(wit_dir)
        .args(["--world-name", "plugin", "--disable"])
        .args(DISABLED)
        .arg("--out")
        .arg(&out)
        .current_dir(project);
    let ran = crate::run_tool(cmd, "componentize-js", install_hint);
    let bytes = ran.and_then(|()| {
        std::fs::read(&out).map_err(|source| BuildError::Io {
            path: out.clone(),
            source,
        })
    });
    let _ = std::fs::remove_file(&out);
    bytes
}

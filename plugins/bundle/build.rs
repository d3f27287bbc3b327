//! Compiles every plug-in crate in `plugins/` to a Wasm component (nested cargo, own
//! target dir) and embeds them: no `.wasm` file is ever committed.

fn main() {
    let plugins = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("plugins dir")
        .to_path_buf();
    if let Err(e) = civic_guest_build::build_script(&plugins, true) {
        panic!("building the bundled plug-ins failed: {e}");
    }
}

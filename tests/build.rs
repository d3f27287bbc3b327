//! Compiles every fixture crate in `fixtures/`, and every Python plug-in in
//! `plugins/python/`, to a Wasm component from source.

fn main() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    if let Err(e) = civic_guest_build::build_script(&fixtures, false) {
        panic!("building the test fixtures failed: {e}");
    }
    // The plug-ins written in Python, built from source like the Rust ones.
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/python");
    if let Err(e) = civic_guest_build::python_build_script(&python) {
        panic!("building the Python plug-ins failed: {e}");
    }
}

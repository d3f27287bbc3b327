//! Compiles every fixture crate in `fixtures/`, and every Python and JavaScript plug-in in
//! `plugins/python/` and `plugins/js/`, to a Wasm component from source.

fn main() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    if let Err(e) = civic_guest_build::build_script(&fixtures, false) {
        panic!("building the test fixtures failed: {e}");
    }
    // The plug-ins written in Python and JavaScript, built from source like the Rust ones.
    let plugins = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    for (lang, file) in [("python", "python_guests.rs"), ("js", "js_guests.rs")] {
        if let Err(e) = civic_guest_build::interpreted_build_script(&plugins.join(lang), file) {
            panic!("building the {lang} plug-ins failed: {e}");
        }
    }
}

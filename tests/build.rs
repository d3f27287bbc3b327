//! Compiles every fixture crate in `fixtures/` to a Wasm component from source.

fn main() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    if let Err(e) = civic_guest_build::build_script(&fixtures, false) {
        panic!("building the test fixtures failed: {e}");
    }
}

//! The checks the host makes on every plug-in decision before acting on it.
#![no_main]

use std::sync::LazyLock;

use civic_host::directory::{Directory, sample_city};
use libfuzzer_sys::fuzz_target;

static DIR: LazyLock<Directory> = LazyLock::new(sample_city);

fuzz_target!(|data: &[u8]| {
    civic_host::fuzzing::plugin_output(&DIR, "jiyang", data);
});

//! `POST /v1/cases`'s body decoder and the checks intake makes against the directory.
#![no_main]

use std::sync::LazyLock;

use civic_host::directory::{Directory, sample_city};
use libfuzzer_sys::fuzz_target;

static DIR: LazyLock<Directory> = LazyLock::new(sample_city);

fuzz_target!(|data: &[u8]| {
    civic_host::fuzzing::intake_body(&DIR, data);
});

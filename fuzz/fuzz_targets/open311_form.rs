//! The Open311 POST's form reader, its location lookup, and the XML a request is shown as:
//! the XML must always parse.
#![no_main]

use std::sync::LazyLock;

use civic_host::directory::{Directory, sample_city};
use libfuzzer_sys::fuzz_target;

static DIR: LazyLock<Directory> = LazyLock::new(sample_city);

fuzz_target!(|data: &[u8]| {
    if let Some(xml) = civic_host::fuzzing::open311_form(&DIR, data) {
        assert!(
            xml.chars()
                .all(|c| (c as u32) >= 0x20 || matches!(c, '\t' | '\n' | '\r')),
            "a character XML cannot carry: {xml:?}"
        );
        assert_eq!(xml.matches('<').count(), xml.matches('>').count(), "{xml}");
    }
});

//! Shared helpers for the integration tests: fixture paths and sample inputs.
#![deny(missing_docs)]

/// Paths of the fixture components, built from source by the build script.
pub mod fixtures {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// Reads a fixture component.
pub fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

use civic_host::runtime::wit;

/// A case of `district` and `category` located in `grid` (community = the grid's parent),
/// created 2026-11-30T09:00+08:00 (a Monday).
pub fn case(district: &str, category: &str, grid: Option<&str>) -> wit::Case {
    wit::Case {
        id: "c-test-0001".into(),
        district: district.into(),
        category: category.into(),
        kind: wit::CaseKind::Complaint,
        channel: wit::Channel::Phone,
        urgency: wit::Urgency::Normal,
        location: wit::Location {
            community: grid.and_then(|g| g.rsplit_once('/')).map(|(c, _)| c.to_owned()),
            grid: grid.map(str::to_owned),
            lat: None,
            lon: None,
        },
        caller_key: "k-test".into(),
        flags: wit::CaseFlags::empty(),
        dispute: None,
        status: wit::CaseStatus::Received,
        eligibility: None,
        handler: None,
        co_handlers: vec![],
        returned_by: vec![],
        escalation_level: 0,
        reopen_count: 0,
        created_at: 1_796_000_400_000,
        updated_at: 1_796_000_400_000,
    }
}

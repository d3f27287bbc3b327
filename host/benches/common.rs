//! Shared inputs for the runtime benches: the same sample case for native and Wasm.
// Each bench uses a different part of this module.
#![allow(dead_code)]

use civic_host::runtime::wit;

pub const DIRECTORY: &str = include_str!("../../data/sanya-directory.json");
pub const CATEGORIES: &str = include_str!("../../data/categories.json");

/// The first sample case (jiyang, noise, 月河社区第1网格), after eligibility.
pub fn wasm_case() -> wit::Case {
    wit::Case {
        id: "c-bench-0001".into(),
        district: "jiyang".into(),
        category: "noise".into(),
        kind: wit::CaseKind::Complaint,
        channel: wit::Channel::App,
        urgency: wit::Urgency::Normal,
        location: wit::Location {
            community: Some("jiyang/yuehe".into()),
            grid: Some("jiyang/yuehe/grid-01".into()),
            lat: None,
            lon: None,
        },
        caller_key: "k-0001".into(),
        flags: wit::CaseFlags::empty(),
        dispute: None,
        status: wit::CaseStatus::PendingDispatch,
        eligibility: Some(wit::EligibilityOutcome {
            grid_admissible: true,
            mediation: None,
        }),
        handler: None,
        co_handlers: vec![],
        returned_by: vec![],
        escalation_level: 0,
        reopen_count: 0,
        created_at: 1_796_000_400_000,
        updated_at: 1_796_000_400_000,
    }
}

/// The same case for the native rule.
pub fn native_case() -> civic_rules_sdk::Case {
    civic_rules_sdk::testing::case("jiyang", "noise")
        .grid("jiyang/yuehe/grid-01")
        .eligibility(civic_rules_sdk::EligibilityOutcome {
            grid_admissible: true,
            mediation: None,
        })
        .build()
}

//! The SDK's own behaviour, natively: default hooks, builders, the testing sandbox.
//! (The workspace test run enables `testing` through the plug-ins' dev-dependencies.)
#![cfg(feature = "testing")]

use civic_rules_sdk::prelude::*;
use civic_rules_sdk::testing::{Categories, Directory, Sandbox, case, timer};

const DIR: &str = r#"{"city":"c","units":[
  {"id":"c","name":"City","kind":"city_centre"},
  {"id":"c/med","name":"City mediation","kind":"mediation_committee","parent":"c","level":"city"},
  {"id":"d1","name":"D1","kind":"district_desk","parent":"c"},
  {"id":"d1/com","name":"Com","kind":"community","parent":"d1"},
  {"id":"d1/com/g1","name":"G1","kind":"grid","parent":"d1/com"},
  {"id":"d1/dept","name":"Dept","kind":"department","parent":"d1","function":"urban_management"},
  {"id":"d2","name":"D2","kind":"district_desk","parent":"c"},
  {"id":"d2/dept","name":"Dept2","kind":"department","parent":"d2","function":"urban_management"}
]}"#;
const CATS: &str = r#"{"kinds":[],"categories":[
  {"code":"noise","name":"Noise","default_kind":"complaint","grid_admissible":true,"dispute":null,"lead_function":"urban_management"}
]}"#;

struct Silent;
impl Rules for Silent {}

struct UsesDirectory;
impl Rules for UsesDirectory {
    fn routing(case: &Case, _: &Context) -> RuleResult<RoutingDecision> {
        let dept = directory::child_with_function(
            &case.district,
            UnitKind::Department,
            "urban_management",
        )
        .ok_or_else(|| RuleError::MissingReference("no urban management department".into()))?;
        let mut r = route_to(dept.id).because("route.department");
        r.reasons.push(format!(
            "path.{}",
            directory::path(case.location.grid.as_deref().unwrap_or("x")).len()
        ));
        r.reasons
            .push(format!("children.{}", directory::children("c", None).len()));
        Ok(Some(r))
    }
}

fn sandbox() -> Sandbox {
    Sandbox::from_json(DIR, CATS).unwrap()
}

#[test]
fn hooks_default_to_no_opinion() {
    let s = sandbox();
    let c = case("d1", "noise").build();
    assert_eq!(s.eligibility::<Silent>(&c).unwrap(), None);
    assert_eq!(s.routing::<Silent>(&c).unwrap(), None);
    assert_eq!(
        s.escalation::<Silent>(&c, &timer(TimerKind::SignOff, 0, 0))
            .unwrap(),
        None
    );
}

#[test]
fn sandbox_scopes_lookups_to_the_case_district() {
    let s = sandbox();
    let r = s
        .routing::<UsesDirectory>(&case("d1", "noise").grid("d1/com/g1").build())
        .unwrap()
        .unwrap();
    // d1 sees its own department, the 4-deep path of its grid, and c's children but d2.
    assert_eq!(r.lead, "d1/dept");
    assert_eq!(r.reasons, ["route.department", "path.4", "children.2"]);
    let r = s
        .routing::<UsesDirectory>(&case("d2", "noise").grid("d1/com/g1").build())
        .unwrap()
        .unwrap();
    assert_eq!(r.lead, "d2/dept");
    assert_eq!(
        r.reasons[1], "path.0",
        "another district's grid is invisible"
    );
}

#[test]
fn context_carries_the_category_and_config() {
    let mut s = sandbox();
    s.config = r#"{"x":1}"#.into();
    let ctx = s.context(&case("d1", "noise").build());
    assert!(ctx.category.unwrap().grid_admissible);
    assert_eq!(ctx.config, r#"{"x":1}"#);
    assert!(s.context(&case("d1", "unknown").build()).category.is_none());
}

#[test]
fn builders_make_the_decisions_they_name() {
    let e = rejected(RejectionReason::Petition)
        .because("admissibility.petition")
        .related_case("c-1");
    assert!(!e.is_admissible());
    assert_eq!(
        e.admissibility,
        Admissibility::Rejected(Rejection {
            reason: RejectionReason::Petition,
            related_case: Some("c-1".into())
        })
    );
    let e = admissible()
        .grid(true)
        .mediation(MediationTrack::City, "c/med");
    assert!(e.is_admissible() && e.grid_admissible);
    assert_eq!(e.mediation.unwrap().unit, "c/med");
    assert_eq!(
        transferred(EmergencyLine::Fire).admissibility,
        Admissibility::Transferred(EmergencyLine::Fire)
    );
    let r = route_to("a")
        .with_co_handler("b")
        .sign_off_within(Span::Minutes(30))
        .resolve_within(Span::WorkingDays(3))
        .warn_at_percent(50);
    assert_eq!(
        (r.co_handlers.len(), r.deadlines.warning_percent),
        (1, Some(50))
    );
    assert_eq!(r.deadlines.sign_off, Some(Span::Minutes(30)));
    let x = escalate()
        .remind("a")
        .supervise("b")
        .public_notice("n")
        .move_to("c")
        .set_deadline(TimerKind::Resolution, 5)
        .flag("f");
    assert_eq!(x.actions.len(), 6);
    assert_eq!(
        x.actions[4],
        Action::SetDeadline(DeadlineChange {
            kind: TimerKind::Resolution,
            due_at: 5
        })
    );
}

#[test]
fn testing_data_refuses_bad_json_with_a_clear_message() {
    assert!(
        Directory::from_json("{")
            .unwrap_err()
            .contains("directory json")
    );
    assert!(
        Directory::from_json(r#"{"units":[{"id":"x","kind":"castle"}]}"#)
            .unwrap_err()
            .contains("unknown kind")
    );
    assert!(
        Categories::from_json(r#"{"nope":1}"#)
            .unwrap_err()
            .contains("no `categories`")
    );
    assert_eq!(
        Directory::from_json(DIR).unwrap().district_of("d1/com/g1"),
        Some("d1")
    );
    assert_eq!(
        Directory::from_json(DIR).unwrap().district_of("c/med"),
        None
    );
}

#[test]
#[should_panic(expected = "no directory installed")]
fn lookups_outside_a_sandbox_say_what_to_do() {
    let _ = directory::unit("c");
}

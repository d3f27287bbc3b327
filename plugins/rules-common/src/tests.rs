//! The city default on the sample city, natively through the SDK's sandbox.

use civic_rules_sdk::prelude::*;
use civic_rules_sdk::testing::{Sandbox, case, timer};

use crate::{CityDefault, DAY_MS, Plugin};

type City = Plugin<CityDefault>;

fn sandbox() -> Sandbox {
    crate::sample_city()
}

#[test]
fn sample_cases_route_as_the_city_default_says() {
    let s = sandbox();
    let table: Vec<(Case, &str, &[&str])> = vec![
        (
            case("jiyang", "noise").grid("jiyang/yuehe/grid-01").build(),
            "jiyang/yuehe/grid-01",
            &[],
        ),
        (
            case("jiyang", "wage-arrears")
                .grid("jiyang/yuehe/grid-02")
                .dispute("labour", Some(12_000), &[])
                .build(),
            "sanya/mediation/industry/labour",
            &[],
        ),
        (
            case("tianya", "illegal-parking")
                .grid("tianya/maling/grid-01")
                .build(),
            "tianya/maling/grid-01",
            &[],
        ),
        (
            case("haitang", "suggestion")
                .kind(CaseKind::Suggestion)
                .grid("haitang/longjiang/grid-01")
                .build(),
            "haitang",
            &[],
        ),
        (
            case("haitang", "water-power")
                .grid("haitang/tengqiao/grid-02")
                .build(),
            "haitang/dept/housing",
            &[],
        ),
        (
            case("haitang", "neighbour-dispute")
                .grid("haitang/longjiang/grid-02")
                .dispute("neighbour", None, &[])
                .build(),
            "haitang/longjiang/mediation",
            &["haitang/longjiang/grid-02"],
        ),
        (
            case("yazhou", "maritime-fishing")
                .grid("yazhou/port/grid-01")
                .build(),
            "yazhou/dept/fishery",
            &[],
        ),
        (
            case("yazhou", "business-dispute")
                .grid("yazhou/nanbin/grid-02")
                .dispute("business", Some(150_000), &[Some("fujian"), Some("fujian")])
                .build(),
            "sanya/mediation/chamber/fujian",
            &[],
        ),
        (
            case("yucai", "policy-inquiry")
                .kind(CaseKind::Consultation)
                .grid("yucai/maliang/grid-01")
                .build(),
            "yucai",
            &[],
        ),
        (
            case("yucai", "family-dispute")
                .grid("yucai/maliang/grid-02")
                .dispute("family", None, &[])
                .build(),
            "yucai/maliang/mediation",
            &[],
        ),
        (
            case("jiyang", "medical-dispute")
                .grid("jiyang/yuechuan/grid-02")
                .dispute("medical", Some(50_000), &[])
                .build(),
            "sanya/mediation/industry/medical",
            &[],
        ),
        (
            case("tianya", "property-management")
                .grid("tianya/danzhoucun/grid-02")
                .dispute("property", None, &[])
                .build(),
            "sanya/mediation/industry/property",
            &["tianya/danzhoucun/grid-02"],
        ),
        (
            case("tianya", "rental-dispute")
                .grid("tianya/maling/grid-02")
                .dispute("rental", Some(300_000), &[])
                .build(),
            "sanya/mediation/pre-litigation",
            &[],
        ),
    ];
    for (mut c, lead, co) in table {
        let (e, r) = s.intake::<City>(&mut c).unwrap();
        assert!(e.unwrap().is_admissible());
        let r = r.unwrap();
        assert_eq!(r.lead, lead, "{} in {}", c.category, c.district);
        assert_eq!(r.co_handlers, co, "{} in {}", c.category, c.district);
        assert!(!r.reasons.is_empty());
    }
}

#[test]
fn reasons_name_the_rule_that_fired() {
    let s = sandbox();
    let mut c = case("tianya", "rental-dispute")
        .grid("tianya/maling/grid-02")
        .dispute("rental", Some(300_000), &[])
        .build();
    let (e, r) = s.intake::<City>(&mut c).unwrap();
    assert_eq!(
        e.unwrap().reasons,
        [
            "grid.not-admissible",
            "dispute.rental",
            "mediation.pre-litigation",
            "amount.over-50000"
        ]
    );
    assert_eq!(r.unwrap().reasons, ["route.mediation"]);
    let mut c = case("haitang", "suggestion")
        .kind(CaseKind::Suggestion)
        .build();
    assert_eq!(
        s.intake::<City>(&mut c).unwrap().1.unwrap().reasons,
        ["route.no-rule"]
    );
}

#[test]
fn admissibility_rejects_and_transfers() {
    let s = sandbox();
    let cases = [
        (CaseFlags::LITIGATION, "admissibility.litigation"),
        (CaseFlags::PETITION, "admissibility.petition"),
        (CaseFlags::FIRE, "admissibility.emergency.119"),
        (CaseFlags::CRIME_IN_PROGRESS, "admissibility.emergency.110"),
        (CaseFlags::MEDICAL_EMERGENCY, "admissibility.emergency.120"),
        (CaseFlags::TRAFFIC_INJURY, "admissibility.emergency.122"),
    ];
    for (flag, reason) in cases {
        let mut c = case("jiyang", "noise")
            .grid("jiyang/yuehe/grid-01")
            .flags(flag)
            .build();
        let (e, r) = s.intake::<City>(&mut c).unwrap();
        let e = e.unwrap();
        assert!(!e.is_admissible());
        assert_eq!(e.reasons, [reason]);
        assert!(r.is_none(), "rejected and transferred cases are not routed");
    }
}

#[test]
fn repeats_without_new_facts_are_rejected_only_with_a_recent_closed_case() {
    let mut s = sandbox();
    let c = case("jiyang", "noise")
        .grid("jiyang/yuehe/grid-01")
        .flags(CaseFlags::REPEAT_NO_NEW_FACTS)
        .build();
    assert!(
        s.eligibility::<City>(&c).unwrap().unwrap().is_admissible(),
        "no earlier case: admissible"
    );
    s.recent_cases = vec![RecentCase {
        id: "c-earlier".into(),
        category: "noise".into(),
        status: CaseStatus::Closed,
        created_at: c.created_at - 20 * DAY_MS,
        closed_at: Some(c.created_at - 10 * DAY_MS),
    }];
    let e = s.eligibility::<City>(&c).unwrap().unwrap();
    assert_eq!(
        e.admissibility,
        Admissibility::Rejected(Rejection {
            reason: RejectionReason::RepeatNoNewFacts,
            related_case: Some("c-earlier".into())
        })
    );
    s.recent_cases[0].closed_at = Some(c.created_at - 31 * DAY_MS);
    assert!(
        s.eligibility::<City>(&c).unwrap().unwrap().is_admissible(),
        "closed too long ago"
    );
}

#[test]
fn criminal_disputes_are_not_mediated() {
    let s = sandbox();
    let c = case("jiyang", "wage-arrears")
        .dispute("labour", Some(1), &[])
        .flags(CaseFlags::CRIMINAL)
        .build();
    assert_eq!(s.eligibility::<City>(&c).unwrap().unwrap().mediation, None);
}

#[test]
fn returned_cases_go_one_level_up_and_after_two_returns_to_the_desk() {
    let s = sandbox();
    let outcome = EligibilityOutcome {
        grid_admissible: true,
        mediation: None,
    };
    let c = case("jiyang", "noise")
        .grid("jiyang/yuehe/grid-01")
        .eligibility(outcome.clone())
        .returned_by("jiyang/yuehe/grid-01")
        .build();
    let r = s.routing::<City>(&c).unwrap().unwrap();
    assert_eq!(r.lead, "jiyang/yuehe");
    assert!(r.reasons.contains(&"route.returned-skip".to_string()));
    let c = case("jiyang", "noise")
        .grid("jiyang/yuehe/grid-01")
        .eligibility(outcome)
        .returned_by("jiyang/yuehe/grid-01")
        .returned_by("jiyang/yuehe")
        .build();
    let r = s.routing::<City>(&c).unwrap().unwrap();
    assert_eq!(
        (r.lead.as_str(), r.reasons.as_slice()),
        ("jiyang", &["route.ruling".to_string()][..])
    );
}

#[test]
fn escalation_follows_the_overdue_chain() {
    let s = sandbox();
    let c = case("jiyang", "noise")
        .grid("jiyang/yuehe/grid-01")
        .handled_by("jiyang/yuehe/grid-01")
        .build();
    let at = c.created_at;
    let run = |kind| {
        s.escalation::<City>(&c, &timer(kind, at, 0))
            .unwrap()
            .unwrap()
            .actions
    };
    assert_eq!(
        run(TimerKind::SignOff),
        [
            Action::Remind("jiyang/yuehe/grid-01".into()),
            Action::MoveTo("jiyang/yuehe".into())
        ]
    );
    assert_eq!(
        run(TimerKind::Resolution),
        [Action::Supervise("jiyang".into())]
    );
    assert_eq!(
        run(TimerKind::Repeat),
        [
            Action::Flag("repeat".into()),
            Action::Supervise("jiyang".into())
        ]
    );
    let overdue = run(TimerKind::Overdue);
    assert!(matches!(&overdue[0], Action::PublicNotice(t) if t.contains("test-case-1")));
    assert_eq!(overdue[1], Action::MoveTo("sanya".into()));
    let community = case("jiyang", "noise").handled_by("jiyang/yuehe").build();
    let actions = s
        .escalation::<City>(&community, &timer(TimerKind::SignOff, at, 0))
        .unwrap()
        .unwrap()
        .actions;
    assert_eq!(
        actions[1],
        Action::MoveTo("jiyang".into()),
        "community → district desk"
    );
}

#[test]
fn urgent_cases_get_emergency_deadlines() {
    let s = sandbox();
    let mut c = case("jiyang", "noise")
        .urgent()
        .grid("jiyang/yuehe/grid-01")
        .build();
    let r = s.intake::<City>(&mut c).unwrap().1.unwrap();
    assert_eq!(r.deadlines.sign_off, Some(Span::Minutes(30)));
    assert_eq!(r.deadlines.resolution, Some(Span::WorkingDays(0)));
}

#[test]
fn directory_lookups_are_scoped_to_the_district() {
    let s = sandbox();
    let c = case("jiyang", "noise").build();
    // A jiyang case cannot see tianya's units, even by exact id.
    let seen = s.eligibility::<ScopeProbe>(&c).unwrap().unwrap();
    assert_eq!(
        seen.reasons,
        ["own.visible", "city.visible", "other.hidden"]
    );
}

struct ScopeProbe;
impl Rules for ScopeProbe {
    fn eligibility(_: &Case, _: &Context) -> RuleResult<EligibilityDecision> {
        let vis = |id: &str, yes: &str, no: &str| {
            if directory::unit(id).is_some() {
                yes.to_owned()
            } else {
                no.to_owned()
            }
        };
        let mut e = admissible();
        e.reasons = vec![
            vis("jiyang/police", "own.visible", "own.hidden"),
            vis("sanya/mediation/city", "city.visible", "city.hidden"),
            vis("tianya/police", "other.visible", "other.hidden"),
        ];
        Ok(Some(e))
    }
}

//! 吉阳 Jiyang: neighbourly mediation first, and illegal parking is not a grid matter.
//! Everything else is the city default.

use civic_rules_common::{CityDefault, District, Plugin, community_mediation};
use civic_rules_sdk::prelude::*;

/// Jiyang's policy.
pub struct Jiyang;

impl District for Jiyang {
    fn grid_admissible(case: &Case, ctx: &Context) -> (bool, &'static str) {
        if case.category == "illegal-parking" {
            return (false, "grid.jiyang.not-on-list");
        }
        CityDefault::grid_admissible(case, ctx)
    }

    fn mediation(case: &Case, dispute_type: &str) -> Option<(MediationTrack, String, Vec<String>)> {
        if matches!(
            case.category.as_str(),
            "neighbour-dispute" | "property-management"
        ) && let Some(unit) = community_mediation(case)
        {
            let reasons = vec![
                format!("dispute.{dispute_type}"),
                "mediation.jiyang.community-first".into(),
            ];
            return Some((MediationTrack::Community, unit, reasons));
        }
        CityDefault::mediation(case, dispute_type)
    }
}

civic_rules_sdk::export_plugin!(Plugin<Jiyang>);

#[cfg(test)]
mod tests {
    use super::*;
    use civic_rules_sdk::testing::{Sandbox, case};

    fn sandbox() -> Sandbox {
        civic_rules_common::sample_city()
    }

    #[test]
    fn property_disputes_go_to_the_community_committee_with_the_grid() {
        let mut c = case("jiyang", "property-management")
            .grid("jiyang/yuehe/grid-02")
            .dispute("property", None, &[])
            .build();
        let (e, r) = sandbox().intake::<Plugin<Jiyang>>(&mut c).unwrap();
        assert!(
            e.unwrap()
                .reasons
                .contains(&"mediation.jiyang.community-first".to_string())
        );
        let r = r.unwrap();
        assert_eq!(r.lead, "jiyang/yuehe/mediation");
        assert_eq!(r.co_handlers, ["jiyang/yuehe/grid-02"]);
    }

    #[test]
    fn illegal_parking_goes_to_police() {
        let mut c = case("jiyang", "illegal-parking")
            .grid("jiyang/yuehe/grid-01")
            .build();
        let (e, r) = sandbox().intake::<Plugin<Jiyang>>(&mut c).unwrap();
        assert!(!e.unwrap().grid_admissible);
        let r = r.unwrap();
        assert_eq!(r.lead, "jiyang/police");
        assert_eq!(r.reasons, ["route.department"]);
    }

    #[test]
    fn other_disputes_follow_the_city_default() {
        let mut c = case("jiyang", "wage-arrears")
            .grid("jiyang/yuehe/grid-02")
            .dispute("labour", Some(12_000), &[])
            .build();
        let (_, r) = sandbox().intake::<Plugin<Jiyang>>(&mut c).unwrap();
        assert_eq!(r.unwrap().lead, "sanya/mediation/industry/labour");
    }
}

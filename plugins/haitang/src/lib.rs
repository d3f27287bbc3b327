//! 海棠 Haitang: night talks (海棠夜话). Suggestions from a village go to that village's
//! deliberation forum instead of the district desk.

use civic_rules_common::{District, Plugin};
use civic_rules_sdk::prelude::*;

/// Haitang's policy.
pub struct Haitang;

impl District for Haitang {
    fn route_instead_of_desk(case: &Case, _ctx: &Context) -> Option<RoutingDecision> {
        if case.category != "suggestion" {
            return None;
        }
        let village = directory::unit(case.location.community.as_deref()?)?;
        (village.kind == UnitKind::Village)
            .then(|| route_to(village.id).because("route.haitang.night-talks"))
    }
}

civic_rules_sdk::export_plugin!(Plugin<Haitang>);

#[cfg(test)]
mod tests {
    use super::*;
    use civic_rules_sdk::testing::{Sandbox, case};

    fn sandbox() -> Sandbox {
        civic_rules_common::sample_city()
    }

    #[test]
    fn suggestions_from_a_village_go_to_the_village() {
        let mut c = case("haitang", "suggestion")
            .kind(CaseKind::Suggestion)
            .grid("haitang/longjiang/grid-01")
            .build();
        let (_, r) = sandbox().intake::<Plugin<Haitang>>(&mut c).unwrap();
        let r = r.unwrap();
        assert_eq!(r.lead, "haitang/longjiang");
        assert_eq!(r.reasons, ["route.haitang.night-talks"]);
    }

    #[test]
    fn suggestions_from_a_community_go_to_the_desk() {
        let mut c = case("haitang", "suggestion")
            .kind(CaseKind::Suggestion)
            .grid("haitang/tengqiao/grid-01")
            .build();
        let (_, r) = sandbox().intake::<Plugin<Haitang>>(&mut c).unwrap();
        let r = r.unwrap();
        assert_eq!(
            (r.lead.as_str(), r.reasons.as_slice()),
            ("haitang", &["route.no-rule".to_string()][..])
        );
    }
}

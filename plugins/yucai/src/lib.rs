//! 育才 Yucai: an ecology district. Pollution resolves within 5 working days, and the
//! warning comes at half of any resolution deadline.

use civic_rules_common::{CityDefault, District, Plugin};
use civic_rules_sdk::prelude::*;

/// Yucai's policy.
pub struct Yucai;

impl District for Yucai {
    fn deadlines(case: &Case, ctx: &Context, routing: RoutingDecision) -> RoutingDecision {
        let mut r = CityDefault::deadlines(case, ctx, routing)
            .warn_at_percent(50)
            .because("deadline.yucai.early-warning");
        if case.category == "environment-pollution" {
            r = r
                .resolve_within(Span::WorkingDays(5))
                .because("deadline.yucai.pollution");
        }
        r
    }
}

civic_rules_sdk::export_plugin!(Plugin<Yucai>);

#[cfg(test)]
mod tests {
    use super::*;
    use civic_rules_sdk::testing::{Sandbox, case};

    fn sandbox() -> Sandbox {
        civic_rules_common::sample_city()
    }

    #[test]
    fn pollution_resolves_in_five_days_with_an_early_warning() {
        let mut c = case("yucai", "environment-pollution")
            .grid("yucai/qingfa/grid-01")
            .build();
        let (_, r) = sandbox().intake::<Plugin<Yucai>>(&mut c).unwrap();
        let r = r.unwrap();
        assert_eq!(r.lead, "yucai/dept/ecology");
        assert_eq!(r.deadlines.resolution, Some(Span::WorkingDays(5)));
        assert_eq!(r.deadlines.warning_percent, Some(50));
    }

    #[test]
    fn every_case_warns_at_half_time() {
        let mut c = case("yucai", "noise").grid("yucai/qingfa/grid-01").build();
        let (_, r) = sandbox().intake::<Plugin<Yucai>>(&mut c).unwrap();
        let r = r.unwrap();
        assert_eq!(
            (r.deadlines.warning_percent, r.deadlines.resolution),
            (Some(50), None)
        );
    }
}

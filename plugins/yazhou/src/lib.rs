//! 崖州 Yazhou: a fishing port. Port matters go to the port station; maritime safety is
//! an emergency. Everything else is the city default.

use civic_rules_common::{District, Plugin};
use civic_rules_sdk::prelude::*;

/// Yazhou's policy.
pub struct Yazhou;

/// The port station that takes port matters.
pub const PORT_STATION: &str = "yazhou/port-station";
/// The port community.
pub const PORT_COMMUNITY: &str = "yazhou/port";

impl District for Yazhou {
    fn route_before_grid(
        case: &Case,
        _ctx: &Context,
        grid_admissible: bool,
    ) -> Option<RoutingDecision> {
        let in_port = case.location.community.as_deref() == Some(PORT_COMMUNITY);
        if case.category != "maritime-fishing" && !in_port {
            return None;
        }
        let mut r = route_to(PORT_STATION).because(if in_port {
            "route.yazhou.port-area"
        } else {
            "route.yazhou.maritime"
        });
        if grid_admissible
            && in_port
            && let Some(g) = &case.location.grid
        {
            r = r
                .with_co_handler(g.clone())
                .because("route.grid-co-handler");
        }
        Some(r)
    }

    fn deadlines(case: &Case, ctx: &Context, routing: RoutingDecision) -> RoutingDecision {
        let r = civic_rules_common::CityDefault::deadlines(case, ctx, routing);
        if case.category == "maritime-fishing" && case.urgency == Urgency::Urgent {
            r.sign_off_within(Span::Minutes(30))
                .because("deadline.yazhou.maritime-safety")
        } else {
            r
        }
    }
}

civic_rules_sdk::export_plugin!(Plugin<Yazhou>);

#[cfg(test)]
mod tests {
    use super::*;
    use civic_rules_sdk::testing::{Sandbox, case};

    fn sandbox() -> Sandbox {
        civic_rules_common::sample_city()
    }

    #[test]
    fn maritime_cases_go_to_the_port_station_with_the_port_grid() {
        let mut c = case("yazhou", "maritime-fishing")
            .kind(CaseKind::Help)
            .grid("yazhou/port/grid-01")
            .build();
        let (_, r) = sandbox().intake::<Plugin<Yazhou>>(&mut c).unwrap();
        let r = r.unwrap();
        assert_eq!(r.lead, PORT_STATION);
        assert!(
            r.co_handlers.is_empty(),
            "maritime-fishing is not grid-admissible"
        );
        assert!(r.reasons.contains(&"route.yazhou.port-area".to_string()));
    }

    #[test]
    fn grid_admissible_case_in_the_port_has_the_port_grid_as_co_handler() {
        let mut c = case("yazhou", "noise").grid("yazhou/port/grid-02").build();
        let (_, r) = sandbox().intake::<Plugin<Yazhou>>(&mut c).unwrap();
        let r = r.unwrap();
        assert_eq!(
            (r.lead.as_str(), r.co_handlers.as_slice()),
            (PORT_STATION, &["yazhou/port/grid-02".to_string()][..])
        );
    }

    #[test]
    fn fishery_disputes_still_go_to_fishery_mediation() {
        let mut c = case("yazhou", "fishery-dispute")
            .grid("yazhou/port/grid-02")
            .dispute("fishery", Some(40_000), &[])
            .build();
        let (_, r) = sandbox().intake::<Plugin<Yazhou>>(&mut c).unwrap();
        assert_eq!(r.unwrap().lead, "sanya/mediation/industry/fishery");
    }

    #[test]
    fn urgent_maritime_cases_have_a_30_minute_sign_off() {
        let mut c = case("yazhou", "maritime-fishing")
            .urgent()
            .grid("yazhou/nanbin/grid-01")
            .build();
        let (_, r) = sandbox().intake::<Plugin<Yazhou>>(&mut c).unwrap();
        let r = r.unwrap();
        assert_eq!(r.lead, PORT_STATION);
        assert_eq!(r.deadlines.sign_off, Some(Span::Minutes(30)));
        assert!(
            r.reasons
                .contains(&"deadline.yazhou.maritime-safety".to_string())
        );
    }

    #[test]
    fn other_cases_follow_the_city_default() {
        let mut c = case("yazhou", "noise")
            .grid("yazhou/nanbin/grid-01")
            .build();
        let (_, r) = sandbox().intake::<Plugin<Yazhou>>(&mut c).unwrap();
        assert_eq!(r.unwrap().lead, "yazhou/nanbin/grid-01");
    }
}

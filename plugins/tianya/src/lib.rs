//! 天涯 Tianya: smart e-bike management. Illegal e-bike charging is a fire risk: resolved
//! within one working day, and a missed sign-off goes straight to the district desk.

use civic_rules_common::{CityDefault, District, Plugin};
use civic_rules_sdk::prelude::*;

/// Tianya's policy.
pub struct Tianya;

impl District for Tianya {
    fn deadlines(case: &Case, ctx: &Context, routing: RoutingDecision) -> RoutingDecision {
        let r = CityDefault::deadlines(case, ctx, routing);
        if case.category == "ev-charging" {
            r.resolve_within(Span::WorkingDays(1))
                .because("deadline.tianya.ev-charging")
        } else {
            r
        }
    }

    fn sign_off_missed_target(case: &Case) -> String {
        let at_city_centre = case
            .handler
            .as_deref()
            .and_then(directory::unit)
            .is_some_and(|u| u.kind == UnitKind::CityCentre);
        // Straight to the desk, but never back down from the city centre.
        if case.category == "ev-charging" && !at_city_centre {
            return case.district.clone();
        }
        CityDefault::sign_off_missed_target(case)
    }
}

civic_rules_sdk::export_plugin!(Plugin<Tianya>);

#[cfg(test)]
mod tests {
    use super::*;
    use civic_rules_sdk::testing::{Sandbox, case, timer};

    fn sandbox() -> Sandbox {
        civic_rules_common::sample_city()
    }

    #[test]
    fn ev_charging_resolves_within_one_working_day() {
        let mut c = case("tianya", "ev-charging")
            .grid("tianya/maling/grid-01")
            .build();
        let (_, r) = sandbox().intake::<Plugin<Tianya>>(&mut c).unwrap();
        let r = r.unwrap();
        assert_eq!(r.lead, "tianya/maling/grid-01");
        assert_eq!(r.deadlines.resolution, Some(Span::WorkingDays(1)));
    }

    #[test]
    fn missed_ev_sign_off_goes_straight_to_the_desk() {
        let c = case("tianya", "ev-charging")
            .grid("tianya/maling/grid-01")
            .handled_by("tianya/maling/grid-01")
            .build();
        let e = sandbox()
            .escalation::<Plugin<Tianya>>(&c, &timer(TimerKind::SignOff, c.created_at, 0))
            .unwrap()
            .unwrap();
        assert_eq!(
            e.actions,
            [
                Action::Remind("tianya/maling/grid-01".into()),
                Action::MoveTo("tianya".into())
            ]
        );
    }

    #[test]
    fn a_case_at_the_city_centre_is_not_moved_back_down() {
        let c = case("tianya", "ev-charging").handled_by("sanya").build();
        let e = sandbox()
            .escalation::<Plugin<Tianya>>(&c, &timer(TimerKind::SignOff, c.created_at, 0))
            .unwrap()
            .unwrap();
        assert_eq!(e.actions, [Action::Remind("sanya".into())]);
    }

    #[test]
    fn other_missed_sign_offs_move_one_level_up() {
        let c = case("tianya", "noise")
            .grid("tianya/maling/grid-01")
            .handled_by("tianya/maling/grid-01")
            .build();
        let e = sandbox()
            .escalation::<Plugin<Tianya>>(&c, &timer(TimerKind::SignOff, c.created_at, 0))
            .unwrap()
            .unwrap();
        assert!(e.actions.contains(&Action::MoveTo("tianya/maling".into())));
    }
}

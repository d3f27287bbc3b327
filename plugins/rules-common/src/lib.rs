//! The sample city's rules, written once and shared by every bundled plug-in.
//!
//! The city default is a fixed order of steps (admissibility → consultation → mediation →
//! district rule → grid → department → desk). A district plug-in implements [`District`],
//! replacing only the steps its policy changes, and exports [`Plugin<D>`]. Every decision
//! names the rule that fired in its reason codes.
#![deny(missing_docs)]

use civic_rules_sdk::prelude::*;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Above this amount (CNY) a dispute goes to the court's pre-litigation centre.
pub const PRE_LITIGATION_AMOUNT: u64 = 50_000;
/// The city hotline centre, top of the hierarchy.
pub const CITY_CENTRE: &str = "sanya";

/// The steps a district may replace. Every method defaults to the city default.
pub trait District {
    /// Whether the case's category is on this district's grid admission list.
    fn grid_admissible(case: &Case, ctx: &Context) -> (bool, &'static str) {
        let _ = case;
        match &ctx.category {
            Some(c) if c.grid_admissible => (true, "grid.admissible"),
            Some(_) => (false, "grid.not-admissible"),
            None => (false, "category.unknown"),
        }
    }

    /// The mediation body for an eligible dispute of `dispute_type`.
    fn mediation(case: &Case, dispute_type: &str) -> Option<(MediationTrack, String, Vec<String>)> {
        default_mediation(case, dispute_type)
    }

    /// A district rule that runs after the mediation step and before the grid step.
    fn route_before_grid(
        case: &Case,
        ctx: &Context,
        grid_admissible: bool,
    ) -> Option<RoutingDecision> {
        let _ = (case, ctx, grid_admissible);
        None
    }

    /// A district rule for cases that would otherwise go to the district desk.
    fn route_instead_of_desk(case: &Case, ctx: &Context) -> Option<RoutingDecision> {
        let _ = (case, ctx);
        None
    }

    /// Deadlines that differ from the defaults for this routed case.
    fn deadlines(case: &Case, ctx: &Context, routing: RoutingDecision) -> RoutingDecision {
        let _ = ctx;
        if case.urgency == Urgency::Urgent {
            routing
                .sign_off_within(Span::Minutes(30))
                .first_contact_within(Span::Minutes(120))
                .resolve_within(Span::WorkingDays(0))
                .because("deadline.urgent")
        } else {
            routing
        }
    }

    /// Where a case goes when its sign-off deadline is missed.
    fn sign_off_missed_target(case: &Case) -> String {
        let handler = case.handler.as_deref().unwrap_or(&case.district);
        one_level_up(handler, &case.district)
    }
}

/// The city default: a district that changes nothing.
pub struct CityDefault;
impl District for CityDefault {}

/// The plug-in for district policy `D`: export it with
/// `civic_rules_sdk::export_plugin!(civic_rules_common::Plugin<MyDistrict>);`.
pub struct Plugin<D>(core::marker::PhantomData<D>);

impl<D: District> Rules for Plugin<D> {
    fn eligibility(case: &Case, ctx: &Context) -> RuleResult<EligibilityDecision> {
        if let Some(decision) = admissibility(case, ctx) {
            return Ok(Some(decision));
        }
        let (grid, grid_reason) = D::grid_admissible(case, ctx);
        let mut decision = admissible().grid(grid).because(grid_reason);
        if let Some(dispute_type) = mediation_dispute(case, ctx)
            && let Some((track, unit, reasons)) = D::mediation(case, &dispute_type)
        {
            decision = decision.mediation(track, unit);
            decision.reasons.extend(reasons);
        }
        Ok(Some(decision))
    }

    fn routing(case: &Case, ctx: &Context) -> RuleResult<RoutingDecision> {
        let routing = route::<D>(case, ctx);
        Ok(Some(D::deadlines(case, ctx, routing)))
    }

    fn escalation(case: &Case, timer: &Timer, ctx: &Context) -> RuleResult<EscalationDecision> {
        let _ = ctx;
        let desk = case.district.clone();
        let handler = case.handler.clone().unwrap_or_else(|| desk.clone());
        let decision = match timer.kind {
            TimerKind::Warning => escalate().remind(handler).because("escalation.warning"),
            TimerKind::SignOff => {
                let target = D::sign_off_missed_target(case);
                let mut d = escalate()
                    .remind(handler.clone())
                    .because("escalation.sign-off-missed");
                if target != handler {
                    d = d.move_to(target).because("escalation.move-up");
                }
                d
            }
            TimerKind::FirstContact => escalate()
                .remind(handler)
                .because("escalation.first-contact-missed"),
            TimerKind::Resolution => escalate()
                .supervise(desk)
                .because("escalation.resolution-missed"),
            TimerKind::Overdue => escalate()
                .public_notice(format!(
                    "case {} is unresolved {} working days after its deadline",
                    case.id, timer.working_days_overdue
                ))
                .move_to(CITY_CENTRE)
                .because("escalation.overdue-notice"),
            TimerKind::Repeat => escalate()
                .flag("repeat")
                .supervise(desk)
                .because("escalation.repeat"),
        };
        Ok(Some(decision))
    }
}

/// Admissibility: cases the hotline does not take, or that belong to an emergency line.
pub fn admissibility(case: &Case, ctx: &Context) -> Option<EligibilityDecision> {
    let f = case.flags;
    let reject = |flag: CaseFlags, reason: RejectionReason, code: &str| {
        f.contains(flag).then(|| rejected(reason).because(code))
    };
    let transfer = |flag: CaseFlags, line: EmergencyLine, code: &str| {
        f.contains(flag).then(|| transferred(line).because(code))
    };
    reject(
        CaseFlags::LITIGATION,
        RejectionReason::Litigation,
        "admissibility.litigation",
    )
    .or_else(|| {
        reject(
            CaseFlags::ARBITRATION,
            RejectionReason::Arbitration,
            "admissibility.arbitration",
        )
    })
    .or_else(|| {
        reject(
            CaseFlags::RECONSIDERATION,
            RejectionReason::Reconsideration,
            "admissibility.reconsideration",
        )
    })
    .or_else(|| {
        reject(
            CaseFlags::PETITION,
            RejectionReason::Petition,
            "admissibility.petition",
        )
    })
    .or_else(|| {
        transfer(
            CaseFlags::FIRE,
            EmergencyLine::Fire,
            "admissibility.emergency.119",
        )
    })
    .or_else(|| {
        transfer(
            CaseFlags::CRIME_IN_PROGRESS,
            EmergencyLine::Police,
            "admissibility.emergency.110",
        )
    })
    .or_else(|| {
        transfer(
            CaseFlags::MEDICAL_EMERGENCY,
            EmergencyLine::Ambulance,
            "admissibility.emergency.120",
        )
    })
    .or_else(|| {
        transfer(
            CaseFlags::TRAFFIC_INJURY,
            EmergencyLine::TrafficPolice,
            "admissibility.emergency.122",
        )
    })
    .or_else(|| {
        if !f.contains(CaseFlags::REPEAT_NO_NEW_FACTS) {
            return None;
        }
        let earlier = ctx.recent_cases.iter().find(|r| {
            r.id != case.id
                && r.category == case.category
                && r.closed_at.is_some_and(|at| ctx.now - at <= 30 * DAY_MS)
        })?;
        Some(
            rejected(RejectionReason::RepeatNoNewFacts)
                .related_case(earlier.id.clone())
                .because("admissibility.repeat"),
        )
    })
}

/// The dispute type that makes a case eligible for mediation, if it is.
pub fn mediation_dispute(case: &Case, ctx: &Context) -> Option<String> {
    if case
        .flags
        .intersects(CaseFlags::CRIMINAL | CaseFlags::LITIGATION)
    {
        return None;
    }
    let category_type = ctx.category.as_ref()?.dispute.clone()?;
    Some(
        case.dispute
            .as_ref()
            .map(|d| d.dispute_type.clone())
            .unwrap_or(category_type),
    )
}

/// The city default's mediation track for an eligible dispute.
pub fn default_mediation(
    case: &Case,
    dispute_type: &str,
) -> Option<(MediationTrack, String, Vec<String>)> {
    let reason = |s: &str| vec![format!("dispute.{dispute_type}"), s.to_owned()];
    let details = case.dispute.as_ref();
    if dispute_type == "business"
        && let Some(chamber) = details.and_then(common_chamber)
    {
        let unit = format!("sanya/mediation/chamber/{chamber}");
        if directory::unit(&unit).is_some() {
            return Some((MediationTrack::Chamber, unit, reason("mediation.chamber")));
        }
    }
    if details
        .and_then(|d| d.amount)
        .is_some_and(|a| a > PRE_LITIGATION_AMOUNT)
    {
        let mut r = reason("mediation.pre-litigation");
        r.push("amount.over-50000".into());
        return Some((
            MediationTrack::PreLitigation,
            "sanya/mediation/pre-litigation".into(),
            r,
        ));
    }
    if matches!(dispute_type, "neighbour" | "family")
        && let Some(unit) = community_mediation(case)
    {
        return Some((
            MediationTrack::Community,
            unit,
            reason("mediation.community"),
        ));
    }
    let industry = format!("sanya/mediation/industry/{dispute_type}");
    if directory::unit(&industry).is_some() {
        return Some((
            MediationTrack::Industry,
            industry,
            reason("mediation.industry"),
        ));
    }
    let district = format!("{}/mediation", case.district);
    directory::unit(&district).map(|_| {
        (
            MediationTrack::District,
            district,
            reason("mediation.district"),
        )
    })
}

/// The chamber every party belongs to, when all (at least two) parties share one.
fn common_chamber(d: &Dispute) -> Option<&str> {
    let first = d.party_chambers.first()?.as_deref()?;
    (d.party_chambers.len() >= 2 && d.party_chambers.iter().all(|c| c.as_deref() == Some(first)))
        .then_some(first)
}

/// The mediation committee of the case's community or village.
pub fn community_mediation(case: &Case) -> Option<String> {
    let community = case.location.community.as_deref()?;
    directory::children(community, Some(UnitKind::MediationCommittee))
        .into_iter()
        .next()
        .map(|u| u.id)
}

/// The city default's routing steps, with the district's replacements.
pub fn route<D: District>(case: &Case, ctx: &Context) -> RoutingDecision {
    let desk = case.district.clone();
    if case.returned_by.len() >= 2 {
        return route_to(desk).because("route.ruling");
    }
    let outcome = case.eligibility.clone().unwrap_or(EligibilityOutcome {
        grid_admissible: false,
        mediation: None,
    });
    let grid = outcome.grid_admissible;
    let candidate = if case.kind == CaseKind::Consultation || case.category == "policy-inquiry" {
        route_to(desk.clone()).because("route.consultation")
    } else if let Some(m) = &outcome.mediation {
        let mut r = route_to(m.unit.clone()).because("route.mediation");
        if grid && let Some(g) = case.location.grid.clone() {
            r = r.with_co_handler(g).because("route.grid-co-handler");
        }
        r
    } else if let Some(r) = D::route_before_grid(case, ctx, grid) {
        r
    } else if grid {
        match (&case.location.grid, &case.location.community) {
            (Some(g), _) => route_to(g.clone()).because("route.grid"),
            (None, Some(c)) => route_to(c.clone()).because("route.community"),
            (None, None) => route_to(desk.clone()).because("route.desk"),
        }
    } else if let Some(unit) = department(case, ctx) {
        route_to(unit).because("route.department")
    } else if let Some(r) = D::route_instead_of_desk(case, ctx) {
        r
    } else {
        route_to(desk.clone()).because("route.no-rule")
    };
    avoid_returning_units(case, candidate)
}

/// The district unit whose `function` is the category's lead function.
pub fn department(case: &Case, ctx: &Context) -> Option<String> {
    let function = ctx.category.as_ref()?.lead_function.as_deref()?;
    directory::child_with_function(&case.district, UnitKind::Department, function)
        .or_else(|| directory::child_with_function(&case.district, UnitKind::Police, function))
        .map(|u| u.id)
}

/// A unit that returned the case does not get it again: take the next level up.
pub fn avoid_returning_units(case: &Case, mut routing: RoutingDecision) -> RoutingDecision {
    while case.returned_by.contains(&routing.lead) {
        let up = one_level_up(&routing.lead, &case.district);
        if up == routing.lead {
            break;
        }
        routing.lead = up;
        routing.reasons.push("route.returned-skip".into());
    }
    routing
}

/// One level up the hierarchy: grid → its community → the district desk → the city
/// centre; a department or a mediation body → the district desk; the top stays put.
pub fn one_level_up(unit: &str, district: &str) -> String {
    match directory::unit(unit) {
        Some(u) if u.kind == UnitKind::Grid => u.parent.unwrap_or_else(|| district.to_owned()),
        Some(u) if matches!(u.kind, UnitKind::DistrictDesk | UnitKind::CityCentre) => u.id,
        _ => district.to_owned(),
    }
}

/// The sample city (Sanya) as a native test sandbox, for the bundled plug-ins' tests.
#[cfg(any(test, feature = "testing"))]
pub fn sample_city() -> civic_rules_sdk::testing::Sandbox {
    civic_rules_sdk::testing::Sandbox::from_json(
        include_str!("../../../data/sanya-directory.json"),
        include_str!("../../../data/categories.json"),
    )
    .expect("the bundled sample data is valid")
}

#[cfg(test)]
mod tests;

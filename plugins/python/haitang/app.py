"""海棠 Haitang's routing, written in Python: night talks (海棠夜话).

A suggestion from a village goes to that village's deliberation forum instead of the
district desk. Every other case gets no opinion from this plug-in, so the city default
decides it, exactly as the Rust plug-in `civic-plugin-haitang` (which changes only this
step of the city default) would.
"""

from typing import Optional

from wit_world import exports
from wit_world.imports import directory, types

URGENT = types.DeadlineOverrides(
    sign_off=types.Span_Minutes(30),
    first_contact=types.Span_Minutes(120),
    resolution=types.Span_WorkingDays(0),
    warning_percent=None,
)
NO_OVERRIDES = types.DeadlineOverrides(
    sign_off=None, first_contact=None, resolution=None, warning_percent=None
)


def night_talks(c: types.Case) -> Optional[types.RoutingDecision]:
    """The village forum for a village's suggestion, when the city default would send it
    to the desk (not a consultation, not returned twice, not returned by the village)."""
    if c.category != "suggestion" or c.kind == types.CaseKind.CONSULTATION:
        return None
    if len(c.returned_by) >= 2 or c.location.community is None:
        return None
    village = directory.lookup(c.location.community)
    if village is None or village.kind != types.UnitKind.VILLAGE:
        return None
    if village.id in c.returned_by:
        return None
    reasons = ["route.haitang.night-talks"]
    deadlines = NO_OVERRIDES
    if c.urgency == types.Urgency.URGENT:
        deadlines = URGENT
        reasons.append("deadline.urgent")
    return types.RoutingDecision(
        lead=village.id, co_handlers=[], deadlines=deadlines, reasons=reasons
    )


class Hooks(exports.Hooks):
    """The contract's three hooks; only routing has an opinion."""

    def eligibility(self, c: types.Case, ctx: types.Context) -> Optional[types.EligibilityDecision]:
        return None

    def routing(self, c: types.Case, ctx: types.Context) -> Optional[types.RoutingDecision]:
        return night_talks(c)

    def escalation(self, c: types.Case, t: types.Timer, ctx: types.Context) -> Optional[types.EscalationDecision]:
        return None

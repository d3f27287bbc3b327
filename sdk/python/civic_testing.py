"""Test helpers for civic-rules plug-ins written in Python.

A plug-in's rules run natively under `python -m unittest` (or pytest) against an in-memory
directory, the way the Rust SDK's `testing` module runs them: `use_directory` replaces the
contract's directory functions, which the generated bindings leave unimplemented outside
the host, with look-ups scoped as the host scopes them (the case's district and the city).
Generate the bindings first: `componentize-py -d wit -w plugin bindings .`.
"""

import json
from typing import Dict, List, Optional

from wit_world.imports import directory, types

_KINDS = {k.name.lower(): k for k in types.UnitKind}


def load_units(path: str) -> Dict[str, types.Unit]:
    """Reads a directory JSON file (the host's format) into units by id."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    units = {}
    for u in data["units"]:
        units[u["id"]] = types.Unit(
            id=u["id"],
            name=u["name"],
            kind=_KINDS[u["kind"]],
            parent=u.get("parent"),
            function=u.get("function"),
            level=u.get("level"),
            dispute=u.get("dispute"),
            chamber=u.get("chamber"),
        )
    return units


def _district_of(units: Dict[str, types.Unit], unit_id: str) -> Optional[str]:
    """The district desk a unit sits under, or None for the city's own units."""
    u = units.get(unit_id)
    while u is not None:
        if u.kind == types.UnitKind.DISTRICT_DESK:
            return u.id
        u = units.get(u.parent) if u.parent else None
    return None


def use_directory(units: Dict[str, types.Unit], district: str) -> None:
    """Makes the contract's directory answer from `units`, as the host does for a case of
    `district`: units of another district do not exist."""

    def visible(unit_id: str) -> Optional[types.Unit]:
        u = units.get(unit_id)
        if u is None:
            return None
        d = _district_of(units, unit_id)
        return u if d is None or d == district else None

    def lookup(unit_id: str) -> Optional[types.Unit]:
        return visible(unit_id)

    def children(parent: str, kind: Optional[types.UnitKind]) -> List[types.Unit]:
        if visible(parent) is None:
            return []
        return [
            u
            for u in units.values()
            if u.parent == parent and (kind is None or u.kind == kind) and visible(u.id)
        ]

    def path(unit_id: str) -> List[str]:
        out = []
        u = visible(unit_id)
        while u is not None:
            out.append(u.id)
            u = units.get(u.parent) if u.parent else None
        return list(reversed(out))

    directory.lookup = lookup
    directory.children = children
    directory.path = path


def case(district: str, category: str, *, community: Optional[str] = None,
         grid: Optional[str] = None, kind: types.CaseKind = types.CaseKind.COMPLAINT,
         urgent: bool = False) -> types.Case:
    """A case as intake hands it to routing, with everything not named left empty."""
    return types.Case(
        id="c-test",
        district=district,
        category=category,
        kind=kind,
        channel=types.Channel.PHONE,
        urgency=types.Urgency.URGENT if urgent else types.Urgency.NORMAL,
        location=types.Location(community=community, grid=grid, lat=None, lon=None),
        caller_key="k-test",
        flags=types.CaseFlags(0),
        dispute=None,
        status=types.CaseStatus.RECEIVED,
        eligibility=None,
        handler=None,
        co_handlers=[],
        returned_by=[],
        escalation_level=0,
        reopen_count=0,
        created_at=0,
        updated_at=0,
    )


def context(config: str = "{}") -> types.Context:
    """A context with no category information and no recent cases."""
    return types.Context(now=0, directory_version=1, category=None, recent_cases=[], config=config)

// Test helpers for civic-rules plug-ins written in JavaScript.
//
// A plug-in's rules run natively under `node --test` against an in-memory directory, the
// way the Rust SDK's `testing` module runs them: write the rules as functions that take the
// directory (`app.js` passes the contract's `civic:rules/directory` import, which exists
// only inside the host), and give them `directory(units, district)` in tests — look-ups
// scoped as the host scopes them (the case's district and the city).

import { readFileSync } from 'node:fs';

/** Reads a directory JSON file (the host's format) into units by id, shaped as the
 *  contract's `unit` record is in JavaScript (kinds in kebab-case). */
export function loadUnits(path) {
  const data = JSON.parse(readFileSync(path, 'utf8'));
  const units = new Map();
  for (const u of data.units) {
    units.set(u.id, {
      id: u.id,
      name: u.name,
      kind: u.kind.replaceAll('_', '-'),
      parent: u.parent,
      function: u.function,
      level: u.level,
      dispute: u.dispute,
      chamber: u.chamber,
    });
  }
  return units;
}

function districtOf(units, id) {
  for (let u = units.get(id); u; u = u.parent ? units.get(u.parent) : undefined) {
    if (u.kind === 'district-desk') return u.id;
  }
  return undefined;
}

/** The contract's directory interface answering from `units` for a case of `district`:
 *  units of another district do not exist. */
export function directory(units, district) {
  const visible = (id) => {
    const u = units.get(id);
    if (!u) return undefined;
    const d = districtOf(units, id);
    return d === undefined || d === district ? u : undefined;
  };
  return {
    lookup: (id) => visible(id),
    children: (parent, kind) =>
      visible(parent)
        ? [...units.values()].filter(
            (u) => u.parent === parent && (kind === undefined || u.kind === kind) && visible(u.id),
          )
        : [],
    path: (id) => {
      const out = [];
      for (let u = visible(id); u; u = u.parent ? units.get(u.parent) : undefined) out.push(u.id);
      return out.reverse();
    },
  };
}

/** A case as intake hands it to routing, with everything not named left empty. */
export function testCase(district, category, { community, grid, kind = 'complaint', urgent = false } = {}) {
  return {
    id: 'c-test',
    district,
    category,
    kind,
    channel: 'phone',
    urgency: urgent ? 'urgent' : 'normal',
    location: { community, grid, lat: undefined, lon: undefined },
    callerKey: 'k-test',
    flags: {},
    dispute: undefined,
    status: 'received',
    eligibility: undefined,
    handler: undefined,
    coHandlers: [],
    returnedBy: [],
    escalationLevel: 0,
    reopenCount: 0,
    createdAt: 0n,
    updatedAt: 0n,
  };
}

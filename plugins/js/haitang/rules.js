// 海棠 Haitang's routing, written in JavaScript: night talks (海棠夜话).
//
// A suggestion from a village goes to that village's deliberation forum instead of the
// district desk. Every other case gets no opinion (undefined), so the city default decides
// it, exactly as the Rust plug-in `civic-plugin-haitang` would. The rules take the
// directory as a parameter so that tests can give them an in-memory one.

const URGENT = {
  signOff: { tag: 'minutes', val: 30 },
  firstContact: { tag: 'minutes', val: 120 },
  resolution: { tag: 'working-days', val: 0 },
};

/** The village forum for a village's suggestion, when the city default would send it to
 *  the desk (not a consultation, not returned twice, not returned by the village). */
export function nightTalks(c, directory) {
  if (c.category !== 'suggestion' || c.kind === 'consultation') return undefined;
  if (c.returnedBy.length >= 2 || !c.location.community) return undefined;
  const village = directory.lookup(c.location.community);
  if (!village || village.kind !== 'village' || c.returnedBy.includes(village.id)) return undefined;
  const urgent = c.urgency === 'urgent';
  return {
    lead: village.id,
    coHandlers: [],
    deadlines: urgent ? URGENT : {},
    reasons: urgent ? ['route.haitang.night-talks', 'deadline.urgent'] : ['route.haitang.night-talks'],
  };
}

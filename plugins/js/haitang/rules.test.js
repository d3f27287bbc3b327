// Haitang's night talks, run natively (`node --test`) against the sample city's directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

import { loadUnits, directory, testCase } from '../../../sdk/js/civic-testing.js';
import { nightTalks } from './rules.js';

const units = loadUnits(
  process.env.CIVIC_DIRECTORY ?? fileURLToPath(new URL('../../../data/sanya-directory.json', import.meta.url)),
);
const haitang = directory(units, 'haitang');

test('a village suggestion goes to the village', () => {
  const d = nightTalks(testCase('haitang', 'suggestion', { community: 'haitang/longjiang' }), haitang);
  assert.equal(d.lead, 'haitang/longjiang');
  assert.deepEqual(d.reasons, ['route.haitang.night-talks']);
});

test('an urgent one keeps the urgent deadlines', () => {
  const c = testCase('haitang', 'suggestion', { community: 'haitang/longjiang', urgent: true });
  const d = nightTalks(c, haitang);
  assert.deepEqual(d.deadlines.signOff, { tag: 'minutes', val: 30 });
  assert.ok(d.reasons.includes('deadline.urgent'));
});

test('anything else is left to the city default', () => {
  assert.equal(nightTalks(testCase('haitang', 'noise', { community: 'haitang/longjiang' }), haitang), undefined);
  assert.equal(nightTalks(testCase('haitang', 'suggestion'), haitang), undefined);
  const returned = testCase('haitang', 'suggestion', { community: 'haitang/longjiang' });
  returned.returnedBy = ['haitang/longjiang'];
  assert.equal(nightTalks(returned, haitang), undefined);
});

test("another district's village is not visible", () => {
  const c = testCase('jiyang', 'suggestion', { community: 'haitang/longjiang' });
  assert.equal(nightTalks(c, directory(units, 'jiyang')), undefined);
});

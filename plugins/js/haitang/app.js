// The component's entry: the contract's three hooks, with the host's directory.
import * as directory from 'civic:rules/directory@0.1.0';
import { nightTalks } from './rules.js';

export const hooks = {
  eligibility(_c, _ctx) {
    return undefined;
  },
  routing(c, _ctx) {
    return nightTalks(c, directory);
  },
  escalation(_c, _t, _ctx) {
    return undefined;
  },
};

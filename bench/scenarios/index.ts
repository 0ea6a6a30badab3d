import type { Scenario } from '../scenario.js';
import { flush } from './flush.js';
import { memory } from './memory.js';
import { miss } from './miss.js';
import { reads } from './reads.js';
import { scale } from './scale.js';
import { writeBack } from './write-back.js';
import { writeThrough } from './write-through.js';

/** Every scenario, in run order. The scale scenario goes last: it fills Redis with up to 1e6 entries. */
export const scenarios: readonly Scenario[] = [reads, miss, memory, writeThrough, writeBack, flush, scale];

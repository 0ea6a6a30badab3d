import type { Change, RowWrite } from './ops.js';

/** Whether a write has delta bounds, which its stream payload leaves out (they only guard the cache). */
export function hasBounds(write: RowWrite): boolean {
  return bounded(write.v) || bounded(write.s);
}

function bounded(list: readonly Change[] | undefined): boolean {
  if (list) for (const c of list) if (c.lo !== undefined || c.hi !== undefined) return true;
  return false;
}

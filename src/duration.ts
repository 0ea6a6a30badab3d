import { PolicyError, type PolicyLocation } from './errors.js';

/** A duration: a number of seconds, or a string such as `'250ms'`, `'30s'`, `'5m'`, `'1h'`, `'7d'`. */
export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h' | 'd'}`;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PATTERN = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
/** The longest duration accepted anywhere: one year. */
export const MAX_DURATION_MS = 365 * UNIT_MS.d!;

/** Parses a duration into whole milliseconds; throws a PolicyError naming `where` when invalid. */
export function parseDuration(value: unknown, where: PolicyLocation = {}): number {
  let ms: number;
  if (typeof value === 'number') {
    ms = value * 1000;
  } else if (typeof value === 'string') {
    const match = PATTERN.exec(value.trim());
    if (!match) {
      throw new PolicyError(
        `invalid duration ${JSON.stringify(value).slice(0, 40)}: use seconds or a string like "250ms", "30s", "5m", "1h", "7d"`,
        where,
      );
    }
    ms = Number(match[1]) * (UNIT_MS[match[2] as string] as number);
  } else {
    throw new PolicyError(`a duration must be a number of seconds or a string like "5m", got ${typeof value}`, where);
  }
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new PolicyError('a duration must be greater than zero', where);
  }
  if (ms > MAX_DURATION_MS) throw new PolicyError('a duration must be at most one year', where);
  return Math.max(1, Math.round(ms));
}

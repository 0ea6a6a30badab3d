/**
 * Date and timestamp input and ISO output as PostgreSQL does them (DateStyle ISO), for the
 * canonical text of write-back values. Only plain ISO 8601 forms are recognised; anything else
 * is left to the database.
 */

/** An ISO date-time as written: calendar fields, fraction digits, and the offset if one was given. */
export interface DateTimeParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  /** Fraction-of-second digits as written (up to 6 significant ones are kept by PostgreSQL). */
  fraction: string;
  /** Offset east of UTC in seconds; undefined when the text had none. */
  offsetSeconds: number | undefined;
}

const PATTERN =
  /^\s*(\d{4})-(\d{2})-(\d{2})(?:(?:[Tt]| +)(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)? ?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?(?::?(\d{2}))?)?)?\s*$/;

/** Parses `YYYY-MM-DD[( |T)HH:MM[:SS[.f]]][Z|±HH[:MM[:SS]]]`; undefined when invalid or out of range. */
export function parseDateTime(text: string): DateTimeParts | undefined {
  const m = PATTERN.exec(text);
  if (!m) return undefined;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4] ?? '0');
  const minute = Number(m[5] ?? '0');
  const second = Number(m[6] ?? '0');
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetSeconds: number | undefined;
  if (m[8]) offsetSeconds = 0;
  else if (m[9]) {
    const h = Number(m[10]);
    const mm = Number(m[11] ?? '0');
    const ss = Number(m[12] ?? '0');
    if (h > 15 || mm > 59 || ss > 59) return undefined;
    offsetSeconds = (m[9] === '-' ? -1 : 1) * (h * 3600 + mm * 60 + ss);
  }
  return { year, month, day, hour, minute, second, fraction: m[7] ?? '', offsetSeconds };
}

/** `YYYY-MM-DD` of the parts as written (a date ignores any time and offset). */
export function formatDate(p: DateTimeParts): string {
  return `${pad(p.year, 4)}-${pad(p.month, 2)}-${pad(p.day, 2)}`;
}

/**
 * `YYYY-MM-DD HH:MM:SS[.ffffff]`, trailing fraction zeros dropped. With `zoneOffset` (seconds,
 * only 0 is used) the instant is shifted from its own offset into that zone and `+00` appended;
 * undefined when the shifted year leaves 1..9999.
 */
export function formatTimestamp(p: DateTimeParts, zoneOffset: 0 | undefined): string | undefined {
  let { year, month, day, hour, minute, second } = p;
  if (zoneOffset !== undefined) {
    const total = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - (p.offsetSeconds ?? 0);
    const days = Math.floor(total / 86400);
    let rest = total - days * 86400;
    ({ year, month, day } = civilFromDays(days));
    hour = Math.floor(rest / 3600);
    rest -= hour * 3600;
    minute = Math.floor(rest / 60);
    second = rest - minute * 60;
    if (year < 1 || year > 9999) return undefined;
  }
  const fraction = p.fraction.padEnd(6, '0').slice(0, 6).replace(/0+$/, '');
  const time = `${pad(hour, 2)}:${pad(minute, 2)}:${pad(second, 2)}${fraction ? `.${fraction}` : ''}`;
  return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)} ${time}${zoneOffset === undefined ? '' : '+00'}`;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function civilFromDays(z: number): { year: number; month: number; day: number } {
  const zz = z + 719468;
  const era = Math.floor(zz / 146097);
  const doe = zz - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return { year: yoe + era * 400 + (month <= 2 ? 1 : 0), month, day };
}

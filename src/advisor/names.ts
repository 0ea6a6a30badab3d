/**
 * Name heuristics: whether a table looks like money, audit or security data (never cache it by
 * default), or like counters and events (write-heavy by nature).
 */

/** Table-name words of money, audit and security data. */
const SENSITIVE_TABLE_WORDS = [
  'payment',
  'invoice',
  'ledger',
  'transaction',
  'audit',
  'login',
  'session',
  'token',
  'password',
  'passwd',
  'secret',
  'credential',
  'credit',
  'balance',
  'refund',
  'payout',
  'billing',
  'wallet',
];
/** Column-name words that mark a table as holding security or money data. */
const SENSITIVE_COLUMN_WORDS = ['password', 'passwd', 'secret', 'token', 'cvv', 'iban', 'ssn', 'balance'];
/** Adjacent word pairs that mean the same, in table or column names. */
const SENSITIVE_PAIRS: readonly (readonly [string, string])[] = [
  ['log', 'in'],
  ['sign', 'in'],
  ['credit', 'card'],
  ['card', 'number'],
];
/** Table-name words of counters, events and metrics. */
const EVENT_WORDS = [
  'counter',
  'count',
  'event',
  'metric',
  'stat',
  'statistic',
  'click',
  'hit',
  'pageview',
  'impression',
  'visit',
  'leaderboard',
  'score',
  'telemetry',
  'analytic',
  'activity',
  'activities',
  'tracking',
];
/** Sensitive stems at least this long also match as a prefix (`paymentmethods`, `passwordhash`). */
const PREFIX_MIN = 5;

/** Splits an identifier into lowercase words: `userSessions` and `user_sessions` give `user`, `sessions`. */
export function nameWords(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+|(?<=[a-z])(?=[0-9])|(?<=[0-9])(?=[a-z])/)
    .filter((w) => w !== '');
}

/** A word is the stem, its plural, or (with `prefix`, for long stems) starts with it. */
function wordMatches(word: string, stem: string, prefix: boolean): boolean {
  if (word === stem || word === `${stem}s`) return true;
  if (/(s|x|z|ch|sh)$/.test(stem) && word === `${stem}es`) return true;
  return prefix && stem.length >= PREFIX_MIN && word.startsWith(stem);
}

/** The first listed word or pair `name` contains, as written in the list (`"log in"` for a pair). */
function firstMatch(
  name: string,
  stems: readonly string[],
  pairs: readonly (readonly [string, string])[],
  prefix: boolean,
): string | undefined {
  const words = nameWords(name);
  for (const stem of stems) if (words.some((w) => wordMatches(w, stem, prefix))) return stem;
  for (const [a, b] of pairs) {
    for (let i = 0; i + 1 < words.length; i++) {
      if (words[i] === a && wordMatches(words[i + 1] ?? '', b, false)) return `${a} ${b}`;
    }
  }
  return undefined;
}

/**
 * Why a table looks like money, audit or security data, or undefined when nothing suggests it.
 * Checks the table's name first, then its columns' names.
 */
export function sensitiveData(name: string, columns: readonly string[]): string | undefined {
  const byName = firstMatch(name, SENSITIVE_TABLE_WORDS, SENSITIVE_PAIRS, true);
  if (byName !== undefined) return `the table name ${JSON.stringify(name)} contains "${byName}"`;
  for (const column of columns) {
    const byColumn = firstMatch(column, SENSITIVE_COLUMN_WORDS, SENSITIVE_PAIRS, true);
    if (byColumn !== undefined) return `column ${JSON.stringify(column)} contains "${byColumn}"`;
  }
  return undefined;
}

/** The counter/event word a table's name contains, or undefined. */
export function eventLikeName(name: string): string | undefined {
  return firstMatch(name, EVENT_WORDS, [['page', 'view']], false);
}

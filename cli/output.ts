import { formatLocation, type PolicyError } from '../src/errors.js';

/** Renders rows as left-aligned columns separated by two spaces; the first row is the header. */
export function columns(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** One line per problem of a PolicyError, each naming its file, table and field. */
export function policyProblems(error: PolicyError): string[] {
  return error.issues.map(({ message, location }) => `${formatLocation(location)}${message}`);
}

/** Milliseconds as the shortest exact duration: `1h`, `5m`, `30s`, `250ms`. */
export function formatMs(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** Number formatting for advice reasons: short, exact enough, locale-independent. */

const GROUPED = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** A count or rate: `1,234`, `56.7`, `0.42`, `0.0031`, `0`. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 100) return GROUPED.format(value);
  if (abs >= 10) return trimZeros(value.toFixed(1));
  if (abs >= 0.01 || abs === 0) return trimZeros(value.toFixed(2));
  return String(Number(value.toPrecision(2)));
}

function trimZeros(text: string): string {
  return text.includes('.') ? text.replace(/\.?0+$/, '') : text;
}

/** Reads against writes: `240:1`, `1:3.5`, `no writes`, `no reads`. */
export function formatRatio(reads: number, writes: number): string {
  if (writes === 0) return reads === 0 ? 'no reads, no writes' : 'no writes';
  if (reads === 0) return 'no reads';
  return reads >= writes ? `${formatNumber(reads / writes)}:1` : `1:${formatNumber(writes / reads)}`;
}

/** Seconds as the two largest units: `3d 4h`, `12m 5s`, `10s`, `0.4s`. */
export function formatSeconds(seconds: number): string {
  if (seconds < 10) return `${trimZeros(seconds.toFixed(1))}s`;
  const units: [string, number][] = [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ];
  let rest = Math.round(seconds);
  const parts: string[] = [];
  for (const [unit, size] of units) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0 || parts.length > 0) parts.push(`${n}${unit}`);
  }
  const shown = parts.slice(0, 2).filter((p, i) => i === 0 || !p.startsWith('0'));
  return shown.join(' ');
}

/** Bytes in binary units: `8 KiB`, `4.2 MiB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : trimZeros(value.toFixed(1))} ${units[unit]}`;
}

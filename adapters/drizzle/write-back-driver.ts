/**
 * What write-back needs to know about the driver under a Drizzle session: how it turns the text
 * PostgreSQL sends into values (so a row entry's canonical text decodes to exactly what a database
 * read returns, with Drizzle's own parser overrides), and the shape of the raw results it returns.
 */
import { entityKind } from 'drizzle-orm';

/** Drivers whose text decoding write-back reproduces. */
export type DriverKind = 'node-postgres' | 'pglite';

/** Decodes one column's text as the driver would. */
export type TextDecoder = (oid: number, text: string) => unknown;

/** Types Drizzle's node-postgres and PGlite sessions return as raw text (dates, intervals and their arrays). */
const RAW_TEXT_OIDS = [1114, 1184, 1082, 1186, 1231, 1115, 1185, 1187, 1182];

/** The driver of a Drizzle session, when write-back supports it. */
export function driverOf(session: object): DriverKind | undefined {
  const kind = (session.constructor as { [entityKind]?: string } | undefined)?.[entityKind];
  if (kind === 'NodePgSession') return 'node-postgres';
  if (kind === 'PgliteSession') return 'pglite';
  return undefined;
}

/** The driver's text decoder (its global type parsers plus Drizzle's overrides). */
export async function decoderFor(kind: DriverKind): Promise<TextDecoder> {
  if (kind === 'node-postgres') {
    const pg = await import('pg');
    const types = (pg.default ?? pg).types;
    return (oid, text) => (RAW_TEXT_OIDS.includes(oid) ? text : types.getTypeParser(oid, 'text')(text));
  }
  const { types } = await import('@electric-sql/pglite');
  const overrides: Record<number, (value: string) => unknown> = {};
  for (const oid of RAW_TEXT_OIDS) overrides[oid] = (value) => value;
  return (oid, text) => types.parseType(text, oid, overrides);
}

/** A raw result of an acknowledged write, as the driver would have returned it. */
export function writeResult(
  kind: DriverKind,
  command: 'INSERT' | 'UPDATE' | 'DELETE',
  count: number,
  rows: unknown[],
): unknown {
  if (kind === 'pglite') return { rows, fields: [], affectedRows: count };
  return { command, rowCount: count, oid: null, rows, fields: [] };
}

/** A raw SELECT result. */
export function readResult(kind: DriverKind, rows: unknown[]): unknown {
  if (kind === 'pglite') return { rows, fields: [] };
  return { command: 'SELECT', rowCount: rows.length, oid: null, rows, fields: [] };
}

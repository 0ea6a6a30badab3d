import { and, eq, exists, gt, inArray, notExists, notInArray, or, relations, type SQL, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import {
  alias,
  except,
  exceptAll,
  integer,
  intersect,
  intersectAll,
  PgDialect,
  pgMaterializedView,
  pgSchema,
  pgTable,
  pgView,
  primaryKey,
  serial,
  text,
  union,
  unionAll,
} from 'drizzle-orm/pg-core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyStatement, type QualifiedName, scanReads } from '../../adapters/drizzle/sql-scan.js';

const url = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

// Every relation this file creates starts with sqlscan_ so files can run in parallel.
const users = pgTable('sqlscan_users', { id: serial('id').primaryKey(), name: text('name'), orgId: integer('org_id') });
const posts = pgTable('sqlscan_posts', {
  id: serial('id').primaryKey(),
  authorId: integer('author_id'),
  title: text('title'),
});
const memberships = pgTable(
  'sqlscan_memberships',
  { userId: integer('user_id').notNull(), orgId: integer('org_id').notNull(), role: text('role') },
  (t) => [primaryKey({ columns: [t.userId, t.orgId] })],
);
const app = pgSchema('sqlscan_app');
const orgs = app.table('orgs', { id: serial('id').primaryKey(), name: text('name') });
const weird = pgTable('sqlscan weird:name{}"q', { id: serial('id').primaryKey(), q: text('we"ird') });
const userView = pgView('sqlscan_user_view').as((qb) => qb.select().from(users).where(gt(users.id, 0)));
const existingView = pgView('sqlscan_user_view', { id: integer('id'), name: text('name') }).existing();
const matView = pgMaterializedView('sqlscan_mat_view').as((qb) => qb.select({ id: users.id }).from(users));

const schema = {
  users,
  posts,
  orgs,
  usersRelations: relations(users, ({ many, one }) => ({
    posts: many(posts),
    org: one(orgs, { fields: [users.orgId], references: [orgs.id] }),
  })),
  postsRelations: relations(posts, ({ one }) => ({
    author: one(users, { fields: [posts.authorId], references: [users.id] }),
  })),
  orgsRelations: relations(orgs, ({ many }) => ({ members: many(users) })),
};

const pool = new pg.Pool({ connectionString: url, max: 2 });
const db = drizzle({ client: pool, schema });
const dialect = new PgDialect();

const SETUP = `
  drop schema if exists sqlscan_app cascade;
  drop materialized view if exists sqlscan_mat_view;
  drop view if exists sqlscan_user_view;
  drop table if exists sqlscan_users, sqlscan_posts, sqlscan_memberships, "sqlscan weird:name{}""q",
    "sqlscan_Üni", "sqlscan ""quoted"" name", sqlscan_x cascade;
  drop function if exists sqlscan_fn(int);
  drop function if exists sqlscan_srf();
  drop sequence if exists sqlscan_seq;
  create schema sqlscan_app;
  create table sqlscan_users (id serial primary key, name text, org_id integer);
  create table sqlscan_posts (id serial primary key, author_id integer, title text);
  create table sqlscan_memberships (user_id int not null, org_id int not null, role text, primary key (user_id, org_id));
  create table sqlscan_app.orgs (id serial primary key, name text);
  create table "sqlscan weird:name{}""q" (id serial primary key, "we""ird" text);
  create table "sqlscan_Üni" (id int);
  create table "sqlscan ""quoted"" name" (id int);
  create table sqlscan_x (id int);
  create view sqlscan_user_view as select * from sqlscan_users where id > 0;
  create materialized view sqlscan_mat_view as select id from sqlscan_users;
  create sequence sqlscan_seq;
  create function sqlscan_fn(i int) returns bigint language sql stable
    as $$ select count(*) from sqlscan_posts where author_id = i $$;
  create function sqlscan_srf() returns setof sqlscan_posts language sql stable
    as $$ select * from sqlscan_posts $$;
`;

const TEARDOWN = `
  drop schema if exists sqlscan_app cascade;
  drop materialized view if exists sqlscan_mat_view;
  drop view if exists sqlscan_user_view;
  drop table if exists sqlscan_users, sqlscan_posts, sqlscan_memberships, "sqlscan weird:name{}""q",
    "sqlscan_Üni", "sqlscan ""quoted"" name", sqlscan_x cascade;
  drop function if exists sqlscan_fn(int);
  drop function if exists sqlscan_srf();
  drop sequence if exists sqlscan_seq;
`;

beforeAll(async () => {
  await pool.query(SETUP);
});

afterAll(async () => {
  await pool.query(TEARDOWN);
  await pool.end();
});

/** `schema.name` or `name`, sorted, for exact set comparisons. */
function names(list: QualifiedName[]): string[] {
  return list.map((q) => (q.schema === undefined ? q.name : `${q.schema}.${q.name}`)).sort();
}

/** Relations PostgreSQL's own plan touches, as `schema.name`. */
async function planRelations(query: string, params: unknown[]): Promise<Set<string>> {
  const res = await pool.query(`explain (format json, verbose) ${query}`, params);
  const found = new Set<string>();
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const n of node) walk(n);
    } else if (node !== null && typeof node === 'object') {
      const rec = node as Record<string, unknown>;
      if (typeof rec['Relation Name'] === 'string') found.add(`${rec.Schema}.${rec['Relation Name']}`);
      for (const v of Object.values(rec)) walk(v);
    }
  };
  walk(res.rows[0]['QUERY PLAN']);
  return found;
}

/** Views expand to their base tables in a plan. */
const VIEW_BASES: Record<string, string[]> = {
  'public.sqlscan_user_view': ['public.sqlscan_users'],
};

/** Asserts that every relation PostgreSQL plans to touch is one the scanner reported. */
async function expectPlanCovered(query: string, params: unknown[]): Promise<void> {
  const c = classifyStatement(query);
  const ours = new Set(
    [...c.reads.relations, ...c.writes]
      .map((q) => `${q.schema ?? 'public'}.${q.name}`)
      .flatMap((n) => [n, ...(VIEW_BASES[n] ?? [])]),
  );
  const planned = await planRelations(query, params);
  for (const rel of planned) expect(ours, `${rel} is missing for: ${query}`).toContain(rel);
}

interface Case {
  /** What the case shows. */
  name: string;
  /** The SQL and params, from Drizzle or written by hand. */
  q: { sql: string; params: unknown[] };
  /** Expected relations read (`schema.name` or `name`). */
  reads: string[];
  /** Expected completeness of the reads (default true). */
  complete?: boolean;
  /** Expected CTE names (default none). */
  ctes?: string[];
  /** Whether PostgreSQL can EXPLAIN it on its own (default true). */
  explain?: boolean;
}

const q = (builder: { toSQL(): { sql: string; params: unknown[] } }) => builder.toSQL();
const raw = (text: string, params: unknown[] = []) => ({ sql: text, params });
const fromSql = (s: SQL) => dialect.sqlToQuery(s);

const sub = db.select().from(posts).where(eq(posts.authorId, 1)).as('sq');
const u2 = alias(users, 'u2');
const o = alias(orgs, 'o');
const wUsers = db.$with('w').as(db.select().from(users).where(eq(users.id, 1)));
const wPosts = db.$with('w2').as(db.select({ id: posts.id }).from(posts));
const shadow = db.$with('sqlscan_posts').as(db.select().from(users));
const gone = db.$with('gone').as(db.delete(posts).where(eq(posts.id, 1)).returning());
const countPosts = db.$count(posts, eq(posts.authorId, 1));
// db.$count(t) awaited on its own runs this statement (PgCountBuilder.sql, private in the types).
const standaloneCount = (countPosts as unknown as { sql: SQL }).sql;

const drizzleCases: Case[] = [
  { name: 'select eq', q: q(db.select().from(users).where(eq(users.id, 1))), reads: ['sqlscan_users'] },
  {
    name: 'partial select with limit/offset/order',
    q: q(db.select({ id: users.id }).from(users).orderBy(users.id).limit(5).offset(2)),
    reads: ['sqlscan_users'],
  },
  {
    name: 'inner/left/right/full/cross joins with pgSchema and alias',
    q: q(
      db
        .select()
        .from(users)
        .innerJoin(posts, eq(posts.authorId, users.id))
        .leftJoin(memberships, eq(memberships.userId, users.id))
        .rightJoin(orgs, eq(orgs.id, users.orgId))
        .fullJoin(u2, eq(u2.id, users.id))
        .crossJoin(o),
    ),
    reads: ['sqlscan_app.orgs', 'sqlscan_memberships', 'sqlscan_posts', 'sqlscan_users'],
  },
  {
    name: 'self join via alias()',
    q: q(db.select().from(users).leftJoin(u2, eq(u2.id, users.orgId))),
    reads: ['sqlscan_users'],
  },
  { name: 'aliased pgSchema table', q: q(db.select().from(o).where(eq(o.id, 1))), reads: ['sqlscan_app.orgs'] },
  {
    name: 'lateral joins',
    q: q(
      db
        .select()
        .from(users)
        .leftJoinLateral(db.select().from(posts).where(eq(posts.authorId, users.id)).as('p'), sql`true`)
        .innerJoinLateral(db.select().from(memberships).as('m'), sql`true`)
        .crossJoinLateral(db.select().from(orgs).as('o2')),
    ),
    reads: ['sqlscan_app.orgs', 'sqlscan_memberships', 'sqlscan_posts', 'sqlscan_users'],
  },
  { name: 'subquery in FROM', q: q(db.select().from(sub)), reads: ['sqlscan_posts'] },
  {
    name: 'inArray / notInArray with subqueries',
    q: q(
      db
        .select()
        .from(users)
        .where(
          and(
            inArray(users.id, db.select({ id: posts.authorId }).from(posts)),
            notInArray(users.orgId, db.select({ id: orgs.id }).from(orgs)),
          ),
        ),
    ),
    reads: ['sqlscan_app.orgs', 'sqlscan_posts', 'sqlscan_users'],
  },
  {
    name: 'exists / notExists',
    q: q(
      db
        .select()
        .from(users)
        .where(
          or(
            exists(db.select().from(posts).where(eq(posts.authorId, users.id))),
            notExists(db.select().from(memberships).where(eq(memberships.userId, users.id))),
          ),
        ),
    ),
    reads: ['sqlscan_memberships', 'sqlscan_posts', 'sqlscan_users'],
  },
  {
    name: 'union()',
    q: q(union(db.select({ id: users.id }).from(users), db.select({ id: posts.id }).from(posts))),
    reads: ['sqlscan_posts', 'sqlscan_users'],
  },
  {
    name: 'unionAll()',
    q: q(unionAll(db.select({ id: users.id }).from(users), db.select({ id: u2.id }).from(u2))),
    reads: ['sqlscan_users'],
  },
  {
    name: 'unionAll chained',
    q: q(
      db
        .select({ id: users.id })
        .from(users)
        .unionAll(db.select({ id: orgs.id }).from(orgs))
        .unionAll(db.select({ id: posts.id }).from(posts)),
    ),
    reads: ['sqlscan_app.orgs', 'sqlscan_posts', 'sqlscan_users'],
  },
  {
    name: 'intersect then except',
    q: q(
      db
        .select({ id: users.id })
        .from(users)
        .intersect(db.select({ id: posts.id }).from(posts))
        .except(db.select({ id: orgs.id }).from(orgs)),
    ),
    reads: ['sqlscan_app.orgs', 'sqlscan_posts', 'sqlscan_users'],
  },
  {
    name: 'intersectAll / exceptAll / except() with order and limit',
    q: q(
      exceptAll(
        intersectAll(db.select({ id: users.id }).from(users), db.select({ id: posts.id }).from(posts)),
        except(db.select({ id: orgs.id }).from(orgs), db.select({ id: u2.id }).from(u2)),
      )
        .orderBy(sql`1`)
        .limit(3),
    ),
    reads: ['sqlscan_app.orgs', 'sqlscan_posts', 'sqlscan_users'],
  },
  {
    name: 'union of intersect',
    q: q(
      union(
        db.select({ id: users.id }).from(users),
        intersect(db.select({ id: posts.id }).from(posts), db.select({ id: orgs.id }).from(orgs)),
      ),
    ),
    reads: ['sqlscan_app.orgs', 'sqlscan_posts', 'sqlscan_users'],
  },
  {
    name: '$with CTEs',
    q: q(db.with(wUsers, wPosts).select().from(wUsers).leftJoin(wPosts, eq(wPosts.id, wUsers.id))),
    reads: ['sqlscan_posts', 'sqlscan_users'],
    ctes: ['w', 'w2'],
  },
  {
    name: '$with CTE shadowing a real table name',
    q: q(db.with(shadow).select().from(shadow)),
    reads: ['sqlscan_users'],
    ctes: ['sqlscan_posts'],
  },
  {
    name: 'data-modifying $with',
    q: q(db.with(gone).select().from(gone)),
    reads: [],
    complete: false,
    ctes: ['gone'],
  },
  {
    name: '$count embedded as a column',
    q: q(db.select({ n: db.$count(posts, eq(posts.authorId, users.id)) }).from(users)),
    reads: ['sqlscan_posts', 'sqlscan_users'],
  },
  { name: '$count standalone', q: fromSql(standaloneCount), reads: ['sqlscan_posts'] },
  {
    name: 'relational findMany with nested with (lateral + json aggregates)',
    q: q(
      db.query.orgs.findMany({
        with: { members: { with: { posts: { limit: 2, orderBy: (p, { desc }) => desc(p.id) } } } },
      }),
    ),
    reads: ['sqlscan_app.orgs', 'sqlscan_posts', 'sqlscan_users'],
  },
  {
    name: 'relational findFirst with one-relation and extras',
    q: q(
      db.query.users.findFirst({
        with: { org: true },
        extras: { up: sql<string>`upper(${users.name})`.as('up') },
        where: eq(users.id, 1),
      }),
    ),
    reads: ['sqlscan_app.orgs', 'sqlscan_users'],
  },
  {
    name: 'relational findFirst on posts with author',
    q: q(db.query.posts.findFirst({ with: { author: { columns: { name: true } } } })),
    reads: ['sqlscan_posts', 'sqlscan_users'],
  },
  { name: 'pgView', q: q(db.select().from(userView)), reads: ['sqlscan_user_view'] },
  { name: 'existing view', q: q(db.select().from(existingView)), reads: ['sqlscan_user_view'] },
  { name: 'materialized view', q: q(db.select().from(matView)), reads: ['sqlscan_mat_view'] },
  {
    name: 'table name with quotes, colon and braces',
    q: q(db.select().from(weird).where(eq(weird.id, 1))),
    reads: ['sqlscan weird:name{}"q'],
  },
  {
    name: 'distinct on, group by, having',
    q: q(
      db
        .selectDistinctOn([users.orgId], { orgId: users.orgId, n: sql<number>`count(*)` })
        .from(users)
        .groupBy(users.orgId)
        .having(gt(sql`count(*)`, 1)),
    ),
    reads: ['sqlscan_users'],
  },
  {
    name: 'raw sql FROM with a set-returning function',
    q: q(db.select({ x: sql`g` }).from(sql`generate_series(1, 3) as g`)),
    reads: [],
    complete: false,
  },
  {
    name: 'user function in the select list',
    q: q(db.select({ n: sql<number>`sqlscan_fn(${users.id})` }).from(users)),
    reads: ['sqlscan_users'],
    complete: false,
  },
  {
    name: 'insert ... select',
    q: q(db.insert(posts).select(db.select().from(posts).where(eq(posts.id, 1)))),
    reads: ['sqlscan_posts'],
  },
  {
    name: 'update ... from',
    q: q(db.update(users).set({ name: 'x' }).from(posts).where(eq(posts.authorId, users.id))),
    reads: ['sqlscan_posts'],
  },
  {
    name: 'delete with subquery',
    q: q(db.delete(orgs).where(inArray(orgs.id, db.select({ id: users.orgId }).from(users)))),
    reads: ['sqlscan_users'],
  },
];

const rawCases: Case[] = [
  {
    name: 'line comment hides a FROM',
    q: raw('select 1 -- from "hidden"\nfrom sqlscan_users'),
    reads: ['sqlscan_users'],
  },
  {
    name: 'nested block comment hides a JOIN',
    q: raw('select * from sqlscan_users /* join "a" /* nested */ join "b" */ where id = 1'),
    reads: ['sqlscan_users'],
  },
  {
    name: 'string containing from "x"',
    q: raw(`select 'it''s from "x" join y' as s from sqlscan_posts`),
    reads: ['sqlscan_posts'],
  },
  {
    name: 'E-string with an escaped quote',
    q: raw(`select E'\\' from "x" --' as s from sqlscan_posts`),
    reads: ['sqlscan_posts'],
  },
  {
    name: 'dollar-quoted strings',
    q: raw(`select $$ from "a" $$ as a, $tag$ it's $$ from "b" $tag$ as b from sqlscan_posts`),
    reads: ['sqlscan_posts'],
  },
  {
    name: 'identifier with embedded quotes',
    q: raw('select * from "sqlscan ""quoted"" name"'),
    reads: ['sqlscan "quoted" name'],
  },
  {
    name: 'unicode bare name keeps non-ASCII case',
    q: raw('select * from SQLSCAN_Üni'),
    reads: ['sqlscan_Üni'],
  },
  {
    name: 'unicode-escaped identifier',
    q: raw('select * from U&"sqlscan_\\00DCni"'),
    reads: ['sqlscan_Üni'],
  },
  { name: 'case folding of bare names', q: raw('SELECT * FROM SqlScan_Users'), reads: ['sqlscan_users'] },
  {
    name: 'quoted column named from / join',
    q: raw('select "from", "join" from (select 1 as "from", 2 as "join") s, sqlscan_users'),
    reads: ['sqlscan_users'],
  },
  {
    name: 'comma-separated FROM with aliases',
    q: raw('select * from sqlscan_users, sqlscan_posts as p, sqlscan_app.orgs o where p.author_id = o.id'),
    reads: ['sqlscan_app.orgs', 'sqlscan_posts', 'sqlscan_users'],
  },
  {
    name: 'comma after a JOIN ... ON condition',
    q: raw(
      'select * from sqlscan_users u join sqlscan_posts p on p.author_id = u.id and p.id = any(array[1, 2]), sqlscan_x',
    ),
    reads: ['sqlscan_posts', 'sqlscan_users', 'sqlscan_x'],
  },
  {
    name: 'parenthesised join trees',
    q: raw(
      'select * from (sqlscan_users u join sqlscan_posts p on true) left join (sqlscan_x cross join sqlscan_app.orgs) on true',
    ),
    reads: ['sqlscan_app.orgs', 'sqlscan_posts', 'sqlscan_users', 'sqlscan_x'],
  },
  {
    name: 'natural / using joins and join lateral',
    q: raw(
      'select * from sqlscan_users natural join sqlscan_x join sqlscan_posts using (id) join lateral (select * from sqlscan_memberships m where m.user_id = sqlscan_users.id) m on true',
    ),
    reads: ['sqlscan_memberships', 'sqlscan_posts', 'sqlscan_users', 'sqlscan_x'],
  },
  {
    name: 'nested parenthesised join trees',
    q: raw(
      'select * from ((sqlscan_users u join sqlscan_posts p on true) join (((select 1 as id) s join sqlscan_x using (id))) on true)',
    ),
    reads: ['sqlscan_posts', 'sqlscan_users', 'sqlscan_x'],
  },
  {
    name: 'parenthesised set operation in FROM',
    q: raw('select * from ((select id from sqlscan_users) union (select id from sqlscan_x)) s'),
    reads: ['sqlscan_users', 'sqlscan_x'],
  },
  {
    name: 'function-style casts to types',
    q: raw('select date(now()), text(id), int8(org_id) from sqlscan_users'),
    reads: ['sqlscan_users'],
  },
  {
    name: 'only and inheritance star',
    q: raw('select * from only sqlscan_users, sqlscan_posts *'),
    reads: ['sqlscan_posts', 'sqlscan_users'],
  },
  {
    name: 'set operations without parentheses',
    q: raw('select id from sqlscan_users union all select id from sqlscan_posts except select id from sqlscan_x'),
    reads: ['sqlscan_posts', 'sqlscan_users', 'sqlscan_x'],
  },
  {
    name: 'TABLE statement and TABLE in a union',
    q: raw('table sqlscan_mat_view union table sqlscan_x'),
    reads: ['sqlscan_mat_view', 'sqlscan_x'],
  },
  { name: 'VALUES', q: raw('values (1, 2), (3, 4)'), reads: [] },
  { name: 'VALUES in FROM', q: raw('select * from (values (1), (2)) as v(a)'), reads: [] },
  {
    name: 'subqueries in select list, WHERE, ANY, ARRAY and HAVING',
    q: raw(
      `select (select count(*) from sqlscan_posts), array(select id from sqlscan_x)
       from sqlscan_users where id = any(select author_id from sqlscan_posts)
       group by id having count(*) > (select count(*) from sqlscan_app.orgs)`,
    ),
    reads: ['sqlscan_app.orgs', 'sqlscan_posts', 'sqlscan_users', 'sqlscan_x'],
  },
  {
    name: 'FROM inside function syntax is not a relation',
    q: raw(
      `select extract(year from now()), substring('abc' from 2 for 1), trim(both 'x' from 'xax'),
       overlay('abc' placing 'z' from 2), position('b' in 'abc') from sqlscan_users
       where name is not distinct from 'a' and name is distinct from 'b'`,
    ),
    reads: ['sqlscan_users'],
  },
  {
    name: 'casts with type modifiers are not calls',
    q: raw(
      `select id::numeric(10, 2), cast(name as varchar(10)), name::character varying(5), '1'::"numeric"(4)
       from sqlscan_users where id = any($1::int[])`,
      [[1, 2]],
    ),
    reads: ['sqlscan_users'],
  },
  {
    name: 'window functions and a WINDOW clause',
    q: raw(
      'select row_number() over w, count(*) filter (where id > 1) over (partition by org_id) from sqlscan_users window w as (order by id)',
    ),
    reads: ['sqlscan_users'],
  },
  {
    name: 'recursive CTE referencing itself',
    q: raw('with recursive t(n) as (select 1 union all select n + 1 from t where n < 5) select * from t'),
    reads: [],
    ctes: ['t'],
  },
  {
    name: 'recursive CTE with search and cycle clauses',
    q: raw(
      `with recursive t(id, p) as (select id, org_id from sqlscan_users union all select u.id, u.org_id from sqlscan_users u join t on u.org_id = t.id)
       search depth first by id set ord
       cycle id set is_cycle using path
       select * from t`,
    ),
    reads: ['sqlscan_users'],
    ctes: ['t'],
  },
  {
    name: 'non-recursive CTE body reads the table it shadows',
    q: raw(
      'with sqlscan_users as (select * from sqlscan_users where id > 1) select * from sqlscan_users, sqlscan_posts',
    ),
    reads: ['sqlscan_posts', 'sqlscan_users'],
    ctes: ['sqlscan_users'],
  },
  {
    name: 'a later CTE is not visible in an earlier body',
    q: raw('with a as (select * from sqlscan_x), sqlscan_x as (select 1 as id) select * from a, sqlscan_x'),
    reads: ['sqlscan_x'],
    ctes: ['a', 'sqlscan_x'],
  },
  {
    name: 'a CTE is not visible outside its subquery',
    q: raw('select * from (with sqlscan_x as (select 1 as id) select * from sqlscan_x) s, sqlscan_x'),
    reads: ['sqlscan_x'],
    ctes: ['sqlscan_x'],
  },
  {
    name: 'materialized / not materialized CTEs',
    q: raw(
      'with a as materialized (select * from sqlscan_users), b as not materialized (select * from sqlscan_posts) select * from a, b',
    ),
    reads: ['sqlscan_posts', 'sqlscan_users'],
    ctes: ['a', 'b'],
  },
  {
    name: 'data-modifying CTE',
    q: raw('with d as (delete from sqlscan_posts where id = 0 returning *) select * from d, sqlscan_users'),
    reads: ['sqlscan_users'],
    complete: false,
    ctes: ['d'],
  },
  { name: 'generate_series in FROM', q: raw('select * from generate_series(1, 3)'), reads: [], complete: false },
  {
    name: 'unnest with ordinality',
    q: raw('select * from sqlscan_users, unnest(array[1, 2]) with ordinality as t(v, n)'),
    reads: ['sqlscan_users'],
    complete: false,
  },
  {
    name: 'json_to_recordset',
    q: raw(`select * from json_to_recordset('[{"a":1}]') as x(a int)`),
    reads: [],
    complete: false,
  },
  {
    name: 'ROWS FROM',
    q: raw('select * from rows from (generate_series(1, 2), generate_series(3, 4))'),
    reads: [],
    complete: false,
  },
  {
    name: 'TABLESAMPLE',
    q: raw('select * from sqlscan_users tablesample bernoulli (10) repeatable (1)'),
    reads: ['sqlscan_users'],
    complete: false,
  },
  {
    name: 'xmltable',
    q: raw(`select * from xmltable('/r' passing ('<r/>'::xml) columns a int path 'a')`),
    reads: [],
    complete: false,
  },
  {
    name: 'lateral function join',
    q: raw('select * from sqlscan_users cross join lateral generate_series(1, id) g'),
    reads: ['sqlscan_users'],
    complete: false,
  },
  { name: 'FROM current_date', q: raw('select * from current_date'), reads: [], complete: false },
  { name: 'FROM $1', q: raw('select * from $1'), reads: [], complete: false, explain: false },
  {
    name: 'user function call',
    q: raw('select sqlscan_fn(id) from sqlscan_users'),
    reads: ['sqlscan_users'],
    complete: false,
  },
  { name: 'schema-qualified user function', q: raw('select public.sqlscan_fn(1)'), reads: [], complete: false },
  { name: 'nextval', q: raw(`select nextval('sqlscan_seq')`), reads: [], complete: false },
  {
    name: 'built-in functions only',
    q: raw('select lower(name), coalesce(org_id, 0), now() from sqlscan_users'),
    reads: ['sqlscan_users'],
  },
  {
    name: 'pg_catalog-qualified built-in',
    q: raw('select pg_catalog.lower(name) from sqlscan_users'),
    reads: ['sqlscan_users'],
  },
  {
    name: 'plain string with a backslash (depends on standard_conforming_strings)',
    q: raw(`select 'a\\b' from sqlscan_users`),
    reads: ['sqlscan_users'],
    complete: false,
  },
  {
    name: 'UESCAPE',
    q: raw(`select * from U&"sqlscan_!00DCni" uescape '!'`),
    reads: ['sqlscan_!00DCni'],
    complete: false,
  },
  {
    name: 'unbalanced parentheses',
    q: raw('select * from (select * from sqlscan_users'),
    reads: ['sqlscan_users'],
    complete: false,
    explain: false,
  },
  { name: 'unterminated string', q: raw(`select 'abc from sqlscan_users`), reads: [], complete: false, explain: false },
  {
    name: 'three-part name',
    q: raw('select * from somedb.sqlscan_app.orgs'),
    reads: ['sqlscan_app.orgs'],
    explain: false,
  },
  {
    name: 'semicolons separate statements; CTE scope ends at the semicolon',
    q: raw(
      "with sqlscan_x as (select 1) select * from sqlscan_x; select ';' from sqlscan_x; select 1 from sqlscan_users",
    ),
    reads: ['sqlscan_users', 'sqlscan_x'],
    ctes: ['sqlscan_x'],
    explain: false,
  },
];

describe('scanReads on Drizzle-generated SQL', () => {
  for (const c of drizzleCases) {
    it(c.name, async () => {
      const scan = scanReads(c.q.sql);
      expect(names(scan.relations), c.q.sql).toEqual([...c.reads].sort());
      expect(scan.complete, c.q.sql).toBe(c.complete ?? true);
      expect([...scan.ctes].sort()).toEqual(c.ctes ?? []);
      if (scan.complete) await expectPlanCovered(c.q.sql, c.q.params);
    });
  }
});

describe('scanReads on hand-written SQL', () => {
  for (const c of rawCases) {
    it(c.name, async () => {
      const scan = scanReads(c.q.sql);
      expect(names(scan.relations), c.q.sql).toEqual([...c.reads].sort());
      expect(scan.complete, c.q.sql).toBe(c.complete ?? true);
      expect([...scan.ctes].sort()).toEqual([...(c.ctes ?? [])].sort());
      if (c.explain !== false) {
        // The SQL is real: PostgreSQL plans it, and plans no relation we missed.
        if (scan.complete) await expectPlanCovered(c.q.sql, c.q.params);
        else await planRelations(c.q.sql, c.q.params);
      }
    });
  }

  it('an incomplete scan really can miss relations: the plan of a function in FROM shows them', async () => {
    const text = 'select * from sqlscan_srf()';
    expect(scanReads(text)).toEqual({ relations: [], ctes: [], complete: false });
    // The SQL function is inlined into the plan, which reads sqlscan_posts.
    expect(await planRelations(text, [])).toContain('public.sqlscan_posts');
  });
});

describe('classifyStatement', () => {
  const cases: {
    sql: string;
    kind: 'read' | 'write' | 'other';
    writes?: string[];
    writesComplete?: boolean;
    reads?: string[];
    locking?: boolean;
  }[] = [
    { sql: 'select * from sqlscan_users', kind: 'read', reads: ['sqlscan_users'] },
    {
      sql: '(select 1 from sqlscan_users) union (select 2 from sqlscan_x)',
      kind: 'read',
      reads: ['sqlscan_users', 'sqlscan_x'],
    },
    { sql: 'with a as (select * from sqlscan_users) select * from a', kind: 'read', reads: ['sqlscan_users'] },
    { sql: 'values (1)', kind: 'read', reads: [] },
    { sql: 'table sqlscan_users', kind: 'read', reads: ['sqlscan_users'] },
    { sql: 'show search_path', kind: 'read', reads: [] },
    {
      sql: 'select * from sqlscan_users where id = 1 for update',
      kind: 'read',
      reads: ['sqlscan_users'],
      locking: true,
    },
    { sql: 'select * from sqlscan_users for no key update of sqlscan_users skip locked', kind: 'read', locking: true },
    { sql: 'select * from sqlscan_users for key share', kind: 'read', locking: true },
    { sql: 'select * from (select * from sqlscan_users for share) s', kind: 'read', locking: true },
    {
      sql: 'insert into sqlscan_users (name) values ($1) returning id',
      kind: 'write',
      writes: ['sqlscan_users'],
      reads: [],
    },
    {
      sql: 'insert into sqlscan_posts as p (title) select name from sqlscan_users on conflict (id) do update set title = excluded.title',
      kind: 'write',
      writes: ['sqlscan_posts'],
      reads: ['sqlscan_users'],
    },
    {
      sql: 'update only sqlscan_users u set name = $1 where u.id = $2',
      kind: 'write',
      writes: ['sqlscan_users'],
      reads: [],
    },
    {
      sql: 'update sqlscan_users set name = p.title from sqlscan_posts p where p.author_id = sqlscan_users.id',
      kind: 'write',
      writes: ['sqlscan_users'],
      reads: ['sqlscan_posts'],
    },
    { sql: 'delete from only sqlscan_app.orgs where id = 1', kind: 'write', writes: ['sqlscan_app.orgs'], reads: [] },
    {
      sql: 'delete from sqlscan_users u using sqlscan_posts p, sqlscan_x where p.author_id = u.id',
      kind: 'write',
      writes: ['sqlscan_users'],
      reads: ['sqlscan_posts', 'sqlscan_x'],
    },
    {
      sql: `merge into sqlscan_users u using sqlscan_posts p on p.author_id = u.id
            when matched then update set name = p.title
            when not matched then insert (id, name) values (p.author_id, p.title)`,
      kind: 'write',
      writes: ['sqlscan_users'],
      reads: ['sqlscan_posts'],
    },
    {
      sql: 'with d as (delete from sqlscan_posts returning author_id) select * from sqlscan_users where id in (select author_id from d)',
      kind: 'write',
      writes: ['sqlscan_posts'],
      reads: ['sqlscan_users'],
    },
    {
      sql: 'with d as (update sqlscan_posts set title = null returning id) insert into sqlscan_x select id from d',
      kind: 'write',
      writes: ['sqlscan_posts', 'sqlscan_x'],
    },
    {
      sql: 'truncate table sqlscan_users, only sqlscan_posts restart identity',
      kind: 'write',
      writes: ['sqlscan_posts', 'sqlscan_users'],
    },
    { sql: 'truncate sqlscan_users cascade', kind: 'write', writes: ['sqlscan_users'], writesComplete: false },
    { sql: 'copy sqlscan_users (id, name) from stdin', kind: 'write', writes: ['sqlscan_users'] },
    { sql: 'copy sqlscan_users to stdout', kind: 'other', reads: ['sqlscan_users'] },
    { sql: 'copy (select * from sqlscan_posts) to stdout', kind: 'other', reads: ['sqlscan_posts'] },
    { sql: 'refresh materialized view concurrently sqlscan_mat_view', kind: 'write', writes: ['sqlscan_mat_view'] },
    { sql: 'alter table "sqlscan_x" add column y int', kind: 'write', writes: ['sqlscan_x'], writesComplete: false },
    {
      sql: 'drop table if exists sqlscan_x, sqlscan_app.orgs cascade',
      kind: 'write',
      writes: ['sqlscan_app.orgs', 'sqlscan_x'],
      writesComplete: false,
    },
    {
      sql: 'create table if not exists sqlscan_new as select * from sqlscan_users',
      kind: 'write',
      writes: ['sqlscan_new'],
      writesComplete: false,
      reads: ['sqlscan_users'],
    },
    {
      sql: 'create unique index concurrently if not exists i on only sqlscan_x (id)',
      kind: 'write',
      writes: ['sqlscan_x'],
      writesComplete: false,
    },
    { sql: 'grant select on sqlscan_x to public', kind: 'write', writes: [], writesComplete: false },
    { sql: 'do $$ begin delete from sqlscan_x; end $$', kind: 'write', writes: [], writesComplete: false },
    { sql: 'call some_proc()', kind: 'write', writes: [], writesComplete: false },
    { sql: 'execute prepared_thing(1)', kind: 'write', writes: [], writesComplete: false },
    {
      sql: 'select * into temp sqlscan_tmp from sqlscan_users',
      kind: 'write',
      writes: ['sqlscan_tmp'],
      writesComplete: false,
      reads: ['sqlscan_users'],
    },
    { sql: 'explain select * from sqlscan_users', kind: 'other' },
    { sql: 'explain (analyze, buffers) delete from sqlscan_x', kind: 'write', writes: ['sqlscan_x'] },
    { sql: 'lock table sqlscan_users in exclusive mode', kind: 'other', locking: true },
    ...[
      'begin',
      'start transaction isolation level serializable',
      'commit',
      'rollback',
      'savepoint s1',
      'release savepoint s1',
      'rollback to savepoint s1',
      'set search_path to public',
      'reset all',
      'listen ch',
      "notify ch, 'x'",
      'discard all',
      'vacuum sqlscan_users',
      'analyze sqlscan_users',
      'deallocate all',
    ].map((s) => ({ sql: s, kind: 'other' as const, writes: [], reads: [] })),
    { sql: 'begin; select * from sqlscan_users; commit', kind: 'read', reads: ['sqlscan_users'] },
    { sql: 'set x.y = 1; select * from sqlscan_users', kind: 'read', reads: ['sqlscan_users'] },
    {
      sql: 'select * from sqlscan_users; delete from sqlscan_x;',
      kind: 'write',
      writes: ['sqlscan_x'],
      reads: ['sqlscan_users'],
    },
    { sql: "select ';delete from sqlscan_x' from sqlscan_users", kind: 'read', writes: [] },
    { sql: '-- only a comment\n;;', kind: 'other', writes: [], reads: [] },
    { sql: 'frobnicate sqlscan_users', kind: 'write', writes: [], writesComplete: false },
    {
      // With standard_conforming_strings off this is one string followed by a DELETE.
      sql: "select 'x\\' , '; delete from sqlscan_x; --' from sqlscan_users",
      kind: 'write',
      writes: [],
      writesComplete: false,
      reads: ['sqlscan_users'],
    },
    { sql: "select E'x\\' , '; delete from sqlscan_x; --' from sqlscan_users", kind: 'write', writes: ['sqlscan_x'] },
  ];
  for (const c of cases) {
    it(`${c.kind}: ${c.sql.replace(/\s+/g, ' ')}`, () => {
      const r = classifyStatement(c.sql);
      expect(r.kind).toBe(c.kind);
      if (c.writes) expect(names(r.writes)).toEqual([...c.writes].sort());
      expect(r.writesComplete).toBe(c.writesComplete ?? true);
      if (c.reads) expect(names(r.reads.relations)).toEqual([...c.reads].sort());
      expect(r.locking).toBe(c.locking ?? false);
    });
  }

  it('a call to an unknown function makes the statement a possible write', () => {
    const r = classifyStatement('select sqlscan_fn(id) from sqlscan_users');
    expect(r).toMatchObject({ kind: 'write', writes: [], writesComplete: false, unknownFunctions: ['sqlscan_fn'] });
    expect(r.reads).toEqual({ relations: [{ name: 'sqlscan_users' }], ctes: [], complete: false });
    expect(classifyStatement(`select nextval('sqlscan_seq')`)).toMatchObject({
      kind: 'write',
      writesComplete: false,
      unknownFunctions: ['nextval'],
    });
    expect(classifyStatement('select * from public.sqlscan_srf()').unknownFunctions).toEqual(['public.sqlscan_srf']);
    expect(classifyStatement('select * from sqlscan_users where id = "Weird"(1)').unknownFunctions).toEqual(['Weird']);
    // Built-ins in FROM leave the reads incomplete but are not writes.
    const series = classifyStatement('select * from generate_series(1, 3)');
    expect(series).toMatchObject({ kind: 'read', writesComplete: true, unknownFunctions: [] });
    expect(series.reads.complete).toBe(false);
    // Parentheses after statement keywords, types and targets are not calls.
    for (const text of [
      'select * from sqlscan_users tablesample system (10) repeatable (42)',
      'copy (select 1) to stdout',
      'explain (costs off) select 1',
      'vacuum (verbose) sqlscan_users',
      'prepare p1 (int) as select * from sqlscan_users where id = $1',
      'insert into sqlscan_users (id) values (1)',
      `select '1'::numeric(4), cast(1 as varchar(3)) as "x"(y)`,
    ]) {
      expect(classifyStatement(text).unknownFunctions, text).toEqual([]);
    }
  });

  it('safeFunctions declares functions that touch no relation', () => {
    const text = 'select my_pure(id), "MyPure"(1), util.f(2) from sqlscan_users';
    expect(classifyStatement(text).unknownFunctions.sort()).toEqual(['MyPure', 'my_pure', 'util.f']);
    const r = classifyStatement(text, { safeFunctions: ['my_pure', 'MyPure', 'util.f'] });
    expect(r).toMatchObject({ kind: 'read', writesComplete: true, unknownFunctions: [] });
    expect(r.reads.complete).toBe(true);
    expect(scanReads(text, { safeFunctions: ['my_pure', 'MyPure', 'util.f'] }).complete).toBe(true);
  });

  it('classifies Drizzle writes with their targets', () => {
    const insert = classifyStatement(q(db.insert(users).values({ name: 'a' }).returning()).sql);
    expect(insert).toMatchObject({ kind: 'write', writesComplete: true, locking: false });
    expect(names(insert.writes)).toEqual(['sqlscan_users']);
    const upsert = classifyStatement(
      q(
        db
          .insert(orgs)
          .values({ name: 'a' })
          .onConflictDoUpdate({ target: orgs.id, set: { name: 'b' } }),
      ).sql,
    );
    expect(names(upsert.writes)).toEqual(['sqlscan_app.orgs']);
    const withUpdate = classifyStatement(
      q(
        db
          .with(wUsers)
          .update(users)
          .set({ name: 'y' })
          .where(inArray(users.id, db.select({ id: wUsers.id }).from(wUsers))),
      ).sql,
    );
    expect(withUpdate.kind).toBe('write');
    expect(names(withUpdate.writes)).toEqual(['sqlscan_users']);
    expect(names(withUpdate.reads.relations)).toEqual(['sqlscan_users']);
    const dataModifying = classifyStatement(q(db.with(gone).select().from(gone)).sql);
    expect(dataModifying.kind).toBe('write');
    expect(names(dataModifying.writes)).toEqual(['sqlscan_posts']);
    const locked = classifyStatement(q(db.select().from(users).for('update', { skipLocked: true })).sql);
    expect(locked).toMatchObject({ kind: 'read', locking: true });
  });
});

/** A small deterministic PRNG so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Generates random valid queries over the test tables, remembering which tables it used, so the
 * scan can be checked for exact equality and PostgreSQL can check that the SQL is real.
 */
class QueryGenerator {
  private aliasCount = 0;
  private cteCount = 0;
  readonly used = new Set<string>();
  constructor(private readonly next: () => number) {}

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }

  private kw(word: string): string {
    return this.next() < 0.3 ? word.toUpperCase() : word;
  }

  /** Whitespace, sometimes with a comment that mentions a relation that must not be reported. */
  private ws(): string {
    const r = this.next();
    if (r < 0.05) return ' /* from sqlscan_secret join "sqlscan_secret" */ ';
    if (r < 0.1) return ' -- from sqlscan_secret\n';
    return ' ';
  }

  private table(): string {
    const [expected, spellings] = this.pick([
      ['sqlscan_users', ['sqlscan_users', '"sqlscan_users"', 'SQLSCAN_USERS', 'public.sqlscan_users']],
      ['sqlscan_posts', ['sqlscan_posts', '"sqlscan_posts"']],
      ['sqlscan_x', ['sqlscan_x', 'ONLY sqlscan_x', 'sqlscan_x *']],
      ['sqlscan_app.orgs', ['sqlscan_app.orgs', '"sqlscan_app"."orgs"', 'sqlscan_app . "orgs"']],
    ] as const);
    const spelling = this.pick(spellings);
    this.used.add(spelling === 'public.sqlscan_users' ? 'public.sqlscan_users' : expected);
    return spelling;
  }

  private alias(): string {
    const name = `a${this.aliasCount++}`;
    return this.pick([` ${name}`, ` as ${name}`, ` "${name}"`]);
  }

  private fromItem(depth: number, ctes: string[]): string {
    const r = this.next();
    if (depth > 2 || r < 0.4) {
      if (ctes.length > 0 && this.next() < 0.3) return `${this.pick(ctes)}${this.alias()}`;
      return `${this.table()}${this.alias()}`;
    }
    if (r < 0.6) return `(${this.query(depth + 1, ctes)})${this.alias()}`;
    if (r < 0.7) return `${this.kw('lateral')} (${this.query(depth + 1, ctes)})${this.alias()}`;
    return `(${this.joinChain(depth + 1, ctes)})`;
  }

  private joinChain(depth: number, ctes: string[]): string {
    let out = this.fromItem(depth, ctes);
    const n = 1 + Math.floor(this.next() * 2);
    for (let k = 0; k < n; k++) {
      const kind = this.pick(['join', 'inner join', 'left join', 'left outer join', 'right join', 'full join']);
      if (this.next() < 0.2) out += `${this.ws()}${this.kw('cross join')} ${this.fromItem(depth, ctes)}`;
      else out += `${this.ws()}${this.kw(kind)} ${this.fromItem(depth, ctes)} ${this.kw('on')} true`;
    }
    return out;
  }

  private fromClause(depth: number, ctes: string[]): string {
    const items = [this.next() < 0.5 ? this.joinChain(depth, ctes) : this.fromItem(depth, ctes)];
    while (this.next() < 0.3) items.push(this.fromItem(depth, ctes));
    // After a JOIN ... ON, a comma still continues the FROM list.
    return items.join(`,${this.ws()}`);
  }

  private condition(depth: number, ctes: string[]): string {
    if (depth > 2) return 'true';
    return this.pick([
      () => `${this.kw('exists')} (${this.query(depth + 1, ctes)})`,
      () => `1 ${this.kw('in')} (${this.query(depth + 1, ctes)})`,
      () => `1 = ${this.kw('any')}(${this.kw('array')}(${this.query(depth + 1, ctes)}))`,
      () => `'from sqlscan_secret' ${this.kw('is not distinct from')} 'x'`,
      () => 'true',
    ])();
  }

  private simple(depth: number, ctes: string[]): string {
    const value =
      depth < 3 && this.next() < 0.2 ? `(${this.kw('select')} count(*) ${this.kw('from')} ${this.table()})` : '1';
    let out = `${this.kw('select')} ${value} ${this.kw('as')} id${this.ws()}${this.kw('from')} ${this.fromClause(depth, ctes)}`;
    if (this.next() < 0.5) out += `${this.ws()}${this.kw('where')} ${this.condition(depth, ctes)}`;
    return out;
  }

  query(depth: number, visible: string[]): string {
    let ctes = visible;
    let prefix = '';
    if (depth < 2 && this.next() < 0.25) {
      const defs: string[] = [];
      ctes = [...visible];
      const n = 1 + Math.floor(this.next() * 2);
      for (let k = 0; k < n; k++) {
        const name = `c${this.cteCount++}`;
        defs.push(`${name} ${this.kw('as')} (${this.simple(depth + 1, ctes)})`);
        ctes.push(name);
      }
      prefix = `${this.kw('with')} ${defs.join(', ')} `;
    }
    const r = this.next();
    if (depth < 2 && r < 0.15) {
      const op = this.pick(['union', 'union all', 'intersect', 'except', 'except all']);
      return `${prefix}(${this.simple(depth, ctes)}) ${this.kw(op)} (${this.simple(depth, ctes)})`;
    }
    if (depth < 2 && r < 0.25)
      return `${prefix}${this.simple(depth, ctes)} ${this.kw('union')} ${this.simple(depth, ctes)}`;
    return `${prefix}${this.simple(depth, ctes)}`;
  }
}

describe('generated queries', () => {
  it('report exactly the tables they use, and PostgreSQL plans nothing else', async () => {
    const next = rng(2024);
    for (let n = 0; n < 400; n++) {
      const gen = new QueryGenerator(next);
      const text = gen.query(0, []);
      const scan = scanReads(text);
      expect(scan.complete, text).toBe(true);
      expect(names(scan.relations), text).toEqual([...gen.used].sort());
      await expectPlanCovered(text, []);
    }
  });
});

describe('robustness', () => {
  const fragments = [
    'select',
    'from',
    'join',
    'lateral',
    'with',
    'recursive',
    'as',
    '(',
    ')',
    '[',
    ']',
    ',',
    ';',
    '.',
    '"a"',
    '"',
    "'",
    "E'\\'",
    '$$',
    '$t$',
    '$1',
    '--',
    '/*',
    '*/',
    'x',
    'only',
    'union',
    'insert into',
    'delete from',
    'update',
    'set',
    'returning',
    'where',
    'in',
    'is distinct from',
    'rows from',
    'for update',
    'into',
    'table',
    'using',
    'on',
    'U&"',
    'uescape',
    '::',
    '*',
    '0x1f',
    '1e',
    'ü',
    '\n',
  ];

  it('random token soup never throws and always returns a well-formed answer', () => {
    const next = rng(42);
    for (let n = 0; n < 3000; n++) {
      const len = Math.floor(next() * 40);
      let text = '';
      for (let k = 0; k < len; k++)
        text += `${fragments[Math.floor(next() * fragments.length)]}${next() < 0.7 ? ' ' : ''}`;
      const r = classifyStatement(text);
      expect(['read', 'write', 'other']).toContain(r.kind);
      expect(typeof r.reads.complete).toBe('boolean');
      for (const rel of [...r.reads.relations, ...r.writes]) expect(typeof rel.name).toBe('string');
    }
  });

  it('random characters and mangled real queries never throw', () => {
    const next = rng(7);
    const corpus = [...drizzleCases, ...rawCases].map((c) => c.q.sql);
    for (let n = 0; n < 2000; n++) {
      const base = corpus[Math.floor(next() * corpus.length)] as string;
      const a = Math.floor(next() * base.length);
      const b = Math.floor(next() * base.length);
      const mangled = base.slice(0, Math.min(a, b)) + base.slice(Math.max(a, b)) + base.slice(a, b);
      expect(() => classifyStatement(mangled)).not.toThrow();
      let garbage = '';
      for (let k = 0; k < 60; k++) garbage += String.fromCharCode(Math.floor(next() * 0x3000));
      expect(() => classifyStatement(garbage)).not.toThrow();
    }
  });

  it('handles pathological nesting and length without throwing', () => {
    const deep = `${'('.repeat(50_000)}select 1 from a${')'.repeat(50_000)}`;
    expect(scanReads(deep).complete).toBe(false);
    const deepSelect = `${'select * from ('.repeat(5_000)}select 1${') s'.repeat(5_000)}`;
    expect(scanReads(deepSelect).complete).toBe(false);
    const unclosed = 'select * from ('.repeat(20_000);
    expect(scanReads(unclosed).complete).toBe(false);
    const chain = Array.from({ length: 5_000 }, (_, k) => `c${k} as (select * from ${k === 0 ? 'base' : `c${k - 1}`})`);
    const scan = scanReads(`with ${chain.join(', ')} select * from c4999`);
    expect(scan.ctes).toHaveLength(5_000);
    // Each body reads the CTE defined before it; only the first reads a table.
    expect(names(scan.relations)).toEqual(['base']);
    const wide = `select * from ${Array.from({ length: 20_000 }, (_, k) => `t${k}`).join(', ')}`;
    expect(scanReads(wide).relations).toHaveLength(20_000);
    const nestedWith = `${'select * from (with a as (select 1) '.repeat(300)}select 1${') s'.repeat(300)}`;
    expect(() => scanReads(nestedWith)).not.toThrow();
  });
});

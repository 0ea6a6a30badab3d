import { randomUUID } from 'node:crypto';
import { and, count, desc, eq, gt, sql } from 'drizzle-orm';
import type { DemoDb } from './backend.js';
import { CATEGORIES, inventory, pageViews, payments, products, SIZES, type TableName, users } from './schema.js';

/** What the latency columns of a table measure: its reads, or (for write-heavy tables) its writes. */
export const MEASURED: Record<TableName, 'read' | 'write'> = {
  users: 'read',
  products: 'read',
  inventory: 'read',
  page_views: 'write',
  payments: 'read',
};

/** A bounded sample of latencies (reservoir sampling), in milliseconds. */
export class Series {
  private readonly samples: number[] = [];
  private seen = 0;

  constructor(private readonly capacity = 20_000) {}

  add(ms: number): void {
    this.seen++;
    if (this.samples.length < this.capacity) this.samples.push(ms);
    else {
      const i = Math.floor(Math.random() * this.seen);
      if (i < this.capacity) this.samples[i] = ms;
    }
  }

  /** p50 and p99 in milliseconds (0 without samples) and how many were measured. */
  summary(): { p50: number; p99: number; samples: number } {
    const sorted = [...this.samples].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
    return { p50: at(0.5), p99: at(0.99), samples: this.seen };
  }
}

/** Operation counts and latencies of one table. */
export interface TableActivity {
  reads: number;
  writes: number;
  /** Latency of the measured operation through the cached client. */
  cached: Series;
  /** Latency of the same operation run directly on the database (a sample). */
  direct: Series;
}

/** Everything the workload records. */
export class Recorder {
  readonly tables = new Map<TableName, TableActivity>();
  operations = 0;
  errorCount = 0;
  /** The first few distinct error messages. */
  readonly errors: string[] = [];

  of(table: TableName): TableActivity {
    let activity = this.tables.get(table);
    if (!activity) {
      activity = { reads: 0, writes: 0, cached: new Series(), direct: new Series() };
      this.tables.set(table, activity);
    }
    return activity;
  }

  error(error: unknown): void {
    this.errorCount++;
    const message = error instanceof Error ? error.message : String(error);
    if (this.errors.length < 10 && !this.errors.includes(message)) this.errors.push(message);
  }
}

/** The workload's knobs. */
export interface WorkloadOptions {
  /** The client with the cache. */
  db: DemoDb;
  /** The same database without the cache, for the direct latency sample. */
  raw: DemoDb;
  recorder: Recorder;
  durationMs: number;
  concurrency: number;
  /** Share of measured operations also run directly on the database. @default 0.1 */
  directSample?: number;
}

type Access = (client: DemoDb) => Promise<unknown>;

/** One simulated request; runs its statements through `ctx`. */
type Operation = (ctx: Context) => Promise<void>;

class Context {
  constructor(
    readonly options: WorkloadOptions,
    private readonly sample: number,
  ) {}

  get db(): DemoDb {
    return this.options.db;
  }

  /** Runs a statement through the cache, timing it, and now and then directly on the database too. */
  async run(table: TableName, kind: 'read' | 'write', access: Access, repeatable = kind === 'read'): Promise<void> {
    const activity = this.options.recorder.of(table);
    if (kind === 'read') activity.reads++;
    else activity.writes++;
    const measured = MEASURED[table] === kind;
    const started = performance.now();
    await access(this.options.db);
    if (!measured) return;
    activity.cached.add(performance.now() - started);
    if (repeatable && Math.random() < this.sample) {
      const t = performance.now();
      await access(this.options.raw);
      activity.direct.add(performance.now() - t);
    }
  }

  /** Counts statements run inside a transaction (not timed one by one). */
  count(table: TableName, kind: 'read' | 'write'): void {
    const activity = this.options.recorder.of(table);
    if (kind === 'read') activity.reads++;
    else activity.writes++;
  }
}

/** An id from 1 to n, skewed: 90% of picks fall in the first 5% (the hot set). */
export function hotId(n: number): number {
  const hot = Math.max(1, Math.ceil(n * 0.05));
  return 1 + Math.floor(Math.random() * (Math.random() < 0.9 ? hot : n));
}

const viewProduct: Operation = async (ctx) => {
  const productId = hotId(SIZES.products);
  await ctx.run('products', 'read', (c) => c.select().from(products).where(eq(products.id, productId)));
  await ctx.run('inventory', 'read', (c) => c.select().from(inventory).where(eq(inventory.productId, productId)));
  const userId = hotId(SIZES.users);
  // Each run inserts its own row, so the direct sample is a second, independent page view.
  await ctx.run(
    'page_views',
    'write',
    (c) => c.insert(pageViews).values({ id: randomUUID(), productId, userId, viewedAt: new Date() }),
    true,
  );
};

const viewUser: Operation = async (ctx) => {
  const id = hotId(SIZES.users);
  await ctx.run('users', 'read', (c) => c.select().from(users).where(eq(users.id, id)));
};

const browseCategory: Operation = async (ctx) => {
  const category = CATEGORIES[Math.floor(Math.random() * CATEGORIES.length)] as string;
  await ctx.run('products', 'read', (c) =>
    c.select().from(products).where(eq(products.category, category)).orderBy(products.id).limit(20),
  );
};

const userPayments: Operation = async (ctx) => {
  const userId = hotId(SIZES.users);
  await ctx.run('payments', 'read', (c) =>
    c.select().from(payments).where(eq(payments.userId, userId)).orderBy(desc(payments.createdAt)).limit(5),
  );
};

const productViews: Operation = async (ctx) => {
  const productId = hotId(SIZES.products);
  await ctx.run('page_views', 'read', (c) =>
    c.select({ views: count() }).from(pageViews).where(eq(pageViews.productId, productId)),
  );
};

const purchase: Operation = async (ctx) => {
  const productId = hotId(SIZES.products);
  const userId = hotId(SIZES.users);
  await ctx.db.transaction(async (tx) => {
    const [item] = await tx
      .update(inventory)
      .set({ stock: sql`${inventory.stock} - 1` })
      .where(and(eq(inventory.productId, productId), gt(inventory.stock, 0)))
      .returning();
    ctx.count('inventory', 'write');
    if (!item) return;
    const [product] = await tx.select().from(products).where(eq(products.id, productId));
    ctx.count('products', 'read');
    await tx.insert(payments).values({
      id: randomUUID(),
      userId,
      productId,
      amount: product?.price ?? '0',
      createdAt: new Date(),
    });
    ctx.count('payments', 'write');
  });
};

const restock: Operation = async (ctx) => {
  const productId = hotId(SIZES.products);
  await ctx.run('inventory', 'write', (c) =>
    c
      .update(inventory)
      .set({ stock: sql`${inventory.stock} + 25` })
      .where(eq(inventory.productId, productId)),
  );
};

const updateUser: Operation = async (ctx) => {
  const id = hotId(SIZES.users);
  const email = `user${id}+${Date.now() % 1000}@shop.example`;
  await ctx.run('users', 'write', (c) => c.update(users).set({ email }).where(eq(users.id, id)));
};

const reprice: Operation = async (ctx) => {
  const id = hotId(SIZES.products);
  const price = (5 + Math.random() * 200).toFixed(2);
  await ctx.run('products', 'write', (c) => c.update(products).set({ price }).where(eq(products.id, id)));
};

/** The request mix, with weights: mostly reads of a hot set, some writes. */
const MIX: readonly [Operation, number][] = [
  [viewProduct, 40],
  [viewUser, 30],
  [browseCategory, 14],
  [userPayments, 8],
  [productViews, 4],
  [purchase, 2],
  [restock, 0.5],
  [updateUser, 1],
  [reprice, 0.5],
];
const TOTAL_WEIGHT = MIX.reduce((sum, [, w]) => sum + w, 0);

function pick(): Operation {
  let r = Math.random() * TOTAL_WEIGHT;
  for (const [op, w] of MIX) {
    r -= w;
    if (r < 0) return op;
  }
  return viewUser;
}

/** Runs the mix with `concurrency` workers until `durationMs` has passed. */
export async function runWorkload(options: WorkloadOptions): Promise<void> {
  const ctx = new Context(options, options.directSample ?? 0.1);
  const end = performance.now() + options.durationMs;
  const worker = async () => {
    let lastYield = performance.now();
    while (performance.now() < end) {
      try {
        await pick()(ctx);
      } catch (error) {
        options.recorder.error(error);
      }
      options.recorder.operations++;
      // Cache hits resolve without I/O; yield now and then so the live view can redraw.
      if (performance.now() - lastYield > 20) {
        await new Promise((resolve) => setImmediate(resolve));
        lastYield = performance.now();
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
}

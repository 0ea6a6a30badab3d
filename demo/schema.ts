import { randomUUID } from 'node:crypto';
import { integer, numeric, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';

/** Shoppers: read on every page, rarely written (cache-aside). */
export const users = pgTable('users', {
  id: integer('id').primaryKey(),
  name: text('name').notNull(),
  email: text('email').notNull(),
});

/** The catalogue: read constantly, repriced now and then (write-through). */
export const products = pgTable('products', {
  id: integer('id').primaryKey(),
  title: text('title').notNull(),
  category: text('category').notNull(),
  price: numeric('price', { precision: 10, scale: 2 }).notNull(),
});

/** Stock per product: read with every product page, written by purchases (write-through). */
export const inventory = pgTable('inventory', {
  productId: integer('product_id').primaryKey(),
  stock: integer('stock').notNull(),
});

/** One row per product page view: many writes that may land a moment later (write-back). */
export const pageViews = pgTable('page_views', {
  id: uuid('id')
    .primaryKey()
    .$defaultFn(() => randomUUID()),
  productId: integer('product_id').notNull(),
  userId: integer('user_id').notNull(),
  viewedAt: timestamp('viewed_at', { withTimezone: true }).notNull(),
});

/** Money: never cached (none). */
export const payments = pgTable('payments', {
  id: uuid('id')
    .primaryKey()
    .$defaultFn(() => randomUUID()),
  userId: integer('user_id').notNull(),
  productId: integer('product_id').notNull(),
  amount: numeric('amount', { precision: 10, scale: 2 }).notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
});

/** The demo's tables by their database names, in display order. */
export const TABLES = ['users', 'products', 'inventory', 'page_views', 'payments'] as const;
/** A table of the demo, by database name. */
export type TableName = (typeof TABLES)[number];

/** Drops and creates the demo's tables (in the current schema). */
export const DDL = `
  drop table if exists users, products, inventory, page_views, payments;
  create table users (id integer primary key, name text not null, email text not null);
  create table products (id integer primary key, title text not null, category text not null, price numeric(10, 2) not null);
  create table inventory (product_id integer primary key, stock integer not null);
  create table page_views (id uuid primary key, product_id integer not null, user_id integer not null, viewed_at timestamptz not null);
  create index page_views_product on page_views (product_id);
  create table payments (id uuid primary key, user_id integer not null, product_id integer not null, amount numeric(10, 2) not null, created_at timestamptz not null);
  create index payments_user on payments (user_id, created_at desc);
`;

/** How many rows the seed creates. */
export const SIZES = { users: 1000, products: 300 } as const;
/** Product categories. */
export const CATEGORIES = ['books', 'games', 'garden', 'kitchen', 'music', 'outdoor', 'tools', 'toys'] as const;

const FIRST = ['Ada', 'Alan', 'Barbara', 'Donald', 'Edsger', 'Frances', 'Grace', 'Ken', 'Leslie', 'Margaret'];
const THINGS = ['Lamp', 'Kettle', 'Chair', 'Puzzle', 'Guitar', 'Tent', 'Hammer', 'Novel', 'Rake', 'Kite'];

/** Seed rows, deterministic so that runs are comparable. */
export function seedRows() {
  const userRows = Array.from({ length: SIZES.users }, (_, i) => {
    const name = `${FIRST[i % FIRST.length]} ${i + 1}`;
    return { id: i + 1, name, email: `user${i + 1}@shop.example` };
  });
  const productRows = Array.from({ length: SIZES.products }, (_, i) => ({
    id: i + 1,
    title: `${THINGS[i % THINGS.length]} #${i + 1}`,
    category: CATEGORIES[i % CATEGORIES.length] as string,
    price: (5 + ((i * 37) % 200) + 0.99).toFixed(2),
  }));
  const inventoryRows = productRows.map((p) => ({ productId: p.id, stock: 50 + ((p.id * 13) % 100) }));
  return { users: userRows, products: productRows, inventory: inventoryRows };
}

import { integer, pgTable, text } from 'drizzle-orm/pg-core';

export const users = pgTable('users', {
  id: integer('id').primaryKey(),
  name: text('name').notNull(),
});

export const payments = pgTable('payments', {
  id: integer('id').primaryKey(),
  userId: integer('user_id').notNull(),
  amount: integer('amount').notNull(),
});

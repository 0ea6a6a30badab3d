import { describe, expect, it } from 'vitest';
import { eventLikeName, nameWords, sensitiveData } from '../../src/advisor/index.js';

describe('nameWords', () => {
  it('splits snake_case, camelCase, acronyms and digits into lowercase words', () => {
    expect(nameWords('user_sessions')).toEqual(['user', 'sessions']);
    expect(nameWords('userSessions')).toEqual(['user', 'sessions']);
    expect(nameWords('APITokens')).toEqual(['api', 'tokens']);
    expect(nameWords('orders2024')).toEqual(['orders', '2024']);
    expect(nameWords('log-in.events')).toEqual(['log', 'in', 'events']);
  });
});

describe('sensitiveData', () => {
  it.each([
    ['payments', 'payment'],
    ['invoices', 'invoice'],
    ['general_ledger', 'ledger'],
    ['bank_transactions', 'transaction'],
    ['audit_log', 'audit'],
    ['auditlog', 'audit'],
    ['log_in_attempts', 'log in'],
    ['logins', 'login'],
    ['user_sessions', 'session'],
    ['api_tokens', 'token'],
    ['password_resets', 'password'],
    ['secrets', 'secret'],
    ['credit_notes', 'credit'],
    ['account_balances', 'balance'],
    ['refunds', 'refund'],
    ['PaymentMethods', 'payment'],
  ])('flags the table %s (matches "%s")', (name, word) => {
    expect(sensitiveData(name, ['id'])).toBe(`the table name ${JSON.stringify(name)} contains "${word}"`);
  });

  it('flags a table by a column holding secrets or money', () => {
    expect(sensitiveData('users', ['id', 'passwordHash'])).toBe('column "passwordHash" contains "password"');
    expect(sensitiveData('accounts', ['id', 'balance'])).toBe('column "balance" contains "balance"');
    expect(sensitiveData('customers', ['id', 'credit_card_last4'])).toBe(
      'column "credit_card_last4" contains "credit card"',
    );
    expect(sensitiveData('invites', ['id', 'token'])).toBe('column "token" contains "token"');
  });

  it('leaves ordinary tables alone, including names that merely contain a short stem', () => {
    for (const name of ['products', 'orders', 'users', 'accounts', 'discounts', 'catalog', 'blog_posts', 'logos']) {
      expect(sensitiveData(name, ['id', 'name', 'created_at', 'amount']), name).toBeUndefined();
    }
  });
});

describe('eventLikeName', () => {
  it('recognizes counters, events and metrics', () => {
    expect(eventLikeName('page_counters')).toBe('counter');
    expect(eventLikeName('click_events')).toBe('event');
    expect(eventLikeName('daily_metrics')).toBe('metric');
    expect(eventLikeName('page_views')).toBe('page view');
    expect(eventLikeName('pageviews')).toBe('pageview');
  });

  it('does not match words that only start like one', () => {
    for (const name of ['accounts', 'countries', 'status', 'states', 'eventual_settings', 'visitors_profile']) {
      expect(eventLikeName(name), name).toBeUndefined();
    }
  });
});

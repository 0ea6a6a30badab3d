import type { Policy, PolicyInput } from './types.js';
import { validatePolicy } from './validate.js';

/**
 * Declares a policy in code. With `definePolicy<typeof schema>(...)` table names autocomplete and a
 * misspelled table is a compile error. Validates at runtime too; throws PolicyError listing every problem.
 */
export function definePolicy<TSchema = never>(input: PolicyInput<TSchema>): Policy {
  return validatePolicy(input);
}

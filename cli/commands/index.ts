import type { CliCommand } from '../command.js';
import { command as advise } from './advise.js';
import { command as bump } from './bump.js';
import { command as check } from './check.js';
import { command as invalidate } from './invalidate.js';
import { command as stats } from './stats.js';
import { command as verify } from './verify.js';
import { command as worker } from './worker.js';
import { command as writeback } from './writeback.js';

/** Every `tablecache` subcommand, in the order `tablecache --help` lists them. */
export const commands: readonly CliCommand[] = [check, stats, invalidate, bump, verify, advise, writeback, worker];

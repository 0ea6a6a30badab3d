// Runs `tablecache verify` alone (as cli/main.ts would dispatch it once registered), for tests
// that spawn the command.
import { command } from '../../cli/commands/verify.js';
import { CliError } from '../../cli/errors.js';
import { PolicyError } from '../../src/errors.js';

try {
  process.exitCode = await command.run(process.argv.slice(2));
} catch (error) {
  console.error(`tablecache verify: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = error instanceof CliError ? error.exitCode : error instanceof PolicyError ? 1 : 2;
}

// Runs `tablecache worker` in a child process for the crash tests (independent of the CLI dispatcher).
import { command } from '../../../cli/commands/worker.js';

process.exitCode = await command.run(process.argv.slice(2));

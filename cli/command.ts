/** One `tablecache` subcommand; `cli/commands/index.ts` lists them for the dispatcher. */
export interface CliCommand {
  /** The word that selects the command: `tablecache <name> ...`. */
  name: string;
  /** One line for the command list of `tablecache --help`. */
  summary: string;
  /** The full help text printed by `tablecache <name> --help`. */
  usage: string;
  /** Runs the command with the arguments after its name; resolves to the process exit code. */
  run(argv: string[]): Promise<number>;
}

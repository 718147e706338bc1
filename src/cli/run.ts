// How every command runs: load the settings (a bad one exits 1 with its message), open the database,
// do the work, close the database, and leave the exit code: 0 done, 1 failed, or what `explain` says.
import { ConfigError, loadConfig, type Config } from "../config.ts";
import { openDatabase, type Sql } from "../db/pool.ts";

/** A failure the command understands: its one-line message and the exit code it means. */
export interface KnownFailure {
  message: string;
  exitCode: number;
}

export interface Command<Settings extends { config: Config }> {
  /** The prefix of every line the command writes to standard error ("migrate: ..."). */
  name: string;
  /** What the work needs besides the database, made from the loaded settings; `{ config }` when left out. */
  prepare?: (config: Config) => Settings;
  run(settings: Settings, sql: Sql): Promise<void>;
  /** The failures told by their message alone; any other is printed whole (with its stack) and exits 1. */
  explain?: (error: unknown) => KnownFailure | undefined;
}

export async function runCommand<Settings extends { config: Config }>(command: Command<Settings>): Promise<void> {
  let database: Awaited<ReturnType<typeof openDatabase>> | undefined;
  try {
    const loaded = loadConfig();
    const settings = command.prepare ? command.prepare(loaded) : ({ config: loaded } as Settings);
    database = await openDatabase(settings.config);
    await command.run(settings, database.sql);
  } catch (error) {
    const known = error instanceof ConfigError ? { message: error.message, exitCode: 1 } : command.explain?.(error);
    if (known) console.error(`${command.name}: ${known.message}`);
    else console.error(`${command.name}:`, error);
    process.exitCode = known?.exitCode ?? 1;
  } finally {
    await database?.close();
  }
}

/** Every `Error` told by its message, exit code 1. */
export function byMessage(error: unknown): KnownFailure | undefined {
  return error instanceof Error ? { message: error.message, exitCode: 1 } : undefined;
}

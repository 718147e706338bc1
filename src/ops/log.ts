// The server's logger, shared by every module and handed to Better Auth, so one LOG_LEVEL governs
// both. pino writes one JSON object per line (production); development gets the same lines as
// readable text. Secrets never reach a line: fields named like a secret are censored at any depth and
// email addresses are masked wherever they appear (OWASP Logging Cheat Sheet: no credentials, tokens or
// personal data).
import pino from "pino";
import type { LogFormat, LogLevel } from "../config.ts";

export interface Logger {
  level: LogLevel;
  /** `details`: plain objects become fields of the line, errors its `err`, anything else joins the message. */
  debug(message: string, ...details: unknown[]): void;
  info(message: string, ...details: unknown[]): void;
  warn(message: string, ...details: unknown[]): void;
  error(message: string, ...details: unknown[]): void;
  /**
   * The line of one served request (src/ops/observe.ts), at `at`: the same line as `info("request", fields)`
   * and its kin, built without pino's per-field work in JSON format, since every request writes one.
   */
  request(at: LogLevel, fields: RequestLine): void;
}

/** The fields of a request line, in the order they are written. */
export interface RequestLine {
  requestId: string;
  method: string;
  route: string;
  status: number;
  durationMs: number;
  ip: string | null;
  userId: string | null;
}

// Fields that may hold a credential, at any depth of a line's fields: their values are censored.
const SECRET_FIELDS = new Set(["password", "newPassword", "currentPassword", "token", "sessionToken", "cookie", "authorization", "secret", "accessToken", "refreshToken", "idToken"]);
const EMAIL = /([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})/g;
const CENSORED = "[redacted]";
const MAX_DEPTH = 4;

/** "ada.lovelace@example.com" -> "a***@example.com": enough to tell domains apart, not to identify a person. */
export function maskEmails(text: string): string {
  return text.includes("@") ? text.replace(EMAIL, "$1***@$2") : text;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && Object.getPrototypeOf(value) === Object.prototype;

/**
 * Whether `value` holds a secret-named field or a string with an "@". Most lines hold neither, and are
 * logged as they are, without a copy (a request line costs a few microseconds, bench/cache-hit.ts).
 */
function needsScrub(value: unknown, depth = 0): boolean {
  if (typeof value === "string") return value.includes("@");
  if (depth > MAX_DEPTH || value === null || typeof value !== "object" || value instanceof Date) return false;
  if (Array.isArray(value)) return value.some((item) => needsScrub(item, depth + 1));
  for (const key in value) {
    if (SECRET_FIELDS.has(key) || needsScrub((value as Record<string, unknown>)[key], depth + 1)) return true;
  }
  return false;
}

/** A copy of `value` with secret-named fields censored and email addresses masked. */
function scrub(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return maskEmails(value);
  if (depth > MAX_DEPTH || value === null || typeof value !== "object" || value instanceof Date || value instanceof Error) return value;
  if (Array.isArray(value)) return value.map((item) => scrub(item, depth + 1));
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, SECRET_FIELDS.has(key) ? CENSORED : scrub(item, depth + 1)]));
}

/** Development output: `time LEVEL message {fields}` and an error's stack on the lines after it. */
function readableLine(json: string): string {
  const { time, level, msg, err, ...fields } = JSON.parse(json) as Record<string, unknown>;
  const parts = [String(time), String(level).toUpperCase().padEnd(5), String(msg ?? "")];
  if (Object.keys(fields).length) parts.push(JSON.stringify(fields));
  const error = err as { stack?: string; message?: string } | undefined;
  if (error) parts.push(error.stack ?? error.message ?? "");
  return parts.join(" ");
}

// JSON lines go to stdout in batches: the lines of one turn of the event loop in one write, instead
// of a write (a system call) per request line (bench/RESULTS.md). Whatever is pending when the process
// exits is written then, by an exit handler registered with the first line (not on import).
let pendingLines: string[] = [];
let flushScheduled = false;
let flushOnExit = false;
function flushLines(): void {
  flushScheduled = false;
  if (pendingLines.length === 0) return;
  const text = `${pendingLines.join("\n")}\n`;
  pendingLines = [];
  process.stdout.write(text);
}
function writeJsonLine(line: string): void {
  if (!flushOnExit) {
    flushOnExit = true;
    process.on("exit", flushLines);
  }
  pendingLines.push(line);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushLines);
  }
}

const defaultSink = (format: LogFormat) => (format === "json" ? writeJsonLine : (line: string) => console.error(line));

export function createLogger(level: LogLevel, sink?: (line: string) => void, format: LogFormat = "pretty"): Logger {
  const write = sink ?? defaultSink(format);
  const base = pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // `err` is already a plain, masked object (maskedError); pino's own serializer would rename its type.
      serializers: { err: (value: unknown) => value },
    },
    { write: (json: string) => write(format === "json" ? json.trimEnd() : readableLine(json)) },
  );
  const emit = (at: LogLevel, message: string, details: unknown[]) => {
    if (!base.isLevelEnabled(at)) return;
    const fields: Record<string, unknown> = {};
    const words = [maskEmails(message)];
    for (const detail of details) {
      if (detail instanceof Error) fields.err = maskedError(detail);
      else if (isPlainObject(detail)) Object.assign(fields, needsScrub(detail) ? scrub(detail) : detail);
      else if (typeof detail === "string") words.push(maskEmails(detail));
      else words.push(maskEmails(safeJson(detail)));
    }
    base[at](fields, words.join(" "));
  };
  // Strings as pino writes them once scrubbed: JSON-escaped, email addresses masked.
  const text = (value: string | null) => (value === null ? "null" : JSON.stringify(maskEmails(value)));
  const requestLine = (at: LogLevel, f: RequestLine) => {
    if (format !== "json") return emit(at, "request", [f]);
    if (!base.isLevelEnabled(at)) return;
    write(
      `{"level":"${at}","time":"${new Date().toISOString()}","requestId":${text(f.requestId)},"method":${text(f.method)},"route":${text(f.route)}` +
        `,"status":${f.status},"durationMs":${f.durationMs},"ip":${text(f.ip)},"userId":${text(f.userId)},"msg":"request"}`,
    );
  };
  return {
    level,
    request: requestLine,
    debug: (message, ...details) => emit("debug", message, details),
    info: (message, ...details) => emit("info", message, details),
    warn: (message, ...details) => emit("warn", message, details),
    error: (message, ...details) => emit("error", message, details),
  };
}

/** An error as log fields; a driver's message or detail can quote the row it refused (an email). */
function maskedError(error: Error): Record<string, unknown> {
  const code = (error as { code?: unknown }).code;
  return {
    type: error.name,
    message: maskEmails(error.message),
    ...(error.stack ? { stack: maskEmails(error.stack) } : {}),
    ...(code !== undefined ? { code } : {}),
  };
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

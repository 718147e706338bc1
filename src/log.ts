// A small levelled logger shared by the server and handed to Better Auth, so one LOG_LEVEL governs both.
import type { LogLevel } from "./config.ts";

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  level: LogLevel;
  debug(message: string, ...details: unknown[]): void;
  info(message: string, ...details: unknown[]): void;
  warn(message: string, ...details: unknown[]): void;
  error(message: string, ...details: unknown[]): void;
}

export function createLogger(level: LogLevel, sink: (line: string) => void = (line) => console.error(line)): Logger {
  const emit = (at: LogLevel, message: string, details: unknown[]) => {
    if (ORDER[at] < ORDER[level]) return;
    const rest = details.map((detail) => (detail instanceof Error ? detail.stack ?? detail.message : typeof detail === "string" ? detail : safeJson(detail)));
    sink([new Date().toISOString(), at.toUpperCase().padEnd(5), message, ...rest].join(" "));
  };
  return {
    level,
    debug: (message, ...details) => emit("debug", message, details),
    info: (message, ...details) => emit("info", message, details),
    warn: (message, ...details) => emit("warn", message, details),
    error: (message, ...details) => emit("error", message, details),
  };
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

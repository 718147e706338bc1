// Test helpers, defined once and sorted by concern in test/support/: what a file cleans up after itself,
// a fresh Postgres database per test file, the app in process or on a real port, Better Auth's own client
// with a cookie jar, requests and error answers, and the project run as its own process.
export * from "./support/cleanup.ts";
export * from "./support/database.ts";
export * from "./support/app.ts";
export * from "./support/clients.ts";
export * from "./support/requests.ts";
export * from "./support/processes.ts";

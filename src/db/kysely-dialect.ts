// The Kysely dialect Better Auth runs its queries through: kysely-postgres-js on the app's postgres.js
// pool, with a rollback that fails the way the connection failed.
import { CompiledQuery, type DatabaseConnection } from "kysely";
import { PostgresJSDialect, PostgresJSDriver } from "kysely-postgres-js";

type DialectConfig = ConstructorParameters<typeof PostgresJSDialect>[0];

/**
 * kysely 0.29's PostgresDriver, when a ROLLBACK itself fails (the connection is gone), marks the
 * connection for discard through a method of its own `pg` connection class. kysely-postgres-js 5.0
 * extends that driver, but its connection class has no such method: the rollback's failure became
 * `TypeError: connection[PRIVATE_MARK_FOR_DISCARD_METHOD] is not a function`, which no error handling
 * recognises as the database going away (a 500 instead of a 503). Here the failure stays the
 * connection's own error. Nothing needs discarding: postgres.js takes a closed connection back into its
 * pool and reconnects it (patches/postgres@3.4.9.patch keeps the released reservation from undoing that).
 */
class RollbackSafeDriver extends PostgresJSDriver {
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("rollback"));
  }
}

export class PostgresDialect extends PostgresJSDialect {
  readonly #config: DialectConfig;
  constructor(config: DialectConfig) {
    super(config);
    this.#config = config;
  }
  override createDriver() {
    return new RollbackSafeDriver(this.#config);
  }
}

import pg from 'pg';

const TIMESTAMP = 1114; // timestamp without time zone

/** PostgreSQL binds at most 65,535 parameters per statement. */
export const MAX_PARAMETERS = 65_535;

/**
 * Prisma maps DateTime to `timestamp(3)` (no time zone) on PostgreSQL and means UTC by it:
 * its adapter writes UTC digits and reads them back with `+00:00`. The same on our side:
 * write `timestampOf(date)`, and the pool reads such columns as UTC. (pg's defaults read
 * them in the process's time zone, and send a Date parameter in local time with an offset
 * that PostgreSQL drops for this type.)
 */
export const timestampOf = (date: Date): string => date.toISOString().replace('T', ' ').replace('Z', '');

const readUtc = (text: string): Date => new Date(`${text.replace(' ', 'T')}Z`);

/** A pg.Pool on `connectionString` that reads `timestamp` columns as UTC. */
export function openPostgresPool(connectionString: string, config: pg.PoolConfig = {}): pg.Pool {
  const getTypeParser = ((oid: number, format: 'text' | 'binary' = 'text'): ((text: string) => unknown) =>
    oid === TIMESTAMP && format === 'text' ? readUtc : (pg.types.getTypeParser(oid, format) as (text: string) => unknown)) as pg.CustomTypesConfig['getTypeParser'];
  const pool = new pg.Pool({ ...config, connectionString, types: { getTypeParser } });
  // An idle connection the server closed (a restart, pg_terminate_backend) is dropped by the
  // pool and the next query opens another; unheard, the event would crash the process.
  pool.on('error', () => undefined);
  return pool;
}

/** Runs `work` in one transaction on a connection of `pool`; rolls back when it throws. */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    // A connection that cannot even roll back is dropped from the pool, not reused.
    await client.query('ROLLBACK').catch((rollbackError: unknown) => (broken = rollbackError as Error));
    throw error;
  } finally {
    client.release(broken);
  }
}

/** `items` in slices of at most `size` (rows per statement), in order. */
export function* slices<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let start = 0; start < items.length; start += size) yield items.slice(start, start + size);
}

/**
 * The text of one INSERT of `rows` rows into `table`, `columns` in order; `placeholder(n)`
 * spells the n-th parameter, from 1 (`?` for SQLite, `$n` for PostgreSQL). The writers that
 * bypass Prisma on hot paths cache it (or its prepared statement) per row count.
 */
export function multiRowInsertSql(table: string, columns: readonly string[], rows: number, placeholder: (n: number) => string): string {
  const values = Array.from({ length: rows }, (_, row) => `(${columns.map((_c, column) => placeholder(row * columns.length + column + 1)).join(', ')})`);
  return `INSERT INTO "${table}" (${columns.map((c) => `"${c}"`).join(', ')}) VALUES ${values.join(', ')}`;
}

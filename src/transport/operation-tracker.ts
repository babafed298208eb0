/**
 * Operations of many connections that are under way, so shutdown can wait for them to
 * end before it closes the connections. Keys are (connection, operation id).
 */
export function createOperationTracker() {
  const open = new Map<object, Set<string>>();
  let count = 0;
  let waiters: Array<() => void> = [];

  const end = (connection: object, id: string) => {
    const ids = open.get(connection);
    if (!ids?.delete(id)) return;
    if (ids.size === 0) open.delete(connection);
    if (--count === 0) {
      for (const resolve of waiters) resolve();
      waiters = [];
    }
  };

  return {
    begin(connection: object, id: string): void {
      let ids = open.get(connection);
      if (!ids) open.set(connection, (ids = new Set()));
      if (ids.has(id)) return;
      ids.add(id);
      count++;
    },
    end,
    /** Ends every operation of a connection that went away. */
    endAll(connection: object): void {
      for (const id of [...(open.get(connection) ?? [])]) end(connection, id);
    },
    get count(): number {
      return count;
    },
    /** Resolves once no operation is under way. */
    idle(): Promise<void> {
      return count === 0 ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve));
    },
  };
}

import { BadUserInputError } from '../errors.ts';
import { builder } from './builder.ts';

export interface PageInfo {
  hasNextPage: boolean;
  startCursor: string | null;
  endCursor: string | null;
}

export const PageInfoRef = builder.objectRef<PageInfo>('PageInfo').implement({
  description: 'Relay-style pagination state.',
  fields: (t) => ({
    hasNextPage: t.exposeBoolean('hasNextPage', { description: 'More items follow `endCursor`.' }),
    hasPreviousPage: t.boolean({ description: 'Always false: connections here page forward only.', resolve: () => false }),
    startCursor: t.exposeString('startCursor', { nullable: true, description: 'Cursor of the first edge.' }),
    endCursor: t.exposeString('endCursor', { nullable: true, description: 'Cursor of the last edge; pass it as `after`.' }),
  }),
});

/**
 * Opaque cursors: a kind prefix and a position, base64url. A cursor of another kind (or
 * not from this API) is BAD_USER_INPUT on `after`.
 */
export function cursorCodec(kind: string) {
  const prefix = `${kind}:`;
  return {
    encode: (position: string | number) => Buffer.from(prefix + String(position)).toString('base64url'),
    decode(cursor: string): string {
      const text = Buffer.from(cursor, 'base64url').toString();
      if (!text.startsWith(prefix)) throw new BadUserInputError([{ path: ['after'], message: 'not a cursor from this API' }]);
      return text.slice(prefix.length);
    },
  };
}

/** pageInfo of a page of edges, from the cursor of each end. */
export function pageInfoOf<T>(items: readonly T[], hasNextPage: boolean, cursorOf: (item: T) => string): PageInfo {
  return {
    hasNextPage,
    startCursor: items.length > 0 ? cursorOf(items[0]!) : null,
    endCursor: items.length > 0 ? cursorOf(items.at(-1)!) : null,
  };
}

import { readFileSync } from 'node:fs';
import { parse } from 'graphql';

/** Operation documents by id (the keys of the PERSISTED_OPERATIONS file). */
export type PersistedOperations = ReadonlyMap<string, string>;

/**
 * Reads a `{ "<id>": "<document>", … }` file (what graphql-codegen's client preset writes as
 * persisted-documents.json, or any hash → document map). Every document must parse, so a
 * broken file stops start-up instead of failing its clients one by one. Throws an Error
 * whose message is one line.
 */
export function readPersistedOperations(path: string): PersistedOperations {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read \`${path}\`: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`\`${path}\` is not JSON: ${(error as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`\`${path}\` must hold one JSON object of id → GraphQL document`);
  const operations = new Map<string, string>();
  for (const [id, document] of Object.entries(json)) {
    if (typeof document !== 'string') throw new Error(`\`${path}\`: the value of \`${id}\` is not a string`);
    try {
      parse(document);
    } catch (error) {
      throw new Error(`\`${path}\`: the document of \`${id}\` does not parse: ${(error as Error).message.split('\n')[0]}`);
    }
    operations.set(id, document);
  }
  return operations;
}

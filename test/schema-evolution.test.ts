import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { buildSchema, findBreakingChanges, lexicographicSortSchema, type BreakingChange } from 'graphql';
import { describe, expect, it } from 'vitest';
import { schema } from '../src/schema/index.ts';

const SDL = 'schema/schema.graphql';
const describeChange = (c: BreakingChange) => `${c.type}: ${c.description}`;

/** The `## Changelog` section of the README. */
function changelog(): string {
  const readme = readFileSync('README.md', 'utf8');
  const start = readme.indexOf('\n## Changelog');
  if (start === -1) throw new Error('README.md has no "## Changelog" section');
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end === -1 ? undefined : end);
}

/**
 * The SDL before the latest change to it: HEAD's version when the working tree changed it,
 * else the parent's version of the last commit that changed it. Undefined without git
 * history (a tarball) or before the file had a previous version.
 */
function previousSdl(): string | undefined {
  const git = (...args: string[]) => execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const head = git('show', `HEAD:${SDL}`);
    if (head !== readFileSync(SDL, 'utf8')) return head;
    const last = git('log', '-n', '1', '--format=%H', '--', SDL).trim();
    return git('show', `${last}^:${SDL}`);
  } catch {
    return undefined;
  }
}

describe('schema evolution: one schema, no breaking change without saying so', () => {
  it('the served schema breaks nothing against the committed schema/schema.graphql', () => {
    const breaking = findBreakingChanges(buildSchema(readFileSync(SDL, 'utf8')), lexicographicSortSchema(schema)).map(describeChange);
    // If this fails on purpose: deprecate first (`deprecationReason`), or run `npm run schema:print`
    // and name each breaking change in the README's changelog.
    expect(breaking).toEqual([]);
  });

  it("every breaking change in the SDL's latest change is named in the README changelog", () => {
    const previous = previousSdl();
    if (previous === undefined) return; // no history to compare with
    const breaking = findBreakingChanges(buildSchema(previous), buildSchema(readFileSync(SDL, 'utf8')));
    const log = changelog();
    // A description starts with the coordinate ("Query.models was removed."); the changelog must name it.
    const coordinate = (c: BreakingChange) => /^[\w.]+/.exec(c.description)?.[0] ?? c.description;
    const unmentioned = breaking.filter((c) => !log.includes(`\`${coordinate(c).replace(/\.$/, '')}\``));
    expect(unmentioned.map(describeChange)).toEqual([]);
  });
});

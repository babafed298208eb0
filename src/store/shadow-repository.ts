import type { Prisma } from '../generated/prisma/client.ts';
import type { TensorData } from '../inference/types.ts';
import type { Comparison, ComparisonQuery, LatencySummary, NewShadowResult, ShadowResultRecord, ShadowStore } from '../serving/shadow.ts';
import type { Database } from './database.ts';
import type { ShadowWriter } from './shadow-writer.ts';
import { createGroupCommit } from './group-commit.ts';

const PUBLIC = { predictionId: true, shadowVersion: true, createdAt: true, outputs: true, label: true, error: true, latencyMs: true, meanAbsoluteDifference: true, labelsAgree: true } as const;

/** Nearest-rank position (0-based) of the 95th percentile among `n` sorted values. */
export const p95Offset = (n: number): number => Math.max(0, Math.ceil(0.95 * n) - 1);

/**
 * Shadow results: written by group commit through `writer` (one INSERT per group in the
 * database's own SQL; a group that fails is written row by row, so one bad row, e.g. one whose
 * prediction is gone, fails alone), read and compared through Prisma, the same on SQLite and PostgreSQL.
 */
export function createShadowRepository(db: Database, writer: ShadowWriter): ShadowStore {
  const commits = createGroupCommit<NewShadowResult>(
    (rows) => writer.insert(rows),
    (row) => writer.insert([row]),
    // No caller waits for a shadow row: gathering them for 20 ms makes one commit of many (17 µs a row instead of 54 µs alone).
    { delayMs: 20 },
  );
  const pending = new Set<Promise<void>>();

  async function compare(query: ComparisonQuery): Promise<Comparison> {
    const where: Prisma.ShadowResultWhereInput = { modelName: query.model, version: query.version, shadowVersion: query.shadowVersion };
    if (query.since != null) where.predictedAt = { gte: query.since };
    if (query.apiKeyId !== undefined) where.apiKeyId = query.apiKeyId;
    // One aggregate: at most three groups (labels agree, disagree, not a classifier or failed).
    const groups = await db.shadowResult.groupBy({
      by: ['labelsAgree'],
      where,
      _count: { _all: true, error: true, latencyMs: true, meanAbsoluteDifference: true },
      _sum: { latencyMs: true, primaryLatencyMs: true, meanAbsoluteDifference: true },
    });
    let count = 0;
    let failed = 0;
    let agreeing = 0;
    let labelled = 0;
    let differences = 0;
    let differenceSum = 0;
    let shadowSum = 0;
    let primarySum = 0;
    for (const g of groups) {
      count += g._count.latencyMs;
      failed += g._count.error;
      differences += g._count.meanAbsoluteDifference;
      differenceSum += g._sum.meanAbsoluteDifference ?? 0;
      shadowSum += g._sum.latencyMs ?? 0;
      primarySum += g._sum.primaryLatencyMs ?? 0;
      if (g.labelsAgree !== null) labelled += g._count._all;
      if (g.labelsAgree === true) agreeing += g._count._all;
    }
    // p95 by nearest rank: the pair at that position in latency order, one row each.
    const p95 = async (column: 'latencyMs' | 'primaryLatencyMs'): Promise<number | null> => {
      if (count === 0) return null;
      const row = await db.shadowResult.findFirst({ where: { ...where, [column]: { not: null } }, orderBy: { [column]: 'asc' }, skip: p95Offset(count), select: { [column]: true } });
      return (row as Record<string, number | null> | null)?.[column] ?? null;
    };
    const [shadowP95, primaryP95] = await Promise.all([p95('latencyMs'), p95('primaryLatencyMs')]);
    const summary = (sum: number, p95Ms: number | null): LatencySummary => ({ meanMs: count > 0 ? sum / count : null, p95Ms });
    return {
      model: query.model,
      version: query.version,
      shadowVersion: query.shadowVersion,
      since: query.since ?? null,
      count,
      failed,
      agreement: labelled > 0 ? agreeing / labelled : null,
      meanAbsoluteDifference: differences > 0 ? differenceSum / differences : null,
      primaryLatency: summary(primarySum, primaryP95),
      shadowLatency: summary(shadowSum, shadowP95),
    };
  }

  return {
    save(result) {
      const written = commits.write(result);
      const settled = written.then(
        () => undefined,
        () => undefined,
      );
      pending.add(settled);
      void settled.finally(() => pending.delete(settled));
      return written;
    },

    async findByPredictionIds(ids) {
      // No stored id has a NUL character, and PostgreSQL refuses a statement holding one.
      const rows = await db.shadowResult.findMany({ where: { predictionId: { in: ids.filter((id) => !id.includes('\0')) } }, select: PUBLIC });
      const byId = new Map<string, ShadowResultRecord>(rows.map((row) => [row.predictionId, { ...row, outputs: row.outputs as unknown as TensorData[] | null }]));
      return ids.map((id) => byId.get(id));
    },

    compare,

    async drain() {
      while (pending.size > 0) await Promise.all([...pending]);
    },
  };
}

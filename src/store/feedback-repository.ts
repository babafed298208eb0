import type { Prisma } from '../generated/prisma/client.ts';
import type { ConfusionCell, FeedbackRecord, FeedbackStore, Quality, QualityWindow, VersionKey } from '../serving/feedback.ts';
import type { Database } from './database.ts';

const PUBLIC = { predictionId: true, label: true, value: true, recordedAt: true } as const;

/** One GROUP BY (true label, served label) group, as Prisma returns it. */
interface Group {
  modelName?: string;
  version?: number;
  label: string | null;
  servedLabel: string | null;
  _count: { _all: number; absoluteError: number };
  _sum: { absoluteError: number | null; squaredError: number | null };
}

const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Quality from the groups of one aggregate query: at most labels² + 1 groups (the regression
 * rows are one group with null labels), whatever the number of rows.
 */
export function qualityOf(groups: readonly Group[]): Quality {
  let count = 0;
  let labelled = 0;
  let correct = 0;
  let valued = 0;
  let absolute = 0;
  let squared = 0;
  const confusionMatrix: ConfusionCell[] = [];
  for (const g of groups) {
    count += g._count._all;
    valued += g._count.absoluteError;
    absolute += g._sum.absoluteError ?? 0;
    squared += g._sum.squaredError ?? 0;
    if (g.label === null || g.servedLabel === null) continue;
    labelled += g._count._all;
    if (g.label === g.servedLabel) correct += g._count._all;
    confusionMatrix.push({ actual: g.label, predicted: g.servedLabel, count: g._count._all });
  }
  confusionMatrix.sort((a, b) => byCodePoint(a.actual, b.actual) || byCodePoint(a.predicted, b.predicted));
  return {
    count,
    accuracy: labelled > 0 ? correct / labelled : null,
    mae: valued > 0 ? absolute / valued : null,
    rmse: valued > 0 ? Math.sqrt(squared / valued) : null,
    confusionMatrix,
  };
}

/**
 * One statement for any number of versions: SELECT … COUNT(*), COUNT("absoluteError"),
 * SUM(…) … WHERE (model, version) in the list [and time, key] GROUP BY "modelName", "version",
 * "label", "servedLabel"; the groups are then split by version.
 */
async function qualities(db: Database, versions: readonly VersionKey[], window: QualityWindow): Promise<Quality[]> {
  if (versions.length === 0) return [];
  const where: Prisma.FeedbackWhereInput = { OR: versions.map((v) => ({ modelName: v.model, version: v.version })) };
  if (window.since != null || window.until != null) {
    where.predictedAt = { ...(window.since != null ? { gte: window.since } : {}), ...(window.until != null ? { lt: window.until } : {}) };
  }
  if (window.apiKeyId !== undefined) where.apiKeyId = window.apiKeyId;
  const groups = await db.feedback.groupBy({
    by: ['modelName', 'version', 'label', 'servedLabel'],
    where,
    _count: { _all: true, absoluteError: true },
    _sum: { absoluteError: true, squaredError: true },
  });
  const byVersion = new Map<string, Group[]>();
  for (const g of groups) {
    const key = JSON.stringify([g.modelName, g.version]);
    byVersion.set(key, [...(byVersion.get(key) ?? []), g]);
  }
  return versions.map((v) => qualityOf(byVersion.get(JSON.stringify([v.model, v.version])) ?? []));
}

/** Feedback through Prisma, the same on SQLite and PostgreSQL. */
export function createFeedbackRepository(db: Database): FeedbackStore {
  return {
    async save(feedback) {
      const { predictionId, ...rest } = feedback;
      return db.feedback.upsert({ where: { predictionId }, create: feedback, update: rest, select: PUBLIC });
    },

    async findByPredictionIds(ids) {
      // No stored id has a NUL character, and PostgreSQL refuses a statement holding one.
      const rows = await db.feedback.findMany({ where: { predictionId: { in: ids.filter((id) => !id.includes('\0')) } }, select: PUBLIC });
      const byId = new Map<string, FeedbackRecord>(rows.map((row) => [row.predictionId, row]));
      return ids.map((id) => byId.get(id));
    },

    async quality(model, version, since, options = {}) {
      return (await qualities(db, [{ model, version }], { ...options, since }))[0]!;
    },

    qualities: (versions, window) => qualities(db, versions, window),
  };
}

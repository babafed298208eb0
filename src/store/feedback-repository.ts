import type { Prisma } from '../generated/prisma/client.ts';
import type { ConfusionCell, FeedbackRecord, FeedbackStore, Quality } from '../serving/feedback.ts';
import type { Database } from './database.ts';

const PUBLIC = { predictionId: true, label: true, value: true, recordedAt: true } as const;

/** One GROUP BY (true label, served label) group, as Prisma returns it. */
interface Group {
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
      const where: Prisma.FeedbackWhereInput = { modelName: model, version };
      if (since != null || options.until != null) {
        where.predictedAt = { ...(since != null ? { gte: since } : {}), ...(options.until != null ? { lt: options.until } : {}) };
      }
      if (options.apiKeyId !== undefined) where.apiKeyId = options.apiKeyId;
      // One statement: SELECT … COUNT(*), COUNT("absoluteError"), SUM(…) … GROUP BY "label", "servedLabel".
      const groups = await db.feedback.groupBy({
        by: ['label', 'servedLabel'],
        where,
        _count: { _all: true, absoluteError: true },
        _sum: { absoluteError: true, squaredError: true },
      });
      return qualityOf(groups);
    },
  };
}

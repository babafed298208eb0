import { performance } from 'node:perf_hooks';
import { outcomeOf, type Interpretation } from '../inference/interpretation.ts';
import type { ServedExample } from '../inference/replay.ts';
import type { TensorData } from '../inference/types.ts';
import type { Prisma } from '../generated/prisma/client.ts';
import type { PredictionFilter, PredictionPage, PredictionStore } from '../serving/prediction-store.ts';
import type { GenerationRecord, PredictionRecord } from '../serving/records.ts';
import type { Database } from './database.ts';
import { createGroupCommit } from './group-commit.ts';
import type { HistoryWriter } from './history-writer.ts';
import { decodeTensors, type StoredTensor } from './tensor-codec.ts';

export type PredictionRepository = ReturnType<typeof createPredictionRepository>;

type Row = Prisma.PredictionGetPayload<object>;

const toRecord = (row: Row): PredictionRecord => {
  const outputs = decodeTensors(row.outputs as unknown as StoredTensor[]);
  const interpretation = (row.interpretation as unknown as Interpretation | null) ?? null;
  return {
  id: row.id,
  modelName: row.modelName,
  version: row.version,
  createdAt: row.createdAt,
  latencyMs: row.latencyMs,
  inputs: row.inputs as unknown as TensorData[],
  outputs,
  generation: (row.generation as unknown as GenerationRecord | null) ?? null,
  interpretation,
  outcome: interpretation ? outcomeOf(outputs, interpretation) : null,
  cached: row.cached,
  apiKeyId: row.apiKeyId,
  };
};

export interface PredictionRepositoryOptions {
  /** Where rows are written (reads go through `db`). */
  writer: HistoryWriter;
  /** Write rows that finish together in one transaction (one multi-row INSERT). @default true */
  groupCommit?: boolean;
  /** Told of each committed transaction: its rows and how long it took (metrics). */
  onCommit?: (rows: number, seconds: number) => void;
}

/** The history: writes through `writer` (group commit), reads through Prisma. */
export function createPredictionRepository(
  db: Database,
  options: PredictionRepositoryOptions,
): PredictionStore & {
  commitStats?: { groups: number; rows: number };
  readonly waiting: number;
  eventPending(before: Date, limit: number): Promise<PredictionRecord[]>;
  servedExamples(model: string, limit: number): Promise<ServedExample[]>;
} {
  const { onCommit } = options;
  const write = (records: PredictionRecord[]): Promise<void> => {
    if (!onCommit) return options.writer.insert(records);
    const started = performance.now();
    return options.writer.insert(records).then(() => onCommit(records.length, (performance.now() - started) / 1000));
  };
  const insertOne = (record: PredictionRecord) => write([record]);
  /** Writes not yet settled, so shutdown can wait for them. */
  const writing = new Set<Promise<void>>();
  const group =
    options.groupCommit === false
      ? undefined
      : createGroupCommit<PredictionRecord>(write, insertOne);
  return {
    /** Resolves once the row is committed. */
    insert(record: PredictionRecord): Promise<void> {
      const write = group ? group.write(record) : insertOne(record);
      writing.add(write);
      void write.then(
        () => writing.delete(write),
        () => writing.delete(write),
      );
      return write;
    },

    /** Resolves once every row handed to `insert` so far is committed (shutdown calls it before closing the database). */
    async drain(): Promise<void> {
      while (writing.size > 0) await Promise.allSettled([...writing]);
    },

    /** Group commit figures: transactions written and rows in them (undefined when off). */
    commitStats: group?.stats,

    /** Rows handed to `insert` and not yet committed. */
    get waiting(): number {
      return writing.size;
    },

    /** Rows still flagged for the outbox (src/pubsub/outbox.ts), created before `before`, oldest first. */
    async eventPending(before: Date, limit: number): Promise<PredictionRecord[]> {
      const rows = await db.prediction.findMany({ where: { eventPending: true, createdAt: { lt: before } }, orderBy: { createdAt: 'asc' }, take: limit });
      return rows.map(toRecord);
    },

    /**
     * One SELECT for all ids; the result is aligned with `ids`, undefined where none. Ids with
     * a NUL character are left out of the query: no stored id has one, and PostgreSQL refuses
     * the whole statement (every other id of the batch with it) for one such string.
     */
    async findByIds(ids: readonly string[], apiKeyId?: string): Promise<Array<PredictionRecord | undefined>> {
      const rows = await db.prediction.findMany({ where: { id: { in: ids.filter((id) => !id.includes('\0')) }, ...(apiKeyId !== undefined ? { apiKeyId } : {}) } });
      const byId = new Map(rows.map((row) => [row.id, toRecord(row)]));
      return ids.map((id) => byId.get(id));
    },

    /**
     * The newest `limit` stored requests of `model` (any version) with the outputs served for
     * them: what a verified swap replays on a new version. One SELECT of two columns.
     */
    async servedExamples(model: string, limit: number): Promise<ServedExample[]> {
      const rows = await db.prediction.findMany({ where: { modelName: model }, orderBy: { id: 'desc' }, take: limit, select: { inputs: true, outputs: true } });
      return rows.map((row) => ({ inputs: row.inputs as unknown as TensorData[], outputs: decodeTensors(row.outputs as unknown as StoredTensor[]) }));
    },

    /** Only the inputs column, through the (modelName, version, id) index. */
    async recentInputs(model: string, version: number, limit: number): Promise<TensorData[][]> {
      const rows = await db.prediction.findMany({ where: { modelName: model, version }, orderBy: { id: 'desc' }, take: limit, select: { inputs: true } });
      return rows.map((row) => row.inputs as unknown as TensorData[]);
    },

    /** Newest first; `afterId` continues below that id. One SELECT of `first + 1` rows. */
    async page(filter: PredictionFilter, first: number, afterId?: string): Promise<PredictionPage> {
      const where: Prisma.PredictionWhereInput = {};
      if (filter.model != null) where.modelName = filter.model;
      if (filter.version != null) where.version = filter.version;
      if (filter.apiKeyId !== undefined) where.apiKeyId = filter.apiKeyId;
      if (filter.since != null || filter.until != null) {
        where.createdAt = {
          ...(filter.since != null ? { gte: filter.since } : {}),
          ...(filter.until != null ? { lt: filter.until } : {}),
        };
      }
      if (afterId !== undefined) where.id = { lt: afterId };
      const rows = await db.prediction.findMany({ where, orderBy: { id: 'desc' }, take: first + 1 });
      return { records: rows.slice(0, first).map(toRecord), hasNextPage: rows.length > first };
    },
  };
}

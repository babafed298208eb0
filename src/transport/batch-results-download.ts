import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BatchJobStore } from '../serving/batch-job-store.ts';
import { resultLines, type ResultFormat, type ResultRow } from '../serving/batch-results-format.ts';
import type { PredictionStore } from '../serving/prediction-store.ts';

const ROUTE = /^\/batch-jobs\/([^/?]+)\/results\.(csv|jsonl)(?:\?.*)?$/;
/** Rows read from the database per step of the stream. */
const PAGE = 1000;

const MEDIA_TYPES: Record<ResultFormat, string> = { csv: 'text/csv; charset=utf-8', jsonl: 'application/x-ndjson; charset=utf-8' };

/**
 * GET /batch-jobs/<id>/results.csv and .jsonl: every row done so far, in row order,
 * streamed a page at a time with back-pressure (a slow client holds one page, not the
 * results). The header `x-batch-job-status` says whether the job is still going.
 * Returns false for any other URL.
 */
export function batchResultsDownload(deps: { jobs: BatchJobStore; predictions: PredictionStore }) {
  const { jobs, predictions } = deps;

  async function* pages(jobId: string): AsyncGenerator<ResultRow[]> {
    let after: number | undefined;
    for (;;) {
      const results = await jobs.results(jobId, PAGE, after);
      if (results.length === 0) return;
      const ids = results.flatMap((r) => (r.predictionId ? [r.predictionId] : []));
      const found = await predictions.findByIds(ids);
      const byId = new Map(found.flatMap((p) => (p ? [[p.id, p]] : [])));
      yield results.map((r) => ({ index: r.index, predictionId: r.predictionId, prediction: r.predictionId ? (byId.get(r.predictionId) ?? null) : null, error: r.error }));
      after = results.at(-1)!.index;
    }
  }

  return (req: IncomingMessage, res: ServerResponse): boolean => {
    const match = ROUTE.exec(req.url ?? '');
    if (!match || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
    const id = decodeURIComponent(match[1]!);
    const format = match[2] as ResultFormat;
    void (async () => {
      const job = await jobs.get(id);
      if (!job) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ message: `No batch job with id \`${id}\``, extensions: { code: 'NOT_FOUND' } }] }));
        return;
      }
      res.writeHead(200, {
        'content-type': MEDIA_TYPES[format],
        'content-disposition': `attachment; filename="${job.id}.${format}"`,
        'x-batch-job-status': job.status,
      });
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      await pipeline(Readable.from(resultLines(format, job.interpretation, pages(job.id))), res);
    })().catch(() => res.destroy());
    return true;
  };
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { hasScope, isVisibleTo, ownerOf, type Principal } from '../auth/principal.ts';
import { ForbiddenError, GatewayError, NotFoundError } from '../errors.ts';
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
 *
 * The caller's key needs the read scope (401 UNAUTHENTICATED, 403 FORBIDDEN otherwise, in
 * GraphQL's error shape), and another key's job is 404 NOT_FOUND like an unknown id (a key
 * with the admin scope reads every job).
 */
export function batchResultsDownload(deps: { jobs: BatchJobStore; predictions: PredictionStore; authenticate: (req: IncomingMessage) => Promise<Principal> }) {
  const { jobs, predictions } = deps;
  const refuse = (res: ServerResponse, error: GatewayError) => {
    res.writeHead(error.httpStatus, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ message: error.message, extensions: { code: error.code, ...error.details } }] }));
  };

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
      let principal: Principal;
      try {
        principal = await deps.authenticate(req);
      } catch (error) {
        if (error instanceof GatewayError) return refuse(res, error);
        throw error;
      }
      if (!hasScope(principal, 'read')) return refuse(res, new ForbiddenError('GET /batch-jobs/<id>/results', ['read']));
      const job = await jobs.get(id);
      if (!job || !isVisibleTo(ownerOf(principal), job)) return refuse(res, new NotFoundError('batch job', id));
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

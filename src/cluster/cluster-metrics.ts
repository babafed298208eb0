import type { Cluster } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { Scrape } from '../observability/metrics-endpoint.ts';
import type { PrimaryChannel } from '../pubsub/cluster-event-target.ts';

/** A worker asks the primary for every worker's metrics, added up; the primary answers the asker. */
interface ScrapeRequest {
  kind: 'gateway.metrics.request';
  id: number;
}
interface ScrapeAnswer {
  kind: 'gateway.metrics.answer';
  id: number;
  text?: string;
  error?: string;
}

/** prom-client's own wait for each worker is 5 s; the asking worker waits a little longer. */
const SCRAPE_TIMEOUT_MS = 6000;

const isRequest = (m: unknown): m is ScrapeRequest => typeof m === 'object' && m !== null && (m as ScrapeRequest).kind === 'gateway.metrics.request';
const isAnswer = (m: unknown): m is ScrapeAnswer => typeof m === 'object' && m !== null && (m as ScrapeAnswer).kind === 'gateway.metrics.answer';

/**
 * In the primary (WORKERS > 1): a worker that received GET /metrics asks here; prom-client's
 * AggregatorRegistry asks every connected worker for its registry over IPC and adds them
 * up (counters and histograms summed, gauges summed, process metrics per prom-client's
 * aggregators), and the text goes back to the asking worker. So a scrape through the
 * shared port sees the whole machine, whichever worker answers.
 */
export function answerMetricsScrapes(cluster: Cluster): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, message: unknown) => {
    if (!isRequest(message)) return;
    const answer = (fields: Partial<ScrapeAnswer>) => {
      if (worker.isConnected()) worker.send({ kind: 'gateway.metrics.answer', id: message.id, ...fields } satisfies ScrapeAnswer, () => {});
    };
    aggregator.clusterMetrics().then(
      (text) => answer({ text }),
      (error: unknown) => answer({ error: error instanceof Error ? error.message : String(error) }),
    );
  });
}

/**
 * In a worker: offers `registry` to the primary's aggregation, and returns the scrape that
 * asks the primary for the sum over all workers.
 */
export function scrapeThroughPrimary(registry: Registry, channel: PrimaryChannel = process): () => Promise<Scrape> {
  AggregatorRegistry.setRegistries([registry]);
  // Constructing one in a worker installs prom-client's answer to the primary's requests.
  new AggregatorRegistry();
  let next = 0;
  const waiting = new Map<number, { resolve: (text: string) => void; reject: (error: Error) => void }>();
  channel.on('message', (message) => {
    if (!isAnswer(message)) return;
    const request = waiting.get(message.id);
    if (message.error !== undefined || message.text === undefined) request?.reject(new Error(message.error ?? 'no answer'));
    else request?.resolve(message.text);
  });
  return () =>
    new Promise<Scrape>((resolve, reject) => {
      const id = next++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`the primary did not answer within ${SCRAPE_TIMEOUT_MS} ms`));
      }, SCRAPE_TIMEOUT_MS);
      waiting.set(id, {
        resolve: (text) => {
          clearTimeout(timer);
          waiting.delete(id);
          resolve({ contentType: registry.contentType, text });
        },
        reject: (error) => {
          clearTimeout(timer);
          waiting.delete(id);
          reject(error);
        },
      });
      channel.send?.({ kind: 'gateway.metrics.request', id } satisfies ScrapeRequest, undefined, undefined, (error) => {
        if (error) waiting.get(id)?.reject(error);
      });
    });
}

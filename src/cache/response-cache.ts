import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { TensorData } from '../inference/types.ts';

/**
 * Triton's response cache: the outputs of a model version for exactly these input
 * tensors. Opt-in per model (model.json `responseCache`), for deterministic models whose
 * clients repeat requests. A hit skips ONNX; the prediction is still stored, marked `cached`.
 */
export interface ResponseCache {
  get(key: string): Promise<TensorData[] | undefined>;
  set(key: string, outputs: readonly TensorData[], ttlMs: number | undefined): Promise<void>;
}

/**
 * The key: model, version, and a SHA-256 of every input's name, datatype, shape and
 * elements (as float64 bytes, so 1 and 1.0 are the same input and -0 and 0 are not).
 */
export function responseCacheKey(model: string, version: number, digest: string, inputs: readonly TensorData[]): string {
  const hash = createHash('sha256');
  for (const t of [...inputs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    hash.update(`${t.name}\0${t.datatype}\0${t.shape.join(',')}\0`);
    hash.update(new Uint8Array(Float64Array.from(t.data).buffer));
  }
  return `${model}\0${version}\0${digest}\0${hash.digest('base64url')}`;
}

/** Approximate bytes of a cached answer: its numbers dominate. */
const sizeOf = (outputs: readonly TensorData[]) => 64 + outputs.reduce((n, t) => n + 64 + t.data.length * 8, 0);

/** In-process LRU, bounded in bytes (`maxBytes`) as well as entries. */
export function createMemoryResponseCache(options: { maxEntries?: number; maxBytes?: number } = {}): ResponseCache & { readonly size: number } {
  const cache = new LRUCache<string, TensorData[]>({
    max: options.maxEntries ?? 10_000,
    maxSize: options.maxBytes ?? 64 * 1024 * 1024,
    sizeCalculation: sizeOf,
    ttlAutopurge: false,
  });
  return {
    get size() {
      return cache.size;
    },
    async get(key) {
      return cache.get(key);
    },
    async set(key, outputs, ttlMs) {
      cache.set(key, outputs.map((t) => ({ ...t, shape: [...t.shape], data: [...t.data] })), ttlMs ? { ttl: ttlMs } : {});
    },
  };
}

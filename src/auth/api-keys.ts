import { createHash, randomBytes } from 'node:crypto';

/**
 * The API key format: `gw_` and 43 base64url characters (32 random bytes). The key is shown
 * once; only its SHA-256 is stored. A fast hash is right here, unlike for passwords: 256
 * random bits cannot be guessed or brute-forced from the hash, and a fast hash lets every
 * request (or cache miss) find its key with one indexed lookup.
 */
export const KEY_PREFIX = 'gw_';
const KEY_PATTERN = /^gw_[A-Za-z0-9_-]{43}$/;

export function generateApiKey(): string {
  return KEY_PREFIX + randomBytes(32).toString('base64url');
}

/** Hex SHA-256 of the whole key, prefix included. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** Whether `text` has the shape of a key (a cheap refusal before any lookup). */
export const looksLikeApiKey = (text: string): boolean => KEY_PATTERN.test(text);

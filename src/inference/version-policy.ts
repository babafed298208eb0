import type { Manifest } from './manifest.ts';

/** The version numbers model.json's `versionPolicy` loads, out of the folders present (Triton's version_policy). */
export function versionsToLoad(policy: Manifest['versionPolicy'], present: readonly number[]): Set<number> {
  if (!policy || 'all' in policy) return new Set(present);
  if ('latest' in policy) return new Set([...present].sort((a, b) => b - a).slice(0, policy.latest.numVersions));
  const wanted = new Set(policy.specific.versions);
  return new Set(present.filter((v) => wanted.has(v)));
}

/** Why a version folder is not loaded, for its UNLOADED status. */
export function policyReason(policy: Manifest['versionPolicy']): string {
  if (!policy || 'all' in policy) return 'version policy: all';
  if ('latest' in policy) return `version policy: latest ${policy.latest.numVersions}`;
  return `version policy: specific versions ${policy.specific.versions.join(', ')}`;
}

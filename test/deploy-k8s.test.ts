import { readFileSync } from 'node:fs';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { Service } from 'kubernetes-models/v1/Service';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../src/config.ts';

// deploy/k8s/, validated against the Kubernetes API schemas (kubernetes-models) and checked
// against each other and the gateway's config. No cluster runs on the development and CI
// machines: the manifests are validated here, never applied. The schemas accept unknown
// fields, so the fields that matter are read back by name below (a misspelt one fails).

const manifest = (file: string) => parse(readFileSync(`deploy/k8s/${file}`, 'utf8'));
const deployment = new Deployment(manifest('deployment.yaml'));
const service = new Service(manifest('service.yaml'));
const hpa = new HorizontalPodAutoscaler(manifest('hpa.yaml'));

const pod = deployment.spec!.template;
const container = pod.spec!.containers.find((c) => c.name === 'gateway')!;
/** A plain `value` of the container's environment. */
const envValue = (name: string) => container.env?.find((e) => e.name === name)?.value;

describe('deploy/k8s', () => {
  it('is valid against the Kubernetes schemas (apps/v1 Deployment, v1 Service, autoscaling/v2 HorizontalPodAutoscaler)', () => {
    for (const object of [deployment, service, hpa]) expect(() => object.validate()).not.toThrow();
    // The check can fail: a replica count as a string is rejected.
    expect(() => new Deployment({ ...manifest('deployment.yaml'), spec: { ...deployment.spec!, replicas: '2' as unknown as number } }).validate()).toThrow(/replicas must be integer/);
  });

  it('runs two replicas, probing readiness on /readyz and liveness on /healthz at the gateway port', () => {
    expect(deployment.spec!.replicas).toBe(2);
    const port = container.ports!.find((p) => p.name === 'http')!;
    expect(port.containerPort).toBe(loadConfig({ PORT: envValue('PORT') }).port);
    expect(envValue('HOST')).toBe('0.0.0.0');
    expect(container.readinessProbe?.httpGet).toMatchObject({ path: '/readyz', port: 'http' });
    expect(container.livenessProbe?.httpGet).toMatchObject({ path: '/healthz', port: 'http' });
  });

  it('gives the pod longer to stop than the preStop pause and the gateway shutdown deadline together', () => {
    const preStop = container.lifecycle?.preStop;
    // Either form of the pause: `exec: sleep N` (needs sleep in the image) or the `sleep` action.
    const pauseSeconds = preStop?.sleep?.seconds ?? (preStop?.exec?.command?.[0] === 'sleep' ? Number(preStop.exec.command[1]) : NaN);
    expect(pauseSeconds).toBeGreaterThan(0);
    const shutdownSeconds = loadConfig({ SHUTDOWN_TIMEOUT_MS: envValue('SHUTDOWN_TIMEOUT_MS') }).shutdownTimeoutMs / 1000;
    expect(pod.spec!.terminationGracePeriodSeconds).toBeGreaterThan(pauseSeconds + shutdownSeconds);
  });

  it('reads DATABASE_URL and REDIS_URL from a Secret, sets requests and limits, and runs as non-root', () => {
    for (const name of ['DATABASE_URL', 'REDIS_URL']) {
      const variable = container.env!.find((e) => e.name === name);
      expect(variable?.value, `${name} is not written in the manifest`).toBeUndefined();
      expect(variable?.valueFrom?.secretKeyRef).toEqual({ name: 'onnx-gateway', key: name });
    }
    expect(container.resources?.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(container.resources?.limits).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(pod.spec!.securityContext?.runAsNonRoot).toBe(true);
    expect(pod.spec!.securityContext?.runAsUser).toBeGreaterThan(0);
    expect(container.securityContext?.allowPrivilegeEscalation).toBe(false);
  });

  it("routes the Service to the Deployment's pods, on the gateway port", () => {
    const labels = pod.metadata!.labels!;
    expect(Object.keys(service.spec!.selector!).length).toBeGreaterThan(0);
    for (const [key, value] of Object.entries(service.spec!.selector!)) expect(labels[key], `pod label ${key}`).toBe(value);
    for (const [key, value] of Object.entries(deployment.spec!.selector.matchLabels!)) expect(labels[key], `pod label ${key}`).toBe(value);
    const targetPort = service.spec!.ports![0]!.targetPort;
    expect(container.ports!.some((p) => p.name === targetPort || p.containerPort === targetPort)).toBe(true);
  });

  it('autoscales the Deployment on CPU, from two replicas, which needs CPU requests', () => {
    expect(hpa.spec!.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata!.name });
    expect(hpa.spec!.metrics).toContainEqual({ type: 'Resource', resource: { name: 'cpu', target: expect.objectContaining({ type: 'Utilization' }) } });
    expect(hpa.spec!.minReplicas).toBeGreaterThanOrEqual(2);
    expect(hpa.spec!.maxReplicas).toBeGreaterThan(hpa.spec!.minReplicas!);
    expect(container.resources?.requests?.cpu).toBeDefined();
  });
});

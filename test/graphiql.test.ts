import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.ts';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = 'test/artifacts/graphiql-generate.png';

let gw: TestGateway;
let browser: Browser;
beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does it)`);
  gw = await startGateway();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
});
afterAll(async () => {
  await browser?.close();
  await gw?.close();
});

describe('GraphiQL in a browser', () => {
  it('runs a generate subscription and shows the text as it streams', { timeout: 60_000 }, async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const external: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(gw.url) && !r.url().startsWith('data:') && !r.url().startsWith('blob:')) external.push(r.url());
    });
    // Long prompt: each token costs a full-context run, so the stream lasts long enough to watch.
    const query = `subscription { generate(input: { model: "fortune", prompt: "${'The '.repeat(400)}", maxTokens: 400, temperature: 0.7, seed: 11 }) { index text done finishReason predictionId } }`;
    await page.goto(`${gw.url}/graphql?query=${encodeURIComponent(query)}`);
    await page.getByRole('button', { name: 'Execute query (Ctrl-Enter)' }).waitFor();

    // Record every state the result pane goes through.
    await page.evaluate(() => {
      const w = window as unknown as { snapshots: string[] };
      w.snapshots = [];
      new MutationObserver(() => {
        const text = document.querySelector('.graphiql-response')?.textContent ?? '';
        if (text && text !== w.snapshots.at(-1)) w.snapshots.push(text);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    await page.getByRole('button', { name: 'Execute query (Ctrl-Enter)' }).click();
    await page.waitForFunction(() => /"done":\s*true/.test(document.querySelector('.graphiql-response')?.textContent ?? ''), null, {
      timeout: 30_000,
    });
    mkdirSync('test/artifacts', { recursive: true });
    await page.screenshot({ path: SCREENSHOT });

    const snapshots = await page.evaluate(() => (window as unknown as { snapshots: string[] }).snapshots);
    const partial = snapshots.filter((s) => /"done":\s*false/.test(s));
    expect(partial.length).toBeGreaterThanOrEqual(2); // intermediate events were rendered
    const final = (await page.locator('.graphiql-response').textContent())!;
    expect(final).toMatch(/"finishReason":\s*"LENGTH"/);
    const id = /"predictionId":\s*"([0-9a-f-]{36})"/.exec(final)![1]!;
    const stored = await gw.gql(`query($id: ID!) { prediction(id: $id) { text } }`, { id });
    expect(stored.body.data.prediction.text.length).toBeGreaterThan(300);
    expect(final.replace(/\s+/g, ' ')).toContain(stored.body.data.prediction.text.slice(0, 40).replace(/\s+/g, ' ').replace(/"/g, '\\"'));
    expect(external).toEqual([]); // GraphiQL works offline: no CDN
    expect(existsSync(SCREENSHOT)).toBe(true);
  });

  it('loads the schema: the Docs explorer lists the predict mutation', { timeout: 60_000 }, async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(`${gw.url}/graphql`);
    await page.getByRole('button', { name: 'Show Documentation Explorer' }).click();
    // The root types appear only once GraphiQL's introspection query has been answered.
    await page.locator('.graphiql-doc-explorer').getByText('Mutation', { exact: true }).click();
    await page.locator('.graphiql-doc-explorer').getByText('predict', { exact: true }).waitFor({ timeout: 15_000 });
    expect(await page.getByText('Error fetching schema').count()).toBe(0);
  });
});

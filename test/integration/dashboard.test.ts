import { existsSync } from 'node:fs';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localCluster, type LocalCluster } from '../helpers/cluster.js';
import { http, removeDir, tempDir } from '../helpers/proc.js';

/** Debian's chromium (.ci/run installs it); playwright-core downloads no browser. */
const CHROMIUM = '/usr/bin/chromium';
/** Without these, chromium on a machine with no internet stalls on refused connections. */
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('the dashboard in a real browser, against a 3-node local cluster', () => {
  let lc: LocalCluster;
  let profile: string;
  let shots: string;
  let browser: BrowserContext;
  let page: Page;
  let failed = false;
  const consoleErrors: string[] = [];

  /** Run a step; on failure save a screenshot of the page next to the test's files and fail. */
  async function step(name: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (e) {
      failed = true;
      const file = path.join(shots, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => undefined);
      console.log(`dashboard test "${name}" failed; screenshot: ${file}`);
      throw e;
    }
  }

  beforeAll(async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`).toBe(true);
    lc = await localCluster(3);
    await lc.start();
    shots = tempDir('ringkv-dashboard-test-');
    profile = tempDir('ringkv-chromium-profile-');
    browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS, viewport: { width: 1400, height: 1000 } });
    page = await browser.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(e.message));
  });

  afterAll(async () => {
    await browser?.close();
    await lc?.stop();
    if (lc) removeDir(lc.dir);
    if (profile) removeDir(profile);
    if (shots && !failed) removeDir(shots);
  });

  it('loads without console errors, with three nodes up and the ring of 48 tokens', async () => {
    await step('load', async () => {
      await page.goto(lc.url(1));
      await page.waitForFunction(() => document.querySelectorAll('#nodes tbody tr[data-state="UN"]').length === 3, undefined, { timeout: 20_000 });
      expect(await page.locator('#ring svg').getAttribute('data-tokens')).toBe('48');
      expect(await page.locator('#ring svg .token').count()).toBe(48);
      expect(await page.locator('#conn').textContent()).toBe('live');
      expect(consoleErrors).toEqual([]);
    });
  });

  it('shows non-zero throughput after a write load', async () => {
    await step('throughput', async () => {
      const writes = 300;
      let next = 0;
      // 8 writers through node 2's HTTP API: node 2 coordinates, node 1 draws the merged cluster.
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < writes) {
            const i = next++;
            expect((await http('PUT', `${lc.url(2)}/api/v1/store/dash`, { key: `k${i}`, value: i })).status).toBe(200);
          }
        }),
      );
      await page.waitForFunction(() => Number((document.querySelector('#throughput') as HTMLElement).dataset['max']) > 0, undefined, { timeout: 15_000 });
      const max = Number(await page.locator('#throughput').getAttribute('data-max'));
      expect(max).toBeGreaterThan(0);
      expect(max).toBeLessThanOrEqual(writes);
      expect(await page.locator('#throughput canvas').count()).toBeGreaterThan(0);
      expect(await page.locator('#throughput-now').textContent()).toContain('write');
    });
  });

  it('shows a killed node down within 15 s', async () => {
    await step('node-down', async () => {
      const t0 = Date.now();
      await lc.kill9(3);
      await page.waitForFunction(() => document.querySelector('#nodes tbody tr[data-node="node3"]')?.getAttribute('data-state') === 'DN', undefined, { timeout: 15_000 });
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(await page.locator('#nodes tbody tr[data-state="UN"]').count()).toBe(2);
      expect(consoleErrors).toEqual([]);
    });
  });
});

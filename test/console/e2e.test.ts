import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { kennelJson } from '../foundation/cli.ts';
import { sharedDir } from '../helpers/paths.ts';
import { browserSkip, launchBrowser, startDaemon, step, trainedHome, type RunningDaemon } from './harness.ts';

/**
 * The console in real headless Chromium against a real daemon (kennel up --detach) with a model
 * trained on breeds-mini: sign in, see the dataset and the model, create an endpoint, classify a
 * real photo on Try it, promote the model, and revoke a key and see it stop working. A failing
 * step leaves a screenshot in test-artifacts/.
 */
const DALMATIAN = path.join(sharedDir(), 'data/real-photos/aipnd-dogs/Dalmatian_04017.jpg');

let daemon: RunningDaemon | undefined;
let browser: Browser | undefined;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];
const foreign: string[] = [];
let firstLoadJsBytes = 0;

before(async () => {
  if (browserSkip) return;
  daemon = await startDaemon(await trainedHome());
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(20_000);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith(daemon!.adminUrl) && !url.startsWith('data:') && !url.startsWith('blob:')) foreign.push(url);
  });
  page.on('response', async (r) => {
    if (r.request().resourceType() === 'script') firstLoadJsBytes += (await r.request().sizes()).responseBodySize;
  });
});

after(async () => {
  await browser?.close();
  daemon?.stop();
});

const nav = (label: string) => page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: label, exact: true }).click();

async function api(method: string, url: string, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(daemon!.adminUrl + url, { method, headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

test('sign in with the admin token (a wrong one is refused), from the keyboard', { skip: browserSkip }, async () => {
  await step(page, 'login', async () => {
    await page.goto(daemon!.adminUrl + '/');
    const token = page.getByLabel('Admin token or API key');
    await token.fill('not-the-token');
    await token.press('Enter');
    await page.getByRole('alert').filter({ hasText: 'neither the admin token nor an API key' }).waitFor();
    await token.fill(daemon!.token);
    await token.press('Enter');
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    assert.equal(await page.getByText('local:admin').count(), 1);
    const cookies = await context.cookies();
    assert.equal(cookies.length, 1);
    assert.equal(cookies[0]!.httpOnly, true);
    assert.equal(cookies[0]!.sameSite, 'Strict');
  });
  assert.ok(firstLoadJsBytes > 0 && firstLoadJsBytes < 300 * 1024, `first load: ${firstLoadJsBytes} bytes of JS over the wire`);
});

test('the dataset: class counts, samples per class, skipped files', { skip: browserSkip }, async () => {
  await step(page, 'dataset', async () => {
    await nav('Datasets');
    await page.getByRole('link', { name: 'breeds', exact: true }).click();
    await page.getByRole('heading', { name: 'Dataset breeds v1' }).waitFor();
    await page.getByRole('heading', { name: 'Class counts' }).waitFor();
    assert.equal(await page.locator('.bars li').count(), 25, 'one bar per breed');
    await page.getByText('No files were skipped').waitFor();
    const thumb = page.getByRole('img', { name: /^Dalmatian \(train\)/ }).first();
    await thumb.scrollIntoViewIfNeeded();
    await page.waitForFunction((el) => {
      const img = el as unknown as { complete: boolean; naturalWidth: number };
      return img.complete && img.naturalWidth > 0;
    }, await thumb.elementHandle());
  });
});

test('the model: card, metrics, confusion matrix, lineage to its training job and the job report', { skip: browserSkip }, async () => {
  await step(page, 'model', async () => {
    await nav('Models');
    await page.getByRole('link', { name: 'breeds@1' }).click();
    await page.getByRole('heading', { name: 'Model breeds@1' }).waitFor();
    await page.getByRole('img', { name: /test split: \d+ of 25 images misclassified/ }).waitFor();
    assert.equal(await page.getByRole('link', { name: /^train-\d{14}-/ }).count(), 1, 'lineage links the training job');
  });
  await step(page, 'job-report', async () => {
    await page.getByRole('link', { name: /^train-\d{14}-/ }).click();
    await page.getByRole('heading', { name: /^Job train-/ }).waitFor();
    await page.getByRole('img', { name: /^Top-1 accuracy per epoch/ }).waitFor();
    const href = await page.getByRole('link', { name: 'Open report' }).getAttribute('href');
    const report = await context.request.get(daemon!.adminUrl + href);
    assert.equal(report.status(), 200);
    assert.match(report.headers()['content-type']!, /^text\/html/);
    assert.match(await report.text(), /<title>Kennel report: train-/);
  });
});

test('the jobs table: backbone, hyperparameters, the objective by name; compare two runs; tuning trials in parallel coordinates', { skip: browserSkip }, async () => {
  await step(page, 'jobs-table', async () => {
    await nav('Jobs');
    const tuneRow = page.getByRole('row').filter({ hasText: /tune-\d{14}/ });
    await tuneRow.getByRole('cell', { name: /^valid\.loss \d[\d.e-]*$/ }).waitFor();
    assert.equal(await tuneRow.getByText(/%/).count(), 0, 'a loss is not shown as an accuracy');
    const fast = page.getByRole('row').filter({ has: page.getByRole('link', { name: 'breeds-fast@1', exact: true }) });
    await fast.getByRole('cell', { name: 'mobilenetv2-12-int8' }).waitFor();
    await fast.getByRole('cell', { name: 'minibatch, lr 0.01, batch 32, 8 epochs' }).waitFor();
    await fast.getByRole('cell', { name: /^valid top-1 \d+\.\d%$/ }).waitFor();
  });
  await step(page, 'compare', async () => {
    for (const model of ['breeds@1', 'breeds-fast@1']) await page.getByRole('row').filter({ has: page.getByRole('link', { name: model, exact: true }) }).getByRole('checkbox').check();
    await page.getByRole('link', { name: 'Compare selected (2)' }).click();
    await page.getByRole('heading', { name: 'Compare runs' }).waitFor();
    const loss = page.getByRole('img', { name: /^Valid loss per epoch: breeds@1 latest [\d.]+, breeds-fast@1 latest [\d.]+$/ });
    await loss.waitFor();
    assert.equal(await loss.locator('.series path').count(), 2, 'one curve per run, overlaid');
    const lr = page.getByRole('row', { name: /^Learning rate/ });
    assert.deepEqual(await lr.getByRole('cell').allTextContents(), ['0.001', '0.01'], 'settings side by side');
    assert.equal(await page.getByRole('row', { name: /^Test top-1/ }).getByRole('cell').count(), 2);
  });
  await step(page, 'parallel-coordinates', async () => {
    await nav('Jobs');
    await page.getByRole('link', { name: /^tune-\d{14}/ }).click();
    const chart = page.locator('svg[data-chart="parallel-coordinates"]');
    await chart.waitFor();
    assert.equal(await chart.locator('polyline').count(), 4, 'one line per trial');
    assert.deepEqual(await chart.locator('.pc-name').allTextContents(), ['lr', 'batch_size', 'valid.loss']);
  });
});

test('create an endpoint; it comes into service live', { skip: browserSkip }, async () => {
  await step(page, 'create-endpoint', async () => {
    await nav('Endpoints');
    await page.getByText('No endpoints yet.').waitFor();
    await page.getByRole('button', { name: 'Create endpoint' }).click();
    await page.getByLabel('Name').fill('dogs');
    await page.getByLabel('Model').selectOption('breeds@1');
    await page.getByRole('button', { name: 'Create endpoint' }).last().click();
    await page.getByRole('heading', { name: 'Endpoint dogs' }).waitFor();
    // the page follows the endpoint through server-sent events: starting, then in service
    await page.locator('.badge', { hasText: 'in service' }).first().waitFor({ timeout: 60_000 });
    await page.getByRole('cell', { name: 'ready' }).first().waitFor();
  });
  await step(page, 'endpoint-logs-and-charts', async () => {
    // the replica's own log lines and the daemon's, live, with the admin token never shown
    const replica = page.getByRole('region', { name: /^Replica r\d+ log$/ }).first();
    await replica.getByText(/replica ready .*ms=\d+/).first().waitFor();
    await page.getByRole('region', { name: 'Daemon log' }).getByText(/daemon started/).first().waitFor();
    assert.ok(!(await page.innerText('body')).includes(daemon!.token), 'the admin token is not in the page');
    await page.getByRole('heading', { name: 'Traffic (last hour)' }).waitFor();
    await page.getByRole('img', { name: /^Errors and throttles \(per s\): errors\/s latest 0, 429\/s latest 0$/ }).first().waitFor(); // 429s have a series of their own
  });
});

test('Try it: a real photo of a Dalmatian, top-5 breeds with scores, latency and a heat map; a loopback URL is refused', { skip: browserSkip }, async () => {
  await step(page, 'try-it', async () => {
    await page.getByRole('link', { name: 'Try it' }).first().click();
    await page.getByRole('heading', { name: 'Try it', level: 1 }).waitFor();
    await page.locator('input[name=photo]').setInputFiles(DALMATIAN);
    const top = page.locator('#top-breed');
    await top.waitFor({ timeout: 30_000 });
    assert.equal(await top.textContent(), 'Dalmatian');
    assert.equal(await page.locator('.tryit .bars li').count(), 5);
    await page.getByText(/ms in the endpoint/).waitFor();
    // the heat map of the top breed, over the photo (on by default)
    const overlay = page.locator('img#explanation');
    assert.match((await overlay.getAttribute('src')) ?? '', /^data:image\/png;base64,iVBOR/);
    assert.match((await overlay.getAttribute('alt')) ?? '', /Where the model saw Dalmatian/);

    await page.getByLabel('…or an image URL').fill('https://127.0.0.1/dog.jpg');
    await page.getByRole('button', { name: 'Classify URL' }).click();
    await page.getByRole('alert').filter({ hasText: '127.0.0.1 is loopback' }).waitFor();
  });
});

test('a shadow started from the endpoint page compares its answers with the primary live; it stops with confirmation', { skip: browserSkip }, async () => {
  await step(page, 'shadow', async () => {
    await nav('Endpoints');
    await page.getByRole('link', { name: 'dogs' }).first().click();
    // where its replicas run
    await page.locator('.facts div', { hasText: /^DeviceCPU$/ }).waitFor();
    // the Drift card says how to start capturing (off by default)
    await page.getByRole('status').filter({ hasText: 'Not capturing requests' }).waitFor();
    await page.locator('select[name=shadow-model]').selectOption('breeds-fast@1');
    await page.getByRole('button', { name: 'Start shadow' }).click();
    await page.locator('#shadow-replicas', { hasText: '1/1 ready' }).waitFor({ timeout: 60_000 });
    // Try it goes through the router like any request: a copy goes to the shadow
    await page.getByRole('link', { name: 'Try it' }).first().click();
    await page.locator('input[name=photo]').setInputFiles(DALMATIAN);
    await page.locator('#top-breed').waitFor({ timeout: 30_000 });
    await page.goBack();
    await page.locator('#shadow-requests', { hasText: /^[1-9]/ }).waitFor({ timeout: 30_000 });
    assert.match((await page.locator('#shadow-agreement').textContent()) ?? '', /%$/);
    await page.getByRole('button', { name: 'Stop shadow' }).click();
    await page.getByRole('dialog', { name: 'Stop the shadow of dogs?' }).getByRole('button', { name: 'Stop shadow' }).click();
    await page.getByText('(stopped: its last comparison)').waitFor();
  });
});

test('promote the model to production, with confirmation', { skip: browserSkip }, async () => {
  await step(page, 'promote', async () => {
    await nav('Models');
    await page.getByRole('link', { name: 'breeds@1' }).click();
    await page.getByRole('button', { name: 'Promote to production' }).click();
    const dialog = page.getByRole('dialog', { name: 'Promote breeds@1 to production?' });
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    assert.deepEqual((await api('GET', '/api/models/breeds/versions/1', daemon!.token)).body.tags, ['latest'], 'cancel changes nothing');
    await page.getByRole('button', { name: 'Promote to production' }).click();
    await dialog.getByRole('button', { name: 'Promote' }).click();
    await page.locator('.badge', { hasText: 'production' }).first().waitFor();
    const { body } = await api('GET', '/api/models/breeds/versions/1', daemon!.token);
    assert.deepEqual(body.tags, ['latest', 'production']);
  });
});

test('create a key (shown once), sign in with it, revoke it: it stops working at once', { skip: browserSkip }, async () => {
  let key = '';
  await step(page, 'create-key', async () => {
    await nav('Security');
    await page.getByLabel('Principal').fill('ops');
    await page.getByLabel('Allow (one grant per line)').fill('console:*:*');
    await page.getByRole('button', { name: 'Create key' }).click();
    const dialog = page.getByRole('dialog', { name: 'Your new API key' });
    key = (await dialog.locator('#new-key').textContent()) ?? '';
    assert.match(key, /^kn_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    await dialog.getByRole('button', { name: 'I have saved it' }).click();
    assert.equal(await page.getByText(key).count(), 0, 'the key is not shown again');
  });
  assert.equal((await api('GET', '/api/models', key)).status, 200, 'the key works as a bearer token');

  const other = await browser!.newContext();
  const opsPage = await other.newPage();
  try {
    await step(opsPage, 'sign-in-with-key', async () => {
      await opsPage.goto(daemon!.adminUrl + '/');
      await opsPage.getByLabel('Admin token or API key').fill(key);
      await opsPage.getByRole('button', { name: 'Sign in' }).click();
      await opsPage.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
      await opsPage.getByText('ops', { exact: true }).waitFor();
    });

    await step(page, 'revoke-key', async () => {
      await page.reload();
      const row = page.getByRole('row').filter({ hasText: key.slice(3, 19) });
      await row.getByRole('button', { name: 'Revoke' }).click();
      await page.getByRole('dialog', { name: `Revoke key ${key.slice(3, 19)}?` }).getByRole('button', { name: 'Revoke key' }).click();
      await row.getByText('revoked').waitFor();
    });
    assert.equal((await api('GET', '/api/models', key)).status, 401, 'the revoked key is refused');

    await step(opsPage, 'revoked-session', async () => {
      // the next request of the key's session fails, and the page asks to sign in again
      await opsPage.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Models' }).click();
      await opsPage.getByLabel('Admin token or API key').waitFor();
      await opsPage.getByLabel('Admin token or API key').fill(key);
      await opsPage.getByRole('button', { name: 'Sign in' }).click();
      await opsPage.getByRole('alert').filter({ hasText: 'revoked' }).waitFor();
    });
  } finally {
    await other.close();
  }
});

test('a function page shows the error messages its callers got', { skip: browserSkip }, async () => {
  kennelJson(daemon!.home, ['functions', 'create', 'classify', '--endpoint', 'dogs']);
  const { key } = kennelJson<{ key: string }>(daemon!.home, ['keys', 'create', 'app', '--allow', 'function:Invoke:function/classify', '--expires', '1d']);
  // the gateway re-reads function definitions every 2 s
  for (let i = 0; ; i++) {
    const res = await fetch(`${daemon!.dataUrl}/functions/classify/invoke`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ url: 'http://169.254.169.254/latest/meta-data/' }) });
    if (res.status === 400) break;
    assert.ok(i < 40 && res.status === 404, `invoke answered ${res.status}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  await step(page, 'function-errors', async () => {
    await nav('Functions');
    await page.getByRole('link', { name: 'classify', exact: true }).click();
    const row = page.getByRole('row').filter({ hasText: '400' });
    await row.getByText(/Only https:\/\/ URLs are fetched/).waitFor();
  });
});

test('a tuning job started from the page shows live progress and is cancelled from it', { skip: browserSkip }, async () => {
  await step(page, 'cancel-job', async () => {
    await nav('Jobs');
    await page.getByRole('button', { name: 'New tuning job' }).click();
    await page.getByLabel('Trials').fill('200');
    await page.getByRole('button', { name: 'Start tuning' }).click();
    await page.getByRole('heading', { name: /^Job tune-/ }).waitFor();
    await page.locator('.phases progress').first().waitFor();
    await page.getByRole('button', { name: 'Cancel job' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel the job' }).click();
    await page.locator('.badge', { hasText: 'cancelled' }).first().waitFor({ timeout: 30_000 });
  });
});

test('delete a model version: the guard refuses a production version in the dialog, "Delete anyway" deletes it', { skip: browserSkip }, async () => {
  await step(page, 'delete-model', async () => {
    // breeds-fast@1 (compared above) is tagged production, which the guard protects
    const tag = await fetch(`${daemon!.adminUrl}/api/models/breeds-fast/tags`, { method: 'POST', headers: { authorization: `Bearer ${daemon!.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ tag: 'production', version: 1 }) });
    assert.equal(tag.status, 200);
    await page.goto(`${daemon!.adminUrl}/#/models/breeds-fast/1`);
    await page.getByRole('heading', { name: 'Model breeds-fast@1' }).waitFor();
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete breeds-fast@1?' });
    await dialog.getByRole('button', { name: 'Delete', exact: true }).click();
    await dialog.getByRole('alert').getByText('Model breeds-fast@1 is tagged production.').waitFor();
    assert.equal((await api('GET', '/api/models/breeds-fast/versions/1', daemon!.token)).status, 200, 'refused: still there');
    await dialog.getByRole('button', { name: 'Delete anyway' }).click();
    await page.getByRole('heading', { name: 'Models', exact: true }).waitFor();
    await page.getByRole('link', { name: 'breeds@1', exact: true }).first().waitFor();
    assert.equal(await page.getByText('breeds-fast').count(), 0, 'gone from the list');
    assert.equal((await api('GET', '/api/models/breeds-fast/versions/1', daemon!.token)).status, 404);
  });
});

test('on a phone-sized screen every page fits the width (tables scroll inside their cards)', { skip: browserSkip }, async () => {
  const phone = await browser!.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await phone.addCookies(await context.cookies());
  const p = await phone.newPage();
  try {
    for (const route of ['/', '/datasets/breeds', '/jobs', '/models/breeds/1', '/endpoints/dogs', '/functions', '/functions/classify', '/security/keys', '/security/log', '/try']) {
      await step(p, `phone${route}`, async () => {
        await p.goto(`${daemon!.adminUrl}/#${route}`);
        await p.locator('h1').first().waitFor();
        await p.waitForTimeout(300);
        const overflow = await p.evaluate(() => {
          const g = globalThis as unknown as { document: { documentElement: { scrollWidth: number } }; innerWidth: number };
          return g.document.documentElement.scrollWidth - g.innerWidth;
        });
        assert.ok(overflow <= 1, `${route} is ${overflow}px wider than the screen`);
      });
    }
  } finally {
    await phone.close();
  }
});

test('nothing was loaded from elsewhere, and no script error happened', { skip: browserSkip }, () => {
  assert.deepEqual(foreign, []);
  assert.deepEqual(pageErrors, []);
});

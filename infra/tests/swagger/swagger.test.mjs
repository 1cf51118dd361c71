// End-to-end test of what a person sees at the gateway's /api/docs (Swagger UI),
// driven in headless Chromium (Debian's /usr/bin/chromium) with playwright-core.
//
// Run through ./run.sh, which installs what is missing and sets NODE_PATH.
// Checks, in order:
//   1. the OpenAPI document is served and declares the "bearer" scheme and the operation;
//   2. the login endpoint gives a token (Node fetch, not the browser);
//   3. Swagger UI renders the API title, the operations and the Authorize button;
//   4. GET /api/orders/stats, executed with "Try it out" before authorizing, shows 401;
//   5. Authorize -> bearer token -> Authorize -> Close leaves the UI authorized;
//   6. the same operation, executed again, shows 200 and a JSON body with countsByStatus.
// Screenshots go to ARTIFACT_DIR. Exit code 0 only if every check passed. With
// SCREENSHOT_DIR set (`make screenshots`), the authorized page with its 200 answer is also
// written there as swagger.png, at the window's size, for the documentation.
//
// Environment: GATEWAY_URL, ARTIFACT_DIR, SCREENSHOT_DIR, CHROMIUM_PATH, ADMIN_EMAIL, ADMIN_PASSWORD,
// STEP_TIMEOUT_MS (one wait, default 20000), TEST_TIMEOUT_MS (whole test, default 120000),
// OPERATION_PATH (default /api/orders/stats).

import { createRequire } from 'node:module';
import { mkdirSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

// createRequire resolves through NODE_PATH (set by run.sh to the cache outside the repo)
// and also finds a node_modules next to this file.
const require = createRequire(import.meta.url);
let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch (err) {
  console.error('FAIL: cannot load playwright-core (run infra/tests/swagger/run.sh, which installs it and sets NODE_PATH):', err.message);
  process.exit(2);
}

const GATEWAY_URL = (process.env.GATEWAY_URL || 'http://127.0.0.1:3005').replace(/\/+$/, '');
const DOCS_URL = `${GATEWAY_URL}/api/docs`;
const SPEC_URL = `${GATEWAY_URL}/api/docs/openapi.json`;
const LOGIN_URL = `${GATEWAY_URL}/api/auth/login`;
const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const STATE_HOME = process.env.XDG_STATE_HOME || path.join(homedir(), '.local', 'state');
const ARTIFACT_DIR = path.resolve(
  process.env.ARTIFACT_DIR || path.join(STATE_HOME, 'rust-event-platform', 'artifacts', 'swagger'),
);
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR ? path.resolve(process.env.SCREENSHOT_DIR) : '';
const ADMIN_EMAIL = process.env.ADMIN_EMAIL || 'admin@example.com';
const ADMIN_PASSWORD = process.env.ADMIN_PASSWORD || 'Admin123!ChangeMe';
const STEP_TIMEOUT = Number(process.env.STEP_TIMEOUT_MS || 20000);
const TEST_TIMEOUT = Number(process.env.TEST_TIMEOUT_MS || 120000);
const OP_METHOD = 'get';
const OP_PATH = process.env.OPERATION_PATH || '/api/orders/stats';
const OP_LABEL = `${OP_METHOD.toUpperCase()} ${OP_PATH}`;

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

const started = Date.now();
let passed = 0;
let browser;
let page;
const screenshots = [];

class CheckError extends Error {}
function check(cond, msg) {
  if (!cond) throw new CheckError(msg);
}
function ok(msg) {
  passed += 1;
  console.log(`  ok ${String(passed).padStart(2)} - ${msg}`);
}
function elapsed() {
  return `${((Date.now() - started) / 1000).toFixed(1)}s`;
}
async function shot(name, opts = {}) {
  const file = path.join(ARTIFACT_DIR, name);
  await page.screenshot({ path: file, fullPage: true, ...opts });
  screenshots.push(file);
  return file;
}

// Whole-run watchdog: never hang, whatever Chromium or the gateway does.
const watchdog = setTimeout(() => {
  console.error(`FAIL: the test did not finish within ${TEST_TIMEOUT} ms (TEST_TIMEOUT_MS)`);
  process.exit(1);
}, TEST_TIMEOUT);
watchdog.unref();

async function fetchWithTimeout(url, init = {}) {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(STEP_TIMEOUT) });
  } catch (err) {
    throw new CheckError(`${init.method || 'GET'} ${url} failed: ${err.cause?.message || err.message} (is the gateway running at ${GATEWAY_URL}?)`);
  }
}

// ---------------------------------------------------------------------------

async function checkSpec() {
  const res = await fetchWithTimeout(SPEC_URL);
  check(res.status === 200, `GET ${SPEC_URL} answered ${res.status}, expected 200`);
  const spec = await res.json();
  const scheme = spec?.components?.securitySchemes?.bearer;
  check(scheme?.type === 'http' && String(scheme.scheme).toLowerCase() === 'bearer',
    `the OpenAPI document declares no HTTP bearer scheme named "bearer" (found ${JSON.stringify(scheme)})`);
  const op = spec?.paths?.[OP_PATH]?.[OP_METHOD];
  check(op, `the OpenAPI document has no operation ${OP_LABEL}`);
  check((op.security || spec.security || []).some((s) => 'bearer' in s),
    `${OP_LABEL} does not require the "bearer" scheme in the OpenAPI document`);
  ok(`OpenAPI document served at ${SPEC_URL} (${spec.info?.title} ${spec.info?.version}), "bearer" scheme, ${OP_LABEL} secured`);
  return spec;
}

async function login() {
  const res = await fetchWithTimeout(LOGIN_URL, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
  });
  const text = await res.text();
  check(res.status === 200, `POST ${LOGIN_URL} as ${ADMIN_EMAIL} answered ${res.status}: ${text.slice(0, 300)}`);
  let token;
  try {
    token = JSON.parse(text).access_token;
  } catch {
    /* checked below */
  }
  check(typeof token === 'string' && token.split('.').length === 3,
    `POST ${LOGIN_URL} gave no JWT access_token: ${text.slice(0, 300)}`);
  ok(`POST /api/auth/login as ${ADMIN_EMAIL} returned an access_token (JWT, ${token.length} chars)`);
  return token;
}

function operationBlock() {
  // The operation's block, found the way a reader finds it: by its method and path.
  return page
    .locator(`.opblock.opblock-${OP_METHOD}`)
    .filter({ has: page.locator(`.opblock-summary-path[data-path="${OP_PATH}"]`) });
}

async function openDocs(spec) {
  const res = await page.goto(DOCS_URL, { waitUntil: 'domcontentloaded', timeout: STEP_TIMEOUT });
  check(res && res.status() === 200, `GET ${DOCS_URL} answered ${res && res.status()} in the browser`);

  const title = page.locator('.swagger-ui .info .title');
  await title.waitFor({ state: 'visible', timeout: STEP_TIMEOUT });
  const titleText = (await title.innerText()).trim();
  check(titleText.includes(spec.info.title), `Swagger UI shows the title "${titleText}", expected "${spec.info.title}"`);
  ok(`Swagger UI rendered at ${DOCS_URL} with title "${spec.info.title}"`);

  await operationBlock().first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT });
  const rendered = await page.locator('.opblock .opblock-summary-path').evaluateAll((els) =>
    els.map((e) => e.getAttribute('data-path')));
  const expected = Object.entries(spec.paths).flatMap(([p, ops]) =>
    Object.keys(ops).filter((m) => ['get', 'post', 'put', 'patch', 'delete'].includes(m)).map(() => p));
  check(rendered.length === expected.length,
    `Swagger UI shows ${rendered.length} operations, the OpenAPI document has ${expected.length}`);
  check(await operationBlock().count() === 1, `Swagger UI shows ${await operationBlock().count()} blocks for ${OP_LABEL}, expected 1`);
  ok(`Swagger UI lists all ${rendered.length} operations, including ${OP_LABEL}`);

  const authorize = page.locator('.auth-wrapper').getByRole('button', { name: 'Authorize' });
  await authorize.waitFor({ state: 'visible', timeout: STEP_TIMEOUT });
  check(await authorize.evaluate((b) => b.classList.contains('unlocked')), 'the Authorize button should show "unlocked" before authorizing');
  ok('the "Authorize" button is shown, unlocked');
  await shot('01-docs-loaded.png');
}

// Expand the operation, press "Try it out" (once), press Execute, and return the
// HTTP response the browser received together with what the page then shows.
async function execute(label) {
  const block = operationBlock();
  if (!(await block.locator('.opblock-body').isVisible())) {
    await block.locator('.opblock-summary-control').click();
    await block.locator('.opblock-body').waitFor({ state: 'visible', timeout: STEP_TIMEOUT });
  }
  const tryOut = block.locator('button.try-out__btn');
  await tryOut.waitFor({ state: 'visible', timeout: STEP_TIMEOUT });
  if ((await tryOut.innerText()).trim() === 'Try it out') {
    await tryOut.click();
  }
  const executeBtn = block.getByRole('button', { name: 'Execute' });
  await executeBtn.waitFor({ state: 'visible', timeout: STEP_TIMEOUT });

  // Remove a previous live response so the next one is unambiguous.
  const clear = block.getByRole('button', { name: 'Clear' });
  if (await clear.isVisible()) {
    await clear.click();
    await block.locator('.live-responses-table').waitFor({ state: 'detached', timeout: STEP_TIMEOUT });
  }

  const opUrl = `${GATEWAY_URL}${OP_PATH}`;
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().split('?')[0] === opUrl && r.request().method() === 'GET', { timeout: STEP_TIMEOUT }),
    executeBtn.click(),
  ]);
  const request = response.request();
  const authHeader = (await request.allHeaders()).authorization;

  // What the reader sees: the "Server response" table with the live status and body.
  const live = block.locator('.live-responses-table .response');
  const status = live.locator('.response-col_status');
  await status.waitFor({ state: 'visible', timeout: STEP_TIMEOUT });
  const shownStatus = (await status.innerText()).trim();
  // "Response body": the code block under .highlight-code (which also holds the Download button).
  const bodyCode = live.locator('.response-col_description .highlight-code pre').first();
  await bodyCode.waitFor({ state: 'visible', timeout: STEP_TIMEOUT });
  const shownBody = (await bodyCode.innerText()).trim();
  const curl = (await block.locator('.curl-command').innerText().catch(() => '')).trim();
  const requestUrl = (await block.locator('.request-url').innerText().catch(() => '')).trim();
  console.log(`       ${label}: browser sent GET ${response.url()} (Authorization: ${authHeader ? 'Bearer …' : 'none'}), got ${response.status()}; page shows ${shownStatus}`);
  return { response, authHeader, shownStatus, shownBody, curl, requestUrl, block };
}

async function unauthorizedAttempt() {
  const r = await execute('without token');
  check(!r.authHeader, `before authorizing, the browser already sent an Authorization header`);
  check(r.response.status() === 401, `before authorizing, ${OP_LABEL} answered ${r.response.status()}, expected 401`);
  check(r.shownStatus === '401', `before authorizing, the page shows status "${r.shownStatus}", expected 401`);
  check(/unauthorized/i.test(r.shownBody) && /"status":\s*401/.test(r.shownBody),
    `before authorizing, the page shows a body without the 401 problem: ${r.shownBody.slice(0, 300)}`);
  check(!/authorization:/i.test(r.curl), 'before authorizing, the curl shown carries an Authorization header');
  ok(`"Try it out" + "Execute" on ${OP_LABEL} without authorizing shows 401 Unauthorized (problem+json)`);
  await r.block.scrollIntoViewIfNeeded();
  await shot('02-unauthorized-401.png');
}

async function authorize(token) {
  await page.locator('.auth-wrapper').getByRole('button', { name: 'Authorize' }).click();
  const modal = page.locator('.modal-ux');
  await modal.waitFor({ state: 'visible', timeout: STEP_TIMEOUT });
  const section = modal.locator('.auth-container').filter({ has: page.locator('h4 code', { hasText: /^bearer$/ }) });
  check(await section.count() === 1, 'the "Available authorizations" dialog has no "bearer" section');
  const field = section.locator('input#auth-bearer-value, input[aria-label="auth-bearer-value"]').first();
  await field.waitFor({ state: 'visible', timeout: STEP_TIMEOUT });
  await field.click();
  await field.pressSequentially(token, { delay: 0 });
  check((await field.inputValue()) === token, 'the bearer field does not hold the typed token');
  // Buttons are found by the label a person reads on them.
  await section.locator('button', { hasText: /^Authorize$/ }).click();
  // Authorized: the section now offers "Logout" and states it is authorized.
  await section.locator('button', { hasText: /^Logout$/ }).waitFor({ state: 'visible', timeout: STEP_TIMEOUT });
  const sectionText = await section.innerText();
  check(/Authorized/.test(sectionText), `the bearer section does not say "Authorized": ${sectionText.slice(0, 200)}`);
  ok('Authorize dialog: typed the token into the "bearer" Value field, pressed Authorize, dialog shows "Authorized" and Logout');
  await shot('03-authorize-dialog.png', { fullPage: false });
  await section.locator('button', { hasText: /^Close$/ }).click();
  await modal.waitFor({ state: 'detached', timeout: STEP_TIMEOUT });
  const mainBtn = page.locator('.auth-wrapper .btn.authorize');
  await page.waitForFunction((el) => el.classList.contains('locked'), await mainBtn.elementHandle(), { timeout: STEP_TIMEOUT });
  const opLock = operationBlock().locator('.authorization__btn');
  if (await opLock.count()) {
    const aria = (await opLock.first().getAttribute('aria-label')) || '';
    check(/locked/.test(aria) && !/unlocked/.test(aria), `the lock on ${OP_LABEL} reads "${aria}" after authorizing`);
  }
  ok('dialog closed; the Authorize button and the operation\'s lock show "locked"');
}

async function authorizedAttempt() {
  const r = await execute('with token');
  check(r.authHeader && /^Bearer \S+$/.test(r.authHeader), `after authorizing, the browser sent Authorization: ${r.authHeader}`);
  check(r.response.status() === 200, `after authorizing, ${OP_LABEL} answered ${r.response.status()}, expected 200`);
  check(r.shownStatus === '200', `after authorizing, the page shows status "${r.shownStatus}", expected 200`);
  check(/authorization: Bearer /i.test(r.curl), 'after authorizing, the curl shown has no "Authorization: Bearer" header');
  let body;
  try {
    body = JSON.parse(r.shownBody);
  } catch (err) {
    throw new CheckError(`after authorizing, the response body shown is not JSON (${err.message}): ${r.shownBody.slice(0, 300)}`);
  }
  check(body && typeof body.countsByStatus === 'object' && body.countsByStatus !== null,
    `after authorizing, the body shown has no countsByStatus object: ${r.shownBody.slice(0, 300)}`);
  const counts = Object.entries(body.countsByStatus).map(([k, v]) => `${k}=${v}`).join(' ');
  ok(`"Execute" on ${OP_LABEL} after authorizing shows 200 and JSON with countsByStatus {${counts}}, totalOrders=${body.totalOrders}`);
  await r.block.scrollIntoViewIfNeeded();
  await shot('04-authorized-200-fullpage.png');
  await r.block.screenshot({ path: path.join(ARTIFACT_DIR, '05-operation-200.png') });
  screenshots.push(path.join(ARTIFACT_DIR, '05-operation-200.png'));
  if (SCREENSHOT_DIR) {
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const file = path.join(SCREENSHOT_DIR, 'swagger.png');
    await page.screenshot({ path: file, fullPage: false });
    screenshots.push(file);
  }
}

// ---------------------------------------------------------------------------

async function main() {
  console.log(`swagger UI end-to-end test: ${DOCS_URL} in ${CHROMIUM_PATH}`);
  mkdirSync(ARTIFACT_DIR, { recursive: true });
  rmSync(path.join(ARTIFACT_DIR, '99-failure.png'), { force: true }); // a previous run's

  const spec = await checkSpec();
  const token = await login();

  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: STEP_TIMEOUT,
    });
  } catch (err) {
    throw new CheckError(`cannot start Chromium at ${CHROMIUM_PATH}: ${err.message.split('\n')[0]}`);
  }
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(STEP_TIMEOUT);
  page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  ok(`Chromium ${browser.version()} started headless`);

  await openDocs(spec);
  await unauthorizedAttempt();
  await authorize(token);
  await authorizedAttempt();

  check(pageErrors.length === 0, `the page threw JavaScript errors: ${pageErrors.join(' | ')}`);
  ok('no JavaScript errors on the page');
}

try {
  await main();
  console.log(`screenshots (${ARTIFACT_DIR}):`);
  for (const s of screenshots) console.log(`  ${s}`);
  console.log(`took ${elapsed()}`);
  console.log(`swagger: ${passed} passed, 0 failed`);
  await browser?.close();
  process.exit(0);
} catch (err) {
  const msg = err instanceof CheckError ? err.message : (err.stack || String(err)).split('\n').slice(0, 4).join('\n');
  console.error(`FAIL: ${msg}`);
  if (page) {
    try {
      const file = path.join(ARTIFACT_DIR, '99-failure.png');
      await page.screenshot({ path: file, fullPage: true, timeout: 10000 });
      console.error(`failure screenshot: ${file}`);
    } catch {
      /* the browser may be gone */
    }
  }
  console.log(`took ${elapsed()}`);
  console.log(`swagger: ${passed} passed, 1 failed`);
  await browser?.close().catch(() => {});
  process.exit(1);
}

// Walks the console in headless Chromium over the DevTools protocol: each walk in its own browser
// context (its own cookies), each page checked with axe-core and saved as a screenshot.
// Usage: node --experimental-websocket walk.mjs plan.json   (prints the results as JSON)
//
// plan: {chromium, axe, base, out, walks: [{name, lang, steps: [step]}]} (lang: the browser's
// Accept-Language, Japanese when not given), a step one of
//   {go: path}                      open a page of the site
//   {fill: {selector: value}}       set fields
//   {tick: selector}                tick a checkbox
//   {submit: selector}              submit a form (and wait for the next page)
//   {follow: selector}              open a link's href
//   {page: name}                    check the page with axe-core, save a screenshot, record its text
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const axeSource = readFileSync(plan.axe, 'utf8');
const profile = mkdtempSync(join(tmpdir(), 'renkei-walk-'));
const chrome = spawn(plan.chromium, [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
  '--remote-debugging-port=0', `--user-data-dir=${profile}`, '--window-size=1280,900', 'about:blank',
], { stdio: ['ignore', 'ignore', 'pipe'] });
const wsUrl = await new Promise((resolve, reject) => {
  let err = '';
  chrome.stderr.on('data', (d) => {
    err += d;
    const m = err.match(/DevTools listening on (ws:\/\/\S+)/);
    if (m) resolve(m[1]);
  });
  chrome.on('exit', (code) => reject(new Error(`chromium exited ${code}: ${err}`)));
  setTimeout(() => reject(new Error(`chromium did not start: ${err}`)), 30000);
});

const ws = new WebSocket(wsUrl);
await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
let nextId = 1;
const pending = new Map();
const listeners = [];
ws.onmessage = (event) => {
  const msg = JSON.parse(event.data);
  if (msg.id && pending.has(msg.id)) {
    const { resolve, reject } = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.error) reject(new Error(JSON.stringify(msg.error))); else resolve(msg.result);
  } else if (msg.method) {
    for (const l of [...listeners]) l(msg);
  }
};
function send(method, params = {}, sessionId) {
  const id = nextId++;
  ws.send(JSON.stringify({ id, method, params, sessionId }));
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}
function once(method, sessionId, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const l = (msg) => {
      if (msg.method === method && msg.sessionId === sessionId) {
        listeners.splice(listeners.indexOf(l), 1);
        resolve(msg.params);
      }
    };
    listeners.push(l);
    setTimeout(() => reject(new Error(`timed out waiting for ${method}`)), timeoutMs);
  });
}
async function evaluate(sessionId, expression) {
  const r = await send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, sessionId);
  if (r.exceptionDetails) throw new Error(`${expression.slice(0, 80)}: ${JSON.stringify(r.exceptionDetails)}`);
  return r.result.value;
}

const results = { pages: [], errors: [] };
for (const walk of plan.walks) {
  const { browserContextId } = await send('Target.createBrowserContext');
  const { targetId } = await send('Target.createTarget', { url: 'about:blank', browserContextId });
  const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
  await send('Page.enable', {}, sessionId);
  await send('Network.enable', {}, sessionId);
  await send('Network.setExtraHTTPHeaders', { headers: { 'Accept-Language': walk.lang || 'ja' } }, sessionId);
  const loaded = async (action) => {
    const done = once('Page.loadEventFired', sessionId);
    await action();
    await done;
  };
  try {
    for (const step of walk.steps) {
      if (step.go) {
        await loaded(() => send('Page.navigate', { url: plan.base + step.go }, sessionId));
      } else if (step.fill) {
        for (const [selector, value] of Object.entries(step.fill)) {
          await evaluate(sessionId, `document.querySelector(${JSON.stringify(selector)}).value = ${JSON.stringify(value)}`);
        }
      } else if (step.tick) {
        await evaluate(sessionId, `document.querySelector(${JSON.stringify(step.tick)}).checked = true`);
      } else if (step.submit) {
        await loaded(() => evaluate(sessionId, `document.querySelector(${JSON.stringify(step.submit)}).submit()`));
      } else if (step.follow) {
        const href = await evaluate(sessionId, `document.querySelector(${JSON.stringify(step.follow)}).href`);
        await loaded(() => send('Page.navigate', { url: href }, sessionId));
      } else if (step.page) {
        const url = await evaluate(sessionId, 'location.pathname + location.search');
        const text = await evaluate(sessionId, 'document.body.innerText');
        const html = await evaluate(sessionId, 'document.documentElement.outerHTML');
        await evaluate(sessionId, axeSource);
        const violations = await evaluate(sessionId, `axe.run(document, {runOnly: {type: 'tag', values:
          ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}}).then((r) =>
          r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length})))`);
        const shot = await send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true }, sessionId);
        const file = join(plan.out, `${walk.name}-${step.page}.png`);
        writeFileSync(file, Buffer.from(shot.data, 'base64'));
        results.pages.push({ walk: walk.name, page: step.page, url, text, bytes: Buffer.byteLength(html), violations, screenshot: file });
      }
    }
  } catch (e) {
    results.errors.push(`${walk.name}: ${e.message}`);
  }
  await send('Target.disposeBrowserContext', { browserContextId });
}
ws.close();
chrome.kill();
process.stdout.write(JSON.stringify(results));
process.exit(0);

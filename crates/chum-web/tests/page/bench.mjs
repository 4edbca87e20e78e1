// The browser peer's figures, in headless Chromium (run by `cargo xtask web-bench`):
// package size; puts through the IndexedDB store vs raw IndexedDB puts of the same bytes in
// the same batches; the initial sync of N objects from a native peer into an empty browser
// peer (and the longest main-thread task meanwhile); live push latency native → browser.
// Needs CHUM_WEB_PKG (a package built with the `bench` feature), BROWSER_PEER (the
// `browser_peer` binary of chum-benches) and CHROMIUM. Prints a Markdown report.

import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import readline from "node:readline";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const PKG = process.env.CHUM_WEB_PKG;
const PEER = process.env.BROWSER_PEER;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const N = Number(process.env.OBJECTS || 100000);
const BATCH = Number(process.env.BATCH || 1000);
const LIVE = Number(process.env.LIVE || 300);
const RUNS = Number(process.env.RUNS || 3);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))];

function pageServer() {
  const types = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html" };
  const server = http.createServer((request, response) => {
    const url = new URL(request.url, "http://x");
    const file = url.pathname.startsWith("/pkg/") ? path.join(PKG, path.basename(url.pathname)) : path.join(here, "index.html");
    fs.readFile(file, (error, body) => {
      if (error) return void response.writeHead(404).end();
      response.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream" });
      response.end(body);
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

function startPeer(objects) {
  const child = spawn(PEER, [String(objects)], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = readline.createInterface({ input: child.stdout });
  const next = () => new Promise((resolve) => lines.once("line", resolve));
  return { child, next, send: (line) => child.stdin.write(line + "\n") };
}

async function main() {
  const wasm = fs.readFileSync(path.join(PKG, "chum_web_bg.wasm"));
  const js = fs.readFileSync(path.join(PKG, "chum_web.js"));
  const size = {
    wasm: wasm.length,
    wasmGzip: zlib.gzipSync(wasm, { level: 9 }).length,
    js: js.length,
    jsGzip: zlib.gzipSync(js, { level: 9 }).length,
  };

  const server = await pageServer();
  const origin = `http://127.0.0.1:${server.address().port}`;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-dev-shm-usage"],
  });
  const open = async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on("pageerror", (error) => console.error(`page error: ${error}`));
    await page.goto(`${origin}/index.html`);
    await page.waitForFunction(() => window.chumReady === true);
    return { context, page };
  };

  // 1. Store puts vs raw IndexedDB puts: same bytes, same batches, same page, alternating.
  const puts = { store: [], raw: [] };
  {
    const { context, page } = await open();
    for (let run = 0; run < RUNS; run++) {
      const result = await page.evaluate(async ({ n, batch, run }) => {
        const objects = window.chum.Bench.objects(n, `puts ${run}`);
        const [cids, bytes] = objects;
        const raw = async () => {
          const db = await new Promise((resolve, reject) => {
            const request = indexedDB.open(`raw-${run}`, 1);
            request.onupgradeneeded = () => request.result.createObjectStore("objects");
            request.onsuccess = () => resolve(request.result);
            request.onerror = () => reject(request.error);
          });
          const start = performance.now();
          for (let i = 0; i < n; i += batch) {
            const tx = db.transaction("objects", "readwrite", { durability: "strict" });
            const store = tx.objectStore("objects");
            for (let j = i; j < Math.min(n, i + batch); j++) store.put(bytes[j], cids[j]);
            await new Promise((resolve, reject) => {
              tx.oncomplete = resolve;
              tx.onerror = tx.onabort = () => reject(tx.error);
              tx.commit?.();
            });
          }
          const ms = performance.now() - start;
          db.close();
          return ms;
        };
        const rawMs = await raw();
        const storeMs = await window.chum.Bench.storePuts(`store-${run}`, objects, batch);
        return { rawMs, storeMs };
      }, { n: N, batch: BATCH, run });
      puts.raw.push(result.rawMs);
      puts.store.push(result.storeMs);
    }
    await context.close();
  }

  // 2. Initial sync from a native peer into an empty browser peer, and the main thread meanwhile.
  const peer = startPeer(N);
  const { url, invitation } = JSON.parse(await peer.next());
  const sync = [];
  let page;
  for (let run = 0; run < RUNS; run++) {
    const opened = await open();
    page = opened.page;
    const result = await page.evaluate(async ({ url, invitation, n, run }) => {
      const longest = { ms: 0, count: 0, tasks: [] };
      const observer = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
          longest.ms = Math.max(longest.ms, entry.duration);
          longest.count++;
          longest.tasks.push([Math.round(entry.startTime - start), Math.round(entry.duration)]);
        }
      });
      observer.observe({ type: "longtask" });
      const start = performance.now();
      const inst = await window.chum.Instance.open({ name: `sync-${run}`, join: invitation });
      const joinedMs = performance.now() - start;
      await new Promise((r) => setTimeout(r, 100)); // let the observer report the last tasks
      observer.disconnect();
      const count = (await inst.list("Message")).length;
      window.inst = inst;
      return { joinedMs, count, longest };
    }, { url, invitation, n: N, run });
    if (result.count !== N) throw new Error(`the sync brought ${result.count} of ${N}`);
    if (process.env.TASKS) console.error(`run ${run}: joined in ${Math.round(result.joinedMs)} ms; long tasks [start, ms]: ${JSON.stringify(result.longest.tasks)}`);
    sync.push(result);
    if (run < RUNS - 1) await opened.context.close();
  }

  // 3. Live push native → browser, twice: on the last sync's page (right after the bulk
  // load) and in a fresh browser against a small peer (a quiet page).
  const measureLive = async (page, peer, url) => {
    await page.evaluate(async (url) => {
      window.latencies = [];
      window.inst.on("change", async (change) => {
        const seen = performance.timeOrigin + performance.now();
        if (change.type !== "Message" || change.origin === "local") return;
        const object = await window.inst.get(change.cid);
        const found = /^live \d+ (\d+)$/.exec(object?.text ?? "");
        if (found) window.latencies.push((seen * 1000 - Number(found[1])) / 1000);
      });
      window.link = window.inst.connect(url);
      await window.link.established();
    }, url);
    peer.send(`live ${LIVE} 10`);
    await peer.next(); // "live done"
    await page.waitForFunction((n) => window.latencies.length >= n, LIVE, { timeout: 30000 });
    return page.evaluate(() => window.latencies);
  };
  const afterBulk = await measureLive(page, peer, url);
  peer.send("quit");
  await browser.close();
  const quietPeer = startPeer(1000);
  const quiet = JSON.parse(await quietPeer.next());
  const browser2 = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-dev-shm-usage"],
  });
  const page2 = await browser2.newPage();
  await page2.goto(`${origin}/index.html`);
  await page2.waitForFunction(() => window.chumReady === true);
  await page2.evaluate(async (invitation) => {
    window.inst = await window.chum.Instance.open({ name: "live", join: invitation });
  }, quiet.invitation);
  // The floor under a live push: one small object in its own strict IndexedDB transaction.
  const floor = await page2.evaluate(async (n) => {
    const db = await new Promise((resolve, reject) => {
      const request = indexedDB.open("floor", 1);
      request.onupgradeneeded = () => request.result.createObjectStore("objects");
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    const times = [];
    for (let i = 0; i < n; i++) {
      const start = performance.now();
      const tx = db.transaction("objects", "readwrite", { durability: "strict" });
      tx.objectStore("objects").put(new Uint8Array(94).fill(i % 251), i);
      await new Promise((resolve, reject) => {
        tx.oncomplete = resolve;
        tx.onerror = tx.onabort = () => reject(tx.error);
        tx.commit?.();
      });
      times.push(performance.now() - start);
      await new Promise((r) => setTimeout(r, 10));
    }
    db.close();
    return times;
  }, LIVE);
  const latencies = await measureLive(page2, quietPeer, quiet.url);
  quietPeer.send("quit");
  await browser2.close();
  server.close();

  const storeMs = median(puts.store);
  const rawMs = median(puts.raw);
  const syncMs = median(sync.map((s) => s.joinedMs));
  const fmt = (x, d = 1) => x.toFixed(d);
  const range = (xs) => `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}`;
  console.log(`## Browser peer (headless Chromium ${browser.version?.() ?? ""}, ${new Date().toISOString()})\n`);
  console.log(`| figure | value | target |`);
  console.log(`|---|---|---|`);
  console.log(`| package: chum_web_bg.wasm | ${(size.wasm / 1e6).toFixed(2)} MB raw, ${(size.wasmGzip / 1e6).toFixed(3)} MB gzipped (+ JS ${(size.js / 1e3).toFixed(1)} kB, ${(size.jsGzip / 1e3).toFixed(1)} kB gzipped) | ≤ 1 MB gzipped |`);
  console.log(`| ${N} puts in batches of ${BATCH}: raw IndexedDB | ${fmt(rawMs)} ms (${range(puts.raw)}), ${Math.round(N / rawMs * 1000)}/s | |`);
  console.log(`| the same through IdbStore | ${fmt(storeMs)} ms (${range(puts.store)}), ${Math.round(N / storeMs * 1000)}/s — **${fmt(rawMs / storeMs, 2)}× raw** | ≥ 0.5× |`);
  console.log(`| initial sync of ${N} from a native peer (join + first sync) | ${fmt(syncMs)} ms (${range(sync.map((s) => s.joinedMs))}), ${Math.round(N / syncMs * 1000)}/s — **${fmt(storeMs / syncMs, 2)}× store-only puts** | ≥ 0.7× |`);
  const longTasks = sync.map((s) => s.longest.count);
  console.log(`| longest main-thread task during the sync | ${longTasks.every((n) => n === 0) ? "no task of 50 ms or more (the Long Tasks API reports only those)" : `${fmt(Math.max(...sync.map((s) => s.longest.ms)))} ms (${longTasks.join("/")} tasks of 50 ms or more)`} | ≤ 50 ms |`);
  console.log(`| live push native → browser, ${latencies.length} writes 10 ms apart (native durable write to the page's change event) | p50 ${fmt(quantile(latencies, 0.5), 2)} ms, p99 ${fmt(quantile(latencies, 0.99), 2)} ms, max ${fmt(Math.max(...latencies), 2)} ms | p99 ≤ 10 ms |`);
  console.log(`| floor: one small put in its own strict IndexedDB transaction, same page | p50 ${fmt(quantile(floor, 0.5), 2)} ms, p99 ${fmt(quantile(floor, 0.99), 2)} ms, max ${fmt(Math.max(...floor), 2)} ms | |`);
  console.log(`| the same right after the bulk sync, in the same page | p50 ${fmt(quantile(afterBulk, 0.5), 2)} ms, p99 ${fmt(quantile(afterBulk, 0.99), 2)} ms, max ${fmt(Math.max(...afterBulk), 2)} ms | |`);
  console.log(`\nMedians of ${RUNS} runs (min–max).`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

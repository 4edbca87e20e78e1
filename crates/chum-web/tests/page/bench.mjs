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
  const queued = [];
  const waiting = [];
  lines.on("line", (line) => (waiting.length ? waiting.shift()(line) : queued.push(line)));
  const next = () => (queued.length ? Promise.resolve(queued.shift()) : new Promise((resolve) => waiting.push(resolve)));
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

  // 2. Initial sync from a native peer into an empty browser peer, and the main thread
  // meanwhile: with the instance on the page's thread (`chum_web.js`) and in a Worker
  // (`worker.js`), alternating.
  const peer = startPeer(N);
  const { url, invitation } = JSON.parse(await peer.next());
  const sync = { thread: [], worker: [] };
  const pages = {};
  for (let run = 0; run < RUNS; run++) {
    for (const mode of ["thread", "worker"]) {
      const opened = await open();
      const result = await opened.page.evaluate(async ({ invitation, run, mode }) => {
        const api = mode === "worker" ? window.chumWorker : window.chum;
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
        const inst = await api.Instance.open({ name: `sync-${mode}-${run}`, join: invitation });
        const joinedMs = performance.now() - start;
        await new Promise((r) => setTimeout(r, 100)); // let the observer report the last tasks
        observer.disconnect();
        const count = (await inst.list("Message")).length;
        window.inst = inst;
        return { joinedMs, count, longest };
      }, { invitation, run, mode });
      if (result.count !== N) throw new Error(`the sync (${mode}) brought ${result.count} of ${N}`);
      if (process.env.TASKS) console.error(`run ${run} (${mode}): joined in ${Math.round(result.joinedMs)} ms; long tasks [start, ms]: ${JSON.stringify(result.longest.tasks)}`);
      sync[mode].push(result);
      if (run < RUNS - 1) await opened.context.close();
      else pages[mode] = opened.page;
    }
  }

  // 3. Live push native → browser: right after the bulk load (on the last sync's pages) and
  // in a fresh browser against a small peer (a quiet page), on the page's thread and in a
  // Worker. Latency from the native write's start and from its being durable there.
  const measureLive = async (page, peer, url) => {
    await page.evaluate(async (url) => {
      window.seen = [];
      window.inst.on("change", (change) => {
        const seen = performance.timeOrigin + performance.now();
        if (change.type !== "Message" || change.origin === "local") return;
        window.inst.get(change.cid).then((object) => {
          const found = /^live (\d+) (\d+)$/.exec(object?.text ?? "");
          if (found) window.seen.push([Number(found[1]), seen * 1000, Number(found[2])]);
        });
      });
      window.link = window.inst.connect(url);
      await window.link.established();
    }, url);
    peer.send(`live ${LIVE} 10`);
    const durable = new Map();
    for (;;) {
      const line = await peer.next();
      if (line === "live done") break;
      const [, i, at] = line.split(" ");
      durable.set(Number(i), Number(at));
    }
    await page.waitForFunction((n) => window.seen.length >= n, LIVE, { timeout: 30000 });
    const seen = await page.evaluate(() => window.seen);
    await page.evaluate(async () => {
      await window.link.close();
      await window.inst.close();
    });
    return {
      fromWrite: seen.map(([, at, wrote]) => (at - wrote) / 1000),
      fromDurable: seen.map(([i, at]) => (at - durable.get(i)) / 1000),
    };
  };
  const afterBulk = {};
  for (const mode of ["thread", "worker"]) afterBulk[mode] = await measureLive(pages[mode], peer, url);
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
  const quietLive = {};
  for (const mode of ["thread", "worker"]) {
    await page2.evaluate(async ({ invitation, mode }) => {
      const api = mode === "worker" ? window.chumWorker : window.chum;
      window.inst = await api.Instance.open({ name: `live-${mode}`, join: invitation });
    }, { invitation: quiet.invitation, mode });
    quietLive[mode] = await measureLive(page2, quietPeer, quiet.url);
  }
  quietPeer.send("quit");
  await browser2.close();
  server.close();

  const storeMs = median(puts.store);
  const rawMs = median(puts.raw);
  const fmt = (x, d = 1) => x.toFixed(d);
  const range = (xs) => `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}`;
  console.log(`## Browser peer (headless Chromium ${browser.version?.() ?? ""}, ${new Date().toISOString()})\n`);
  console.log(`| figure | value | target |`);
  console.log(`|---|---|---|`);
  console.log(`| package: chum_web_bg.wasm | ${(size.wasm / 1e6).toFixed(2)} MB raw, ${(size.wasmGzip / 1e6).toFixed(3)} MB gzipped (+ JS ${(size.js / 1e3).toFixed(1)} kB, ${(size.jsGzip / 1e3).toFixed(1)} kB gzipped) | ≤ 1 MB gzipped |`);
  console.log(`| ${N} puts in batches of ${BATCH}: raw IndexedDB | ${fmt(rawMs)} ms (${range(puts.raw)}), ${Math.round(N / rawMs * 1000)}/s | |`);
  console.log(`| the same through IdbStore | ${fmt(storeMs)} ms (${range(puts.store)}), ${Math.round(N / storeMs * 1000)}/s — **${fmt(rawMs / storeMs, 2)}× raw** | ≥ 0.5× |`);
  for (const [mode, label] of [["thread", "on the page's thread"], ["worker", "in a Worker"]]) {
    const runs = sync[mode];
    const syncMs = median(runs.map((s) => s.joinedMs));
    console.log(`| initial sync of ${N} from a native peer (join + first sync), ${label} | ${fmt(syncMs)} ms (${range(runs.map((s) => s.joinedMs))}), ${Math.round(N / syncMs * 1000)}/s — **${fmt(storeMs / syncMs, 2)}× store-only puts** | ≥ 0.7× |`);
    const longTasks = runs.map((s) => s.longest.count);
    console.log(`| longest main-thread task during that sync | ${longTasks.every((n) => n === 0) ? "no task of 50 ms or more (the Long Tasks API reports only those)" : `${fmt(Math.max(...runs.map((s) => s.longest.ms)))} ms (${longTasks.join("/")} tasks of 50 ms or more)`} | ≤ 50 ms |`);
  }
  const latency = (xs) => `p50 ${fmt(quantile(xs, 0.5), 2)} ms, p99 ${fmt(quantile(xs, 0.99), 2)} ms, max ${fmt(Math.max(...xs), 2)} ms`;
  for (const [mode, label] of [["thread", "on the page's thread"], ["worker", "in a Worker"]]) {
    console.log(`| live push native → browser, ${LIVE} writes 10 ms apart, ${label}: from the native write being durable to the page's change event | ${latency(quietLive[mode].fromDurable)} | p99 ≤ 10 ms |`);
    console.log(`| the same from the native write's start (includes its redb commit) | ${latency(quietLive[mode].fromWrite)} | |`);
    console.log(`| the same right after the bulk sync, in that page (from durable) | ${latency(afterBulk[mode].fromDurable)} | |`);
  }
  console.log(`| floor: one small put in its own strict IndexedDB transaction, same page | ${latency(floor)} | |`);
  console.log(`\nMedians of ${RUNS} runs (min–max).`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

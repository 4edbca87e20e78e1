// The desktop app's figures (run by `cargo xtask desktop-bench`, release build): main's
// startup time and RSS (idle, and after 10,000 messages), the time from "send" to "enhanced"
// in the page over 100 messages (local enhancer), and how long a renderer that was away takes
// to catch up 1,000 messages written meanwhile. Prints a Markdown table.
//
// Needs DESKTOP_BIN (release chum-desktop), CHUM_BIN (the chum CLI), DESKTOP_PKG, CHROMIUM.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { chumCli, freePort, kill, sleep, startMain as start } from "./lib.mjs";

const DESKTOP = process.env.DESKTOP_BIN;
const CHUM = process.env.CHUM_BIN;
const PKG = process.env.DESKTOP_PKG;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SENDS = Number(process.env.SENDS || 100);
const CATCH_UP = Number(process.env.CATCH_UP || 1000);
const MANY = Number(process.env.MANY || 10000);

const work = fs.mkdtempSync(path.join(os.tmpdir(), "chum-desktop-figures-"));
const data = path.join(work, "data");
const children = new Set();
const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))];

const startMain = (port) => start({ desktop: DESKTOP, port, data, pkg: PKG, children });
const stop = (child) => kill(child, "SIGTERM");
const chum = (args, input) => chumCli(CHUM, args, input);
const rssMb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))[1]) / 1024;

async function main() {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  const startups = [];
  for (let i = 0; i < 3; i++) {
    const { child, ms } = await startMain(port);
    startups.push(ms);
    await stop(child);
  }
  let { child } = await startMain(port);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-dev-shm-usage"],
  });
  const context = await browser.newContext();
  let page = await context.newPage();
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true]");
  await page.waitForFunction(() => document.querySelector("[data-testid=link-state]")?.textContent === "connected");
  await sleep(2000);
  const idleRss = rssMb(child.pid);

  // Send → enhanced, through the UI, one after another.
  const sends = await page.evaluate(async (n) => {
    const times = [];
    for (let i = 0; i < n; i++) {
      const text = `figure message ${i}`;
      const start = performance.now();
      document.querySelector("[data-testid=compose]").value = text;
      document.querySelector("[data-testid=needs-ai]").checked = true;
      document.querySelector("#compose-form").requestSubmit();
      for (;;) {
        const shown = [...document.querySelectorAll("[data-testid=message]")].find((m) => m.textContent === text);
        if (shown?.dataset.state === "enhanced") break;
        await new Promise((r) => requestAnimationFrame(r));
      }
      times.push(performance.now() - start);
    }
    return times;
  }, SENDS);

  // A renderer away while main gains CATCH_UP messages (written into main's store by the CLI
  // while main is stopped), then main and the renderer come back.
  const general = (await page.evaluate(() => window.chumApp.conversation));
  await page.close();
  await stop(child);
  const lines = Array.from({ length: CATCH_UP }, (_, i) => JSON.stringify({ $type: "Message", text: `written while away ${i}`, conversation: { "/": general } })).join("\n");
  await chum(["import", "--store", path.join(data, "store")], lines + "\n");
  ({ child } = await startMain(port));
  page = await context.newPage();
  const before = performance.now();
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true]");
  // Every entry is in the renderer's view (SENDS messages + their answers + CATCH_UP).
  await page.waitForFunction((n) => Number(document.querySelector("#messages")?.dataset.entries) >= n, 2 * SENDS + CATCH_UP, { timeout: 120000, polling: 50 });
  const catchUpMs = performance.now() - before;

  // Main's RSS with MANY messages.
  await page.close();
  await stop(child);
  const many = Array.from({ length: MANY }, (_, i) => JSON.stringify({ $type: "Message", text: `bulk ${i}`, conversation: { "/": general } })).join("\n");
  await chum(["import", "--store", path.join(data, "store")], many + "\n");
  const restarted = await startMain(port);
  child = restarted.child;
  page = await context.newPage();
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true]");
  await page.waitForFunction((n) => Number(document.querySelector("#messages")?.dataset.entries) >= n, 2 * SENDS + CATCH_UP + MANY, { timeout: 300000, polling: 250 });
  await sleep(2000);
  const manyRss = rssMb(child.pid);
  await browser.close();
  await stop(child);

  const fmt = (x) => x.toFixed(1);
  console.log(`## Desktop app (release build, headless Chromium, ${new Date().toISOString()})\n`);
  console.log("| figure | value |");
  console.log("|---|---|");
  console.log(`| main's startup (spawn → "listening on") | ${fmt(quantile(startups, 0.5))} ms (of ${startups.map(fmt).join(", ")}); a second start ${fmt(restarted.ms)} ms with ${SENDS + CATCH_UP + MANY} messages stored |`);
  console.log(`| main's RSS, idle with the renderer connected | ${fmt(idleRss)} MB |`);
  console.log(`| send → enhanced in the page, ${SENDS} messages one after another (local enhancer) | p50 ${fmt(quantile(sends, 0.5))} ms, p99 ${fmt(quantile(sends, 0.99))} ms, max ${fmt(Math.max(...sends))} ms |`);
  console.log(`| a renderer that was away catches up ${CATCH_UP} messages (page load → all shown) | ${fmt(catchUpMs)} ms |`);
  console.log(`| main's RSS after ${MANY} more messages synced to the renderer | ${fmt(manyRss)} MB |`);
}

try {
  await main();
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  for (const c of children) c.kill("SIGKILL");
  fs.rmSync(work, { recursive: true, force: true });
}

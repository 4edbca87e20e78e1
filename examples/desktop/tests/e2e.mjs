// The desktop app end to end: the real main binary (`chum-desktop`) in a temp data dir and its
// renderer in headless Chromium (Playwright's playwright-core driving Debian's Chromium).
// Pairing on first load, AI enhancement, main killed and restarted under a renderer that keeps
// working, reload, a contact edited in two places, instance-local settings, the pairing
// endpoint's refusals. Screenshots go to SCREENSHOTS (docs/images/ when run by the xtask).
//
// Needs DESKTOP_BIN (the chum-desktop binary), CHUM_BIN (the chum CLI), DESKTOP_PKG (the
// chum-web package) and CHROMIUM (default /usr/bin/chromium). One line per check; exits
// non-zero on the first failure.

import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { chumCli, freePort, kill, sleep, startMain as start } from "./lib.mjs";

const DESKTOP = process.env.DESKTOP_BIN;
const CHUM = process.env.CHUM_BIN;
const PKG = process.env.DESKTOP_PKG;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SCREENSHOTS = process.env.SCREENSHOTS;
if (!DESKTOP || !CHUM || !PKG) {
  console.error("set DESKTOP_BIN, CHUM_BIN and DESKTOP_PKG");
  process.exit(2);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), "chum-desktop-e2e-"));
const data = path.join(work, "data");
const children = new Set();
let browser;

function check(condition, what) {
  if (!condition) throw new Error(`failed: ${what}`);
  console.log(`ok: ${what}`);
}

const startMain = (port) => start({ desktop: DESKTOP, port, data, pkg: PKG, children }).then(({ child }) => child);
const chum = (args, input) => chumCli(CHUM, args, input);

async function openApp(context, url, label) {
  const page = await context.newPage();
  page.on("pageerror", (error) => {
    console.error(`${label}: uncaught: ${error}`);
    process.exitCode = 1;
  });
  page.on("console", (message) => {
    if (/panicked|unreachable|RuntimeError/.test(message.text())) {
      console.error(`${label}: ${message.text()}`);
      process.exitCode = 1;
    }
  });
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true], #notice:not([hidden])", { timeout: 60000 });
  return page;
}

const linkState = (page) => page.textContent("[data-testid=link-state]");
const waitLink = (page, state, timeout = 20000) =>
  page.waitForFunction((state) => document.querySelector("[data-testid=link-state]")?.textContent === state, state, { timeout });

async function send(page, text, ai = true) {
  await page.fill("[data-testid=compose]", text);
  await page.setChecked("[data-testid=needs-ai]", ai);
  await page.click("[data-testid=send]");
  await page.waitForFunction((text) => [...document.querySelectorAll("[data-testid=message]")].some((m) => m.textContent === text), text);
}

const messageState = (page, text) =>
  page.evaluate((text) => [...document.querySelectorAll("[data-testid=message]")].find((m) => m.textContent === text)?.dataset.state, text);

async function waitState(page, text, state, timeout) {
  await page.waitForFunction(
    ({ text, state }) => [...document.querySelectorAll("[data-testid=message]")].find((m) => m.textContent === text)?.dataset.state === state,
    { text, state },
    { timeout },
  );
}

/** Answers per original message, from the renderer's instance. */
async function answersPerMessage(page) {
  return page.evaluate(async () => {
    const inst = window.chumApp.inst;
    const counts = {};
    for (const id of await inst.list("Conversation")) {
      for (const cid of await inst.entries(id)) {
        const value = await inst.get(cid);
        const original = value?.originalId?.["/"];
        if (original) counts[original] = (counts[original] ?? 0) + 1;
      }
    }
    return counts;
  });
}

async function screenshot(page, name) {
  if (!SCREENSHOTS) return;
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, name) });
}

async function main() {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  let mainProcess = await startMain(port);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-dev-shm-usage"],
  });
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });

  // First load pairs.
  let page = await openApp(context, url, "renderer");
  check(await page.getAttribute("body", "data-ready") === "true", `the first load pairs and opens the renderer (${await page.textContent("#notice")})`);
  await waitLink(page, "connected");
  check(true, "the link shows connected");
  const who = await page.evaluate(() => window.chumApp.inst.whoami());
  const status = await page.evaluate(async () => (await fetch("/api/status", { method: "POST", body: "{}" })).json());
  check(who.person === status.person && who.instance !== status.instance, "the renderer is another instance of main's person");

  // Send with AI: enhanced within 2 s.
  const started = Date.now();
  await send(page, "hello from the renderer");
  await waitState(page, "hello from the renderer", "enhanced", 2000);
  check(true, `a message sent with AI shows enhanced within 2 s (${Date.now() - started} ms)`);
  await send(page, "no ai here", false);
  check(await messageState(page, "no ai here") === "sent", "a message without AI is just sent");
  await screenshot(page, "desktop-chat.png");

  // Main killed: the renderer keeps working and queues.
  await kill(mainProcess);
  await waitLink(page, "offline");
  check(true, "with main killed the link shows offline");
  const offline = ["offline one", "offline two", "offline three"];
  for (const text of offline) await send(page, text);
  check((await Promise.all(offline.map((t) => messageState(page, t)))).every((s) => s === "pending"), "3 messages sent offline show pending");
  await page.waitForFunction(() => Number(document.querySelector("[data-testid=at-risk]")?.textContent) >= 3, null, { timeout: 5000 });
  check(true, `they are at risk meanwhile (${await page.textContent("[data-testid=at-risk]")})`);
  await screenshot(page, "desktop-offline.png");
  // A reload while main is down: the app's files come from the service worker's cache, the
  // data from this browser's store.
  await page.reload();
  await page.waitForSelector("body[data-ready=true]", { timeout: 30000 });
  await page.waitForFunction((n) => document.querySelectorAll("[data-testid=message]").length >= n, 5, { timeout: 20000 });
  check((await Promise.all(offline.map((t) => messageState(page, t)))).every((s) => s === "pending"), "a reload with main down still opens the renderer with its history (from the service worker's cache)");
  await waitLink(page, "offline");

  // A contact edited in two places while apart: the renderer sets the name, main's store
  // (through the chum CLI, main being down) the phone.
  await page.click("nav button[data-view=contacts]");
  check(await page.isHidden("#chat") && await page.isVisible("#contacts"), "the Contacts tab shows contacts instead of the chat");
  await page.fill("[data-testid=contact-email]", "ada@example.org");
  await page.fill("[data-testid=contact-name]", "Ada");
  await page.click("[data-testid=save-contact]");
  await page.waitForSelector("[data-testid=contact][data-email='ada@example.org']");
  await chum(["put", "--store", path.join(data, "store")], JSON.stringify({ $type: "Contact", email: "ada@example.org", phone: "+44 1234" }));
  // Settings of this browser.
  await page.click("nav button[data-view=settings]");
  await page.selectOption("[data-testid=theme]", "dark");
  await page.waitForFunction(() => document.documentElement.dataset.theme === "dark");
  await page.click("nav button[data-view=chat]");

  // Main back on the same port: everything syncs and is enhanced, once.
  mainProcess = await startMain(port);
  await waitLink(page, "connected");
  for (const text of offline) await waitState(page, text, "enhanced", 20000);
  check(true, "main back: the 3 offline messages become enhanced");
  await page.waitForFunction(() => document.querySelector("[data-testid=at-risk]")?.textContent === "0", null, { timeout: 20000 });
  check(true, "nothing is at risk once main holds it");
  await sleep(500);
  const counts = await answersPerMessage(page);
  check(Object.keys(counts).length === 4 && Object.values(counts).every((n) => n === 1), `each message asking for AI has exactly one answer (${JSON.stringify(Object.values(counts))})`);

  await page.click("nav button[data-view=contacts]");
  await page.waitForFunction(() => document.querySelector("[data-testid=contact][data-email='ada@example.org']")?.textContent.includes("+44 1234"), null, { timeout: 20000 });
  const contact = await page.textContent("[data-testid=contact][data-email='ada@example.org']");
  check(contact.includes("Ada") && contact.includes("+44 1234"), `a contact edited in two places keeps both fields (${contact})`);
  await screenshot(page, "desktop-contacts.png");
  await page.click("nav button[data-view=chat]");

  // Reload: the whole history is there.
  await page.reload();
  await page.waitForSelector("body[data-ready=true]", { timeout: 60000 });
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=message]").length >= 5, null, { timeout: 20000 });
  const texts = await page.$$eval("[data-testid=message]", (ms) => ms.map((m) => m.textContent));
  check(["hello from the renderer", "no ai here", ...offline].every((t) => texts.includes(t)), `after a reload the whole history is there (${texts.length} messages)`);
  check(await page.evaluate(() => document.documentElement.dataset.theme) === "dark", "the theme is kept in this browser");

  // A second tab shares the one instance (no second writer) and sees what the first writes.
  const tab = await openApp(context, url, "second tab");
  check(await tab.getAttribute("body", "data-ready") === "true", "a second tab opens the same instance");
  const tabWho = await tab.evaluate(() => window.chumApp.inst.whoami());
  check(tabWho.instance === who.instance, "it is the same instance (shared, not a second writer)");
  await send(page, "seen in both tabs", false);
  await tab.waitForFunction(() => [...document.querySelectorAll("[data-testid=message]")].some((m) => m.textContent === "seen in both tabs"), null, { timeout: 10000 });
  check(true, "what one tab sends the other shows");
  await tab.close();

  // An AI endpoint that is down: the message shows failed with the reason; main keeps going.
  const setAi = (endpoint) => page.evaluate(async (endpoint) => (await fetch("/api/settings", { method: "POST", body: JSON.stringify({ endpoint }) })).json(), endpoint);
  const keyed = await page.evaluate(async () => (await fetch("/api/settings", { method: "POST", body: JSON.stringify({ endpoint: "http://127.0.0.1:9/one", key: "secret" }) })).json());
  const moved = await setAi("http://127.0.0.1:9/other");
  check(keyed.keySet && !moved.keySet, "a saved API key is unset when the endpoint changes without one (never sent to another server)");
  const dead = await freePort();
  const configured = await setAi(`http://127.0.0.1:${dead}`);
  check(configured.endpoint === `http://127.0.0.1:${dead}`, `main's AI endpoint is set from the page (${configured.enhancer})`);
  await send(page, "this one cannot be enhanced");
  await waitState(page, "this one cannot be enhanced", "failed", 20000);
  const reason = await page.evaluate(() => [...document.querySelectorAll("[data-testid=message]")].find((m) => m.textContent === "this one cannot be enhanced").nextElementSibling.textContent);
  check(/unavailable/.test(reason), `with the endpoint down the message shows failed and why (${reason.slice(0, 80)}…)`);
  await setAi("");
  await page.click("[data-testid=retry]");
  await page.waitForFunction(() => [...document.querySelectorAll("[data-testid=message]")].filter((m) => m.textContent === "this one cannot be enhanced").map((m) => m.dataset.state).join() === "failed,enhanced", null, { timeout: 5000 });
  check(true, "\"send again\" on a failed message sends it anew, and the local enhancer answers it");
  await send(page, "two lines\nof text", false);
  check(await page.evaluate(() => [...document.querySelectorAll("[data-testid=message]")].some((m) => m.textContent === "two lines\nof text" && m.offsetHeight > 30)), "a message keeps its line breaks");

  // Another site cannot frame the app (clickjacking).
  const headers = (await fetch(url)).headers;
  check(/frame-ancestors 'none'/.test(headers.get("content-security-policy") ?? "") && headers.get("x-frame-options") === "DENY", "the page may not be framed by another site");

  // Pairing refusals.
  const foreign = await fetch(`${url}pair`, { method: "POST", headers: { Origin: "http://evil.example" } });
  check(foreign.status === 403, `a pairing request from a foreign Origin is refused (${foreign.status})`);
  const rebound = await new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.end(`POST /pair HTTP/1.1\r\nHost: evil.example:${port}\r\nOrigin: http://evil.example:${port}\r\nContent-Length: 0\r\n\r\n`);
    });
    let answer = "";
    socket.on("data", (d) => (answer += d));
    socket.on("close", () => resolve(answer));
  });
  check(/^HTTP\/1.1 403/.test(rebound), "a DNS-rebinding request (foreign Host) is refused");
  const huge = await fetch(`${url}api/settings`, { method: "POST", headers: { Origin: `http://127.0.0.1:${port}` }, body: "x".repeat(200 << 10) });
  check(huge.status === 413, `a body over 64 KiB is refused with 413, and the client gets the answer (${huge.status})`);
  const again = await fetch(`${url}pair`, { method: "POST", headers: { Origin: `http://127.0.0.1:${port}` } });
  check(again.status === 409, `a second pairing is refused once the renderer has paired (${again.status})`);
  const otherProfile = await browser.newContext();
  const stranger = await openApp(otherProfile, url, "new browser store");
  const refusal = await stranger.textContent("#notice");
  check(/will not pair a second one/.test(refusal ?? ""), `a new browser store is not paired a second time (${refusal.slice(0, 120)}…)`);
  await otherProfile.close();

  // Settings of the renderer never reach main's store.
  await kill(mainProcess, "SIGTERM");
  const settingsOnMain = (await chum(["ls", "--store", path.join(data, "store"), "--type", "Settings"])).trim().split("\n").filter(Boolean);
  let theme = 0;
  for (const cid of settingsOnMain) if ((await chum(["get", "--store", path.join(data, "store"), cid])).includes("theme")) theme++;
  check(theme === 0, `the renderer's settings never reach main's store (${settingsOnMain.length} settings objects there, none the theme)`);

  // --unpair-renderer revokes the old renderer; a new browser store then pairs.
  const unpaired = await start({ desktop: DESKTOP, port, data, pkg: PKG, children, args: ["--unpair-renderer"] });
  check(/is revoked/.test(unpaired.err), `--unpair-renderer revokes the paired renderer (${unpaired.err.split("\n").find((l) => /revoked/.test(l))})`);
  const fresh = await browser.newContext();
  const newRenderer = await openApp(fresh, url, "new renderer");
  const newWho = await newRenderer.evaluate(() => window.chumApp?.inst?.whoami());
  check(newWho?.person === who.person && newWho.instance !== who.instance, "then a new browser store pairs as a new instance of the person");
  await fresh.close();
  await kill(unpaired.child, "SIGTERM");
  await context.close();
}

try {
  await main();
  if (process.exitCode) throw new Error("an uncaught error or panic in a page (above)");
  console.log("desktop e2e: all passed");
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  for (const child of children) child.kill("SIGKILL");
  if (browser) await Promise.race([browser.close(), sleep(5000)]);
  fs.rmSync(work, { recursive: true, force: true });
}

// The browser peer in real headless Chromium against a native `chum serve`:
// pairing, initial sync, writes both ways, live push, reload, another person, a used
// invitation, a second open of one store, garbage from a server, and errors from JavaScript.
//
// Run by `cargo xtask test` (after `cargo xtask web`), with CHUM_BIN (the chum CLI),
// CHUM_WEB_PKG (the package directory) and CHROMIUM (default /usr/bin/chromium).
// Prints one line per check; exits non-zero on the first failure.

import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { WebSocketServer } from "ws";

const here = path.dirname(fileURLToPath(import.meta.url));
const CHUM = process.env.CHUM_BIN;
const PKG = process.env.CHUM_WEB_PKG;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
if (!CHUM || !PKG) {
  console.error("set CHUM_BIN and CHUM_WEB_PKG");
  process.exit(2);
}
const NATIVE = Number(process.env.NATIVE_OBJECTS || 10000);
const FROM_PAGE = Number(process.env.PAGE_OBJECTS || 1000);

const work = fs.mkdtempSync(path.join(os.tmpdir(), "chum-page-"));
const children = [];
let browser;

function cleanup() {
  for (const child of children) child.kill("SIGKILL");
  fs.rmSync(work, { recursive: true, force: true });
}

function check(condition, what) {
  if (!condition) throw new Error(`failed: ${what}`);
  console.log(`ok: ${what}`);
}

/** Runs the CLI to completion; its stdout. */
function chum(args, input) {
  return new Promise((resolve, reject) => {
    const child = spawn(CHUM, args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`chum ${args.join(" ")}: exit ${code}: ${err}`)),
    );
    child.stdin.end(input ?? "");
  });
}

/** Starts `chum serve` for `store`; resolves with its ws:// address once it listens. */
function serve(store) {
  return new Promise((resolve, reject) => {
    const child = spawn(CHUM, ["serve", "--store", store, "--listen", "ws://127.0.0.1:0"], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    children.push(child);
    let err = "";
    child.stderr.on("data", (d) => {
      err += d;
      const found = /listening on (ws:\/\/\S+)/.exec(err);
      if (found) resolve(found[1]);
    });
    child.on("close", (code) => reject(new Error(`chum serve exited ${code}: ${err}`)));
  });
}

/** Serves the test page and the package on a free loopback port. */
function pageServer() {
  const types = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html", ".json": "application/json" };
  const server = http.createServer((request, response) => {
    const url = new URL(request.url, "http://x");
    const file = url.pathname.startsWith("/pkg/")
      ? path.join(PKG, path.basename(url.pathname))
      : path.join(here, "index.html");
    fs.readFile(file, (error, body) => {
      if (error) {
        response.writeHead(404).end();
        return;
      }
      response.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream" });
      response.end(body);
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** A page with the package loaded, failing the run on any uncaught error or Rust panic. */
async function openPage(context, origin, label) {
  const page = await context.newPage();
  page.on("pageerror", (error) => {
    console.error(`${label}: uncaught: ${error}`);
    process.exitCode = 1;
  });
  page.on("console", (message) => {
    const text = message.text();
    if (/panicked|unreachable|RuntimeError/.test(text)) {
      console.error(`${label}: ${text}`);
      process.exitCode = 1;
    }
  });
  await page.goto(`${origin}/index.html`);
  await page.waitForFunction(() => window.chumReady === true);
  return page;
}

/** `fn` in the page; thrown errors come back as `{ error: name, message }`. */
async function inPage(page, fn, arg) {
  return page.evaluate(
    async ({ source, arg }) => {
      const run = new Function(`return (${source})`)();
      try {
        return await run(window.chum, arg);
      } catch (error) {
        return { error: error?.name ?? String(error), message: error?.message ?? String(error) };
      }
    },
    { source: fn.toString(), arg },
  );
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The same API with the instance in a Worker (`worker.js`), and shared by tabs in a
 * SharedWorker. */
async function inWorker(context, origin, store, wsUrl) {
  const invitation = (await chum(["invite", "--store", store])).trim().split("\n").pop();
  const nativeCount = (await chum(["ls", "--store", store, "--type", "Message"])).trim().split("\n").length;
  const page = await openPage(context, origin, "worker page");
  const joined = await inPage(page, async (_, { invitation, wsUrl, nativeCount }) => {
    const api = window.chumWorker;
    const start = performance.now();
    const inst = await api.Instance.open({ name: "worker", join: invitation });
    window.inst = inst;
    const who = await inst.whoami();
    window.link = inst.connect(wsUrl);
    const peer = await window.link.established();
    let count = 0;
    while (count < nativeCount && performance.now() - start < 120000) {
      count = (await inst.list("Message")).length;
      await new Promise((r) => setTimeout(r, 50));
    }
    window.changes = [];
    window.off = inst.on("change", (change) => window.changes.push(change));
    const cids = [];
    for (let i = 0; i < 100; i++) cids.push(await inst.put({ $type: "Message", text: `worker ${i}` }));
    const atRiskAfterPuts = inst.atRisk();
    await window.link.synced();
    for (let i = 0; i < 100 && inst.atRisk() > 0; i++) await new Promise((r) => setTimeout(r, 50));
    const name = async (f) => {
      try {
        await f();
        return "none";
      } catch (error) {
        return error.name;
      }
    };
    return {
      who, peer, count, cids, atRiskAfterPuts, atRisk: inst.atRisk(), state: window.link.state,
      localChanges: window.changes.filter((c) => c.origin === "local").length,
      errors: {
        number: await name(() => inst.put(42)),
        missing: await name(() => inst.put({ $type: "Message" })),
        uncloneable: await name(() => inst.put({ $type: "Message", text: () => 1 })),
        badCid: await name(() => inst.get("not a cid")),
        badEvent: await name(() => inst.on("nothing", () => {})),
      },
    };
  }, { invitation, wsUrl, nativeCount });
  check(!joined.error, `in a Worker: the page joins (${joined.message ?? "joined"})`);
  check(joined.count >= nativeCount, `in a Worker: it receives the ${nativeCount} objects of the native side (${joined.count})`);
  check(joined.state === "connected", `in a Worker: link.state is "connected" (${joined.state})`);
  check(joined.localChanges === 100, `in a Worker: "change" events reach the page (${joined.localChanges} of 100 local)`);
  check(joined.atRiskAfterPuts > 0 && joined.atRisk === 0, `in a Worker: atRisk() counts the new objects (${joined.atRiskAfterPuts}) and drops to 0 once the native side holds them (${joined.atRisk})`);
  const listed = new Set((await chum(["ls", "--store", store])).trim().split("\n"));
  check(joined.cids.every((cid) => listed.has(cid)), "in a Worker: the native side lists the 100 objects written in the page");
  check(joined.errors.number === "TypeError" && joined.errors.missing === "RecipeError" && joined.errors.uncloneable === "TypeError"
    && joined.errors.badCid === "InvalidCid" && joined.errors.badEvent === "TypeError",
    `in a Worker: errors keep their names (${JSON.stringify(joined.errors)})`);

  const live = (await chum(["put", "--store", store], JSON.stringify({ $type: "Message", text: "live to the worker" }))).trim();
  const arrived = await arrival(page, live);
  check(arrived.change?.origin !== "local" && arrived.object?.text === "live to the worker", "in a Worker: a change written natively arrives live");

  // Versioned objects and collections: a Conversation, its Messages in order, and the
  // change event of a new version naming the object's ID hash.
  const threads = await inPage(page, async () => {
    const inst = window.inst;
    const conversation = { $type: "Conversation", id: "c-1", title: "first" };
    const id = await inst.idOf(conversation);
    await inst.put(conversation);
    await inst.put({ ...conversation, title: "renamed" });
    const texts = ["one", "two", "three"];
    for (const text of texts) await inst.create({ $type: "Message", text, conversation: { "/": id } });
    const entries = await inst.entries(id);
    const inOrder = [];
    for (const cid of entries) inOrder.push((await inst.get(cid)).text);
    await new Promise((r) => setTimeout(r, 100));
    const versions = window.changes.filter((c) => c.type === "Version" && c.id === id).length;
    const title = (await inst.show(id))?.title;
    await inst.delete(id);
    return { title, inOrder, versions, clock: Array.isArray((await inst.get(entries[0])).clock), deleted: await inst.show(id) };
  });
  check(threads.title === "renamed" && threads.versions === 2, `versioned: show(id) is the merged state and each version's change names the id (${threads.title}, ${threads.versions} changes)`);
  check(JSON.stringify(threads.inOrder) === '["one","two","three"]' && threads.clock, `collections: create() stamps a clock and entries(id) lists in order (${threads.inOrder})`);
  check(threads.deleted === null, `delete(id) leaves no state (${JSON.stringify(threads.deleted)})`);

  // Another tab: a Worker or the page's own thread gets StoreLocked.
  const tab = await openPage(context, origin, "worker tab");
  const locked = await inPage(tab, async (chum) => {
    const name = async (f) => {
      try {
        const inst = await f();
        await inst.close();
        return "none";
      } catch (error) {
        return error.name;
      }
    };
    return [await name(() => window.chumWorker.Instance.open({ name: "worker" })), await name(() => chum.Instance.open({ name: "worker" }))];
  });
  check(locked[0] === "StoreLocked" && locked[1] === "StoreLocked", `in a Worker: a second open from another tab gives StoreLocked (${locked})`);

  const closed = await inPage(page, async () => {
    window.off();
    await window.link.close();
    await window.inst.close();
    try {
      await window.inst.put({ $type: "Message", text: "late" });
      return "none";
    } catch (error) {
      return error.name;
    }
  });
  check(closed === "Closed", `in a Worker: a closed instance throws Closed (${closed})`);

  // Shared: two tabs, one instance in a SharedWorker, no StoreLocked.
  const openShared = (p) => inPage(p, async (_, wsUrl) => {
    for (let i = 0; i < 100; i++) {
      try {
        window.inst = await window.chumWorker.Instance.open({ name: "worker", shared: true });
        break;
      } catch (error) {
        if (error.name !== "StoreLocked") throw error; // the closed worker is still letting go
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    window.changes = [];
    window.inst.on("change", (change) => window.changes.push(change));
    window.link = window.inst.connect(wsUrl);
    await window.link.established();
    return window.inst.whoami();
  }, wsUrl);
  const first = await openShared(page);
  const second = await openShared(tab);
  check(!first.error && !second.error && first.instance === second.instance, `shared: two tabs open one instance (${first.message ?? second.message ?? first.instance})`);
  const cid = await inPage(page, async () => window.inst.put({ $type: "Message", text: "from tab one" }));
  const seen = await inPage(tab, async (_, cid) => {
    for (let i = 0; i < 200 && !window.changes.some((c) => c.cid === cid); i++) await new Promise((r) => setTimeout(r, 25));
    return { change: window.changes.find((c) => c.cid === cid), object: await window.inst.get(cid) };
  }, cid);
  check(seen.change?.origin === "local" && seen.object?.text === "from tab one", "shared: what one tab writes, the other sees at once");
  const after = await inPage(page, async () => {
    await window.inst.close();
    return null;
  });
  const still = await inPage(tab, async () => {
    const cid = await window.inst.put({ $type: "Message", text: "after tab one closed" });
    await window.link.synced();
    return { cid, state: window.link.state };
  });
  check(after === null && !still.error && still.state === "connected", `shared: closing one tab leaves the other's instance and link working (${still.message ?? still.state})`);
  // A third tab joins the shared instance and goes away without `close` (closed abruptly):
  // its share is let go all the same (its Web Lock is released), so the store is not kept
  // open once the last tab that is still there closes.
  const gone = await openPage(context, origin, "tab that goes away");
  const third = await openShared(gone);
  check(third.instance === first.instance, "shared: a third tab joins the instance");
  await gone.close();
  await new Promise((r) => setTimeout(r, 300));
  await inPage(tab, async () => window.inst.close());
  const reopened = await inPage(page, async (chum) => {
    for (let i = 0; i < 100; i++) {
      try {
        const inst = await chum.Instance.open({ name: "worker" });
        const count = (await inst.list("Message")).length;
        await inst.close();
        return count;
      } catch (error) {
        if (error.name !== "StoreLocked") throw error;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    return "still locked";
  });
  check(typeof reopened === "number", `shared: with its last tab closed — one of them gone without close() — the SharedWorker lets the store go (${reopened})`);
  await tab.close();
  await page.close();
}

/** Waits (at most 5 s) for the change of `cid` in the page's `window.changes`; `{ change,
 * object }`, or `{ change: null }`. */
function arrival(page, cid) {
  return inPage(page, async (_, cid) => {
    for (let i = 0; i < 200; i++) {
      const change = window.changes.find((c) => c.cid === cid);
      if (change) return { change, object: await window.inst.get(cid) };
      await new Promise((r) => setTimeout(r, 25));
    }
    return { change: null };
  }, cid);
}

async function main() {
  // The native main process: a person with NATIVE messages, serving over WebSocket.
  const store = path.join(work, "main");
  await chum(["init", "--store", store]);
  const lines = Array.from({ length: NATIVE }, (_, i) => JSON.stringify({ $type: "Message", text: `native ${i}` })).join("\n");
  const wsUrl = await serve(store);
  await chum(["import", "--store", store], lines + "\n");
  const invitation = (await chum(["invite", "--store", store])).trim().split("\n").pop();
  const server = await pageServer();
  const origin = `http://127.0.0.1:${server.address().port}`;

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-dev-shm-usage",
    ],
  });
  const context = await browser.newContext();
  const page = await openPage(context, origin, "renderer");

  // Pair, then receive everything written natively.
  const joined = await inPage(page, async (chum, { invitation, wsUrl, native }) => {
    const start = performance.now();
    const inst = await chum.Instance.open({ name: "renderer", join: invitation });
    window.inst = inst;
    const who = await inst.whoami();
    window.link = inst.connect(wsUrl);
    await window.link.established();
    let count = 0;
    while (count < native) {
      count = (await inst.list("Message")).length;
      if (performance.now() - start > 120000) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    return { who, count, ms: performance.now() - start, state: window.link.state };
  }, { invitation, wsUrl, native: NATIVE });
  check(!joined.error, `the page joins with an invitation (${joined.message ?? "joined"})`);
  check(joined.count === NATIVE, `the page receives ${NATIVE} objects written natively (${joined.count} in ${Math.round(joined.ms)} ms)`);
  check(joined.state === "connected", "the link is connected");
  const native = (await chum(["whoami", "--store", store])).match(/person (\S+)/)[1];
  check(joined.who.person === native, "the page is an instance of the native person");

  // The page writes; the native side lists it.
  const written = await inPage(page, async (chum, count) => {
    const cids = [];
    for (let i = 0; i < count; i++) cids.push(await window.inst.put({ $type: "Message", text: `page ${i}` }));
    await window.link.synced();
    return { cids, atRisk: window.inst.atRisk() };
  }, FROM_PAGE);
  check(!written.error, `the page writes ${FROM_PAGE} objects (${written.message ?? "ok"})`);
  const listed = new Set((await chum(["ls", "--store", store])).trim().split("\n"));
  check(written.cids.every((cid) => listed.has(cid)), `the native side lists all ${FROM_PAGE} of them`);
  const atRisk = await inPage(page, async () => {
    for (let i = 0; i < 100 && window.inst.atRisk() > 0; i++) await new Promise((r) => setTimeout(r, 50));
    return window.inst.atRisk();
  });
  check(atRisk === 0, `nothing is at risk once the native side holds it (${atRisk})`);

  // Live: a change written natively arrives in the page's event listener.
  await inPage(page, async () => {
    window.changes = [];
    window.off = window.inst.on("change", (change) => window.changes.push(change));
  });
  const live = (await chum(["put", "--store", store], JSON.stringify({ $type: "Message", text: "live from native" }))).trim();
  const arrived = await arrival(page, live);
  check(arrived.change && arrived.change.type === "Message" && arrived.change.origin !== "local", "a change written natively arrives live");
  check(arrived.object?.text === "live from native", "and reads back as the object");

  // A second open of the same store (another tab) is locked out.
  const tab = await openPage(context, origin, "second tab");
  const locked = await inPage(tab, async (chum) => chum.Instance.open({ name: "renderer" }));
  check(locked.error === "StoreLocked", `a second open of the store gives StoreLocked (${locked.error})`);
  await tab.close();

  // Reload: everything is still there, and the page reconnects.
  await page.reload();
  await page.waitForFunction(() => window.chumReady === true);
  const reloaded = await inPage(page, async (chum, wsUrl) => {
    let inst;
    for (let i = 0; i < 100; i++) {
      try {
        inst = await chum.Instance.open({ name: "renderer" });
        break;
      } catch (error) {
        if (error.name !== "StoreLocked") throw error; // the old page is still letting go
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    window.inst = inst;
    const count = (await inst.list("Message")).length;
    window.link = inst.connect(wsUrl);
    await window.link.established();
    return { count, state: window.link.state };
  }, wsUrl);
  check(!reloaded.error, `the page reopens its store after a reload (${reloaded.message ?? "ok"})`);
  check(reloaded.count === NATIVE + FROM_PAGE + 1, `everything is still there (${reloaded.count})`);
  check(reloaded.state === "connected", "and the page reconnects");

  // Errors thrown to JavaScript.
  const errors = await inPage(page, async (chum) => {
    const name = async (f) => {
      try {
        await f();
        return "none";
      } catch (error) {
        return error.name;
      }
    };
    const unknown = "bafyr4igqsbnqbnxvqcyivhpbrusqyrxb2wq4f6mkvrn3olqpr5fdrfgkvy";
    return {
      number: await name(() => window.inst.put(42)),
      missing: await name(() => window.inst.put({ $type: "Message" })),
      wrongType: await name(() => window.inst.put({ $type: "Message", text: 7 })),
      badCid: await name(() => window.inst.get("not a cid")),
      unknown: await window.inst.get(unknown),
      badEvent: await name(() => window.inst.on("nothing", () => {})),
      options: await name(() => chum.Instance.open("renderer")),
      getNumber: await name(() => window.inst.get(5)),
      listNothing: await name(() => window.inst.list()),
      badCallback: await name(() => window.inst.on("change", 5)),
      connectNumber: await name(() => window.inst.connect(7)),
      bytes: await (async () => {
        const cid = await window.inst.put({ $type: "Blobby", data: new Uint8Array([1, 2, 255]) });
        return (await window.inst.get(cid)).data;
      })(),
    };
  });
  check(errors.number === "TypeError", `put(42) throws TypeError (${errors.number})`);
  check(errors.missing === "RecipeError", `a missing required field throws RecipeError (${errors.missing})`);
  check(errors.wrongType === "RecipeError", `a field of the wrong kind throws RecipeError (${errors.wrongType})`);
  check(errors.badCid === "InvalidCid", `get("not a cid") throws InvalidCid (${errors.badCid})`);
  check(errors.unknown === null, "get(an unknown CID) is null");
  check(errors.badEvent === "TypeError", `on("nothing") throws TypeError (${errors.badEvent})`);
  check(errors.options === "TypeError", `Instance.open("renderer") throws TypeError (${errors.options})`);
  check(errors.getNumber === "TypeError" && errors.listNothing === "TypeError" && errors.badCallback === "TypeError" && errors.connectNumber === "TypeError",
    `arguments of the wrong kind throw TypeError, never a trap (${errors.getNumber}, ${errors.listNothing}, ${errors.badCallback}, ${errors.connectNumber})`);
  check(JSON.stringify(errors.bytes) === JSON.stringify({ "/": { bytes: "AQL/" } }), `a Uint8Array is stored as bytes (${JSON.stringify(errors.bytes)})`);

  // A used invitation is refused, in a profile of its own.
  const other = await browser.newContext();
  const stranger = await openPage(other, origin, "stranger");
  const used = await inPage(stranger, async (chum, invitation) => chum.Instance.open({ name: "again", join: invitation }), invitation);
  check(used.error === "InvitationUsed", `a used invitation is refused with InvitationUsed (${used.error}: ${used.message})`);

  // Another person, without a grant, receives nothing of the first person's objects.
  const foreign = await inPage(stranger, async (chum, wsUrl) => {
    const inst = await chum.Instance.open({ name: "other person" });
    const link = inst.connect(wsUrl);
    const peer = await link.established();
    await new Promise((r) => setTimeout(r, 1500));
    const messages = (await inst.list("Message")).length;
    await link.close();
    await inst.close();
    return { peer, messages };
  }, wsUrl);
  check(!foreign.error, `another person connects (${foreign.message ?? "ok"})`);
  check(foreign.peer.person === native && foreign.messages === 0, `and receives none of the first person's objects (${foreign.messages})`);

  // Garbage from a server: the link fails with an error, nothing panics.
  const garbage = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  garbage.on("connection", (socket) => {
    socket.send(Buffer.from([0xff, 0x00, 0x13, 0x37, 0xde, 0xad, 0xbe, 0xef]));
    socket.send("text where frames belong");
    socket.send(Buffer.alloc(70000, 0x41));
  });
  await new Promise((r) => garbage.on("listening", r));
  const garbageUrl = `ws://127.0.0.1:${garbage.address().port}`;
  const broken = await inPage(page, async (chum, url) => {
    const link = window.inst.connect(url);
    let error = null;
    try {
      await link.established();
    } catch (e) {
      error = e.name;
    }
    await link.close();
    // The instance still works.
    const cid = await window.inst.put({ $type: "Message", text: "after garbage" });
    return { error, ok: (await window.inst.get(cid))?.text === "after garbage" };
  }, garbageUrl);
  check(broken.error === "TransportError", `garbage from a server fails the link with TransportError (${broken.error})`);
  check(broken.ok, "and the instance keeps working");
  garbage.close();

  // A closed instance throws Closed.
  const closed = await inPage(page, async () => {
    await window.link.close();
    await window.inst.close();
    try {
      await window.inst.put({ $type: "Message", text: "late" });
      return "none";
    } catch (error) {
      return error.name;
    }
  });
  check(closed === "Closed", `a closed instance throws Closed (${closed})`);

  await inWorker(context, origin, store, wsUrl);

  server.close();
}

try {
  await main();
  if (process.exitCode) throw new Error("an uncaught error or panic in a page (above)");
  console.log("page tests: all passed");
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  cleanup();
  if (browser) await Promise.race([browser.close(), sleep(5000)]);
}

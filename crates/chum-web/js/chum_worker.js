// The worker side of `worker.js`: runs chum's instances off the page's main thread, in a
// dedicated Worker (one page) or a SharedWorker (every tab of the site shares one instance
// per store). Messages from a client: `{ id, op, args }`; replies: `{ id, ok, value }` or
// `{ id, ok: false, error: { name, message } }`, each with the instance's `atRisk`; pushed:
// `{ kind: "change", sub, changes }`, `{ kind: "atRisk", value }`, `{ kind: "link", link, state }`.

import init, { Instance } from "./chum_web.js";

/** The wasm module, loaded once; a failed load is tried again by the next request. */
let loading = null;
const ready = () => {
  if (!loading) loading = init().catch((error) => {
    loading = null;
    throw error;
  });
  return loading;
};

/** Open instances by store name: `{ inst, clients, links: Map(url → entry), atRisk }`. */
const stores = new Map();
/** Opens in progress by store name. */
const opening = new Map();
/** Closes in progress by store name (an open waits for the store to be let go). */
const closing = new Map();

const describe = (error) => ({
  name: error?.name ?? "Error",
  message: error?.message ?? String(error),
});

class Client {
  constructor(port) {
    this.port = port;
    this.store = null; // the entry in `stores` once open
    this.links = new Map(); // client link id → shared link entry
    this.subs = new Map(); // subscription id → off function
    this.queue = new Map(); // subscription id → changes not yet posted
    this.flushing = false;
  }

  post(message) {
    try {
      this.port.postMessage(message);
      return true;
    } catch {
      return false; // a value that cannot be cloned, or a client that went away
    }
  }

  async handle({ id, op, args }) {
    try {
      await ready();
      const value = await this.run(op, args ?? []);
      if (!this.post({ id, ok: true, value, atRisk: this.atRisk() })) {
        this.post({ id, ok: false, error: { name: "DecodeError", message: "the answer cannot be passed to the page" }, atRisk: this.atRisk() });
      }
    } catch (error) {
      this.post({ id, ok: false, error: describe(error), atRisk: this.atRisk() });
    }
  }

  atRisk() {
    try {
      return this.store ? this.store.inst.atRisk() : 0;
    } catch {
      return 0;
    }
  }

  instance() {
    if (!this.store) {
      const error = new Error("the instance is closed");
      error.name = "Closed";
      throw error;
    }
    return this.store.inst;
  }

  async run(op, args) {
    switch (op) {
      case "open":
        return this.open(args[0], args[1]);
      case "put":
        return this.instance().put(args[0]);
      case "create":
        return this.instance().create(args[0]);
      case "entries":
        return this.instance().entries(args[0]);
      case "get":
        return this.instance().get(args[0]);
      case "delete":
        return this.instance().delete(args[0]);
      case "list":
        return this.instance().list(args[0]);
      case "show":
        return this.instance().show(args[0]);
      case "idOf":
        return this.instance().idOf(args[0]);
      case "whoami":
        return this.instance().whoami();
      case "connect":
        return this.connect(args[0], args[1]);
      case "established": {
        const entry = this.link(args[0]);
        const peer = await entry.link.established();
        return { peer, state: entry.link.state };
      }
      case "synced": {
        const entry = this.link(args[0]);
        await entry.link.synced();
        return { state: entry.link.state };
      }
      case "closeLink":
        return this.closeLink(args[0]);
      case "subscribe":
        return this.subscribe(args[0], args[1]);
      case "unsubscribe":
        return this.unsubscribe(args[0]);
      case "close":
        return this.close();
      default:
        throw Object.assign(new Error(`unknown operation ${op}`), { name: "TypeError" });
    }
  }

  async open(options, clientLock) {
    if (this.store) throw Object.assign(new Error("this client has an instance open already"), { name: "TypeError" });
    const given = options && typeof options === "object" ? options : {};
    const name = typeof given.name === "string" ? given.name : "default";
    const passphrase = typeof given.passphrase === "string" ? given.passphrase : null;
    let store;
    for (;;) {
      await closing.get(name);
      store = stores.get(name);
      if (store) break;
      const pending = opening.get(name);
      if (pending) {
        // Another tab's open: share its instance — or, if it failed (its options, e.g.
        // `create: false` on a new store), try with ours.
        await pending.catch(() => {});
        continue;
      }
      const attempt = Instance.open(given).then((inst) => {
        const entry = { name, inst, passphrase, clients: new Set(), links: new Map(), atRisk: inst.atRisk() };
        stores.set(name, entry);
        return entry;
      });
      opening.set(name, attempt);
      attempt.finally(() => opening.delete(name)).catch(() => {});
      store = await attempt;
      break;
    }
    // A tab sharing an open instance proves it knows the keys' passphrase, as opening would.
    if (store.passphrase !== passphrase) {
      throw Object.assign(new Error("the passphrase does not match the one this store was opened with"), { name: "IdentityError" });
    }
    store.clients.add(this);
    this.store = store;
    // A tab that goes away without `close` (closed, reloaded, crashed) releases its lock:
    // its share of the instance is closed then.
    if (typeof clientLock === "string" && self.navigator?.locks) {
      self.navigator.locks.request(clientLock, () => this.close()).catch(() => {});
    }
    return { name };
  }

  connect(linkId, url) {
    const store = this.store;
    this.instance();
    let entry = store.links.get(url);
    if (!entry || entry.link.state === "closed") {
      entry = { url, link: store.inst.connect(url), refs: 0, state: "connecting", holders: new Set() };
      entry.state = entry.link.state;
      store.links.set(url, entry);
    }
    entry.refs++;
    entry.holders.add(this);
    this.links.set(linkId, entry);
    return entry.link.state;
  }

  link(linkId) {
    const entry = this.links.get(linkId);
    if (!entry) throw Object.assign(new Error("the link is closed"), { name: "Closed" });
    return entry;
  }

  async closeLink(linkId) {
    const entry = this.links.get(linkId);
    if (!entry) return;
    this.links.delete(linkId);
    if (![...this.links.values()].includes(entry)) entry.holders.delete(this);
    if (--entry.refs === 0) {
      if (this.store?.links.get(entry.url) === entry) this.store.links.delete(entry.url);
      await entry.link.close();
    }
  }

  subscribe(sub, event) {
    const off = this.instance().on(event, (change) => {
      let queued = this.queue.get(sub);
      if (!queued) this.queue.set(sub, (queued = []));
      queued.push(change);
      if (!this.flushing) {
        this.flushing = true;
        queueMicrotask(() => this.flush());
      }
    });
    this.subs.set(sub, off);
  }

  flush() {
    this.flushing = false;
    for (const [sub, changes] of this.queue) this.post({ kind: "change", sub, changes });
    this.queue.clear();
  }

  unsubscribe(sub) {
    this.subs.get(sub)?.();
    this.subs.delete(sub);
    this.queue.delete(sub);
  }

  async close() {
    for (const sub of [...this.subs.keys()]) this.unsubscribe(sub);
    for (const linkId of [...this.links.keys()]) await this.closeLink(linkId);
    const store = this.store;
    this.store = null;
    if (!store) return;
    store.clients.delete(this);
    if (store.clients.size === 0) {
      stores.delete(store.name);
      const done = (async () => {
        for (const entry of store.links.values()) await entry.link.close();
        await store.inst.close();
      })();
      closing.set(store.name, done.catch(() => {}));
      try {
        await done;
      } finally {
        if (closing.get(store.name)) closing.delete(store.name);
      }
    }
  }
}

// Link states and the at-risk count change without a request: watch them and push changes.
setInterval(() => {
  for (const store of stores.values()) {
    let atRisk;
    try {
      atRisk = store.inst.atRisk();
    } catch {
      continue;
    }
    if (atRisk !== store.atRisk) {
      store.atRisk = atRisk;
      for (const client of store.clients) client.post({ kind: "atRisk", value: atRisk });
    }
    for (const entry of store.links.values()) {
      const state = entry.link.state;
      if (state === entry.state) continue;
      entry.state = state;
      for (const client of entry.holders) {
        for (const [linkId, held] of client.links) {
          if (held === entry) client.post({ kind: "link", link: linkId, state });
        }
      }
    }
  }
}, 100);

const serve = (port) => {
  const client = new Client(port);
  port.onmessage = (event) => client.handle(event.data);
};

if (typeof SharedWorkerGlobalScope !== "undefined" && self instanceof SharedWorkerGlobalScope) {
  self.onconnect = (event) => serve(event.ports[0]);
} else {
  serve(self);
}

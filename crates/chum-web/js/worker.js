// chum off the main thread, with the API of `chum_web.js`: the same `Instance` and `Link`
// (methods, names, errors), the instance running in a Worker so that syncing never blocks
// the page. `Instance.open({ ..., shared: true })` uses one SharedWorker per store instead:
// every tab of the site shares that one instance (no `StoreLocked` between tabs).
//
// Differences from `chum_web.js`: `idOf` returns a Promise; `atRisk()` and `link.state` are
// the worker's latest figures (pushed after every request and whenever they change).

const WORKER = new URL("./chum_worker.js", import.meta.url);

/** Nothing to load on this thread; for symmetry with `chum_web.js`. */
export default async function init() {}

const failure = ({ name, message }) => {
  const error = new Error(message);
  error.name = name;
  return error;
};

class Channel {
  constructor(port, onFailure) {
    this.port = port;
    this.next = 1;
    this.pending = new Map();
    this.handlers = new Map();
    this.atRisk = 0;
    this.closed = false;
    port.onmessage = (event) => this.receive(event.data);
    onFailure((message) => this.fail(message));
  }

  request(op, ...args) {
    if (this.closed) return Promise.reject(failure({ name: "Closed", message: "the instance is closed" }));
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      try {
        this.port.postMessage({ id, op, args });
      } catch (error) {
        this.pending.delete(id);
        reject(failure({ name: "TypeError", message: `cannot pass this value to the instance: ${error.message}` }));
      }
    });
  }

  receive(message) {
    if (message.id !== undefined) {
      const pending = this.pending.get(message.id);
      if (!pending) return;
      this.pending.delete(message.id);
      if (typeof message.atRisk === "number") this.atRisk = message.atRisk;
      if (message.ok) pending.resolve(message.value);
      else pending.reject(failure(message.error));
      return;
    }
    if (message.kind === "atRisk") this.atRisk = message.value;
    else this.handlers.get(message.kind)?.(message);
  }

  fail(message) {
    this.closed = true;
    for (const { reject } of this.pending.values()) reject(failure({ name: "Closed", message }));
    this.pending.clear();
  }
}

let subscriptions = 0;
let links = 0;

/** An instance of a person in this browser, running in a worker (see `chum_web.js`). */
export class Instance {
  constructor(channel, name, stop) {
    this._channel = channel;
    this._name = name;
    this._stop = stop;
    this._subs = new Map();
    this._links = new Map();
    channel.handlers.set("change", ({ sub, changes }) => {
      const callback = this._subs.get(sub);
      if (!callback) return;
      for (const change of changes) {
        try {
          callback(change);
        } catch (error) {
          // A callback that throws does not stop the others.
          setTimeout(() => {
            throw error;
          });
        }
      }
    });
    channel.handlers.set("link", ({ link, state }) => {
      const held = this._links.get(link);
      if (held) held._state = state;
    });
  }

  /** Opens (or creates) the store `options.name` in a worker; see `chum_web.js`. With
   * `options.shared`, the store's instance lives in a SharedWorker that every tab shares. */
  static async open(options) {
    if (options !== undefined && options !== null && (typeof options !== "object" || Array.isArray(options))) {
      throw failure({ name: "TypeError", message: "Instance.open takes an options object" });
    }
    const { shared = false, ...rest } = options ?? {};
    const name = typeof rest.name === "string" ? rest.name : "default";
    // Persistent storage can only be asked for from a window.
    globalThis.navigator?.storage?.persist?.().catch(() => {});
    let channel;
    let stop;
    let clientLock;
    let release = () => {};
    if (shared) {
      const worker = new SharedWorker(WORKER, { type: "module", name: `chum:${name}` });
      channel = new Channel(worker.port, (fail) => {
        worker.onerror = (event) => fail(`the instance's worker failed to start: ${event.message ?? "error"}`);
        worker.port.onmessageerror = () => fail("a message from the instance's worker could not be read");
      });
      worker.port.start();
      // Held while this page lives: when it goes away without `close` (closed, reloaded,
      // crashed), the lock is released and the worker lets go of this page's share.
      if (globalThis.navigator?.locks) {
        clientLock = `chum-client:${crypto.randomUUID()}`;
        await new Promise((held) => {
          navigator.locks.request(clientLock, () => {
            held();
            return new Promise((resolve) => (release = resolve));
          });
        });
      }
      stop = () => {
        release();
        worker.port.close();
      };
    } else {
      const worker = new Worker(WORKER, { type: "module", name: `chum:${name}` });
      channel = new Channel(worker, (fail) => {
        // Any uncaught error in the worker ends it: a half-working instance would keep the
        // store's lock.
        worker.onerror = (event) => {
          fail(`the instance's worker failed: ${event.message ?? "error"}`);
          worker.terminate();
        };
        worker.onmessageerror = () => fail("a message from the instance's worker could not be read");
      });
      stop = () => worker.terminate();
    }
    try {
      await channel.request("open", rest, clientLock);
    } catch (error) {
      stop();
      throw error;
    }
    return new Instance(channel, name, stop);
  }

  /** The store's name. */
  get name() {
    return this._name;
  }

  /** Stores an object; resolves to its CID once it is durable. */
  put(value) {
    return this._channel.request("put", value);
  }

  /** Stores an append-only entry with its `clock` and `author`; resolves to its CID. */
  create(value) {
    return this._channel.request("create", value);
  }

  /** The CIDs of a collection's entries in order (objects linking to `target`). */
  entries(target) {
    return this._channel.request("entries", target);
  }

  /** Deletes the versioned object `id`; resolves to the tombstone's CID. */
  delete(id) {
    return this._channel.request("delete", id);
  }

  /** The object stored under `cid`, or `null`. */
  get(cid) {
    return this._channel.request("get", cid);
  }

  /** The CIDs of the stored objects of `$type` `typeName`. */
  list(typeName) {
    return this._channel.request("list", typeName);
  }

  /** The merged state of the versioned object `id`, or `null`. */
  show(id) {
    return this._channel.request("show", id);
  }

  /** The ID hash of a versioned object (a Promise here). */
  idOf(value) {
    return this._channel.request("idOf", value);
  }

  /** `{ person, instance }`. */
  whoami() {
    return this._channel.request("whoami");
  }

  /** Connects to `url` and stays connected (see `chum_web.js`). */
  connect(url) {
    if (this._channel.closed) throw failure({ name: "Closed", message: "the instance is closed" });
    if (typeof url !== "string") throw failure({ name: "TypeError", message: "connect takes a ws:// or wss:// address (a string)" });
    if (!/^wss?:\/\//i.test(url)) throw failure({ name: "TransportError", message: `transport: ${url} is not a ws:// or wss:// address` });
    const id = ++links;
    const link = new Link(this._channel, id, url, this._links);
    this._links.set(id, link);
    link._started = this._channel.request("connect", id, url).then(
      (state) => {
        link._state = state;
      },
      (error) => {
        link._state = "closed";
        link._failed = error;
      },
    );
    return link;
  }

  /** Calls `callback` for each `"change"` until the returned function is called. */
  on(event, callback) {
    if (event !== "change") throw failure({ name: "TypeError", message: `unknown event ${JSON.stringify(event)} (known: "change")` });
    if (typeof callback !== "function") throw failure({ name: "TypeError", message: "on takes a callback function" });
    if (this._channel.closed) throw failure({ name: "Closed", message: "the instance is closed" });
    const sub = ++subscriptions;
    this._subs.set(sub, callback);
    this._channel.request("subscribe", sub, event).catch(() => this._subs.delete(sub));
    return () => {
      if (!this._subs.delete(sub)) return;
      this._channel.request("unsubscribe", sub).catch(() => {});
    };
  }

  /** How many of this instance's shared objects no other instance has acknowledged yet (the
   * worker's latest figure). */
  atRisk() {
    return this._channel.atRisk;
  }

  /** Ends this page's use of the instance (in a SharedWorker, the instance closes with its
   * last tab). */
  async close() {
    try {
      if (!this._channel.closed) await this._channel.request("close");
    } catch {
      // The worker is gone or failed: stopping it is all that is left.
    } finally {
      this._channel.fail("the instance is closed");
      this._stop();
    }
  }
}

/** A link to a peer (see `Instance.connect`). */
export class Link {
  constructor(channel, id, url, registry) {
    this._channel = channel;
    this._id = id;
    this._url = url;
    this._registry = registry;
    this._state = "connecting";
  }

  async _ready() {
    await this._started;
    if (this._failed) throw this._failed;
  }

  /** Resolves `{ instance, person }` once a session is up. */
  async established() {
    await this._ready();
    const { peer, state } = await this._channel.request("established", this._id);
    this._state = state;
    return peer;
  }

  /** Resolves once the peer holds everything this instance held at the call. */
  async synced() {
    await this._ready();
    const { state } = await this._channel.request("synced", this._id);
    this._state = state;
  }

  /** `"connecting"`, `"connected"`, `"reconnecting"` or `"closed"`. */
  get state() {
    return this._state;
  }

  /** The address. */
  get url() {
    return this._url;
  }

  /** Closes this page's use of the link. */
  async close() {
    await this._started;
    this._state = "closed";
    this._registry.delete(this._id);
    await this._channel.request("closeLink", this._id).catch(() => {});
  }
}

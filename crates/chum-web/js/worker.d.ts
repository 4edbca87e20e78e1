/* The API of `chum_web.js`, with the instance running in a Worker (see `worker.js`). */

import type { ChumObject, Change, LinkState, OpenOptions, Who } from "./chum_web.js";
export type { ChumErrorName, ChumObject, Change, LinkState, OpenOptions, Who } from "./chum_web.js";

/** Options of `Instance.open` in a worker. */
export interface WorkerOpenOptions extends OpenOptions {
    /** One SharedWorker per store that every tab of the site shares (default: a Worker of
     * this page's own, and `StoreLocked` when another tab has the store open). */
    shared?: boolean;
}

/** Nothing to load on the page's thread (the worker loads the wasm); for symmetry. */
export default function init(): Promise<void>;

/** An instance of a person in this browser, running in a worker. */
export class Instance {
    private constructor();
    /** Opens (or creates) the store `options.name` (default "default") in a worker. Throws
     * `StoreLocked` when another tab or worker has it open (never with `shared`). */
    static open(options?: WorkerOpenOptions): Promise<Instance>;
    /** The store's name. */
    readonly name: string;
    /** Stores an object; resolves to its CID once it is durable. */
    put(value: ChumObject): Promise<string>;
    /** Stores an append-only entry (e.g. a Message of a Conversation) with its `clock` and
     * `author`, so `entries` orders it; resolves to its CID once it is durable. */
    create(value: ChumObject): Promise<string>;
    /** The CIDs of a collection's entries in order: objects linking to `target` (e.g. a
     * Conversation's ID hash) through a collection field. */
    entries(target: string): Promise<string[]>;
    /** Deletes the versioned object `id` (its ID hash); resolves to the tombstone's CID. */
    delete(id: string): Promise<string>;
    /** The object stored under `cid`, or `null` when none is. */
    get(cid: string): Promise<ChumObject | null>;
    /** The CIDs of the stored objects of `$type` `typeName`. */
    list(typeName: string): Promise<string[]>;
    /** The merged state of the versioned object `id` (its ID hash), or `null`. */
    show(id: string): Promise<ChumObject | null>;
    /** The ID hash of a versioned object (a Promise here, unlike `chum_web.js`). */
    idOf(value: ChumObject): Promise<string>;
    /** `{ person, instance }`: who this is. */
    whoami(): Promise<Who>;
    /** Connects to `url` (`ws://…` or `wss://…`) and stays connected, reconnecting with
     * backoff, until `link.close()`. In a SharedWorker, tabs connecting to one address share
     * one link. */
    connect(url: string): Link;
    /** Calls `callback` for each change until the returned function is called. */
    on(event: "change", callback: (change: Change) => void): () => void;
    /** How many of this instance's shared objects no other instance has acknowledged storing
     * yet: the worker's latest figure (sent with every reply and whenever it changes). */
    atRisk(): number;
    /** Ends this page's use of the instance (with `shared`, the instance closes with its last
     * tab). */
    close(): Promise<void>;
}

/** A link to a peer (see `Instance.connect`). */
export class Link {
    private constructor();
    /** Resolves `{ instance, person }` once a session is up; throws `TransportError` when the
     * attempt under way fails (the link keeps retrying behind). */
    established(): Promise<Who>;
    /** Resolves once the peer holds everything this instance held at the call. */
    synced(): Promise<void>;
    /** The worker's latest state of the link. */
    readonly state: LinkState;
    /** The address. */
    readonly url: string;
    /** Closes this page's use of the link. */
    close(): Promise<void>;
}

// What the desktop app's scripts share: ports, the main process, the chum CLI.

import { spawn } from "node:child_process";
import net from "node:net";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A free loopback port. */
export function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts `desktop` (chum-desktop) on `port` over `data` (and `args`); resolves `{ child, ms,
 * err }` once it listens (`ms`: from spawn; `err`: its stderr so far). Running children are
 * kept in `children`. */
export function startMain({ desktop, port, data, pkg, children, args = [] }) {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(desktop, ["--port", String(port), "--data", data, "--no-open", "--pkg", pkg, ...args], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    children.add(child);
    let err = "";
    child.stderr.on("data", (d) => {
      err += d;
      if (err.includes(`listening on http://127.0.0.1:${port}`)) resolve({ child, ms: performance.now() - started, err });
    });
    child.on("close", (code) => {
      children.delete(child);
      reject(new Error(`chum-desktop exited ${code}: ${err}`));
    });
  });
}

/** Sends `signal` to `child`; resolves once it has exited. */
export function kill(child, signal = "SIGKILL") {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("close", resolve);
    child.kill(signal);
  });
}

/** Runs the chum CLI at `bin` to completion; its stdout. */
export function chumCli(bin, args, input) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`chum ${args.join(" ")}: exit ${code}: ${err}`))));
    child.stdin.end(input ?? "");
  });
}

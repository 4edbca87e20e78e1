// The renderer's service worker: the app's files from the network while main is up (main is
// the source of truth), from this cache while it is down — so a reload with main stopped still
// opens the renderer, whose data is in this browser's IndexedDB anyway.

const CACHE = "chum-desktop-shell";
const SHELL = ["/", "/app.js", "/app.css", "/pkg/worker.js", "/pkg/chum_worker.js", "/pkg/chum_web.js", "/pkg/chum_web_bg.wasm"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  const path = url.pathname === "/index.html" ? "/" : url.pathname;
  if (!SHELL.includes(path)) return;
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(path, copy));
        }
        return response;
      })
      .catch(async () => (await caches.match(path)) ?? Response.error()),
  );
});

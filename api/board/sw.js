// The worker app's service worker: the app opens with no network (the shell and the last
// incident list come from the cache), Web Push pages show as notifications with the app
// closed, and tapping one opens the incident.
"use strict";

const SHELL_CACHE = "worker-shell-v1";
const DATA_CACHE = "worker-data-v1";
const SHELL = [
  "worker.html", "common.js", "worker.js", "board.css", "manifest.webmanifest",
  "icons/icon-192.png", "icons/icon-512.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL_CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (![SHELL_CACHE, DATA_CACHE].includes(key)) await caches.delete(key);
    }
    await self.clients.claim();
  })());
});

// Network first, so an online phone always runs the latest app and sees the latest list;
// the cache only answers when the network does not.
async function networkFirst(request, cacheName) {
  const cache = await caches.open(cacheName);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch (err) {
    const cached = await cache.match(request, { ignoreVary: true });
    if (cached) return cached;
    throw err;
  }
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/api/v1/live")) return;  // the stream is never cached
  if (url.pathname.startsWith("/api/v1/incidents")) {
    event.respondWith(networkFirst(event.request, DATA_CACHE));
  } else if (url.pathname.startsWith("/board/")) {
    // A navigation with a fragment (#incident-7) is the same page.
    const request = event.request.mode === "navigate" ? new Request(url.pathname) : event.request;
    event.respondWith(networkFirst(request, SHELL_CACHE));
  }
});

self.addEventListener("message", (event) => {
  if (event.data === "logout") event.waitUntil(caches.delete(DATA_CACHE));  // no one's list stays
});

self.addEventListener("push", (event) => {
  let page = {};
  try { page = event.data ? event.data.json() : {}; } catch (err) { page = { title: event.data.text() }; }
  const critical = page.severity === "critical";
  event.waitUntil((async () => {
    await self.registration.showNotification(page.title || "新警情", {
      body: page.body || "",
      tag: page.tag || "incident",
      renotify: true,
      requireInteraction: critical,  // a fire stays on screen until someone taps it
      vibrate: critical ? [600, 200, 600, 200, 600, 200, 600] : [300, 100, 300],
      icon: "icons/icon-192.png",
      badge: "icons/icon-192.png",
      data: { url: page.url || "worker.html", incident: page.incident || null },
    });
    // An open app learns of it at once (its live stream may be reconnecting).
    for (const client of await self.clients.matchAll({ type: "window" })) {
      client.postMessage({ kind: "push", incident: page.incident || null });
    }
  })());
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = new URL(event.notification.data && event.notification.data.url || "worker.html", self.location.href);
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const client of windows) {
      if (new URL(client.url).pathname === target.pathname) {
        await client.focus();
        client.postMessage({ kind: "open", url: target.href });
        return;
      }
    }
    await self.clients.openWindow(target.href);
  })());
});

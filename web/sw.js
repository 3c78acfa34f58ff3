// Gatehouse's service worker: keeps the app shell (pages, scripts, styles, vendored libraries)
// for offline use, in a cache named after the UI version, so a new build installs beside the
// old one and takes over when the page says so ("update available" → skip-waiting).
// Pages: network first, the cached copy offline, /assets/offline.html for pages never cached.
// Files under /assets/: cache first. APIs are never cached.

const VERSION = '__GATEHOUSE_UI_VERSION__';
const CACHE = `gatehouse-shell-${VERSION}`;
const SHELL = [
  '/',
  '/admin',
  '/assets/offline.html',
  '/assets/icon.svg',
  '/assets/manifest.webmanifest',
  '/assets/css/base.css',
  '/assets/css/chat.css',
  '/assets/css/admin.css',
  '/assets/js/api.js',
  '/assets/js/db.js',
  '/assets/js/errors.js',
  '/assets/js/format.js',
  '/assets/js/icons.js',
  '/assets/js/markdown.js',
  '/assets/js/offline.js',
  '/assets/js/chat/app.js',
  '/assets/js/chat/composer.js',
  '/assets/js/chat/conversations.js',
  '/assets/js/chat/layout.js',
  '/assets/js/chat/cost.js',
  '/assets/js/chat/message.js',
  '/assets/js/chat/send.js',
  '/assets/js/chat/server.js',
  '/assets/js/admin/app.js',
  '/assets/js/admin/assistants.js',
  '/assets/js/admin/audit.js',
  '/assets/js/admin/experiments.js',
  '/assets/js/admin/health.js',
  '/assets/js/admin/keys.js',
  '/assets/js/admin/ui.js',
  '/assets/js/admin/usage.js',
  '/assets/vendor/uplot/uPlot.esm.js',
  '/assets/vendor/uplot/uPlot.min.css',
  '/assets/vendor/marked/marked.esm.js',
  '/assets/vendor/dompurify/purify.es.js',
  '/assets/vendor/highlight/core.min.js',
  '/assets/vendor/highlight/styles/github.min.css',
  '/assets/vendor/highlight/styles/github-dark.min.css',
  ...['bash', 'c', 'cpp', 'css', 'diff', 'go', 'ini', 'java', 'javascript', 'json', 'markdown',
    'python', 'rust', 'shell', 'sql', 'typescript', 'xml', 'yaml']
    .map((l) => `/assets/vendor/highlight/languages/${l}.min.js`),
];

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(SHELL.map((url) => new Request(url, { cache: 'reload' })));
    // The very first install has nothing to replace: take over at once.
    if (!self.registration.active) await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('gatehouse-shell-') && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('message', (event) => {
  if (event.data && event.data.type === 'skip-waiting') self.skipWaiting();
  if (event.data && event.data.type === 'version' && event.ports[0]) event.ports[0].postMessage(VERSION);
});

function isApi(url) {
  return url.pathname.startsWith('/web/api/') || url.pathname.startsWith('/admin/api/')
    || url.pathname.startsWith('/v1/') || ['/health', '/ready', '/metrics', '/openapi.json'].includes(url.pathname);
}

async function page(request) {
  const cache = await caches.open(CACHE);
  try {
    const fresh = await fetch(request);
    if (fresh.ok) cache.put(request, fresh.clone());
    return fresh;
  } catch {
    const url = new URL(request.url);
    const key = url.pathname.startsWith('/admin') ? '/admin' : url.pathname === '/' ? '/' : url.pathname;
    return (await cache.match(key, { ignoreSearch: true }))
      || (await cache.match('/assets/offline.html'))
      || new Response('Offline', { status: 503, headers: { 'content-type': 'text/plain' } });
  }
}

async function asset(request) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(request, { ignoreSearch: true });
  if (hit) return hit;
  const fresh = await fetch(request);
  if (fresh.ok) cache.put(request, fresh.clone());
  return fresh;
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || isApi(url)) return;
  if (request.mode === 'navigate') {
    event.respondWith(page(request));
  } else if (url.pathname.startsWith('/assets/')) {
    event.respondWith(asset(request));
  }
});

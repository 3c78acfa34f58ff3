// Connection state and the service worker, shared by the chat and the console: an offline
// banner that follows the browser's online/offline events, and an "update available" prompt
// when a new version of the UI (a new service worker) is waiting.

const listeners = new Set();

export function isOnline() {
  return navigator.onLine !== false;
}

/** Calls `fn(online)` now and on every change. */
export function onConnectionChange(fn) {
  listeners.add(fn);
  fn(isOnline());
  return () => listeners.delete(fn);
}

export function watchConnection(banner) {
  const update = () => {
    const online = isOnline();
    if (banner) banner.hidden = online;
    for (const fn of listeners) fn(online);
  };
  window.addEventListener('online', update);
  window.addEventListener('offline', update);
  update();
}

/** Register /assets/sw.js for the whole origin; show `banner` when an update is waiting. */
export async function registerServiceWorker(banner, reloadButton) {
  if (!('serviceWorker' in navigator)) return null;
  // Reload only when the reader asked for the update: the very first worker also takes
  // control (clients.claim), and that must not reload a page in the middle of a reply.
  let updateAccepted = false;
  navigator.serviceWorker.addEventListener('controllerchange', () => {
    if (!updateAccepted) return;
    updateAccepted = false;
    window.location.reload();
  });
  let registration;
  try {
    registration = await navigator.serviceWorker.register('/assets/sw.js', { scope: '/', type: 'classic' });
  } catch (err) {
    console.warn('service worker not registered', err);
    return null;
  }
  const offer = (worker) => {
    if (!worker || !navigator.serviceWorker.controller) return;
    banner.hidden = false;
    reloadButton.onclick = () => {
      updateAccepted = true;
      worker.postMessage({ type: 'skip-waiting' });
    };
  };
  if (registration.waiting) offer(registration.waiting);
  registration.addEventListener('updatefound', () => {
    const worker = registration.installing;
    if (!worker) return;
    worker.addEventListener('statechange', () => {
      if (worker.state === 'installed') offer(worker);
    });
  });
  // Look for a new version now and then (the service worker file is revalidated each time).
  setInterval(() => registration.update().catch(() => {}), 30 * 60 * 1000);
  return registration;
}

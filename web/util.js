// Small helpers: ids, DOM building, time formatting, storage.

const B32 = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

// ulid returns a ULID: 48 bits of time and 80 random bits in Crockford
// base32, a valid command id (1–64 of [A-Za-z0-9_-]) that sorts by time.
export function ulid(now = Date.now()) {
  let s = '';
  for (let i = 0, t = now; i < 10; i++, t = Math.floor(t / 32)) s = B32[t % 32] + s;
  const r = crypto.getRandomValues(new Uint8Array(16));
  for (let i = 0; i < 16; i++) s += B32[r[i] % 32];
  return s;
}

// h builds an element: h('button.primary', {onclick, 'aria-label': 'x'}, 'text', child…).
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k in el && typeof v !== 'string') el[k] = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

const pad = (n) => String(n).padStart(2, '0');

export function clock(ts) {
  const d = new Date(ts);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function startOfDay(ts) {
  const d = new Date(ts);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

export const dayKey = (ts) => startOfDay(ts);

export function dayLabel(ts, now = Date.now()) {
  const days = Math.round((startOfDay(now) - startOfDay(ts)) / 86400000);
  if (days === 0) return 'Today';
  if (days === 1) return 'Yesterday';
  const d = new Date(ts);
  const opts = { weekday: 'short', day: 'numeric', month: 'short' };
  if (d.getFullYear() !== new Date(now).getFullYear()) opts.year = 'numeric';
  return d.toLocaleDateString(undefined, opts);
}

// ago is a compact "last activity" label: 14:05 today, "Yesterday", "3 Feb".
export function ago(ts, now = Date.now()) {
  if (!ts) return '';
  const days = Math.round((startOfDay(now) - startOfDay(ts)) / 86400000);
  if (days === 0) return clock(ts);
  if (days === 1) return 'Yesterday';
  if (days < 7) return new Date(ts).toLocaleDateString(undefined, { weekday: 'short' });
  return new Date(ts).toLocaleDateString(undefined, { day: 'numeric', month: 'short' });
}

export const fullDate = (ts) => new Date(ts).toLocaleString();

// store wraps localStorage with JSON and never throws (private mode, quota).
export const store = {
  get(key, dflt) {
    try {
      const v = localStorage.getItem(key);
      return v == null ? dflt : JSON.parse(v);
    } catch {
      return dflt;
    }
  },
  set(key, v) {
    try {
      localStorage.setItem(key, JSON.stringify(v));
    } catch { /* full or unavailable: the session still works in memory */ }
  },
  del(key) {
    try { localStorage.removeItem(key); } catch { /* ignore */ }
  },
};

// text returns what a message body shows.
export function bodyText(body) {
  if (body == null) return '';
  if (typeof body === 'string') return body;
  if (typeof body.text === 'string') return body.text;
  return JSON.stringify(body);
}

export const shortID = (id) => (id ? '#' + id.slice(-6).toLowerCase() : '?');

// debounce runs fn once, ms after the last call.
export function debounce(fn, ms) {
  let t;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

// seqchat web client: the UI and the client-side model of conversations.
// It speaks docs/protocol.md: REST for accounts, friends, conversations and
// history pages and search; one WebSocket (conn.js) for live events, sends,
// edits, reactions, recalls, typing and read pointers.

import { Api, ApiError } from './api.js';
import { Connection } from './conn.js';
import { $, ago, bodyText, clock, dayKey, dayLabel, debounce, fullDate, h, shortID, store, ulid } from './util.js';

const RECALL_WINDOW = 2 * 60 * 1000; // the server's default; it has the last word
// A recall waits this long, with an Undo, before it goes out: one click must
// not take back a message for good. The browser test shortens it.
let recallUndoMs = 5000;
const PAGE = 50;
const GROUP_GAP = 5 * 60 * 1000; // a sender's messages closer than this share a group
const MAX_BODY = 16 * 1024;
const REACTIONS = ['👍', '❤️', '😂', '🎉'];
const KEEP_IN_BACKGROUND = 200; // events kept of a conversation not on screen

const api = new Api();
const root = $('#root');

// Timings the browser test reads: page load to the conversation list, and
// pressing send to the message showing as sent.
const T = { convlist: null, sends: [] };

let S = null; // the signed-in session's state

window.seqchat = {
  timings: T,
  disconnect: () => S && S.conn.suspend(),
  reconnect: () => S && S.conn.resume(),
  status: () => (S ? S.conn.state : 'signed-out'),
  setRecallUndo: (ms) => { recallUndoMs = ms; },
};

// ------------------------------------------------------------------ session --

function boot() {
  const sess = store.get('seqchat.session');
  if (sess && sess.token && sess.user_id) startSession(sess);
  else showLogin();
}

function showLogin(message = '') {
  S = null;
  document.title = 'seqchat';
  document.body.dataset.view = 'login';
  const err = h('p.form-error', { id: 'login-error', role: 'alert' }, message);
  const user = h('input', {
    id: 'username', name: 'username', autocomplete: 'username', required: true, minLength: 3, maxLength: 32,
    autocapitalize: 'none', spellcheck: 'false', pattern: '[a-zA-Z0-9_.\\-]+', title: '3–32 letters, digits, . _ or -',
  });
  const pass = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true, minLength: 8 });
  const form = h('form.login', {
    'aria-labelledby': 'login-title',
    onsubmit: async (e) => {
      e.preventDefault();
      const signup = e.submitter && e.submitter.value === 'signup';
      const username = user.value.trim().toLowerCase();
      const password = pass.value;
      for (const b of form.querySelectorAll('button')) b.disabled = true;
      err.textContent = '';
      try {
        if (signup) await api.register(username, password);
        const s = await api.login(username, password);
        const sess = { token: s.token, user_id: s.user_id, username, expires_at: s.expires_at };
        store.set('seqchat.session', sess);
        startSession(sess);
      } catch (x) {
        err.textContent = loginError(x, signup);
        for (const b of form.querySelectorAll('button')) b.disabled = false;
        (signup || x.status !== 401 ? user : pass).focus();
      }
    },
  },
  h('div.brand', null, h('span.logo', { 'aria-hidden': 'true' }), h('h1', { id: 'login-title' }, 'seqchat')),
  h('p.tagline', null, 'Log in, or create an account to start chatting.'),
  h('label', { for: 'username' }, 'Username'), user,
  h('label', { for: 'password' }, 'Password'), pass,
  err,
  h('div.row', null,
    h('button.primary', { type: 'submit', value: 'login', id: 'login' }, 'Log in'),
    h('button', { type: 'submit', value: 'signup', id: 'signup' }, 'Create account')));
  root.replaceChildren(h('main.login-wrap', null, form));
  root.removeAttribute('aria-busy');
  user.focus();
}

function loginError(x, signup) {
  if (x.code === 'conflict') return 'That username is taken.';
  if (x.status === 401) return 'Wrong username or password.';
  if (x.code === 'bad_request' && signup) return 'Usernames are 3–32 of a–z, 0–9, . _ -; passwords at least 8 characters.';
  return x.message || 'Something went wrong.';
}

const key = (name) => `seqchat.${S.me.id}.${name}`;

function startSession(sess) {
  api.token = sess.token;
  api.onUnauthorized = () => signOut('Your session has ended. Please log in again.');
  const saved = store.get(`seqchat.${sess.user_id}.outbox`, []);
  S = {
    me: { id: sess.user_id, username: sess.username },
    convs: new Map(),
    cursors: {},
    ahead: new Map(), // conv -> events that arrived past a hole
    friends: new Map(),
    names: new Map([[sess.user_id, sess.username]]),
    pending: new Map(), // id -> a message not in its timeline yet
    sendT0: new Map(),
    current: null,
    tab: 'chats',
    counting: false, // count unread locally (false until the server's counts are in)
    listed: false,
    syncRounds: 0,
    // Friends' presence is known from the last friends list fetched while
    // our socket was up; a dropped socket misses the changes, so until the
    // next list after a reconnect it shows as unknown, not as it was.
    presenceKnown: false,
    presenceGen: 0,
    recalling: new Map(), // "conv:seq" -> a recall waiting out its undo
    draft: null, // {conv, seq, mode: 'reply'|'edit'}: what the composer is writing
    typing: new Map(), // conv -> Map(user -> shown until)
    typingOut: { want: null, told: null, last: 0, idle: null, timer: null },
  };
  S.cursors = store.get(key('cursors'), {});
  for (const x of store.get(key('convs'), [])) {
    const c = upsertConv(x);
    Object.assign(c, { unread: x.unread || 0, lastEv: x.lastEv || null, lastTs: x.lastTs || 0, members: x.members || null });
  }
  for (const f of saved) {
    if (f.type === 'send') S.pending.set(f.id, { id: f.id, conv: f.conv, body: f.body, reply_to: f.reply_to, mentions: f.mentions, createdTs: idTime(f.id), state: 'pending' });
  }
  S.conn = new Connection({ token: sess.token, cursors: syncCursors, saved, persist: (list) => store.set(key('outbox'), list) });
  wireConnection(S.conn);
  renderShell();
  renderAll();
  const s = S;
  Promise.allSettled([refreshConvs(), refreshFriends()]).then(() => {
    if (S !== s) return;
    if (T.convlist == null) {
      T.convlist = performance.now();
      performance.mark('seqchat:convlist');
    }
    S.conn.start();
    loadMembers();
    route(false);
  });
}

async function signOut(message) {
  if (!S) return;
  const s = S;
  s.conn.stop();
  for (const k of ['cursors', 'convs', 'outbox']) store.del(key(k));
  store.del('seqchat.session');
  api.token = null;
  if (location.hash) history.replaceState(null, '', location.pathname);
  showLogin(message);
}

async function logout() {
  try { await api.logout(); } catch { /* the token goes away here anyway */ }
  signOut('');
}

// idTime reads the time out of a ULID (for pending messages kept across reloads).
function idTime(id) {
  const B32 = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  let t = 0;
  for (const ch of id.slice(0, 10)) t = t * 32 + Math.max(0, B32.indexOf(ch));
  return t || Date.now();
}

// -------------------------------------------------------------------- model --

function upsertConv(x) {
  let c = S.convs.get(x.id);
  if (!c) {
    c = {
      id: x.id, kind: x.kind || 'group', title: '', last_seq: 0, read_seq: 0, unread: 0, members: null,
      msgs: new Map(), recalled: new Set(), loaded: false, loading: false, minSeq: null, hasMore: true,
      lastEv: null, lastTs: 0, receipts: {}, stub: false,
    };
    S.convs.set(x.id, c);
  }
  if (x.kind) c.kind = x.kind;
  if (x.title != null) c.title = x.title;
  if (x.members) c.members = x.members;
  c.last_seq = Math.max(c.last_seq, x.last_seq || 0);
  c.read_seq = Math.max(c.read_seq, x.read_seq || 0);
  return c;
}

function dropConv(id) {
  S.convs.delete(id);
  S.ahead.delete(id);
  delete S.cursors[id];
  saveCursors();
  saveConvs();
  if (S.current === id) go(null);
  renderList();
}

const isMine = (ev) => ev.from === S.me.id;
const reading = (c) => S.current === c.id && document.visibilityState === 'visible';
const other = (c) => (c.members || []).find((m) => m !== S.me.id);
const name = (uid) => (uid === S.me.id ? 'You' : S.names.get(uid) || shortID(uid));

function title(c) {
  if (c.kind === 'direct') {
    const o = other(c);
    return o ? S.names.get(o) || shortID(o) : 'Direct conversation';
  }
  return c.title || 'Untitled group';
}

function preview(c) {
  const ev = c.lastEv;
  if (!ev) return c.last_seq ? '' : 'No messages yet';
  if (ev.kind === 'member_joined') return `${name(ev.user)} joined`;
  if (ev.kind === 'member_left') return `${name(ev.user)} left`;
  const who = isMine(ev) ? 'You: ' : c.kind === 'group' ? `${name(ev.from)}: ` : '';
  return who + (ev.recalled ? 'Message recalled' : bodyText(ev.body));
}

// syncCursors is what a fresh connection syncs from: the cursor kept for
// each conversation, or just before its last event for one never seen (so
// the list gets its last activity).
function syncCursors() {
  const out = {};
  for (const c of S.convs.values()) {
    if (c.stub) continue;
    if (S.cursors[c.id] == null) S.cursors[c.id] = Math.max(0, c.last_seq - 1);
    out[c.id] = S.cursors[c.id];
  }
  S.counting = false;
  S.syncRounds = 0;
  return out;
}

// applyEvent takes an event (live, replayed, or made from an ack) and
// applies it in seq order: repeats are dropped, events past a hole wait
// until the hole is filled.
function applyEvent(ev) {
  let c = S.convs.get(ev.conv);
  if (!c) {
    c = upsertConv({ id: ev.conv });
    c.stub = true;
    fetchConv(ev.conv);
  }
  if (S.cursors[ev.conv] == null) S.cursors[ev.conv] = ev.seq - 1;
  let cur = S.cursors[ev.conv];
  if (ev.seq <= cur) return;
  if (ev.seq > cur + 1) {
    let a = S.ahead.get(ev.conv);
    if (!a) S.ahead.set(ev.conv, (a = new Map()));
    a.set(ev.seq, ev);
    gapSync(ev.conv);
    return;
  }
  process(c, ev);
  cur = ev.seq;
  const a = S.ahead.get(ev.conv);
  while (a && a.has(cur + 1)) {
    cur++;
    const next = a.get(cur);
    a.delete(cur);
    if (!S.convs.has(c.id)) return;
    process(c, next);
  }
  if (a && !a.size) S.ahead.delete(ev.conv);
  if (!S.convs.has(c.id)) return;
  S.cursors[ev.conv] = cur;
  saveCursors();
  saveConvs();
  schedule(c);
}

const gapTimers = new Map();
function gapSync(conv) {
  if (gapTimers.has(conv)) return;
  gapTimers.set(conv, setTimeout(() => {
    gapTimers.delete(conv);
    if (S && S.ahead.has(conv) && S.cursors[conv] != null) S.conn.sync({ [conv]: S.cursors[conv] });
  }, 800));
}

// storeEvent keeps an event in its conversation; a recall seen before wins
// over an older copy of the message.
function storeEvent(c, ev) {
  const e = { ...ev };
  delete e.type;
  const old = c.msgs.get(e.seq);
  if (c.recalled.has(e.seq) || (old && old.recalled)) {
    e.recalled = true;
    delete e.body;
  }
  if (old && old.mine) e.mine = old.mine;
  c.msgs.set(e.seq, e);
  if (c.lastEv && c.lastEv.seq === e.seq) c.lastEv = e;
  return e;
}

function process(c, ev0) {
  if (ev0.seq > c.last_seq) c.last_seq = ev0.seq;
  const ev = storeEvent(c, ev0);
  switch (ev.kind) {
    case 'message':
      if (!c.lastEv || ev.seq >= c.lastEv.seq) {
        c.lastEv = ev;
        c.lastTs = Math.max(c.lastTs, ev.ts);
      }
      if (S.typing.has(c.id) && S.typing.get(c.id).delete(ev.from) && c.id === S.current) renderTyping();
      if (isMine(ev)) {
        S.pending.delete(ev.id);
        S.conn.forget(ev.id);
      } else if (reading(c)) {
        markRead(c);
      } else if (S.counting && ev.seq > c.read_seq && !ev.recalled) {
        c.unread++;
      }
      break;
    case 'recall': {
      c.recalled.add(ev.target);
      const t = c.msgs.get(ev.target);
      if (t && !t.recalled) {
        t.recalled = true;
        delete t.body;
        if (S.counting && !isMine(t) && t.seq > c.read_seq && c.unread > 0) c.unread--;
      } else if (!t && S.counting) {
        refreshUnread();
      }
      break;
    }
    case 'edit': {
      // A replayed message already shows its latest edit (edited_seq).
      const t = c.msgs.get(ev.target);
      if (t && !t.recalled && ev.seq > (t.edited_seq || 0)) Object.assign(t, { body: ev.body, edited: true, edited_seq: ev.seq });
      break;
    }
    case 'reaction':
      // Counts come from the server: a live event alone cannot tell a
      // repeated reaction from a new one.
      if (c.msgs.has(ev.target)) loadReactions(c, ev.target);
      break;
    case 'member_joined':
      if (c.members && !c.members.includes(ev.user)) c.members.push(ev.user);
      if (!c.lastEv || ev.seq >= c.lastEv.seq) { c.lastEv = ev; c.lastTs = Math.max(c.lastTs, ev.ts); }
      if (S.current === c.id) loadMembers([c]);
      break;
    case 'member_left':
      if (ev.user === S.me.id) {
        dropConv(c.id);
        return;
      }
      if (c.members) c.members = c.members.filter((m) => m !== ev.user);
      if (!c.lastEv || ev.seq >= c.lastEv.seq) { c.lastEv = ev; c.lastTs = Math.max(c.lastTs, ev.ts); }
      break;
    default:
      break;
  }
}

function markRead(c) {
  c.unread = 0;
  let seq = c.last_seq;
  if (seq > c.read_seq) {
    c.read_seq = seq;
    S.conn.read(c.id, seq);
  }
}

// ------------------------------------------------------------------ loading --

async function refreshConvs() {
  let data;
  try {
    data = await api.conversations();
  } catch (x) {
    if (x.status !== 401) toastOnce('Could not load conversations; retrying when back online.');
    return false;
  }
  if (!S) return false;
  const seen = new Set();
  const fresh = {};
  for (const x of data.conversations) {
    seen.add(x.id);
    const isNew = !S.convs.has(x.id) || S.convs.get(x.id).stub;
    const c = upsertConv(x);
    c.stub = false;
    // The server's count, plus messages held here that it has not counted yet.
    let extra = 0;
    for (const [seq, ev] of c.msgs) {
      if (seq > Math.max(x.last_seq || 0, x.read_seq || 0) && ev.kind === 'message' && !isMine(ev) && !ev.recalled) extra++;
    }
    c.unread = (x.unread || 0) + extra;
    if (reading(c)) markRead(c);
    if (isNew && S.cursors[c.id] == null && S.conn && S.conn.synced) {
      S.cursors[c.id] = Math.max(0, c.last_seq - 1);
      fresh[c.id] = S.cursors[c.id];
    }
  }
  for (const id of [...S.convs.keys()]) if (!seen.has(id) && !S.convs.get(id).stub) dropConv(id);
  if (Object.keys(fresh).length) S.conn.sync(fresh);
  S.listed = true;
  saveConvs();
  renderList();
  return true;
}

const refreshUnread = debounce(async () => {
  if (!S) return;
  try {
    const u = await api.unread();
    for (const c of S.convs.values()) c.unread = reading(c) ? 0 : u.conversations[c.id] || 0;
    renderList();
  } catch { /* next refresh */ }
}, 400);

async function refreshFriends() {
  const s = S;
  const gen = s && s.presenceGen;
  try {
    const { friends } = await api.friends();
    if (!S || S !== s) return;
    S.friends = new Map(friends.map((f) => [f.id, f]));
    // Fresh unless the socket dropped while the list was on its way.
    if (S.presenceGen === gen) S.presenceKnown = true;
    for (const f of friends) S.names.set(f.id, f.username);
    renderList();
    renderFriends();
    if (S.current) renderConv();
  } catch { /* keep what we have */ }
}

async function fetchConv(id) {
  try {
    const x = await api.conversation(id);
    if (!S) return;
    const c = upsertConv(x);
    c.stub = false;
    if (S.conn.synced && S.cursors[id] != null) S.conn.sync({ [id]: S.cursors[id] });
    saveConvs();
    schedule(c);
  } catch (x) {
    if (x.code === 'forbidden' || x.code === 'not_found') dropConv(id);
  }
}

// loadMembers learns who is in direct conversations (their titles) and in
// the given ones.
async function loadMembers(list) {
  const todo = list || [...S.convs.values()].filter((c) => c.kind === 'direct' && !c.members);
  const s = S;
  const one = async (c) => {
    try {
      const x = await api.conversation(c.id);
      if (S !== s) return;
      c.members = x.members;
      schedule(c);
    } catch { /* title stays generic */ }
  };
  for (let i = 0; i < todo.length; i += 6) await Promise.all(todo.slice(i, i + 6).map(one));
  if (S === s) saveConvs();
}

async function loadLatest(c) {
  if (c.loading) return;
  c.loading = true;
  try {
    const r = await api.messages(c.id, { limit: PAGE });
    const first = r.events.length ? r.events[0].seq : r.head + 1;
    for (const seq of [...c.msgs.keys()]) if (seq < first) c.msgs.delete(seq);
    for (const ev of r.events) storeEvent(c, ev);
    c.last_seq = Math.max(c.last_seq, r.head);
    c.minSeq = first;
    c.hasMore = r.has_more && first > 1;
    c.loaded = true;
    if (!c.lastEv) {
      const last = [...r.events].reverse().find((e) => e.kind !== 'recall');
      if (last) { c.lastEv = c.msgs.get(last.seq); c.lastTs = last.ts; }
    }
    S.stick = true;
    if (reading(c)) markRead(c);
  } catch (x) {
    if (x.status !== 401) toast(`Could not load messages: ${x.message}`);
  } finally {
    c.loading = false;
    schedule(c);
  }
}

async function loadOlder(c) {
  if (!c.loaded || c.loading || !c.hasMore) return;
  c.loading = true;
  renderSentinel(c);
  try {
    const r = await api.messages(c.id, { before: c.minSeq, limit: PAGE });
    for (const ev of r.events) storeEvent(c, ev);
    if (r.events.length) c.minSeq = r.events[0].seq;
    c.hasMore = r.has_more && r.events.length > 0 && c.minSeq > 1;
    S.prepend = true;
  } catch (x) {
    if (x.status !== 401) toast(`Could not load earlier messages: ${x.message}`);
  } finally {
    c.loading = false;
    schedule(c);
  }
}

const reactionLoads = new Map();
function loadReactions(c, seq) {
  const k = `${c.id}:${seq}`;
  if (reactionLoads.has(k)) return;
  reactionLoads.set(k, setTimeout(async () => {
    reactionLoads.delete(k);
    try {
      const r = await api.reactions(c.id, seq);
      const t = c.msgs.get(seq);
      if (!t) return;
      const users = r.reactions || {};
      t.reactions = Object.fromEntries(Object.entries(users).map(([e, us]) => [e, us.length]));
      t.mine = Object.keys(users).filter((e) => users[e].includes(S.me.id));
      schedule(c);
    } catch { /* the next reaction event asks again */ }
  }, 100));
}

async function loadReceipts(c) {
  try {
    const r = await api.receipts(c.id);
    let changed = false;
    for (const [u, seq] of Object.entries(r.receipts || {})) {
      if ((c.receipts[u] || 0) < seq) { c.receipts[u] = seq; changed = true; }
    }
    if (changed) schedule(c);
  } catch { /* seen marks wait */ }
}

// --------------------------------------------------------------- connection --

function wireConnection(conn) {
  conn.addEventListener('status', () => {
    renderStatus();
    if (S && S.conn === conn && conn.state === 'offline' && S.presenceKnown) {
      S.presenceKnown = false;
      S.presenceGen++;
      renderList();
      renderFriends();
      if (S.current) renderConvHeader();
    }
  });
  conn.addEventListener('retry', (e) => { S.retryAt = Date.now() + e.detail.delay; renderStatus(); });
  conn.addEventListener('event', (e) => applyEvent(e.detail));
  conn.addEventListener('ack', (e) => onAck(e.detail));
  conn.addEventListener('failed', (e) => onFailed(e.detail));
  conn.addEventListener('synced', (e) => onSynced(e.detail));
  conn.addEventListener('syncerror', async () => {
    // A conversation we were in is gone: learn the list again, sync the rest.
    const s = S;
    await refreshConvs();
    if (S === s) s.conn.sync(syncCursors());
  });
  conn.addEventListener('receipt', (e) => onReceipt(e.detail));
  conn.addEventListener('presence', (e) => onPresence(e.detail));
  conn.addEventListener('typing', (e) => onTyping(e.detail));
  conn.addEventListener('authcheck', () => api.me().catch(() => {}));
}

function onAck(f) {
  const fr = f.frame;
  if (fr.type === 'send') {
    // Sent now; it leaves the pending list when its seq is applied in order.
    const p = S.pending.get(fr.id);
    if (p) Object.assign(p, { state: 'sent', seq: f.seq, createdTs: f.ts || p.createdTs });
    applyEvent({ conv: fr.conv, seq: f.seq, kind: 'message', id: fr.id, from: S.me.id, ts: f.ts || Date.now(), body: fr.body, reply_to: fr.reply_to, mentions: fr.mentions });
    const c = S.convs.get(fr.conv);
    if (c) schedule(c);
  } else if (fr.type === 'recall' || fr.type === 'edit' || fr.type === 'react') {
    const { type, ...rest } = fr;
    applyEvent({ ...rest, seq: f.seq, kind: type === 'react' ? 'reaction' : type, from: S.me.id, ts: f.ts || Date.now() });
  }
}

function onFailed(f) {
  const fr = f.frame;
  if (fr.type === 'send') {
    const p = S.pending.get(fr.id);
    if (p) p.state = 'failed';
    const c = S.convs.get(fr.conv);
    if (c) schedule(c);
    toast(`Message not sent: ${f.message || f.code}`);
  } else if (fr.type === 'edit' || fr.type === 'react') {
    toast(`Could not ${fr.type === 'edit' ? 'edit' : 'react to'} that message: ${f.message || f.code}`);
  } else if (fr.type === 'recall') {
    toast(f.code === 'recall_expired' ? 'Too late to recall that message.'
      : f.code === 'forbidden' ? 'You can only recall your own messages.' : `Could not recall: ${f.message || f.code}`);
  }
}

async function onSynced({ heads, first }) {
  const more = {};
  for (const [conv, head] of Object.entries(heads)) {
    const c = S.convs.get(conv);
    if (c) c.last_seq = Math.max(c.last_seq, head);
    if (S.cursors[conv] != null && S.cursors[conv] < head) more[conv] = S.cursors[conv];
  }
  // A sync replays at most 1000 events a conversation: go on from there.
  if (Object.keys(more).length && S.syncRounds++ < 50) S.conn.sync(more);
  if (first) {
    const s = S;
    await refreshConvs();
    if (S !== s) return;
    S.counting = true;
    refreshFriends();
    const c = S.convs.get(S.current);
    if (c && c.kind === 'direct') loadReceipts(c);
  }
  renderList();
}

function onReceipt(f) {
  const c = S.convs.get(f.conv);
  if (!c) return;
  if (f.user === S.me.id) {
    c.read_seq = Math.max(c.read_seq, f.seq);
    if (c.read_seq >= c.last_seq) c.unread = 0;
  } else {
    c.receipts[f.user] = Math.max(c.receipts[f.user] || 0, f.seq);
  }
  schedule(c);
}

// Typing: shown for a few seconds after the last "on" (delivery is at most
// once), hidden at "off" or when that user's message arrives.
const TYPING_SHOWN = 6000;
const TYPING_REPEAT = 3000; // while typing, say so again this often
const TYPING_IDLE = 5000; // no keystroke this long: stopped typing
const TYPING_GAP = 1100; // the edge forwards at most one frame a second

function onTyping(f) {
  if (f.user === S.me.id) return;
  let m = S.typing.get(f.conv);
  if (!m) S.typing.set(f.conv, (m = new Map()));
  if (f.on === false) m.delete(f.user);
  else m.set(f.user, Date.now() + TYPING_SHOWN);
  if (f.conv === S.current) renderTyping();
}

function renderTyping() {
  const el = $('#typing');
  if (!el) return;
  const m = S.typing.get(S.current);
  const now = Date.now();
  const who = m ? [...m].filter(([, until]) => until > now).map(([u]) => name(u)) : [];
  el.textContent = !who.length ? '' : who.length === 1 ? `${who[0]} is typing…` : `${who.join(', ')} are typing…`;
  el.dataset.users = who.join(',');
}

// typing tells the other members when the user starts and stops typing:
// on keystrokes typing(c, true), repeated every few seconds while it lasts
// so that a lost frame heals; typing(c, false) when the draft empties or
// goes idle. A sent message says "stopped" by itself (receivers clear the
// sender's typing when it arrives): sent(true) forgets what we told.
function typing(c, on, sent = false) {
  const t = S.typingOut;
  clearTimeout(t.idle);
  if (on) t.idle = setTimeout(() => typing(c, false), TYPING_IDLE);
  t.want = on ? c.id : null;
  if (sent) t.told = null;
  pumpTyping();
}

function pumpTyping() {
  const t = S.typingOut;
  clearTimeout(t.timer);
  const now = Date.now();
  if (t.want === t.told && !(t.want && now - t.last > TYPING_REPEAT)) return;
  // The edge drops a second frame within a second of the first: wait.
  const wait = t.last + TYPING_GAP - now;
  if (wait > 0) {
    t.timer = setTimeout(pumpTyping, wait);
    return;
  }
  if (t.told && t.told !== t.want) {
    S.conn.raw({ type: 'typing', conv: t.told, on: false });
    t.told = null;
    t.last = now;
    if (t.want) t.timer = setTimeout(pumpTyping, TYPING_GAP);
  } else if (t.want && S.conn.raw({ type: 'typing', conv: t.want, on: true })) {
    t.told = t.want;
    t.last = now;
  }
}

function onPresence(f) {
  const fr = S.friends.get(f.user);
  if (fr) fr.online = !!f.online;
  renderList();
  renderFriends();
  if (S.current) renderConvHeader();
}

// ------------------------------------------------------------------ actions --

function send(c, text) {
  const body = { text };
  if (new TextEncoder().encode(JSON.stringify(body)).length > MAX_BODY) {
    toast('That message is too long.');
    return false;
  }
  const id = ulid();
  const extra = {};
  if (S.draft && S.draft.conv === c.id && S.draft.mode === 'reply') extra.reply_to = S.draft.seq;
  const mentions = mentionsIn(c, text);
  if (mentions.length) extra.mentions = mentions;
  S.pending.set(id, { id, conv: c.id, body, createdTs: Date.now(), state: 'pending', ...extra });
  S.sendT0.set(id, performance.now());
  S.conn.enqueue({ type: 'send', id, conv: c.id, body, ...extra });
  S.stick = true;
  schedule(c);
  return true;
}

function retrySend(id) {
  const p = S.pending.get(id);
  if (!p) return;
  p.state = 'pending';
  const extra = {};
  if (p.reply_to) extra.reply_to = p.reply_to;
  if (p.mentions) extra.mentions = p.mentions;
  S.conn.enqueue({ type: 'send', id, conv: p.conv, body: p.body, ...extra });
  schedule(S.convs.get(p.conv));
}

// Mention completion: "@" and the start of a member's username right before
// the caret offers the conversation's members whose names begin so.
let mentionState = null; // {start, options: [username], sel}

function renderMentions(recompute = true) {
  const list = $('#mention-list');
  const composer = $('#composer');
  const c = S && S.convs.get(S.current);
  if (recompute) {
    mentionState = null;
    const m = c && composer.value.slice(0, composer.selectionStart).match(/(^|\s)@([A-Za-z0-9_.-]*)$/);
    if (m) {
      const prefix = m[2].toLowerCase();
      const options = (c.members || []).filter((u) => u !== S.me.id).map((u) => S.names.get(u)).filter((n) => n && n.startsWith(prefix)).sort();
      if (options.length) mentionState = { start: composer.selectionStart - m[2].length - 1, options, sel: 0 };
    }
  }
  list.hidden = !mentionState;
  composer.setAttribute('aria-expanded', mentionState ? 'true' : 'false');
  fill(list, mentionState ? mentionState.options.map((n, i) => h('li', {
    role: 'option', dataset: { user: n }, 'aria-selected': i === mentionState.sel ? 'true' : 'false',
    onmousedown: (e) => { e.preventDefault(); pickMention(n); },
  }, '@' + n)) : []);
}

function pickMention(username) {
  const composer = $('#composer');
  const { start } = mentionState;
  const v = composer.value;
  const before = v.slice(0, start) + '@' + username + ' ';
  composer.value = before + v.slice(composer.selectionStart);
  composer.setSelectionRange(before.length, before.length);
  mentionState = null;
  renderMentions(false);
  composer.focus();
}

// mentionKey handles the completion's keys; true when it took the key.
function mentionKey(e) {
  if (!mentionState || e.isComposing) return false;
  const n = mentionState.options.length;
  if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
    mentionState.sel = (mentionState.sel + (e.key === 'ArrowDown' ? 1 : n - 1)) % n;
    renderMentions(false);
  } else if (e.key === 'Enter' || e.key === 'Tab') {
    pickMention(mentionState.options[mentionState.sel]);
  } else if (e.key === 'Escape') {
    mentionState = null;
    renderMentions(false);
    e.stopPropagation();
  } else {
    return false;
  }
  e.preventDefault();
  return true;
}

// mentionsIn is the members named as @username in text.
function mentionsIn(c, text) {
  const words = new Set((text.match(/@[A-Za-z0-9_.-]+/g) || []).map((w) => w.slice(1).toLowerCase()));
  return (c.members || []).filter((m) => words.has((m === S.me.id ? S.me.username : S.names.get(m) || '').toLowerCase()));
}

// edit sends a new body for one of the user's own messages.
function edit(c, seq, text) {
  const body = { text };
  if (new TextEncoder().encode(JSON.stringify(body)).length > MAX_BODY) {
    toast('That message is too long.');
    return false;
  }
  S.conn.enqueue({ type: 'edit', id: ulid(), conv: c.id, target: seq, body });
  return true;
}

// react toggles the user's reaction with emoji on the message at seq. A
// history page counts reactions without saying whose: ask before toggling
// one that may be ours.
async function react(c, ev, emoji) {
  let t = c.msgs.get(ev.seq) || ev;
  if (!t.mine && t.reactions && t.reactions[emoji]) {
    try {
      const r = await api.reactions(c.id, ev.seq);
      t = c.msgs.get(ev.seq) || t;
      t.mine = Object.keys(r.reactions || {}).filter((e) => r.reactions[e].includes(S.me.id));
    } catch { /* toggle as far as we know */ }
  }
  if (!S) return;
  const on = !(t.mine || []).includes(emoji);
  S.conn.enqueue({ type: 'react', id: ulid(), conv: c.id, target: ev.seq, emoji, on });
}

// setDraft puts the composer into reply or edit mode (null: plain).
function setDraft(d) {
  S.draft = d;
  const composer = $('#composer');
  if (d && d.mode === 'edit') {
    const t = S.convs.get(d.conv).msgs.get(d.seq);
    composer.value = t ? bodyText(t.body) : '';
  } else if (!d && composer.dataset.mode === 'edit') {
    composer.value = '';
  }
  composer.dataset.mode = d ? d.mode : '';
  autosize(composer);
  renderDraft();
  if (d) composer.focus();
}

function renderDraft() {
  const bar = $('#draft');
  const d = S.draft;
  const c = d && S.convs.get(d.conv);
  if (!c || d.conv !== S.current) {
    bar.hidden = true;
    return;
  }
  const t = c.msgs.get(d.seq);
  bar.hidden = false;
  fill(bar,
    h('span.draft-text', null, d.mode === 'edit' ? 'Editing message' : `Replying to ${t ? name(t.from) : 'a message'}: `,
      d.mode === 'reply' && t ? h('q', null, t.recalled ? 'Message recalled' : bodyText(t.body)) : null),
    h('button.icon.small', { type: 'button', id: 'draft-cancel', 'aria-label': 'Cancel', onclick: () => setDraft(null) }, '×'));
}

// recall takes a message back after recallUndoMs, unless Undo is pressed
// first; leaving the page sends it at once (pagehide).
function recall(c, ev) {
  const k = `${c.id}:${ev.seq}`;
  if (S.recalling.has(k)) return;
  const s = S;
  let t = null;
  const go = () => {
    const r = s.recalling.get(k);
    if (!r) return;
    clearTimeout(r.timer);
    s.recalling.delete(k);
    if (t) t.remove();
    if (S !== s) return;
    S.conn.enqueue({ type: 'recall', id: ulid(), conv: c.id, target: ev.seq });
    if (S.conn.state !== 'online') toast('The recall goes out when you are back online.');
    schedule(c);
  };
  const undo = () => {
    const r = s.recalling.get(k);
    if (!r) return;
    clearTimeout(r.timer);
    s.recalling.delete(k);
    if (t) t.remove();
    if (S === s) schedule(c);
  };
  S.recalling.set(k, { go, timer: setTimeout(go, recallUndoMs) });
  t = toast('Recalling message…', { label: 'Undo', onclick: undo }, recallUndoMs);
  schedule(c);
}

// search shows the messages matching q (every word) across conversations;
// an empty q hides the results.
let searchGen = 0;
async function search(q) {
  const list = $('#search-results');
  const gen = ++searchGen;
  if (!q) {
    list.hidden = true;
    list.replaceChildren();
    return;
  }
  let r;
  try {
    r = await api.search(q);
  } catch (x) {
    if (gen === searchGen) toast(`Search failed: ${x.message}`);
    return;
  }
  if (gen !== searchGen || !S) return;
  list.hidden = false;
  fill(list, r.events.length ? r.events.map((ev) => {
    const c = S.convs.get(ev.conv);
    return h('li', { dataset: { conv: ev.conv, seq: String(ev.seq) } }, h('button', { type: 'button', onclick: () => c && go(ev.conv, true) },
      h('div.sub', null, `${c ? title(c) : 'Conversation'} · ${name(ev.from)} · ${dayLabel(ev.ts, Date.now())} ${clock(ev.ts)}`),
      h('div.result-text', null, bodyText(ev.body))));
  }) : h('li.empty', null, 'No messages found.'));
}

async function startDirect(friend) {
  try {
    const x = await api.createDirect(friend.id);
    const c = upsertConv({ ...x, members: x.members });
    c.stub = false;
    if (S.cursors[c.id] == null) {
      S.cursors[c.id] = c.last_seq;
      if (S.conn.synced) S.conn.sync({ [c.id]: c.last_seq });
    }
    saveConvs();
    S.tab = 'chats';
    renderTabs();
    go(c.id, true);
    refreshConvs();
  } catch (x) {
    toast(`Could not start the conversation: ${x.message}`);
  }
}

async function createGroup(titleText, members) {
  const x = await api.createGroup(titleText, members);
  const c = upsertConv(x);
  c.stub = false;
  S.cursors[c.id] = 0;
  if (S.conn.synced) S.conn.sync({ [c.id]: 0 });
  saveConvs();
  S.tab = 'chats';
  renderTabs();
  go(c.id, true);
  refreshConvs();
}

// ------------------------------------------------------------------ storage --

const saveCursors = debounce(() => S && store.set(key('cursors'), S.cursors), 250);
const saveConvs = debounce(() => {
  if (!S) return;
  const list = [...S.convs.values()].filter((c) => !c.stub).map((c) => ({
    id: c.id, kind: c.kind, title: c.title, last_seq: c.last_seq, read_seq: c.read_seq, unread: c.unread,
    members: c.members, lastEv: c.lastEv, lastTs: c.lastTs,
  }));
  store.set(key('convs'), list);
}, 1000);

addEventListener('pagehide', () => {
  if (!S) return;
  // A recall whose undo was not pressed goes to the outbox (kept across
  // the reload) rather than being forgotten.
  for (const r of [...S.recalling.values()]) r.go();
  store.set(key('cursors'), S.cursors);
});

// ------------------------------------------------------------------- render --

let dirtyList = false;
let dirtyConv = false;
let renderTimer = null;

function schedule(c) {
  dirtyList = true;
  if (c && c.id === S.current) dirtyConv = true;
  if (!renderTimer) renderTimer = setTimeout(flush, 0);
}

function flush() {
  renderTimer = null;
  if (!S) return;
  if (dirtyList) renderList();
  if (dirtyConv) renderConv();
  dirtyList = dirtyConv = false;
}

// reconcile makes parent's children the elements of rows, in order, reusing
// the element of a row whose key and signature did not change.
function reconcile(parent, rows, make) {
  const old = parent._keyed || new Map();
  const next = new Map();
  const els = rows.map((r) => {
    const o = old.get(r.key);
    const el = o && o.sig === r.sig ? o.el : make(r);
    next.set(r.key, { sig: r.sig, el });
    return el;
  });
  const keep = new Set(els);
  for (const ch of [...parent.children]) if (!keep.has(ch)) ch.remove();
  els.forEach((el, i) => {
    if (parent.children[i] !== el) parent.insertBefore(el, parent.children[i] || null);
  });
  parent._keyed = next;
}

// fill replaces el's children, skipping null and false.
function fill(el, ...kids) {
  el.replaceChildren(...kids.flat().filter((k) => k != null && k !== false));
}

// avatar draws label's initial; presence ('on', 'off', 'unknown' or null
// for none) is the dot.
function avatar(label, id, presence) {
  let hash = 0;
  for (const ch of id || label) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  const initials = label.replace(/^#/, '').slice(0, 1).toUpperCase();
  return h('span.avatar', { style: `--hue:${hash % 360}`, 'aria-hidden': 'true' }, initials,
    presence ? h(`span.dot.${presence}`, { dataset: { presence } }) : null);
}

// presenceOf is a friend's presence as far as we know: 'unknown' while our
// own socket is (or was, since the last friends list) down; null for
// someone who is not a friend.
function presenceOf(uid) {
  const f = uid && S.friends.get(uid);
  if (!f) return null;
  if (!S.presenceKnown) return 'unknown';
  return f.online ? 'on' : 'off';
}

function renderShell() {
  document.body.dataset.view = 'list';
  const composer = h('textarea', {
    id: 'composer', rows: 1, placeholder: 'Message', 'aria-label': 'Message', enterKeyHint: 'send',
    oninput: () => {
      autosize(composer);
      const c = S.convs.get(S.current);
      if (c && composer.dataset.mode !== 'edit') typing(c, composer.value.trim() !== '');
      renderMentions();
    },
    onblur: () => setTimeout(() => { mentionState = null; renderMentions(false); }, 150),
    onkeydown: (e) => {
      if (mentionKey(e)) return;
      swallowBreak = false;
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        swallowBreak = true; // some input paths insert the line break anyway
        composerForm.requestSubmit();
      }
    },
    onbeforeinput: (e) => {
      if (swallowBreak && (e.inputType === 'insertLineBreak' || e.inputType === 'insertParagraph')) e.preventDefault();
      swallowBreak = false;
    },
  });
  let swallowBreak = false;
  const composerForm = h('form.composer', {
    id: 'composer-form',
    onsubmit: (e) => {
      e.preventDefault();
      const c = S.convs.get(S.current);
      const text = composer.value.trim();
      if (!c || !text) return;
      const d = S.draft && S.draft.conv === c.id ? S.draft : null;
      if (d && d.mode === 'edit' ? edit(c, d.seq, text) : send(c, text)) {
        composer.value = '';
        if (d) setDraft(null);
        autosize(composer);
        typing(c, false, !d);
      }
    },
  }, composer, h('button.send', { type: 'submit', id: 'send', 'aria-label': 'Send message', title: 'Send (Enter)' }, sendIcon()));

  const msgs = h('ol.msgs', { id: 'msgs' });
  const sentinel = h('div.sentinel', { id: 'sentinel' });
  const scroller = h('div.scroller', { id: 'scroller', role: 'log', 'aria-label': 'Messages', 'aria-live': 'polite', tabindex: '0' }, sentinel, msgs);
  scroller.addEventListener('scroll', () => {
    const c = S && S.convs.get(S.current);
    if (c && scroller.scrollTop < 200) loadOlder(c);
  }, { passive: true });
  new IntersectionObserver((entries) => {
    const c = S && S.convs.get(S.current);
    if (c && entries.some((e) => e.isIntersecting)) loadOlder(c);
  }, { root: scroller, rootMargin: '200px 0px 0px 0px' }).observe(sentinel);

  root.replaceChildren(
    h('div.app', null,
      h('aside.sidebar', { 'aria-label': 'Conversations' },
        h('header.side-head', null,
          avatar(S.me.username, S.me.id),
          h('div.me', null, h('strong', { id: 'me' }, S.me.username), h('div', { id: 'status', role: 'status', 'aria-live': 'polite' })),
          h('button.small.ghost', { type: 'button', id: 'logout', onclick: logout }, 'Log out')),
        h('div.tabs', { role: 'tablist', 'aria-label': 'Sidebar' },
          h('button', { type: 'button', role: 'tab', id: 'tab-chats', 'aria-controls': 'panel-chats', onclick: () => setTab('chats') }, 'Chats'),
          h('button', { type: 'button', role: 'tab', id: 'tab-friends', 'aria-controls': 'panel-friends', onclick: () => setTab('friends') }, 'Friends')),
        h('section.panel', { id: 'panel-chats', role: 'tabpanel', 'aria-labelledby': 'tab-chats' },
          h('form.search', { id: 'search', role: 'search', onsubmit: (e) => { e.preventDefault(); search($('#search-q').value.trim()); } },
            h('input', { id: 'search-q', type: 'search', placeholder: 'Search messages', 'aria-label': 'Search messages', oninput: (e) => { if (!e.target.value.trim()) search(''); } })),
          h('ul.search-results', { id: 'search-results', 'aria-label': 'Search results', hidden: true }),
          h('ul.convs', { id: 'convs' }),
          h('p.empty', { id: 'convs-empty' }, 'No conversations yet. Add a friend under Friends to start one.')),
        h('section.panel', { id: 'panel-friends', role: 'tabpanel', 'aria-labelledby': 'tab-friends' },
          h('form.add-friend', { id: 'add-friend', onsubmit: addFriend },
            h('input', { id: 'friend-name', 'aria-label': "Friend's username", placeholder: 'Add a friend by username', autocapitalize: 'none', spellcheck: 'false', required: true }),
            h('button.primary', { type: 'submit' }, 'Add')),
          h('button.wide', { type: 'button', id: 'new-group', onclick: openGroupDialog }, '+ New group'),
          h('ul.friends', { id: 'friends', 'aria-label': 'Friends' }),
          h('p.empty', { id: 'friends-empty' }, 'No friends yet.'))),
      h('main.main', { id: 'main', 'aria-label': 'Conversation' },
        h('header.conv-head', { id: 'conv-head' }),
        scroller,
        h('div.typing', { id: 'typing', 'aria-live': 'polite' }),
        h('div.draft', { id: 'draft', hidden: true }),
        h('ul.mention-list', { id: 'mention-list', role: 'listbox', 'aria-label': 'Members to mention', hidden: true }),
        composerForm,
        h('div.placeholder', { id: 'placeholder' }, h('span.logo', { 'aria-hidden': 'true' }), h('p', null, 'Pick a conversation, or start one from your friends.')))),
    h('dialog', { id: 'dialog', 'aria-labelledby': 'dialog-title' }));
  root.removeAttribute('aria-busy');
  renderTabs();
  renderStatus();
}

function sendIcon() {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  const p = document.createElementNS(ns, 'path');
  p.setAttribute('d', 'M3 20.5 21 12 3 3.5 3 10l12 2-12 2z');
  svg.append(p);
  return svg;
}

function autosize(t) {
  t.style.height = 'auto';
  t.style.height = Math.min(t.scrollHeight, 160) + 'px';
}

function setTab(tab) {
  S.tab = tab;
  renderTabs();
  if (tab === 'friends') refreshFriends();
}

function renderTabs() {
  for (const t of ['chats', 'friends']) {
    const on = S.tab === t;
    const b = $(`#tab-${t}`);
    b.setAttribute('aria-selected', String(on));
    b.tabIndex = on ? 0 : -1;
    $(`#panel-${t}`).hidden = !on;
  }
}

function renderAll() {
  renderList();
  renderFriends();
  renderConv();
}

function renderStatus() {
  const el = $('#status');
  if (!el || !S) return;
  const st = S.conn ? S.conn.state : 'connecting';
  el.dataset.state = st;
  const label = { online: 'Online', connecting: 'Connecting…', offline: 'Offline' }[st];
  fill(el, h('span.pip', { 'aria-hidden': 'true' }), label,
    st === 'offline' && S.conn && !S.conn.suspended
      ? h('button.link', { type: 'button', onclick: () => S.conn.now() }, 'Retry now') : null);
}

function renderList() {
  const ul = $('#convs');
  if (!ul || !S) return;
  const list = [...S.convs.values()].filter((c) => !c.stub)
    .sort((a, b) => (b.lastTs || 0) - (a.lastTs || 0) || b.last_seq - a.last_seq || (a.id < b.id ? -1 : 1));
  let total = 0;
  const rows = list.map((c) => {
    total += c.unread;
    const t = title(c);
    const o = c.kind === 'direct' ? other(c) : null;
    const online = o ? presenceOf(o) : null;
    const pv = preview(c);
    const when = ago(c.lastTs);
    return { key: c.id, c, t, online, pv, when, sig: [t, online, pv, when, c.unread, S.current === c.id, c.kind].join('\u0001') };
  });
  reconcile(ul, rows, (r) => {
    const c = r.c;
    const label = `${r.t}${c.unread ? `, ${c.unread} unread` : ''}${r.online === 'on' ? ', online' : ''}`;
    return h('li', null, h('button.conv', {
      type: 'button', dataset: { conv: c.id }, 'aria-label': label,
      'aria-current': S.current === c.id ? 'true' : null,
      onclick: () => go(c.id, true),
    },
    avatar(r.t, c.kind === 'direct' ? other(c) : c.id, r.online),
    h('span.conv-main', null,
      h('span.conv-top', null, h('span.conv-title', null, r.t), h('time.conv-time', null, r.when)),
      h('span.conv-bottom', null, h('span.conv-preview', null, r.pv),
        c.unread ? h('span.badge', { 'aria-hidden': 'true' }, c.unread > 99 ? '99+' : String(c.unread)) : null))));
  });
  $('#convs-empty').hidden = list.length > 0 || !S.listed;
  document.title = total ? `(${total}) seqchat` : 'seqchat';
}

function renderFriends() {
  const ul = $('#friends');
  if (!ul || !S) return;
  const list = [...S.friends.values()].sort((a, b) => (b.online - a.online) || a.username.localeCompare(b.username));
  reconcile(ul, list.map((f) => ({ key: f.id, f, p: presenceOf(f.id), sig: `${f.username}\u0001${presenceOf(f.id)}` })), ({ f, p }) => h('li.friend', { dataset: { user: f.username } },
    avatar(f.username, f.id, p),
    h('span.friend-name', null, f.username, h('span.sr', null, { on: ' (online)', off: ' (offline)', unknown: ' (presence unknown while you are offline)' }[p])),
    h('button.small', { type: 'button', 'aria-label': `Message ${f.username}`, onclick: () => startDirect(f) }, 'Message'),
    h('button.icon.small', {
      type: 'button', 'aria-label': `Remove ${f.username} from friends`, title: 'Remove friend',
      onclick: async () => {
        if (!confirm(`Remove ${f.username} from your friends?`)) return;
        try { await api.removeFriend(f.id); refreshFriends(); } catch (x) { toast(x.message); }
      },
    }, '×')));
  $('#friends-empty').hidden = list.length > 0;
}

async function addFriend(e) {
  e.preventDefault();
  const input = $('#friend-name');
  const who = input.value.trim().toLowerCase();
  if (!who) return;
  try {
    await api.addFriend(who);
    input.value = '';
    toast(`${who} is now your friend.`);
    await refreshFriends();
  } catch (x) {
    toast(x.code === 'not_found' ? `There is no user called ${who}.` : x.message);
  }
}

// Routing: #/c/<id> is the open conversation, so Back works on phones.
function go(id, user) {
  const hash = id ? `#/c/${id}` : '';
  if (location.hash !== hash) {
    if (hash) location.hash = hash;
    else history.pushState(null, '', location.pathname);
  }
  route(user);
}

function route(user) {
  if (!S) return;
  const m = location.hash.match(/^#\/c\/([A-Za-z0-9_-]+)$/);
  const id = m && S.convs.has(m[1]) ? m[1] : null;
  const prev = S.current;
  S.current = id;
  document.body.dataset.view = id ? 'conv' : 'list';
  if (prev && prev !== id) trim(S.convs.get(prev));
  if (id && id !== prev) {
    const c = S.convs.get(id);
    S.stick = true;
    if (!c.loaded) loadLatest(c);
    if (reading(c)) markRead(c);
    if (c.kind === 'direct') loadReceipts(c);
    if (!c.members || c.kind === 'group') loadMembers([c]);
    $('#composer').value = '';
    S.draft = null;
    renderDraft();
    renderTyping();
    if (user) setTimeout(() => $('#composer').focus(), 0);
  }
  if (!id && prev && user) {
    const b = $(`#convs [data-conv="${prev}"]`);
    if (b) b.focus();
  }
  renderList();
  renderConv();
}

addEventListener('hashchange', () => route(false));

// trim keeps a conversation that left the screen small.
function trim(c) {
  if (!c || c.msgs.size <= KEEP_IN_BACKGROUND) return;
  const seqs = [...c.msgs.keys()].sort((a, b) => a - b);
  for (const s of seqs.slice(0, seqs.length - KEEP_IN_BACKGROUND)) c.msgs.delete(s);
  c.minSeq = seqs[seqs.length - KEEP_IN_BACKGROUND];
  c.hasMore = c.minSeq > 1;
}

function renderConvHeader() {
  const head = $('#conv-head');
  const c = S && S.convs.get(S.current);
  if (!head || !c) return;
  const t = title(c);
  let sub = '';
  if (c.kind === 'direct') {
    const o = other(c);
    const f = o && S.friends.get(o);
    sub = f && presenceOf(o) === 'on' ? 'online' : '';
  } else {
    sub = c.members ? `${c.members.length} members` : 'group';
  }
  fill(head,
    h('button.icon.back', { type: 'button', 'aria-label': 'Back to conversations', onclick: () => go(null, true) }, '‹'),
    avatar(t, c.kind === 'direct' ? other(c) : c.id),
    h('div.conv-head-text', null, h('h2', { id: 'conv-title' }, t), sub ? h('div.sub', null, sub) : null),
    c.kind === 'group' ? h('button.small', { type: 'button', id: 'members-btn', 'aria-label': 'Group members', onclick: () => openMembersDialog(c) }, 'Members') : null);
}

function renderSentinel(c) {
  const s = $('#sentinel');
  s.textContent = !c.loaded || c.loading ? 'Loading…' : c.hasMore ? '' : 'This is the beginning of the conversation.';
}

function renderConv() {
  if (!S) return;
  const c = S.convs.get(S.current);
  const main = $('#main');
  main.classList.toggle('empty', !c);
  if (!c) return;
  renderConvHeader();
  renderSentinel(c);
  const scroller = $('#scroller');
  const fromBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight;
  const atBottom = fromBottom < 80;
  const rows = buildRows(c);
  reconcile($('#msgs'), rows, (r) => makeRow(c, r));
  if (S.stick || atBottom) scroller.scrollTop = scroller.scrollHeight;
  else if (S.prepend) scroller.scrollTop = scroller.scrollHeight - scroller.clientHeight - fromBottom;
  S.stick = false;
  S.prepend = false;
  // A page that does not fill the screen: load more right away.
  if (c.loaded && c.hasMore && !c.loading && scroller.scrollHeight <= scroller.clientHeight + 10) loadOlder(c);
  // Timing of sends: from pressing send to showing as sent.
  if (S.sendT0.size) {
    for (const r of rows) {
      const t0 = r.type === 'msg' && r.state === 'sent' && r.mine && S.sendT0.get(r.ev.id);
      if (t0) {
        T.sends.push(performance.now() - t0);
        S.sendT0.delete(r.ev.id);
      }
    }
  }
}

function buildRows(c) {
  const rows = [];
  const now = Date.now();
  const evs = [...c.msgs.values()].filter((e) => e.kind === 'message' || e.kind === 'member_joined' || e.kind === 'member_left').sort((a, b) => a.seq - b.seq);
  let seenSeq = 0;
  if (c.kind === 'direct') {
    const o = other(c);
    const upTo = (o && c.receipts[o]) || 0;
    for (const e of evs) if (e.kind === 'message' && isMine(e) && e.seq <= upTo) seenSeq = e.seq;
  }
  let prev = null;
  let prevDay = null;
  let lastMsg = null;
  const addDay = (ts) => {
    const d = dayKey(ts);
    if (d !== prevDay) {
      const label = dayLabel(ts, now);
      rows.push({ key: `d${d}`, type: 'day', label, sig: label });
      prevDay = d;
      prev = null;
    }
  };
  const addMsg = (ev, state, key) => {
    addDay(ev.ts);
    const first = !(prev && prev.from === ev.from && ev.ts - prev.ts < GROUP_GAP);
    if (!first && lastMsg) lastMsg.last = false;
    const mine = isMine(ev);
    const row = {
      key, type: 'msg', ev, mine, first, last: true, state,
      seen: ev.seq != null && ev.seq === seenSeq,
      canRecall: mine && state === 'sent' && !ev.recalled && now - ev.ts < RECALL_WINDOW,
      recalling: S.recalling.has(`${c.id}:${ev.seq}`),
    };
    rows.push(row);
    prev = ev;
    lastMsg = row;
  };
  for (const ev of evs) {
    if (ev.kind === 'message') addMsg(ev, 'sent', `m${ev.from}:${ev.id}`);
    else if (ev.kind === 'member_joined' || ev.kind === 'member_left') {
      addDay(ev.ts);
      const text = ev.kind === 'member_joined'
        ? (ev.from && ev.from !== ev.user ? `${name(ev.from)} added ${name(ev.user)}` : `${name(ev.user)} joined`)
        : (ev.from && ev.from !== ev.user ? `${name(ev.from)} removed ${name(ev.user)}` : `${name(ev.user)} left`);
      rows.push({ key: `s${ev.seq}`, type: 'sys', text, sig: text });
      prev = null;
      lastMsg = null;
    }
  }
  // A pending message whose event is already in the timeline (an ack lost
  // across a reload, say) is that event: it never shows twice.
  const inTimeline = new Set(evs.filter((e) => e.kind === 'message' && isMine(e)).map((e) => e.id));
  for (const p of [...S.pending.values()]) {
    if (p.conv === c.id && inTimeline.has(p.id)) {
      S.pending.delete(p.id);
      S.conn.forget(p.id);
    }
  }
  const pend = [...S.pending.values()].filter((p) => p.conv === c.id).sort((a, b) => a.createdTs - b.createdTs);
  for (const p of pend) addMsg({ id: p.id, seq: p.seq, from: S.me.id, ts: p.createdTs, body: p.body, reply_to: p.reply_to }, p.state, `m${S.me.id}:${p.id}`);
  for (const r of rows) {
    if (r.type === 'msg') {
      const q = r.ev.reply_to != null ? c.msgs.get(r.ev.reply_to) : null;
      r.quote = r.ev.reply_to != null ? { seq: r.ev.reply_to, who: q ? name(q.from) : '', text: !q ? 'Earlier message' : q.recalled ? 'Message recalled' : bodyText(q.body) } : null;
      r.sig = [r.first, r.last, r.state, r.seen, r.canRecall, r.recalling, r.ev.recalled, r.ev.seq, bodyText(r.ev.body), name(r.ev.from), c.kind,
        r.ev.edited, JSON.stringify(r.ev.reactions || {}), (r.ev.mine || []).join(), JSON.stringify(r.quote)].join('\u0001');
    }
  }
  return rows;
}

function makeRow(c, r) {
  if (r.type === 'day') return h('li.day', { role: 'separator', 'aria-label': r.label }, h('span', null, r.label));
  if (r.type === 'sys') return h('li.sys', null, r.text);
  const ev = r.ev;
  const live = r.state === 'sent' && ev.seq != null && !ev.recalled; // can be edited, reacted to, replied to
  const cls = ['li.msg', r.mine ? 'mine' : 'theirs', r.first ? 'first' : '', r.last ? 'last' : '', ev.recalled ? 'recalled' : '', (ev.mentions || []).includes(S.me.id) ? 'mentioned' : '', r.state]
    .filter(Boolean).join('.');
  const status = !r.mine ? null
    : r.state === 'pending' ? h('span.st', { title: 'Sending', 'aria-label': 'Sending' }, '◷')
    : r.state === 'failed' ? h('span.st.bad', { 'aria-label': 'Not sent' }, 'Not sent')
    : r.seen ? h('span.st.seen', null, 'Seen')
    : h('span.st', { title: 'Sent', 'aria-label': 'Sent' }, '✓');
  return h(cls, {
    dataset: { id: ev.id, seq: ev.seq != null ? String(ev.seq) : '', state: r.state, from: ev.from, recalled: ev.recalled ? 'true' : 'false', recalling: r.recalling ? 'true' : 'false' },
  },
  r.first && !r.mine && c.kind === 'group' ? h('div.who', { 'aria-hidden': 'true' }, name(ev.from)) : null,
  h('div.line', null,
    h('div.bubble', null,
      h('span.sr', null, r.mine ? 'You: ' : `${name(ev.from)}: `),
      r.quote ? h('span.quote', { dataset: { seq: String(r.quote.seq) } }, r.quote.who ? h('span.quote-who', null, r.quote.who) : null, h('span.quote-text', null, r.quote.text)) : null,
      ev.recalled ? h('span.text.recalled-text', null, 'Message recalled') : h('span.text', null, bodyText(ev.body)),
      h('span.meta', null, ev.edited && !ev.recalled ? h('span.edited', null, 'edited') : null,
        h('time', { datetime: new Date(ev.ts).toISOString(), title: fullDate(ev.ts) }, clock(ev.ts)), status),
      live && ev.reactions && Object.keys(ev.reactions).length ? h('span.reactions', null, Object.entries(ev.reactions).map(([e, n]) => h((ev.mine || []).includes(e) ? 'button.chip.on' : 'button.chip', {
        type: 'button', dataset: { emoji: e }, 'aria-label': `${e} ${n}`, onclick: () => react(c, ev, e),
      }, `${e} ${n}`))) : null),
    live ? h('span.actions', null,
      h('button.reply', { type: 'button', 'aria-label': 'Reply', title: 'Reply', onclick: () => setDraft({ conv: c.id, seq: ev.seq, mode: 'reply' }) }, '↩'),
      REACTIONS.map((e) => h('button.react', { type: 'button', dataset: { emoji: e }, 'aria-label': `React ${e}`, title: `React ${e}`, onclick: () => react(c, ev, e) }, e)),
      r.mine ? h('button.edit', { type: 'button', 'aria-label': 'Edit message', title: 'Edit', onclick: () => setDraft({ conv: c.id, seq: ev.seq, mode: 'edit' }) }, '✎') : null) : null,
    r.canRecall && !r.recalling ? h('button.recall', { type: 'button', 'aria-label': 'Recall message', title: 'Recall', onclick: () => recall(c, ev) }, '↶') : null,
    r.state === 'failed' ? h('button.small', { type: 'button', onclick: () => retrySend(ev.id) }, 'Retry') : null));
}

// ------------------------------------------------------------------ dialogs --

function dialog(titleText, ...content) {
  const d = $('#dialog');
  fill(d, h('h2', { id: 'dialog-title' }, titleText), ...content);
  if (!d.open) d.showModal();
  return d;
}

function closeDialog() {
  const d = $('#dialog');
  if (d.open) d.close();
}

function openGroupDialog() {
  const err = h('p.form-error', { role: 'alert' });
  const friends = [...S.friends.values()].sort((a, b) => a.username.localeCompare(b.username));
  const input = h('input', { id: 'group-title', required: true, maxLength: 200, placeholder: 'Group name' });
  dialog('New group', h('form.stack', {
    method: 'dialog',
    onsubmit: async (e) => {
      e.preventDefault();
      const members = [...e.target.querySelectorAll('input[type=checkbox]:checked')].map((b) => b.value);
      try {
        await createGroup(input.value.trim(), members);
        closeDialog();
      } catch (x) {
        err.textContent = x.message;
      }
    },
  },
  h('label', { for: 'group-title' }, 'Name'), input,
  h('fieldset', null, h('legend', null, 'Members'),
    friends.length ? friends.map((f) => h('label.check', null, h('input', { type: 'checkbox', value: f.id }), f.username))
      : h('p.empty', null, 'Add friends first to invite them; you can add members later.')),
  err,
  h('div.row', null,
    h('button', { type: 'button', onclick: closeDialog }, 'Cancel'),
    h('button.primary', { type: 'submit' }, 'Create'))));
  input.focus();
}

async function openMembersDialog(c) {
  await loadMembers([c]);
  if (!S || S.current !== c.id) return;
  const err = h('p.form-error', { role: 'alert' });
  const input = h('input', { id: 'member-name', list: 'member-options', placeholder: 'Username', 'aria-label': 'Username to add', autocapitalize: 'none' });
  const members = c.members || [];
  const options = [...S.friends.values()].filter((f) => !members.includes(f.id));
  const act = async (fn) => {
    try {
      await fn();
      await loadMembers([c]);
      if (S.current === c.id && S.convs.has(c.id)) openMembersDialog(c);
    } catch (x) {
      err.textContent = x.code === 'forbidden' ? 'Only the group’s owner can do that.' : x.message;
    }
  };
  dialog(`Members of ${title(c)}`,
    h('ul.members', null, members.map((m) => h('li', null, avatar(m === S.me.id ? S.me.username : name(m), m), h('span.friend-name', null, m === S.me.id ? `${S.me.username} (you)` : name(m)),
      m === S.me.id ? null : h('button.small', { type: 'button', 'aria-label': `Remove ${name(m)}`, onclick: () => act(() => api.removeMember(c.id, m)) }, 'Remove')))),
    h('form.add-friend', {
      onsubmit: (e) => {
        e.preventDefault();
        const v = input.value.trim().toLowerCase();
        if (v) act(() => api.addMember(c.id, v));
      },
    }, input, h('datalist', { id: 'member-options' }, options.map((f) => h('option', { value: f.username }))), h('button.primary', { type: 'submit' }, 'Add')),
    err,
    h('div.row', null,
      h('button.danger', {
        type: 'button',
        onclick: async () => {
          if (!confirm(`Leave ${title(c)}?`)) return;
          try {
            await api.removeMember(c.id, S.me.id);
            closeDialog();
            dropConv(c.id);
          } catch (x) { err.textContent = x.message; }
        },
      }, 'Leave group'),
      h('button', { type: 'button', onclick: closeDialog }, 'Close')));
}

// -------------------------------------------------------------------- toast --

let lastToast = '';
// toast shows text for ms, with an optional action button ({ label,
// onclick }); it returns the toast so that the caller can take it away.
function toast(text, action = null, ms = 4500) {
  const box = $('#toasts');
  const t = h('div.toast', null, text,
    action ? h('button.toast-action', { type: 'button', onclick: action.onclick }, action.label) : null);
  box.append(t);
  setTimeout(() => t.remove(), ms);
  return t;
}

function toastOnce(text) {
  if (text === lastToast) return;
  lastToast = text;
  toast(text);
  setTimeout(() => { if (lastToast === text) lastToast = ''; }, 30000);
}

// ----------------------------------------------------------------- lifetime --

document.addEventListener('visibilitychange', () => {
  if (!S || document.visibilityState !== 'visible') return;
  S.conn.now();
  const c = S.convs.get(S.current);
  if (c) {
    markRead(c);
    schedule(c);
  }
});
addEventListener('online', () => S && S.conn.now());

document.addEventListener('keydown', (e) => {
  if (!S) return;
  if (e.key === 'Escape' && S.current && !$('#dialog').open) {
    e.preventDefault();
    go(null, true);
  } else if (e.altKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
    // Alt+↑/↓: the previous or next conversation in the list.
    const ids = [...document.querySelectorAll('#convs [data-conv]')].map((b) => b.dataset.conv);
    if (!ids.length) return;
    e.preventDefault();
    const i = ids.indexOf(S.current);
    const j = i < 0 ? 0 : Math.max(0, Math.min(ids.length - 1, i + (e.key === 'ArrowUp' ? -1 : 1)));
    go(ids[j], true);
  }
});

// Every 20s: recall buttons that expired, "Today" that became "Yesterday",
// seen marks of a direct conversation without receipt frames.
setInterval(() => {
  if (!S) return;
  const c = S.convs.get(S.current);
  if (!c) return;
  schedule(c);
}, 20000);
setInterval(() => S && S.current && renderTyping(), 1000);
setInterval(() => {
  if (!S || document.visibilityState !== 'visible' || S.conn.state !== 'online') return;
  const c = S.convs.get(S.current);
  if (!c || c.kind !== 'direct') return;
  const o = other(c);
  let mineLast = 0;
  for (const e of c.msgs.values()) if (e.kind === 'message' && isMine(e) && e.seq > mineLast) mineLast = e.seq;
  if (o && mineLast > (c.receipts[o] || 0)) loadReceipts(c);
}, 3000);

export { ApiError }; // for the console

boot();

// The WebSocket half of the protocol (docs/protocol.md, "WebSocket"):
// one socket, reconnected with capped exponential backoff and full jitter,
// a sync from the app's cursors after every connect, and an outbox that
// resends commands with the same id until their ack arrives.

import { ulid } from './util.js';

const BACKOFF_BASE = 500; // ms
const BACKOFF_CAP = 30000;
const RESEND_AFTER = 8000; // no ack this long on one connection: send again
const PING_EVERY = 20000;
const SILENT_LIMIT = 45000; // nothing heard for this long: the socket is dead
const RETRYABLE = new Set(['unavailable', 'rate_limited', 'internal']);

export class Connection extends EventTarget {
  // token: the session token; cursors(): {conv: seq} to sync from;
  // saved: outbox entries kept from an earlier page; persist(list) keeps them.
  constructor({ token, cursors, saved = [], persist = () => {} }) {
    super();
    this.token = token;
    this.cursors = cursors;
    this.persist = persist;
    this.state = 'offline';
    this.ws = null;
    this.gen = 0; // connection generation
    this.synced = false; // the current socket answered its first sync
    this.attempt = 0;
    this.timer = null;
    this.stopped = true;
    this.suspended = false; // test hook: offline until resumed
    this.lastHeard = 0;
    this.syncIDs = new Set();
    this.outbox = new Map(); // id -> {frame, tx, txGen, retryAt, tries}
    for (const frame of saved) this.outbox.set(frame.id, { frame, tx: 0, txGen: -1, retryAt: 0, tries: 0 });
    this.reads = new Map(); // conv -> seq not yet sent
    this.tick = null;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.tick = setInterval(() => this.onTick(), 1000);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearInterval(this.tick);
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, 'bye');
    this.ws = null;
    this.setState('offline');
  }

  setState(s) {
    if (this.state === s) return;
    this.state = s;
    this.emit('status', { state: s });
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  // now reconnects at once when offline (tab woke up, network came back).
  now() {
    if (this.stopped || this.suspended) return;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) {
      // Maybe a half-open socket after sleep: ask, and drop it if silent.
      if (this.synced) {
        this.raw({ type: 'ping' });
        const gen = this.gen;
        setTimeout(() => { if (gen === this.gen && Date.now() - this.lastHeard > 5000) this.drop(); }, 5000);
      }
      return;
    }
    clearTimeout(this.timer);
    this.attempt = 0;
    this.connect();
  }

  connect() {
    clearTimeout(this.timer);
    if (this.stopped || this.suspended) return;
    const gen = ++this.gen;
    this.synced = false;
    this.setState('connecting');
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(`${proto}//${location.host}/v1/ws?token=${encodeURIComponent(this.token)}`);
    } catch {
      this.retry(gen, false);
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      if (gen !== this.gen) return;
      opened = true;
      this.lastHeard = Date.now();
      this.sync(this.cursors());
    };
    ws.onmessage = (m) => {
      if (gen !== this.gen) return;
      this.lastHeard = Date.now();
      let f;
      try { f = JSON.parse(m.data); } catch { return; }
      this.onFrame(f);
    };
    ws.onclose = () => {
      if (gen !== this.gen) return;
      this.ws = null;
      this.retry(gen, opened);
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  retry(gen, opened) {
    if (gen !== this.gen) return;
    this.synced = false;
    this.setState('offline');
    if (this.stopped || this.suspended) return;
    if (!opened && this.attempt >= 2) this.emit('authcheck'); // a revoked token looks like a failed upgrade
    const delay = Math.min(BACKOFF_CAP, BACKOFF_BASE * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt++;
    this.emit('retry', { delay, attempt: this.attempt });
    this.timer = setTimeout(() => this.connect(), delay);
  }

  // drop closes the socket; the usual backoff reconnects it.
  drop() {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    const gen = this.gen;
    try { ws.close(4000, 'reconnect'); } catch { /* closed */ }
    this.retry(gen, true);
  }

  // suspend and resume are the test hooks that cut and restore the socket.
  suspend() {
    this.suspended = true;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    this.gen++;
    this.synced = false;
    if (ws) try { ws.close(4001, 'suspended'); } catch { /* closed */ }
    this.setState('offline');
  }

  resume() {
    this.suspended = false;
    this.attempt = 0;
    this.connect();
  }

  raw(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  sync(cursors) {
    const id = 's' + ulid();
    this.syncIDs.add(id);
    if (!this.raw({ type: 'sync', id, cursors })) this.syncIDs.delete(id);
    return id;
  }

  // enqueue sends a command (send, recall, edit or react) now if it can, and again until
  // its ack arrives.
  enqueue(frame) {
    const e = { frame, tx: 0, txGen: -1, retryAt: 0, tries: 0 };
    this.outbox.set(frame.id, e);
    this.save();
    if (this.synced) this.transmit(e);
  }

  has(id) { return this.outbox.has(id); }

  forget(id) {
    if (this.outbox.delete(id)) this.save();
  }

  save() { this.persist([...this.outbox.values()].map((e) => e.frame)); }

  transmit(e) {
    if (this.raw(e.frame)) {
      e.tx = Date.now();
      e.txGen = this.gen;
      e.retryAt = 0;
      e.tries++;
    }
  }

  read(conv, seq) {
    if (seq <= (this.reads.get(conv) || 0)) return;
    this.reads.set(conv, seq);
    if (this.synced) this.flushReads();
  }

  flushReads() {
    for (const [conv, seq] of this.reads) {
      if (this.raw({ type: 'read', id: 'r' + ulid(), conv, seq })) this.reads.delete(conv);
    }
  }

  onTick() {
    const now = Date.now();
    if (this.synced) {
      for (const e of this.outbox.values()) {
        const due = e.retryAt ? now >= e.retryAt : e.txGen !== this.gen || now - e.tx > RESEND_AFTER;
        if (due) this.transmit(e);
      }
      if (now - this.lastHeard > SILENT_LIMIT) this.drop();
      else if (now - this.lastHeard > PING_EVERY) this.raw({ type: 'ping' });
    }
  }

  onFrame(f) {
    switch (f.type) {
      case 'event':
        this.emit('event', f);
        break;
      case 'ack': {
        const e = this.outbox.get(f.id);
        if (!e) break; // a read's ack, or an ack already taken
        this.outbox.delete(f.id);
        this.save();
        this.emit('ack', { ...f, frame: e.frame });
        break;
      }
      case 'synced': {
        this.syncIDs.delete(f.id);
        const first = !this.synced;
        this.synced = true;
        this.attempt = 0;
        this.setState('online');
        this.emit('synced', { id: f.id, heads: f.heads || {}, first });
        if (first) {
          // Commands still without an ack go again, in the order they were made.
          for (const e of this.outbox.values()) this.transmit(e);
          this.flushReads();
        }
        break;
      }
      case 'error': {
        if (f.id && this.syncIDs.has(f.id)) {
          this.syncIDs.delete(f.id);
          this.emit('syncerror', f);
          break;
        }
        const e = f.id && this.outbox.get(f.id);
        if (!e) {
          this.emit('servererror', f);
          break;
        }
        if (RETRYABLE.has(f.code)) {
          e.retryAt = Date.now() + Math.min(BACKOFF_CAP, 1000 * 2 ** Math.min(e.tries, 5)) * (0.5 + Math.random() / 2);
        } else {
          this.outbox.delete(f.id);
          this.save();
          this.emit('failed', { ...f, frame: e.frame });
        }
        break;
      }
      case 'receipt':
        this.emit('receipt', f);
        break;
      case 'presence':
        this.emit('presence', f);
        break;
      case 'typing':
        this.emit('typing', f);
        break;
      default:
        break; // pong and anything newer: being heard is enough
    }
  }
}

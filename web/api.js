// REST half of the protocol (docs/protocol.md, "REST").

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  constructor() {
    this.token = null;
    this.onUnauthorized = null; // called when a token stops working
  }

  async req(method, path, body) {
    const headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    let res;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new ApiError(0, 'network', 'The server cannot be reached.');
    }
    if (res.status === 204) return null;
    let data = null;
    try {
      data = await res.json();
    } catch { /* not JSON */ }
    if (!res.ok) {
      const e = data && data.error;
      const err = new ApiError(res.status, e ? e.code : 'http_' + res.status, e ? e.message : res.statusText);
      if (res.status === 401 && this.token && this.onUnauthorized) this.onUnauthorized(err);
      throw err;
    }
    return data;
  }

  register(username, password) { return this.req('POST', '/v1/users', { username, password }); }
  login(username, password) { return this.req('POST', '/v1/sessions', { username, password, device: 'web' }); }
  logout() { return this.req('DELETE', '/v1/sessions/current'); }
  me() { return this.req('GET', '/v1/me'); }
  friends() { return this.req('GET', '/v1/friends'); }
  addFriend(ref) { return this.req('PUT', `/v1/friends/${encodeURIComponent(ref)}`); }
  removeFriend(ref) { return this.req('DELETE', `/v1/friends/${encodeURIComponent(ref)}`); }
  conversations() { return this.req('GET', '/v1/conversations'); }
  conversation(id) { return this.req('GET', `/v1/conversations/${id}`); }
  createDirect(user) { return this.req('POST', '/v1/conversations', { kind: 'direct', members: [user] }); }
  createGroup(title, members) { return this.req('POST', '/v1/conversations', { kind: 'group', title, members }); }
  addMember(conv, user) { return this.req('POST', `/v1/conversations/${conv}/members`, { user_id: user }); }
  removeMember(conv, user) { return this.req('DELETE', `/v1/conversations/${conv}/members/${encodeURIComponent(user)}`); }
  unread() { return this.req('GET', '/v1/unread'); }
  reactions(conv, seq) { return this.req('GET', `/v1/conversations/${conv}/messages/${seq}/reactions`); }
  search(q, { conv, limit = 20 } = {}) {
    const p = new URLSearchParams({ q, limit: String(limit) });
    if (conv) p.set('conv', conv);
    return this.req('GET', `/v1/search?${p}`);
  }
  receipts(conv) { return this.req('GET', `/v1/conversations/${conv}/receipts`); }

  // messages pages history: {before} for older events, nothing for the latest.
  messages(conv, { before, after, limit = 50 } = {}) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before != null) q.set('before_seq', String(before));
    if (after != null) q.set('after_seq', String(after));
    return this.req('GET', `/v1/conversations/${conv}/messages?${q}`);
  }
}

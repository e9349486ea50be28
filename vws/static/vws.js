// vws.js: the browser client of vws, a dependency-free ES module.
//
//   import { connect } from "/_vws/vws.js";
//   const socket = connect("/ws", { token: () => getToken() });
//   socket.on("chat", (payload) => show(payload));
//   await socket.join("lobby");
//   const reply = await socket.request("chat", { room: "lobby", text: "hi" });
//
// Why it looks the way it does:
// - Reconnects wait random(0, min(cap, base * 2^attempt)): the jitter is applied after the cap,
//   so clients dropped together spread over the whole window instead of piling up at the cap.
// - A request never hangs: it settles on its ack, its error frame, its timeout or a disconnect.
// - Rooms are rejoined after a reconnect, before buffered frames are sent.
// - A room whose frames carry positions is resumed from the last one seen; a gap is reported
//   (a resync), not filled: a frame a hook kept from this client, a replay would keep too.
// - Close codes that mean "you may not" (4401, 4403, 4404) or "goodbye" (1000) stop retrying.

/** Close codes after which reconnecting cannot help: the client stops and says why. */
export const TERMINAL_CLOSES = {
  1000: "closed by the server",
  4401: "not authenticated",
  4403: "not allowed",
  4404: "no such route",
};

/** The reconnect delay before attempt `attempt` (0-based), in ms: full jitter after the cap. */
export function backoff(attempt, base = 500, cap = 20000, random = Math.random) {
  return random() * Math.min(cap, base * 2 ** attempt);
}

/** Open a client to `url` (ws://, wss://, or a path resolved against the page). */
export function connect(url, options = {}) {
  return new Socket(url, options);
}

/** The error a request or a send rejects with; `code` is the server's or the client's reason. */
export class VwsError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = "VwsError";
    this.code = code;
  }
}

/** An absolute ws:// or wss:// URL; a path is taken relative to the page (throws if unusable). */
function resolve(url) {
  const page = globalThis.location;
  if (/^wss?:/.test(url) || !page) return new URL(url).href;
  const found = new URL(url, page.href);
  found.protocol = page.protocol === "https:" ? "wss:" : "ws:";
  return found.href;
}

const CONNECTING = 0;
const OPEN = 1;

export class Socket {
  constructor(url, options) {
    this.url = url;
    this.options = {
      token: null, // a string, or a function (maybe async) called on every (re)connect
      tokenParam: "token",
      params: {}, // extra query parameters, or a function returning them
      reconnect: true,
      base: 500,
      cap: 20000,
      timeout: 10000, // default request timeout (ms)
      connectTimeout: 10000,
      buffer: 0, // frames kept while disconnected; 0 makes sends fail fast
      WebSocket: globalThis.WebSocket,
      random: Math.random,
      ...options,
    };
    this.state = "connecting";
    this.clientId = null;
    this.attempt = 0;
    this._rooms = new Set();
    this._positions = new Map(); // room → {offset, epoch} of its last frame
    this._listeners = new Map();
    this._pending = new Map();
    this._buffer = [];
    this._nextId = 1;
    this._ws = null;
    this._timer = null;
    this._base = resolve(url);
    queueMicrotask(() => this._open()); // after the caller has had a chance to add listeners
  }

  /** The rooms this client is in (and rejoins after a reconnect). */
  get rooms() {
    return new Set(this._rooms);
  }

  /** `{offset, epoch}` of the last frame had of `room`; null if it keeps no history. */
  position(room) {
    const at = this._positions.get(room);
    return at ? { ...at } : null;
  }

  /** Listen to a server event, to "error" frames, to a state event, or to "recovered"/"resync". */
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return this;
  }

  off(event, fn) {
    const set = this._listeners.get(event);
    if (set && fn) set.delete(fn);
    else this._listeners.delete(event);
    return this;
  }

  /** Send an event without waiting for an answer (throws a VwsError when it cannot). */
  emit(event, payload = null) {
    this._send({ event, payload });
  }

  /** Send an event with an id; a Promise of the ack's payload. */
  request(event, payload = null, { timeout = this.options.timeout, room, since } = {}) {
    const id = this._nextId++;
    const frame = { event, payload, id, room, since }; // JSON leaves out what is undefined
    try {
      this._send(frame);
    } catch (error) {
      return Promise.reject(error);
    }
    return this._answer(frame, timeout);
  }

  /** A Promise of the answer to `frame` (sent or buffered), settled by its timeout at the latest. */
  _answer(frame, timeout) {
    const { id, event } = frame;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        this._buffer = this._buffer.filter((frame) => frame.id !== id);
        reject(new VwsError("timeout", `no answer to ${event} within ${timeout} ms`));
      }, timeout);
      this._pending.set(id, { resolve, reject, timer, frame });
    });
  }

  /** A Promise of the ack; `since`, a position() kept from earlier, resumes from there. */
  async join(room, { since } = {}) {
    const reply = await this.request("joinRoom", null, { room, since });
    this._rooms.add(room);
    return reply;
  }

  async leave(room) {
    const reply = await this.request("leftRoom", null, { room });
    this._rooms.delete(room);
    this._positions.delete(room);
    return reply;
  }

  /** Close for good: no reconnect; pending requests reject. */
  close() {
    this._stop(1000, "closed by the client");
  }

  _fire(event, ...args) {
    for (const fn of [...(this._listeners.get(event) || [])]) {
      try {
        fn(...args);
      } catch (error) {
        (globalThis.reportError || console.error)(error);
      }
    }
  }

  _setState(state, detail) {
    this.state = state;
    this._fire(state, detail);
  }

  _send(frame) {
    if (this.state === "connected" && this._ws) {
      this._ws.send(JSON.stringify(frame));
    } else if (this.state !== "closed" && this._buffer.length < this.options.buffer) {
      this._buffer.push(frame);
    } else {
      throw new VwsError("disconnected", `cannot send ${frame.event}: the client is ${this.state}`);
    }
  }

  async _open() {
    if (this.state === "closed") return;
    this._setState(this.attempt ? "reconnecting" : "connecting", { attempt: this.attempt });
    let target;
    try {
      target = await this._target();
    } catch (error) {
      this._lost(1006, `the token could not be had: ${error.message}`);
      return;
    }
    if (this.state === "closed") return;
    let ws;
    try {
      ws = new this.options.WebSocket(target);
    } catch (error) {
      this._stop(1006, `cannot open a WebSocket: ${error.message}`); // retrying cannot help
      return;
    }
    this._ws = ws;
    this._timer = setTimeout(() => ws.readyState === CONNECTING && ws.close(), this.options.connectTimeout);
    ws.onmessage = (message) => ws === this._ws && this._receive(message.data);
    ws.onclose = (event) => ws === this._ws && this._lost(event.code, event.reason);
  }

  async _target() {
    const url = new URL(this._base);
    const { token, tokenParam, params } = this.options;
    const extra = typeof params === "function" ? await params() : params;
    for (const [key, value] of Object.entries(extra || {})) url.searchParams.set(key, value);
    const value = typeof token === "function" ? await token() : token;
    if (value) url.searchParams.set(tokenParam, value);
    return url.href;
  }

  _receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    const { event, payload, id, room, offset, epoch } = frame;
    if (id !== undefined && id !== null && (event === "ack" || event === "error")) {
      const pending = this._pending.get(id);
      if (pending) {
        this._pending.delete(id);
        clearTimeout(pending.timer);
        if (event === "error") pending.reject(new VwsError(payload?.code, payload?.message));
        else {
          // now, before the frames after the ack move the position on
          if (pending.frame.event === "joinRoom") this._joined(pending.frame, payload || {});
          pending.resolve(payload);
        }
      }
      return;
    }
    if (typeof offset === "number" && room !== undefined) {
      const was = this._positions.get(room);
      this._positions.set(room, { offset, epoch });
      // a new epoch starts at 1: a higher first offset is a gap too
      if (was && offset > (epoch === was.epoch ? was.offset + 1 : 1)) {
        this._fire("resync", { room, offset, epoch, reason: "gap" });
      }
    }
    if (event === "connected") this._welcome(payload);
    else this._fire(event, payload);
  }

  /** A joinRoom's ack: the room's position, and whether a resume got all it missed. */
  _joined({ room, since }, { recovered, offset, epoch }) {
    if (offset !== undefined) this._positions.set(room, { offset, epoch });
    else if (recovered === false) this._positions.delete(room); // the broker could not say
    if (recovered) this._fire("recovered", { room, offset, epoch, count: offset - since.offset });
    else if (recovered === false) this._fire("resync", { room, offset, epoch, reason: "not_recovered" });
  }

  async _welcome(payload) {
    clearTimeout(this._timer);
    this.clientId = payload.client_id;
    const ws = this._ws;
    const rooms = [...this._rooms];
    const frames = rooms.map((room) => ({
      event: "joinRoom",
      payload: null,
      room,
      id: this._nextId++,
      since: this._positions.get(room),
    }));
    const answers = frames.map((frame) => this._answer(frame, this.options.timeout));
    for (const frame of frames) ws.send(JSON.stringify(frame));
    const results = await Promise.allSettled(answers);
    if (ws !== this._ws) return;
    results.forEach((result, i) => {
      if (result.status === "rejected") {
        this._rooms.delete(rooms[i]);
        this._positions.delete(rooms[i]);
        this._fire("error", { code: result.reason.code, message: result.reason.message, room: rooms[i] });
      }
    });
    const attempts = this.attempt;
    this.attempt = 0;
    this._setState("connected", { clientId: this.clientId, attempts });
    const buffered = this._buffer.splice(0);
    for (const frame of buffered) ws.send(JSON.stringify(frame));
  }

  _lost(code, reason) {
    clearTimeout(this._timer);
    this._ws = null;
    this.clientId = null;
    const terminal = TERMINAL_CLOSES[code];
    if (terminal || !this.options.reconnect) {
      this._stop(code, reason || terminal || "closed");
      return;
    }
    this._failPending("disconnected", `the connection closed (${code})`);
    const delay = backoff(this.attempt, this.options.base, this.options.cap, this.options.random);
    this._setState("disconnected", { code, reason, willRetry: true, delay });
    this.attempt += 1;
    this._timer = setTimeout(() => this._open(), delay);
  }

  _stop(code, reason) {
    if (this.state === "closed") return;
    clearTimeout(this._timer);
    const ws = this._ws;
    this._ws = null;
    this.clientId = null;
    this.state = "closed";
    if (ws && ws.readyState <= OPEN) ws.close(1000);
    this._failPending("closed", reason, true);
    this._buffer = [];
    this._fire("disconnected", { code, reason, willRetry: false });
  }

  /** Reject the requests waiting for an answer; `all` includes those still in the buffer. */
  _failPending(code, message, all = false) {
    const buffered = new Set(all ? [] : this._buffer.map((frame) => frame.id));
    for (const [id, { reject, timer }] of [...this._pending]) {
      if (buffered.has(id)) continue;
      this._pending.delete(id);
      clearTimeout(timer);
      reject(new VwsError(code, message));
    }
  }
}

// A stand-in for the browser's WebSocket (Node 20 has none), driven by the test as the server.

export class FakeWebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  /** Every socket made since the last reset, oldest first. */
  static made = [];

  static reset() {
    FakeWebSocket.made = [];
  }

  static get last() {
    return FakeWebSocket.made.at(-1);
  }

  constructor(url) {
    this.url = url;
    this.readyState = FakeWebSocket.CONNECTING;
    this.sent = [];
    this.closedWith = null;
    this.onmessage = null;
    this.onclose = null;
    FakeWebSocket.made.push(this);
  }

  send(text) {
    if (this.readyState !== FakeWebSocket.OPEN) throw new Error("send on a socket that is not open");
    this.sent.push(JSON.parse(text));
  }

  /** The client closes: like a browser, onclose follows later (1006 if never opened). */
  close(code = 1000) {
    if (this.readyState === FakeWebSocket.CLOSED) return;
    const opened = this.readyState === FakeWebSocket.OPEN;
    this.readyState = FakeWebSocket.CLOSED;
    this.closedWith = code;
    queueMicrotask(() => this.onclose?.({ code: opened ? code : 1006, reason: "" }));
  }

  // the server's side

  accept(clientId = "c1") {
    this.readyState = FakeWebSocket.OPEN;
    this.deliver({ event: "connected", payload: { client_id: clientId, session_id: clientId } });
  }

  deliver(frame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  /** Answer the last frame sent with an ack carrying `payload`. */
  ack(payload, frame = this.sent.at(-1)) {
    this.deliver({ event: "ack", id: frame.id, payload });
  }

  drop(code = 1006, reason = "") {
    this.readyState = FakeWebSocket.CLOSED;
    this.onclose?.({ code, reason });
  }
}

/** Let pending promise callbacks run (the client awaits its token before opening a socket). */
export function settle() {
  return new Promise((resolve) => setImmediate(resolve));
}

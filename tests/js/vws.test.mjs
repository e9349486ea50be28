// Tests of vws.js with Node's own runner: `node --test tests/js/`.
// The browser's WebSocket is replaced by FakeWebSocket; time by node:test's mock timers.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { afterEach, beforeEach, describe, mock, test } from "node:test";
import { gzipSync } from "node:zlib";

import { backoff, connect, TERMINAL_CLOSES, VwsError } from "../../vws/static/vws.js";
import { FakeWebSocket, settle } from "./fake_websocket.mjs";

const URL_ = "ws://127.0.0.1:9/ws";

// Every client a test makes is closed after it: one left trying to connect would go on with
// real timers once the mocked ones are reset, and keep the test run alive for ever.
const made = [];

function client(url, options) {
  const socket = connect(url, options);
  made.push(socket);
  return socket;
}

function open(options = {}) {
  return client(URL_, { WebSocket: FakeWebSocket, ...options });
}

/** A client that has had its `connected` frame. */
async function connected(options = {}, clientId = "c1") {
  const socket = open(options);
  await settle();
  FakeWebSocket.last.accept(clientId);
  await settle();
  assert.equal(socket.state, "connected");
  return socket;
}

function record(socket, ...events) {
  const seen = [];
  for (const event of events) socket.on(event, (detail) => seen.push([event, detail]));
  return seen;
}

beforeEach(() => {
  FakeWebSocket.reset();
  mock.timers.enable({ apis: ["setTimeout"] });
});
afterEach(() => {
  for (const socket of made.splice(0)) socket.close();
  mock.timers.reset();
});

test("vws.js stays under 4 KB gzipped", () => {
  const source = readFileSync(new URL("../../vws/static/vws.js", import.meta.url));
  const size = gzipSync(source, { level: 9 }).length;
  console.log(`vws.js: ${source.length} bytes, ${size} bytes gzipped`);
  assert.ok(size <= 4096, `${size} bytes gzipped`);
});

describe("connecting", () => {
  test("the connected frame gives the client id and the connected state", async () => {
    const socket = open();
    const seen = record(socket, "connecting", "connected");
    assert.equal(socket.state, "connecting");
    await settle();
    assert.equal(FakeWebSocket.last.url, URL_);
    FakeWebSocket.last.accept("abc");
    await settle();
    assert.equal(socket.clientId, "abc");
    assert.deepEqual(seen, [
      ["connecting", { attempt: 0 }],
      ["connected", { clientId: "abc", attempts: 0 }],
    ]);
  });

  test("close() before the first attempt opens nothing", async () => {
    const socket = open();
    socket.close();
    await settle();
    assert.equal(FakeWebSocket.made.length, 0);
    assert.equal(socket.state, "closed");
  });

  test("a token function is called on every (re)connect, with params in the query", async () => {
    let calls = 0;
    const socket = await connected({ token: async () => `t${++calls}`, params: { name: "Ann" } });
    assert.equal(FakeWebSocket.last.url, `${URL_}?name=Ann&token=t1`);
    FakeWebSocket.last.drop(1012);
    mock.timers.tick(500);
    await settle();
    assert.equal(FakeWebSocket.last.url, `${URL_}?name=Ann&token=t2`);
    socket.close();
  });

  test("a path is resolved against the page, wss for https", () => {
    globalThis.location = { href: "https://example.test/chat/", protocol: "https:" };
    try {
      const relative = client("ws", { WebSocket: FakeWebSocket });
      assert.equal(relative._base, "wss://example.test/chat/ws");
      relative.close();
      const absolute = client("/ws", { WebSocket: FakeWebSocket });
      assert.equal(absolute._base, "wss://example.test/ws");
      absolute.close();
      assert.throws(() => client("ws://[bad", { WebSocket: FakeWebSocket }), TypeError);
    } finally {
      delete globalThis.location;
    }
  });

  test("a WebSocket that cannot even be made stops the client and says why", async () => {
    class Refusing {
      constructor() {
        throw new Error("insecure");
      }
    }
    const socket = client(URL_, { WebSocket: Refusing });
    const seen = record(socket, "disconnected");
    await settle();
    assert.equal(socket.state, "closed");
    assert.deepEqual(seen, [
      ["disconnected", { code: 1006, reason: "cannot open a WebSocket: insecure", willRetry: false }],
    ]);
  });

  test("a handshake that never completes is abandoned and retried", async () => {
    const socket = open({ connectTimeout: 1000 });
    const seen = record(socket, "disconnected", "reconnecting");
    await settle();
    const first = FakeWebSocket.last;
    mock.timers.tick(1000);
    await settle();
    assert.equal(first.closedWith, 1000);
    assert.equal(seen[0][0], "disconnected");
    assert.equal(seen[0][1].code, 1006);
    assert.equal(seen[0][1].willRetry, true);
    socket.close();
  });
});

describe("events", () => {
  test("on, off, and server frames reach their listeners", async () => {
    const socket = await connected();
    const got = [];
    const listener = (payload) => got.push(payload);
    socket.on("chat", listener);
    FakeWebSocket.last.deliver({ event: "chat", payload: { text: "hi" } });
    socket.off("chat", listener);
    FakeWebSocket.last.deliver({ event: "chat", payload: { text: "unheard" } });
    assert.deepEqual(got, [{ text: "hi" }]);
  });

  test("an error frame without id goes to the error listeners", async () => {
    const socket = await connected();
    const seen = record(socket, "error");
    FakeWebSocket.last.deliver({ event: "error", payload: { code: "bad_frame", message: "x" } });
    assert.deepEqual(seen, [["error", { code: "bad_frame", message: "x" }]]);
  });

  test("a listener that throws does not stop the others", async () => {
    const socket = await connected();
    const reported = mock.method(console, "error", () => {});
    const got = [];
    socket.on("chat", () => {
      throw new Error("boom");
    });
    socket.on("chat", (payload) => got.push(payload));
    FakeWebSocket.last.deliver({ event: "chat", payload: 1 });
    assert.deepEqual(got, [1]);
    assert.equal(reported.mock.callCount(), 1);
    reported.mock.restore();
  });

  test("emit sends one frame", async () => {
    const socket = await connected();
    socket.emit("user-typing", true);
    assert.deepEqual(FakeWebSocket.last.sent, [{ event: "user-typing", payload: true }]);
  });
});

describe("requests", () => {
  test("resolve with the ack's payload", async () => {
    const socket = await connected();
    const reply = socket.request("chat", { text: "hi" });
    const frame = FakeWebSocket.last.sent[0];
    assert.deepEqual(frame, { event: "chat", payload: { text: "hi" }, id: frame.id });
    FakeWebSocket.last.ack({ delivered: true });
    assert.deepEqual(await reply, { delivered: true });
  });

  test("reject on an error frame with the server's code", async () => {
    const socket = await connected();
    const reply = socket.request("chat", {});
    const { id } = FakeWebSocket.last.sent[0];
    FakeWebSocket.last.deliver({
      event: "error",
      id,
      payload: { code: "invalid_payload", message: "Object missing required field `text`" },
    });
    await assert.rejects(reply, { name: "VwsError", code: "invalid_payload" });
  });

  test("reject on a timeout", async () => {
    const socket = await connected();
    const reply = socket.request("slow", null, { timeout: 2000 });
    mock.timers.tick(1999);
    FakeWebSocket.last.deliver({ event: "other", payload: null });
    mock.timers.tick(1);
    await assert.rejects(reply, { code: "timeout" });
  });

  test("reject on a disconnect, and a late ack changes nothing", async () => {
    const socket = await connected();
    const reply = socket.request("chat", {});
    const frame = FakeWebSocket.last.sent[0];
    FakeWebSocket.last.drop(1006);
    await assert.rejects(reply, { code: "disconnected" });
    assert.equal(socket.state, "disconnected");
    socket.close();
  });

  test("reject on close()", async () => {
    const socket = await connected();
    const reply = socket.request("chat", {});
    socket.close();
    await assert.rejects(reply, { code: "closed" });
    assert.equal(FakeWebSocket.last.closedWith, 1000);
  });

  test("ids are fresh for every request", async () => {
    const socket = await connected();
    socket.request("a").catch(() => {});
    socket.request("b").catch(() => {});
    const [a, b] = FakeWebSocket.last.sent;
    assert.notEqual(a.id, b.id);
    socket.close();
  });
});

describe("rooms", () => {
  test("join and leave resolve with the ack and keep the room set", async () => {
    const socket = await connected();
    const joined = socket.join("lobby");
    assert.deepEqual(FakeWebSocket.last.sent[0], {
      event: "joinRoom",
      payload: null,
      id: FakeWebSocket.last.sent[0].id,
      room: "lobby",
    });
    FakeWebSocket.last.ack({ room: "lobby" });
    assert.deepEqual(await joined, { room: "lobby" });
    assert.deepEqual(socket.rooms, new Set(["lobby"]));
    const left = socket.leave("lobby");
    assert.equal(FakeWebSocket.last.sent[1].event, "leftRoom");
    FakeWebSocket.last.ack({ room: "lobby" });
    await left;
    assert.deepEqual(socket.rooms, new Set());
  });

  test("a refused join rejects and is not remembered", async () => {
    const socket = await connected();
    const joined = socket.join("vip");
    const { id } = FakeWebSocket.last.sent[0];
    FakeWebSocket.last.deliver({ event: "error", id, payload: { code: "join_denied", message: "no" } });
    await assert.rejects(joined, { code: "join_denied" });
    assert.deepEqual(socket.rooms, new Set());
  });

  test("rooms are rejoined after a reconnect, before buffered frames, then connected", async () => {
    const socket = await connected({ buffer: 10 });
    for (const room of ["a", "b"]) {
      const joined = socket.join(room);
      FakeWebSocket.last.ack({ room });
      await joined;
    }
    const seen = record(socket, "disconnected", "reconnecting", "connected", "error");
    FakeWebSocket.last.drop(1012, "restart");
    socket.emit("chat", "while away");
    mock.timers.tick(500);
    await settle();
    const second = FakeWebSocket.last;
    second.accept("c2");
    await settle();
    assert.equal(socket.state, "reconnecting");
    assert.deepEqual(
      second.sent.map((f) => [f.event, f.room]),
      [
        ["joinRoom", "a"],
        ["joinRoom", "b"],
      ],
    );
    second.ack({ room: "a" }, second.sent[0]);
    second.deliver({
      event: "error",
      id: second.sent[1].id,
      payload: { code: "join_denied", message: "closed room" },
    });
    await settle();
    assert.equal(socket.state, "connected");
    assert.equal(socket.clientId, "c2");
    assert.deepEqual(socket.rooms, new Set(["a"]));
    assert.deepEqual(second.sent.at(-1), { event: "chat", payload: "while away" });
    assert.deepEqual(
      seen.map(([event]) => event),
      ["disconnected", "reconnecting", "error", "connected"],
    );
    assert.equal(seen[0][1].reason, "restart");
    assert.deepEqual(seen[2][1], { code: "join_denied", message: "closed room", room: "b" });
    assert.deepEqual(seen[3][1], { clientId: "c2", attempts: 1 });
  });
});

describe("sending while disconnected", () => {
  test("fails fast by default", async () => {
    const socket = open();
    assert.throws(() => socket.emit("chat", 1), VwsError);
    await assert.rejects(socket.request("chat", 1), { code: "disconnected" });
    await assert.rejects(socket.join("lobby"), { code: "disconnected" });
    socket.close();
  });

  test("is buffered up to the bound when buffering is on, in order", async () => {
    const socket = open({ buffer: 2 });
    socket.emit("one");
    socket.emit("two");
    assert.throws(() => socket.emit("three"), { code: "disconnected" });
    await settle();
    FakeWebSocket.last.accept();
    await settle();
    assert.deepEqual(
      FakeWebSocket.last.sent.map((f) => f.event),
      ["one", "two"],
    );
  });

  test("a buffered request waits through failed attempts and is answered once connected", async () => {
    const socket = open({ buffer: 5 });
    const reply = socket.request("chat", "hi", { timeout: 60_000 });
    await settle();
    FakeWebSocket.last.drop(1006); // the first attempt fails: the request is still buffered
    mock.timers.tick(500);
    await settle();
    FakeWebSocket.last.accept();
    await settle();
    const frame = FakeWebSocket.last.sent[0];
    assert.equal(frame.event, "chat");
    FakeWebSocket.last.ack("got it", frame);
    assert.equal(await reply, "got it");
  });

  test("a buffered request that times out is never sent", async () => {
    const socket = open({ buffer: 5 });
    const reply = socket.request("chat", "late", { timeout: 1000 });
    await settle();
    mock.timers.tick(1000);
    await assert.rejects(reply, { code: "timeout" });
    FakeWebSocket.last.accept();
    await settle();
    assert.deepEqual(FakeWebSocket.last.sent, []);
    socket.close();
  });

  test("fails after close(), buffer or not", async () => {
    const socket = await connected({ buffer: 5 });
    socket.close();
    assert.throws(() => socket.emit("x"), { code: "disconnected" });
  });
});

describe("rejoining", () => {
  test("a rejoin that gets no answer gives up on the room, so connecting never hangs", async () => {
    const socket = await connected({ timeout: 3000 });
    const joined = socket.join("quiet");
    FakeWebSocket.last.ack({ room: "quiet" });
    await joined;
    const seen = record(socket, "error", "connected");
    FakeWebSocket.last.drop(1012);
    mock.timers.tick(500);
    await settle();
    FakeWebSocket.last.accept("c2");
    await settle();
    assert.equal(socket.state, "reconnecting");
    mock.timers.tick(3000);
    await settle();
    assert.equal(socket.state, "connected");
    assert.deepEqual(socket.rooms, new Set());
    assert.equal(seen[0][0], "error");
    assert.equal(seen[0][1].code, "timeout");
  });
});

describe("close codes", () => {
  for (const code of [1001, 1006, 1008, 1012, 1013]) {
    test(`${code} is retried`, async () => {
      const socket = await connected();
      const seen = record(socket, "disconnected", "reconnecting");
      FakeWebSocket.last.drop(code);
      assert.equal(seen[0][1].willRetry, true);
      assert.ok(seen[0][1].delay >= 0 && seen[0][1].delay <= 500);
      mock.timers.tick(500);
      await settle();
      assert.equal(FakeWebSocket.made.length, 2);
      assert.deepEqual(seen[1], ["reconnecting", { attempt: 1 }]);
      socket.close();
    });
  }

  for (const code of [4401, 4403, 4404, 1000]) {
    test(`${code} stops reconnecting and says why`, async () => {
      const socket = await connected();
      const seen = record(socket, "disconnected");
      FakeWebSocket.last.drop(code);
      assert.equal(socket.state, "closed");
      assert.deepEqual(seen, [
        ["disconnected", { code, reason: TERMINAL_CLOSES[code], willRetry: false }],
      ]);
      mock.timers.tick(60_000);
      await settle();
      assert.equal(FakeWebSocket.made.length, 1);
    });
  }

  test("the server's reason wins over the generic one", async () => {
    const socket = await connected();
    const seen = record(socket, "disconnected");
    FakeWebSocket.last.drop(4401, "token expired");
    assert.equal(seen[0][1].reason, "token expired");
  });

  test("reconnect: false stops at the first close", async () => {
    const socket = await connected({ reconnect: false });
    FakeWebSocket.last.drop(1006);
    assert.equal(socket.state, "closed");
  });

  test("close() while waiting to reconnect cancels the reconnect", async () => {
    const socket = await connected();
    FakeWebSocket.last.drop(1006);
    socket.close();
    mock.timers.tick(60_000);
    await settle();
    assert.equal(FakeWebSocket.made.length, 1);
  });
});

describe("backoff", () => {
  test("grows from base to the cap, jitter applied after the cap", () => {
    assert.equal(backoff(0, 500, 20000, () => 1), 500);
    assert.equal(backoff(3, 500, 20000, () => 1), 4000);
    assert.equal(backoff(6, 500, 20000, () => 1), 20000);
    assert.equal(backoff(30, 500, 20000, () => 1), 20000);
    assert.equal(backoff(30, 500, 20000, () => 0.25), 5000);
    assert.equal(backoff(0, 500, 20000, () => 0), 0);
  });

  test("the attempt counter resets once connected", async () => {
    const socket = await connected({ random: () => 1 });
    const delays = [];
    socket.on("disconnected", ({ delay }) => delays.push(delay));
    for (const _ of [1, 2, 3]) {
      FakeWebSocket.last.drop(1006);
      mock.timers.tick(20_000);
      await settle();
    }
    FakeWebSocket.last.accept();
    await settle();
    FakeWebSocket.last.drop(1006);
    assert.deepEqual(delays, [500, 1000, 2000, 500]);
    socket.close();
  });

  // The herd: 10,000 real clients lose the server together and keep failing to reach it.
  // At every attempt, no delay (in whole ms, the timer's resolution) may be shared by more
  // than 1 % of them.
  test("10,000 clients never reconnect in step", async () => {
    const CLIENTS = 10_000;
    const ATTEMPTS = 10; // past the cap from attempt 6 (500 ms * 2^6 > 20 s)
    const sockets = [];
    for (let i = 0; i < CLIENTS; i++) sockets.push(open());
    await settle();
    const delays = Array.from({ length: ATTEMPTS }, () => new Map());
    sockets.forEach((socket) =>
      socket.on("disconnected", ({ delay, willRetry }) => {
        if (!willRetry) return; // the close() at the end
        const counts = delays[socket.attempt];
        const ms = Math.floor(delay);
        counts.set(ms, (counts.get(ms) || 0) + 1);
      }),
    );
    const worst = [];
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const live = FakeWebSocket.made.slice(-CLIENTS);
      for (const ws of live) ws.drop(1006);
      const counts = delays[attempt];
      const total = [...counts.values()].reduce((a, b) => a + b, 0);
      assert.equal(total, CLIENTS);
      worst.push(Math.max(...counts.values()));
      mock.timers.tick(20_000);
      await settle();
      assert.equal(FakeWebSocket.made.length, CLIENTS * (attempt + 2));
    }
    for (const socket of sockets) socket.close();
    console.log(`vws.js: most clients sharing one delay, per attempt: ${worst.join(", ")} of ${CLIENTS}`);
    for (const most of worst) assert.ok(most <= CLIENTS / 100, `${most} clients share a delay`);
  });

  // socket.io-client 4.x (its backo2: reconnectionDelay 1000, reconnectionDelayMax 5000,
  // randomizationFactor 0.5) jitters before it caps: delay = min(max, 1000 * 2^n ± 50 %).
  // Measured the same way, most of its clients land on exactly 5000 ms from the third attempt.
  test("measure: socket.io-client's jitter-before-cap clusters at the cap", () => {
    function socketIoDelay(attempt, random = Math.random) {
      const ms = 1000 * 2 ** attempt;
      const rand = random();
      const deviation = Math.floor(rand * 0.5 * ms);
      const jittered = (Math.floor(rand * 10) & 1) === 0 ? ms - deviation : ms + deviation;
      return Math.min(jittered, 5000) | 0;
    }
    const CLIENTS = 10_000;
    const shares = [];
    for (let attempt = 0; attempt < 6; attempt++) {
      const counts = new Map();
      for (let i = 0; i < CLIENTS; i++) {
        const ms = socketIoDelay(attempt);
        counts.set(ms, (counts.get(ms) || 0) + 1);
      }
      shares.push(Math.max(...counts.values()));
    }
    console.log(`socket.io-client: most clients sharing one delay, per attempt: ${shares.join(", ")} of ${CLIENTS}`);
    assert.ok(shares.slice(0, 2).every((most) => most <= CLIENTS / 100));
    assert.ok(shares[2] > CLIENTS / 5, "attempt 3: over a fifth wait exactly 5000 ms");
    assert.ok(shares[3] > CLIENTS * 0.8, "attempt 4: over four fifths do");
    assert.ok(shares.slice(4).every((most) => most === CLIENTS), "then all of them do");
  });
});

describe("recovery", () => {
  /** A client in `rooms`, each joined with the ack payload given for it. */
  async function inRooms(acks, options = {}) {
    const socket = await connected(options);
    for (const ack of acks) {
      const joined = socket.join(ack.room);
      FakeWebSocket.last.ack(ack);
      await joined;
    }
    return socket;
  }

  /** Drop the connection and accept the next one: the rejoin frames are then in `sent`. */
  async function reconnect() {
    FakeWebSocket.last.drop(1012);
    mock.timers.tick(500);
    await settle();
    FakeWebSocket.last.accept("c2");
    await settle();
    return FakeWebSocket.last;
  }

  const chat = (room, offset, epoch = "E1") => ({ event: "chat", payload: offset, room, offset, epoch });

  test("a reconnect resumes each room from its last position, a room without history not", async () => {
    const socket = await inRooms([
      { room: "a", offset: 4, epoch: "E1" },
      { room: "plain" }, // keeps no history
      { room: "new", offset: 0, epoch: "" }, // keeps one, still empty
    ]);
    FakeWebSocket.last.deliver(chat("a", 5));
    FakeWebSocket.last.deliver({ event: "chat", payload: "no position" });
    const second = await reconnect();
    assert.deepEqual(
      second.sent.map(({ room, since }) => [room, since]),
      [
        ["a", { offset: 5, epoch: "E1" }],
        ["plain", undefined],
        ["new", { offset: 0, epoch: "" }],
      ],
    );
    assert.ok(!("since" in second.sent[1]));
    socket.close();
  });

  test("replayed frames reach the handlers in order, then recovered, then connected", async () => {
    const socket = await inRooms([{ room: "a", offset: 4, epoch: "E1" }]);
    const seen = record(socket, "chat", "recovered", "resync", "connected");
    const second = await reconnect();
    for (const offset of [5, 6, 7]) second.deliver(chat("a", offset));
    assert.equal(socket.state, "reconnecting");
    second.ack({ room: "a", recovered: true, offset: 7, epoch: "E1" }, second.sent[0]);
    second.deliver(chat("a", 8)); // the first live frame, straight after the ack
    await settle();
    assert.deepEqual(
      seen.map(([event, detail]) => [event, event === "chat" ? detail : null]),
      [
        ["chat", 5],
        ["chat", 6],
        ["chat", 7],
        ["recovered", null],
        ["chat", 8],
        ["connected", null],
      ],
    );
    assert.deepEqual(seen[3][1], { room: "a", offset: 7, epoch: "E1", count: 3 });
    assert.deepEqual(socket.position("a"), { offset: 8, epoch: "E1" });
  });

  test("a resume from an empty room's start counts every frame replayed", async () => {
    const socket = await inRooms([{ room: "new", offset: 0, epoch: "" }]);
    const seen = record(socket, "recovered", "resync");
    const second = await reconnect();
    second.deliver(chat("new", 1, "E9"));
    second.deliver(chat("new", 2, "E9"));
    second.ack({ room: "new", recovered: true, offset: 2, epoch: "E9" }, second.sent[0]);
    assert.deepEqual(seen, [["recovered", { room: "new", offset: 2, epoch: "E9", count: 2 }]]);
  });

  test("recovered: false fires resync with the room's position, resumed from next time", async () => {
    const socket = await inRooms([{ room: "a", offset: 4, epoch: "E1" }]);
    const seen = record(socket, "recovered", "resync");
    let ws = await reconnect();
    ws.ack({ room: "a", recovered: false, offset: 20, epoch: "E2" }, ws.sent[0]); // a new epoch
    await settle();
    const resync = { room: "a", offset: 20, epoch: "E2", reason: "not_recovered" };
    assert.deepEqual(seen, [["resync", resync]]);
    assert.deepEqual(socket.position("a"), { offset: 20, epoch: "E2" });
    ws = await reconnect();
    assert.deepEqual(ws.sent[0].since, { offset: 20, epoch: "E2" });
    socket.close();
  });

  test("a resync without a position (broker out of reach) forgets it: no since next time", async () => {
    const socket = await inRooms([{ room: "a", offset: 4, epoch: "E1" }]);
    const seen = record(socket, "resync");
    let ws = await reconnect();
    ws.ack({ room: "a", recovered: false }, ws.sent[0]);
    await settle();
    const resync = { room: "a", offset: undefined, epoch: undefined, reason: "not_recovered" };
    assert.deepEqual(seen, [["resync", resync]]);
    assert.equal(socket.position("a"), null);
    ws = await reconnect();
    assert.ok(!("since" in ws.sent[0]));
    socket.close();
  });

  test("positions follow the join's ack and the live frames, and are forgotten on leave", async () => {
    const socket = await connected();
    assert.equal(socket.position("a"), null);
    const joined = socket.join("a");
    FakeWebSocket.last.ack({ room: "a", offset: 10, epoch: "E1" });
    assert.deepEqual(socket.position("a"), { offset: 10, epoch: "E1" }); // at once, not after an await
    await joined;
    const seen = record(socket, "resync");
    const got = [];
    socket.on("chat", (payload) => got.push([payload, socket.position("a").offset]));
    FakeWebSocket.last.deliver(chat("a", 11));
    FakeWebSocket.last.deliver(chat("a", 12));
    assert.deepEqual(got, [
      [11, 11],
      [12, 12],
    ]);
    const copy = socket.position("a");
    copy.offset = 99;
    assert.deepEqual(socket.position("a"), { offset: 12, epoch: "E1" });
    const again = socket.join("a"); // a member's second join: an ack without a position
    FakeWebSocket.last.ack({ room: "a" });
    await again;
    assert.deepEqual(socket.position("a"), { offset: 12, epoch: "E1" });
    const left = socket.leave("a");
    FakeWebSocket.last.ack({ room: "a" });
    await left;
    assert.equal(socket.position("a"), null);
    assert.deepEqual(seen, []);
  });

  test("an epoch change: a new history from offset 1 is followed; a skip reports a gap", async () => {
    const socket = await inRooms([{ room: "a", offset: 4, epoch: "E1" }]);
    const seen = record(socket, "resync", "chat");
    const ws = FakeWebSocket.last;
    ws.deliver(chat("a", 1, "E2")); // the room was idle past its ttl: nothing missed
    ws.deliver(chat("a", 2, "E2"));
    ws.deliver(chat("a", 4, "E2")); // 3 never came
    ws.deliver(chat("a", 3, "E3")); // nor 1 and 2 of this history
    assert.deepEqual(seen, [
      ["chat", 1],
      ["chat", 2],
      ["resync", { room: "a", offset: 4, epoch: "E2", reason: "gap" }],
      ["chat", 4],
      ["resync", { room: "a", offset: 3, epoch: "E3", reason: "gap" }],
      ["chat", 3],
    ]);
    assert.deepEqual(socket.position("a"), { offset: 3, epoch: "E3" });
    const second = await reconnect(); // a gap is reported, not filled: no leave, no rejoin
    assert.deepEqual(
      second.sent.map(({ event, since }) => [event, since]),
      [["joinRoom", { offset: 3, epoch: "E3" }]],
    );
    socket.close();
  });

  test("join with since resumes a room the page kept the position of", async () => {
    const socket = await connected();
    const seen = record(socket, "chat", "recovered");
    const joined = socket.join("a", { since: { offset: 7, epoch: "E1" } });
    const ws = FakeWebSocket.last;
    assert.deepEqual(ws.sent[0].since, { offset: 7, epoch: "E1" });
    ws.deliver(chat("a", 8));
    ws.ack({ room: "a", recovered: true, offset: 8, epoch: "E1" });
    assert.deepEqual(await joined, { room: "a", recovered: true, offset: 8, epoch: "E1" });
    assert.deepEqual(seen, [
      ["chat", 8],
      ["recovered", { room: "a", offset: 8, epoch: "E1", count: 1 }],
    ]);
  });

  test("a room refused on rejoin forgets its position", async () => {
    const socket = await inRooms([{ room: "a", offset: 4, epoch: "E1" }]);
    const ws = await reconnect();
    ws.deliver({ event: "error", id: ws.sent[0].id, payload: { code: "join_denied", message: "no" } });
    await settle();
    assert.equal(socket.position("a"), null);
    assert.deepEqual(socket.rooms, new Set());
  });
});

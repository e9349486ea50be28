// The demo chat: everything vws.js offers, on one page. Elements carry data-state attributes
// (body, #state, #typing) that the browser tests wait on.
//
// After a reconnect, the messages a room missed are replayed by the server (routes.toml keeps a
// history) and reach the same handlers as live ones; a room that could not be caught up gets a
// "some messages may be missing" line (li.missing) where the hole is.

import { connect } from "/_vws/vws.js";

const $ = (selector) => document.querySelector(selector);
const TYPING_SENT_EVERY = 2000; // ms between "still typing" frames
const TYPING_IDLE = 3000; // ms without a key press before "stopped typing"
const TYPING_SHOWN = 6000; // ms a typing indicator stays without news

let socket = null;
let active = null; // the room on screen
const rooms = new Map(); // room → { messages: [], members: Map(client id → member) }
const typists = new Map(); // client id → { name, room, timer }
const myIds = new Set(); // every client id this page has had

function el(tag, { dataset = {}, ...props } = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  Object.assign(node.dataset, dataset);
  node.append(...children);
  return node;
}

function notice(text) {
  $("#notice").textContent = text;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => ($("#notice").textContent = ""), 4000);
}

function showState(state, detail = {}) {
  const label = {
    connecting: "connecting…",
    connected: "connected",
    disconnected: detail.willRetry ? "disconnected, retrying" : `closed: ${detail.reason}`,
    reconnecting: `reconnecting (attempt ${detail.attempt})…`,
  }[state];
  document.body.dataset.state = socket.state;
  $("#state").dataset.state = socket.state;
  $("#state").textContent = label;
  $("#client-id").textContent = socket.clientId || "";
  const ready = socket.state === "connected" && active !== null;
  for (const input of $("#say").elements) input.disabled = !ready;
}

// rooms and members

function room(name) {
  if (!rooms.has(name)) rooms.set(name, { messages: [], members: new Map() });
  return rooms.get(name);
}

function renderRooms() {
  $("#rooms").replaceChildren(
    ...[...rooms.keys()].map((name) => {
      const item = el("li", { dataset: { room: name } },
        el("button", { className: "open", type: "button", textContent: `# ${name}`, onclick: () => open(name) }),
        el("button", { className: "leave", type: "button", title: `leave ${name}`, textContent: "×", onclick: () => leave(name) }),
      );
      item.setAttribute("aria-current", String(name === active));
      return item;
    }),
  );
}

function renderMembers() {
  const members = active ? [...room(active).members.values()] : [];
  $("#members-room").textContent = active ? `# ${active}` : "no room";
  $("#member-count").textContent = members.length;
  $("#members").replaceChildren(
    ...members.map((member) =>
      el("li", {
        className: member.client_id === socket.clientId ? "me" : "",
        dataset: { clientId: member.client_id },
        title: "send a direct message",
        onclick: () => {
          $("#direct-to").value = member.client_id;
          $("#direct-text").focus();
        },
      }, member.name || "anonymous", el("code", { textContent: member.client_id.slice(0, 6) })),
    ),
  );
}

function renderMessages() {
  $("#room-title").textContent = active ? `# ${active}` : "Join a room to start";
  $("#messages").replaceChildren(...(active ? room(active).messages : []));
  $("#messages").scrollTop = $("#messages").scrollHeight;
  renderTyping();
}

function open(name) {
  active = name;
  renderRooms();
  renderMembers();
  renderMessages();
  showState(socket.state);
  $("#text").focus();
}

// A snapshot of the members may be older than a presence:join/leave heard while waiting for it,
// so the changes heard meanwhile are applied again on top of it.
async function refreshMembers(name) {
  const heard = [];
  room(name).heard = heard;
  try {
    const answer = await socket.request("presence", name);
    const members = room(name).members;
    members.clear();
    for (const member of answer.members) members.set(member.client_id, member);
    for (const change of heard) change(members);
    if (name === active) renderMembers();
  } catch (error) {
    notice(`members of ${name}: ${error.message}`);
  } finally {
    if (room(name).heard === heard) room(name).heard = null;
  }
}

function memberChange(where, change) {
  const known = room(where);
  change(known.members);
  known.heard?.push(change);
  if (where === active) renderMembers();
}

async function join(name) {
  try {
    await socket.join(name);
  } catch (error) {
    notice(`cannot join ${name}: ${error.message}`);
    return;
  }
  room(name);
  open(name);
  await refreshMembers(name);
}

async function leave(name) {
  try {
    await socket.leave(name);
  } catch (error) {
    notice(`cannot leave ${name}: ${error.message}`);
    return;
  }
  rooms.delete(name);
  if (active === name) active = rooms.keys().next().value ?? null;
  renderRooms();
  renderMembers();
  renderMessages();
  showState(socket.state);
}

function addMessage(name, node) {
  if (!rooms.has(name)) return;
  room(name).messages.push(node);
  if (name === active) {
    $("#messages").append(node);
    $("#messages").scrollTop = $("#messages").scrollHeight;
  }
}

function system(name, text) {
  addMessage(name, el("li", { className: "system", textContent: text }));
}

// Whether a frame's sender is this page: replayed frames may carry an id it had before.
function mine(id) {
  if (socket.clientId) myIds.add(socket.clientId);
  return myIds.has(id);
}

// typing

function renderTyping() {
  const names = [...typists.values()].filter((t) => t.room === active).map((t) => t.name);
  $("#typing").dataset.state = names.length ? "typing" : "idle";
  $("#typing").textContent = names.length
    ? `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing…`
    : "";
}

function heardTyping({ from, name, room: where, typing }) {
  clearTimeout(typists.get(from)?.timer);
  typists.delete(from);
  if (typing && from !== socket.clientId) {
    const timer = setTimeout(() => {
      typists.delete(from);
      renderTyping();
    }, TYPING_SHOWN);
    typists.set(from, { name, room: where, timer });
  }
  renderTyping();
}

const typing = { room: null, sentAt: 0, timer: null };

function tellTyping(on) {
  if (!typing.room || socket.state !== "connected") return;
  try {
    socket.emit("user-typing", { room: typing.room, typing: on });
  } catch {
    // a lost connection: the others' indicators clear on their own
  }
}

function keyPressed() {
  const now = Date.now();
  if (typing.room !== active || now - typing.sentAt > TYPING_SENT_EVERY) {
    if (typing.room !== active) tellTyping(false);
    typing.room = active;
    typing.sentAt = now;
    tellTyping(true);
  }
  clearTimeout(typing.timer);
  typing.timer = setTimeout(stopTyping, TYPING_IDLE);
}

function stopTyping() {
  clearTimeout(typing.timer);
  tellTyping(false);
  typing.room = null;
  typing.sentAt = 0;
}

// connecting

function start(name) {
  $("#my-name").textContent = name;
  $("#me").hidden = false;
  $("#login").hidden = true;
  $("#chat").hidden = false;
  socket = connect("/ws", { params: { name } });
  window.vwsSocket = socket; // for the console, and for tests
  for (const state of ["connecting", "connected", "disconnected", "reconnecting"]) {
    socket.on(state, (detail) => showState(state, detail));
  }
  socket.on("connected", () => {
    myIds.add(socket.clientId);
    for (const name of [...rooms.keys()]) {
      if (socket.rooms.has(name)) refreshMembers(name);
      else rooms.delete(name); // refused on rejoin
    }
    renderRooms();
    renderMembers();
  });
  socket.on("disconnected", () => {
    for (const { timer } of typists.values()) clearTimeout(timer);
    typists.clear();
    renderTyping();
  });
  socket.on("error", (error) => notice(`${error.code}: ${error.message}`));
  socket.on("chat", ({ from, name: who, room: where, text }) => {
    if (typists.get(from)?.room === where) heardTyping({ from, typing: false });
    const item = el("li", { className: mine(from) ? "mine" : "" }, el("b", { textContent: who }), text);
    addMessage(where, item);
  });
  socket.on("user-typing", heardTyping);
  socket.on("presence:join", ({ room: where, member }) => {
    memberChange(where, (members) => members.set(member.client_id, member));
    if (!mine(member.client_id)) system(where, `${member.name} joined`);
  });
  socket.on("presence:leave", ({ room: where, member }) => {
    if (!rooms.has(where)) return;
    memberChange(where, (members) => members.delete(member.client_id));
    if (!mine(member.client_id)) system(where, `${member.name} left`); // not an earlier me, replayed
  });
  // The history did not reach back far enough (or was lost, or a frame was skipped): say so.
  socket.on("resync", ({ room: where, reason }) => {
    const text = "some messages may be missing";
    addMessage(where, el("li", { className: "system missing", dataset: { reason }, textContent: text }));
  });
  socket.on("direct", ({ from, name: who, text }) => {
    $("#directs").append(el("li", {}, el("b", { textContent: `${who} (${from.slice(0, 6)})` }), text));
  });
}

$("#login").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("#name").value.trim();
  if (name) start(name);
});

$("#join").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("#room-name").value.trim();
  $("#room-name").value = "";
  if (name) join(name);
});

$("#text").addEventListener("input", () => ($("#text").value ? keyPressed() : stopTyping()));

$("#say").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("#text").value.trim();
  if (!text || !active) return;
  stopTyping();
  $("#text").value = "";
  try {
    await socket.request("chat", { room: active, text, name: $("#my-name").textContent });
  } catch (error) {
    notice(`not sent: ${error.message}`);
    $("#text").value = text;
  }
});

$("#direct").addEventListener("submit", async (event) => {
  event.preventDefault();
  const to = $("#direct-to").value.trim();
  const text = $("#direct-text").value.trim();
  try {
    const { sent } = await socket.request("direct", { to, text });
    if (!sent) {
      notice(`nobody has the id ${to}`);
      return;
    }
    $("#direct-text").value = "";
    $("#directs").append(el("li", { className: "mine" }, el("b", { textContent: `to ${to.slice(0, 6)}` }), text));
  } catch (error) {
    notice(`not sent: ${error.message}`);
  }
});

// The renderer: a browser instance of the person (chum-web, in a SharedWorker that every tab
// of the app shares), synced with the main process by CHUM over ws://HOST/chum. Messages are
// append-only entries of a Conversation; main answers those that ask for AI with an entry
// linking back (`originalId`, status "enhanced" or "failed"). Contacts are field-merge;
// the theme is an instance-local setting of this browser.

import { Instance } from "/pkg/worker.js";

const $ = (selector) => document.querySelector(selector);
const STORE = "renderer";
const CHUM_URL = `ws://${location.host}/chum`;
/** After this long without a connection the link shows "offline" (before: "reconnecting"). */
const OFFLINE_AFTER_MS = 1500;
/** Entries of a conversation shown at first (and added by each "show earlier"). */
const PAGE = 400;

const app = {
  inst: null,
  link: null,
  conversation: localStorage.getItem("chum.conversation"), // ID hash
  shown: PAGE, // entries shown
  objects: new Map(), // CID → object (objects never change)
  lostAt: performance.now(),
  rendering: null,
};

function notice(text) {
  const element = $("#notice");
  element.textContent = text ?? "";
  element.hidden = !text;
}

async function api(path, body = {}) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(json.error ?? response.statusText), { status: response.status });
  return json;
}

/** The stored renderer instance, or — on the first load — a new one paired with main. */
async function openInstance() {
  try {
    return await Instance.open({ name: STORE, shared: true, create: false });
  } catch (error) {
    if (error.name !== "NotFound") throw error;
  }
  const { invitation } = await api("/pair");
  return Instance.open({ name: STORE, shared: true, join: invitation });
}

async function object(cid) {
  let value = app.objects.get(cid);
  if (!value) {
    value = await app.inst.get(cid);
    if (value) app.objects.set(cid, value);
  }
  return value;
}

const link = (cid) => ({ "/": cid });
const linkOf = (value) => (value && typeof value === "object" ? value["/"] : undefined);

// ---- conversations and messages ----

async function conversations() {
  const ids = await app.inst.list("Conversation");
  const states = await Promise.all(ids.map(async (id) => [id, await app.inst.show(id)]));
  return states.filter(([, state]) => state).sort(([, a], [, b]) => (a.title ?? a.id).localeCompare(b.title ?? b.id));
}

async function ensureConversation() {
  const all = await conversations();
  if (all.length > 0) return all;
  await app.inst.put({ $type: "Conversation", id: "general", title: "General" });
  return conversations();
}

async function renderConversations() {
  const all = await ensureConversation();
  if (!app.conversation || !all.some(([id]) => id === app.conversation)) app.conversation = all[0][0];
  const list = $("#conversations");
  list.replaceChildren(...all.map(([id, state]) => {
    const item = document.createElement("li");
    item.dataset.testid = "conversation";
    item.dataset.id = id;
    item.textContent = state.title ?? state.id;
    if (id === app.conversation) item.classList.add("selected");
    item.onclick = () => {
      app.conversation = id;
      app.shown = PAGE;
      localStorage.setItem("chum.conversation", id);
      render();
    };
    return item;
  }));
  const current = all.find(([id]) => id === app.conversation);
  $("#conversation-name").textContent = current ? current[1].title ?? current[1].id : "";
}

async function renderMessages() {
  const all = await app.inst.entries(app.conversation);
  // The latest `shown` entries (answers included); "show earlier" raises it.
  const cids = all.slice(-app.shown);
  const values = await Promise.all(cids.map(async (cid) => [cid, await object(cid)]));
  const answers = new Map();
  for (const [, value] of values) {
    const original = linkOf(value?.originalId);
    if (original && !answers.has(original)) answers.set(original, value);
  }
  const list = $("#messages");
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
  list.replaceChildren(...values.filter(([, value]) => value && !value.originalId).map(([cid, value]) => {
    const item = document.createElement("li");
    const text = document.createElement("div");
    text.dataset.testid = "message";
    text.dataset.cid = cid;
    text.textContent = value.text;
    const answer = document.createElement("div");
    answer.className = "answer";
    answer.dataset.testid = "answer";
    const reply = answers.get(cid);
    if (value.needsAI) {
      text.dataset.state = reply ? (reply.status === "failed" ? "failed" : "enhanced") : "pending";
      if (reply) answer.textContent = reply.text;
      if (reply?.status === "failed") {
        // An answer is final: a retry sends the text again, as a new message.
        const retry = document.createElement("button");
        retry.type = "button";
        retry.className = "retry";
        retry.dataset.testid = "retry";
        retry.textContent = "send again";
        retry.onclick = () => sendText(value.text, true).catch((error) => notice(`not sent: ${error.name}: ${error.message}`));
        answer.append(retry);
      }
    } else {
      text.dataset.state = "sent";
    }
    item.append(text, answer);
    return item;
  }));
  if (all.length > cids.length) {
    const earlier = document.createElement("li");
    earlier.className = "earlier";
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.testid = "show-earlier";
    button.textContent = `show earlier (${all.length - cids.length} more entries)`;
    button.onclick = () => {
      app.shown += PAGE;
      render();
    };
    earlier.append(button);
    list.prepend(earlier);
  }
  $("#messages").dataset.entries = String(all.length);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

// ---- contacts ----

async function renderContacts() {
  const ids = await app.inst.list("Contact");
  const states = (await Promise.all(ids.map((id) => app.inst.show(id)))).filter(Boolean);
  states.sort((a, b) => a.email.localeCompare(b.email));
  $("#contact-list").replaceChildren(...states.map((contact) => {
    const item = document.createElement("li");
    item.dataset.testid = "contact";
    item.dataset.email = contact.email;
    item.textContent = [contact.name, `<${contact.email}>`, contact.phone].filter(Boolean).join(" ");
    item.onclick = () => {
      const form = $("#contact-form");
      form.email.value = contact.email;
      form.name.value = contact.name ?? "";
      form.phone.value = contact.phone ?? "";
    };
    return item;
  }));
}

// ---- settings ----

const THEME = { $type: "Settings", key: "theme" };

async function applyTheme() {
  const state = await app.inst.show(await app.inst.idOf(THEME));
  const theme = state?.value ?? "light";
  document.documentElement.dataset.theme = theme;
  $("#theme").value = theme;
}

async function renderAi(answer) {
  let settings = answer;
  if (!settings) {
    try {
      settings = await api("/api/settings");
    } catch (error) {
      $("#ai-status").textContent = `Main is not reachable (${error.message}): its settings can be read and changed once it runs.`;
      return;
    }
  }
  const form = $("#ai-form");
  form.endpoint.value = settings.endpoint;
  form.model.value = settings.model;
  form.key.value = "";
  form.key.placeholder = settings.keySet ? "API key (set; unchanged when empty)" : "API key";
  $("#ai-status").textContent = `Enhancing with ${settings.enhancer}.`;
}

// ---- rendering ----

async function renderNow() {
  await renderConversations();
  await renderMessages();
  if (!$("#contacts").hidden) await renderContacts();
}

/** Renders once whatever number of changes arrive meanwhile. */
function render() {
  if (app.rendering) {
    app.rendering.again = true;
    return;
  }
  app.rendering = { again: false };
  renderNow()
    .catch((error) => notice(`${error.name}: ${error.message}`))
    .finally(() => {
      const again = app.rendering.again;
      app.rendering = null;
      if (again) render();
    });
}

function showLink() {
  const state = app.link?.state ?? "closed";
  const now = performance.now();
  if (state === "connected") app.lostAt = null;
  else if (app.lostAt === null) app.lostAt = now;
  const shown = state === "connected" ? "connected" : now - app.lostAt < OFFLINE_AFTER_MS ? "reconnecting" : "offline";
  const element = $("#link-state");
  if (element.textContent !== shown) {
    element.textContent = shown;
    element.dataset.state = shown;
  }
  const atRisk = String(app.inst?.atRisk() ?? 0);
  if ($("#at-risk").textContent !== atRisk) $("#at-risk").textContent = atRisk;
}

async function sendText(text, ai) {
  const message = { $type: "Message", text, conversation: link(app.conversation) };
  if (ai) Object.assign(message, { needsAI: true, status: "pending" });
  return app.inst.create(message);
}

// ---- wiring ----

function wire() {
  for (const button of document.querySelectorAll("nav button")) {
    button.onclick = () => {
      for (const other of document.querySelectorAll("nav button")) other.classList.toggle("active", other === button);
      for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== button.dataset.view;
      if (button.dataset.view === "contacts") renderContacts().catch((error) => notice(error.message));
      if (button.dataset.view === "settings") renderAi().catch((error) => notice(`main's settings: ${error.message}`));
    };
  }
  $("#compose-form").onsubmit = async (event) => {
    event.preventDefault();
    const compose = $("#compose");
    const text = compose.value.trim();
    if (!text || !app.inst) return;
    // Cleared at once: what is typed while the message is stored belongs to the next one.
    compose.value = "";
    try {
      await sendText(text, $("#needs-ai").checked);
      notice(null);
    } catch (error) {
      if (!compose.value) compose.value = text;
      notice(`not sent: ${error.name}: ${error.message}`);
    }
  };
  $("#compose").onkeydown = (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("#compose-form").requestSubmit();
    }
  };
  $("#new-conversation-form").onsubmit = async (event) => {
    event.preventDefault();
    const title = $("#conversation-title").value.trim() || `Conversation ${new Date().toLocaleString()}`;
    const id = crypto.randomUUID();
    try {
      await app.inst.put({ $type: "Conversation", id, title });
      app.conversation = await app.inst.idOf({ $type: "Conversation", id });
      localStorage.setItem("chum.conversation", app.conversation);
      $("#conversation-title").value = "";
      render();
    } catch (error) {
      notice(`${error.name}: ${error.message}`);
    }
  };
  $("#contact-form").onsubmit = async (event) => {
    event.preventDefault();
    const form = event.target;
    const contact = { $type: "Contact", email: form.email.value.trim() };
    for (const field of ["name", "phone"]) if (form[field].value.trim()) contact[field] = form[field].value.trim();
    try {
      await app.inst.put(contact);
      form.reset();
      await renderContacts();
    } catch (error) {
      notice(`${error.name}: ${error.message}`);
    }
  };
  $("#theme").onchange = async (event) => {
    await app.inst.put({ ...THEME, value: event.target.value });
    await applyTheme();
  };
  $("#ai-form").onsubmit = async (event) => {
    event.preventDefault();
    const form = event.target;
    const change = { endpoint: form.endpoint.value, model: form.model.value };
    if (form.key.value) change.key = form.key.value;
    try {
      await renderAi(await api("/api/settings", change));
    } catch (error) {
      $("#ai-status").textContent = `Not saved: ${error.message}`;
    }
  };
}

/** Says why the link cannot come up when it is not just main being down (e.g. this browser's
 * instance was revoked with --unpair-renderer). */
async function watchLink(link) {
  for (;;) {
    try {
      await link.established();
      if ($("#notice").dataset.link) {
        delete $("#notice").dataset.link;
        notice(null);
      }
      await new Promise((r) => setTimeout(r, 1000));
    } catch (error) {
      if (error.name === "Closed") return;
      // Main being down is what the link indicator shows; a refusal of this browser is not.
      if (/revoked|denied|not admitted|IdentityError/i.test(`${error.name} ${error.message}`)) {
        notice(`main does not accept this browser: ${error.message}`);
        $("#notice").dataset.link = "refused";
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

async function start() {
  wire();
  // The app's files stay available while main is down (a reload then still opens this store).
  navigator.serviceWorker?.register("/sw.js").catch((error) => console.warn(`no offline reload: ${error.message}`));
  try {
    app.inst = await openInstance();
  } catch (error) {
    notice(error.status === 409
      ? `This page has no store of its own yet, and main will not pair a second one: ${error.message}`
      : `cannot open this browser's store: ${error.name}: ${error.message}`);
    for (const control of document.querySelectorAll("form button, form input, form textarea, select")) control.disabled = true;
    return;
  }
  app.inst.on("change", (change) => {
    if (change.type === "Settings" || change.type === "Version" || change.type === "Message" || change.type === "Conversation" || change.type === "Contact") render();
  });
  app.link = app.inst.connect(CHUM_URL);
  watchLink(app.link);
  const who = await app.inst.whoami();
  $("#who").textContent = `person ${who.person}, this browser's instance ${who.instance}`;
  await applyTheme();
  render();
  setInterval(showLink, 200);
  showLink();
  window.chumApp = app; // for scripts and tests
  document.body.dataset.ready = "true";
}

start();

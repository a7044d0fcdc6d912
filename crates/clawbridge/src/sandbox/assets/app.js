// clawbridge sandbox: chat panes, toggles, and a long poll of /sandbox/api/state.
// Every chat's HTML is rendered (and escaped) by the server; this script only places it.
"use strict";

const panes = document.getElementById("panes");
let version = null;

function paneKey(pane) {
  return pane.dataset.platform + ":" + pane.dataset.user;
}

function post(path, body) {
  return fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  }).then(async (response) => {
    if (!response.ok) {
      const answer = await response.json().catch(() => ({}));
      throw new Error(answer.error || response.statusText);
    }
    return response.json();
  });
}

function showError(pane, message) {
  const note = document.createElement("div");
  note.className = "notice error";
  note.textContent = message;
  pane.querySelector(".chat").appendChild(note);
}

function send(pane, fields) {
  const body = Object.assign({ platform: pane.dataset.platform, user: pane.dataset.user, text: "" }, fields);
  return post("/sandbox/api/send", body).catch((e) => showError(pane, e.message));
}

function readImage(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => {
      const data = String(reader.result).split(",")[1] || "";
      resolve({ name: file.name, mime: file.type || "image/png", data: data });
    };
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function wirePane(pane) {
  const form = pane.querySelector(".composer");
  const replying = pane.querySelector(".replying");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = form.querySelector(".text");
    const fileInput = form.querySelector(".image");
    const fields = { text: input.value };
    if (fileInput.files.length > 0) {
      fields.image = await readImage(fileInput.files[0]);
    }
    if (pane.dataset.quoted) {
      fields.quoted = pane.dataset.quoted;
    }
    if (!fields.text.trim() && !fields.image) {
      return;
    }
    input.value = "";
    fileInput.value = "";
    delete pane.dataset.quoted;
    replying.hidden = true;
    send(pane, fields);
  });
  pane.querySelector(".pane-close").addEventListener("click", () => pane.remove());
  pane.querySelector(".replying-cancel").addEventListener("click", () => {
    delete pane.dataset.quoted;
    replying.hidden = true;
  });
  pane.querySelector(".chat").addEventListener("click", (event) => {
    const target = event.target.closest("button");
    if (!target) {
      return;
    }
    if (target.classList.contains("say")) {
      const fields = { text: target.dataset.say };
      if (target.dataset.block) {
        fields.block_id = target.dataset.block;
      }
      send(pane, fields);
    } else if (target.classList.contains("wa-reply")) {
      pane.dataset.quoted = target.dataset.id;
      replying.hidden = false;
      pane.querySelector(".text").focus();
    } else if (target.classList.contains("wa-react")) {
      send(pane, { quoted: target.dataset.id, reaction: "👍" });
    }
  });
}

function addPane(platform, user) {
  const existing = Array.from(panes.querySelectorAll(".pane")).find(
    (p) => p.dataset.platform === platform && p.dataset.user === user
  );
  if (existing) {
    existing.querySelector(".text").focus();
    return;
  }
  const template = panes.querySelector(".pane." + platform) || panes.querySelector(".pane");
  const pane = template.cloneNode(true);
  pane.className = "pane " + platform;
  pane.dataset.platform = platform;
  pane.dataset.user = user;
  pane.querySelector(".pane-title").textContent = platform === "kakao" ? "KakaoTalk" : "WhatsApp";
  const who = platform === "kakao" ? user : "+" + user;
  pane.querySelector(".pane-user").textContent = who;
  pane.querySelector(".text").placeholder = "Message as " + who;
  pane.querySelector(".chat").innerHTML = "";
  pane.querySelector(".replying").hidden = true;
  delete pane.dataset.quoted;
  panes.appendChild(pane);
  wirePane(pane);
  version = null;
}

function currentToggles() {
  return {
    callback: document.getElementById("t-callback").checked,
    deadline: document.getElementById("t-deadline").checked,
    policy: document.getElementById("t-policy").value,
    outage: document.getElementById("t-outage").checked,
  };
}

function showToggles(toggles) {
  document.getElementById("t-callback").checked = toggles.callback;
  document.getElementById("t-deadline").checked = toggles.deadline;
  document.getElementById("t-policy").value = toggles.policy;
  document.getElementById("t-outage").checked = toggles.outage;
}

document.getElementById("toggles").addEventListener("change", () => {
  post("/sandbox/api/toggles", currentToggles()).then(showToggles).catch(() => {});
});

document.getElementById("add").addEventListener("submit", (event) => {
  event.preventDefault();
  const platform = document.getElementById("add-platform").value;
  const input = document.getElementById("add-user");
  let user = input.value.trim();
  if (platform === "whatsapp") {
    user = user.replace(/\D/g, "");
    if (user.length < 6 || user.length > 15) {
      input.setCustomValidity("a phone number of 6 to 15 digits");
      input.reportValidity();
      return;
    }
  } else {
    user = user.replace(/[^\p{L}\p{N}_-]/gu, "").slice(0, 32);
    if (!user) {
      return;
    }
  }
  input.setCustomValidity("");
  input.value = "";
  addPane(platform, user);
});

document.getElementById("approve").addEventListener("submit", (event) => {
  event.preventDefault();
  const code = document.getElementById("approve-code");
  const result = document.getElementById("approve-result");
  const body = { channel: document.getElementById("approve-channel").value, code: code.value.trim() };
  post("/sandbox/api/approve", body)
    .then(() => {
      result.textContent = "approved " + body.code;
      code.value = "";
    })
    .catch((e) => {
      result.textContent = e.message;
    });
});

function render(state) {
  document.getElementById("daemon-state").textContent = state.daemon;
  showToggles(state.toggles);
  for (const pane of panes.querySelectorAll(".pane")) {
    const html = state.chats[paneKey(pane)];
    if (html === undefined) {
      continue;
    }
    const chat = pane.querySelector(".chat");
    if (chat.dataset.rendered === html) {
      continue;
    }
    const atBottom = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 40;
    chat.innerHTML = html;
    chat.dataset.rendered = html;
    if (atBottom || !chat.dataset.scrolled) {
      chat.scrollTop = chat.scrollHeight;
    }
  }
}

// The gateway's state, from the daemon's own /readyz.
async function gateway() {
  for (;;) {
    let text = "unknown";
    try {
      const ready = await fetch("/readyz").then((r) => r.json());
      const g = ready.gateway || {};
      text = g.state === "connected" ? "connected (OpenClaw " + (g.server_version || "?") + ")" : g.state + (g.error || g.last_error ? ": " + (g.error || g.last_error) : "");
    } catch (e) {
      text = "daemon unreachable";
    }
    document.getElementById("gateway-state").textContent = text;
    await new Promise((r) => setTimeout(r, 5000));
  }
}

async function poll() {
  for (;;) {
    const chats = Array.from(panes.querySelectorAll(".pane")).map(paneKey).join(",");
    const since = version === null ? "" : "&since=" + version;
    try {
      const response = await fetch("/sandbox/api/state?chats=" + encodeURIComponent(chats) + since);
      if (!response.ok) {
        throw new Error(response.statusText);
      }
      const state = await response.json();
      render(state);
      // A typing indicator ends without a change: ask again soon while one shows.
      version = document.querySelector(".wa-typing") ? null : state.version;
      if (version === null) {
        await new Promise((r) => setTimeout(r, 1000));
      }
    } catch (e) {
      // The daemon restarts on a dmPolicy change: try again shortly.
      document.getElementById("daemon-state").textContent = "reconnecting…";
      version = null;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

for (const pane of panes.querySelectorAll(".pane")) {
  wirePane(pane);
}
poll();
gateway();

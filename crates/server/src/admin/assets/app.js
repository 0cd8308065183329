// Lifeline dashboard: polls the admin API every second; no dependencies.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};
let lastSeq = 0;

async function api(method, path) {
  const resp = await fetch(path, { method, headers });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.error || resp.statusText);
  return body;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") e.onclick = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ""));
  return e;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function rate(bps) {
  return bps >= 1e6 ? (bps / 1e6).toFixed(2) + " Mb/s" : (bps / 1e3).toFixed(0) + " kb/s";
}

function dur(ms) {
  if (ms < 1000) return ms + " ms";
  const s = ms / 1000;
  return s < 120 ? s.toFixed(1) + " s" : Math.floor(s / 60) + " min";
}

function kickButton(what, path) {
  return el("button", {
    class: "kick", title: "Reset " + what, "data-kick": path,
    onclick: async (ev) => {
      ev.target.disabled = true;
      try { await api("DELETE", path); } catch (e) { alert("Kick failed: " + e.message); }
      refresh();
    },
  }, "kick");
}

function watchButton(s) {
  if (!s.publisher) return "";
  const off = Watch.port === null;
  return el("button", {
    class: "watch", title: off ? "Playback is off on this server" : "Watch in this page",
    ...(off ? { disabled: "" } : {}),
    onclick: () => { location.hash = Watch.href(s.app, s.name); },
  }, "watch");
}

function fillRows(tbody, rows, cols) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: cols }, "none"))]));
}

function silenceBar(c) {
  const d = c.closing;
  if (!d) return el("span", { class: "kernel" }, "no deadline");
  const frac = d.limit_ms > 0 ? Math.min(1, d.silence_ms / d.limit_ms) : 1;
  const cls = frac > 0.8 ? "bar bad" : frac > 0.5 ? "bar warn" : "bar";
  const bar = el("div", { class: cls, title: `${d.reason} in ${dur(Math.max(0, d.in_ms))}` },
    el("span", { style: `width:${(frac * 100).toFixed(1)}%` }),
    el("em", {}, `${dur(d.silence_ms)} / ${dur(d.limit_ms)} → ${d.reason}`));
  return bar;
}

function kernel(c) {
  const t = c.kernel && c.kernel.tcp_info;
  if (!t) return "–";
  return `rtt ${(t.rtt_us / 1000).toFixed(1)} ms · unacked ${t.unacked} · retrans ${t.retransmits} · ack ${dur(t.last_ack_recv_ms)} ago`;
}

function renderStreams(list) {
  document.getElementById("stream-count").textContent = `(${list.length})`;
  fillRows(document.querySelector("#streams tbody"), list.map((s) => {
    const p = s.publisher;
    const media = p ? [p.video_codec, p.width && p.height ? `${p.width}×${p.height}` : null, p.audio_codec].filter(Boolean).join(" · ") : "";
    return el("tr", { "data-stream": `${s.app}/${s.name}` },
      el("td", {}, `${s.app}/${s.name}`),
      el("td", {}, p ? `#${p.id} ${p.peer} (${dur(p.publishing_ms || 0)})` : "—"),
      el("td", {}, p ? rate(p.bitrate_bps) : ""),
      el("td", {}, media),
      el("td", {}, s.players),
      el("td", {}, `${s.gop_cache_frames} frames, ${bytes(s.gop_cache_bytes)}`),
      el("td", { class: "actions" }, watchButton(s),
        p ? kickButton("publisher", `/api/v1/streams/${encodeURIComponent(s.app)}/${encodeURIComponent(s.name)}`) : ""));
  }), 7);
}

function renderConnections(list) {
  document.getElementById("conn-count").textContent = `(${list.length})`;
  fillRows(document.querySelector("#connections tbody"), list.map((c) =>
    el("tr", { "data-conn": c.id, "data-role": c.role, "data-protocol": c.protocol || "rtmp" },
      el("td", {}, c.id),
      el("td", {}, c.peer),
      el("td", {}, el("span", { class: "role " + c.role }, c.role),
        c.protocol && c.protocol !== "rtmp" ? el("span", { class: "protocol" }, c.protocol) : ""),
      el("td", {}, c.stream || ""),
      el("td", {}, dur(c.age_ms)),
      el("td", {}, `${bytes(c.bytes_in)} / ${bytes(c.bytes_out)}`),
      el("td", {}, silenceBar(c)),
      el("td", { class: "kernel" }, kernel(c)),
      el("td", {}, kickButton("connection " + c.id, `/api/v1/connections/${c.id}`)))), 9);
}

function renderRelays(list) {
  document.getElementById("relay-count").textContent = `(${list.length})`;
  fillRows(document.querySelector("#relays tbody"), list.map((r) => {
    const state = r.state === "backoff" && r.retry_in_ms !== null
      ? `backoff (retry in ${dur(r.retry_in_ms)})` : `${r.state} (${dur(r.state_ms)})`;
    const last = r.last_close ? `${r.last_close.detail} (${dur(r.last_close.ago_ms)} ago)` : "—";
    return el("tr", { "data-relay": r.id, "data-state": r.state },
      el("td", {}, r.id),
      el("td", {}, r.kind),
      el("td", {}, r.stream),
      el("td", { class: "kernel" }, r.url),
      el("td", {}, el("span", { class: "relay " + r.state }, state)),
      el("td", {}, last),
      el("td", {}, r.reconnects),
      el("td", {}, `${bytes(r.bytes_in)} / ${bytes(r.bytes_out)}`),
      el("td", {}, rate(r.bitrate_bps)));
  }), 9);
}

function renderCluster(c) {
  const section = document.getElementById("cluster-section");
  section.hidden = !c.enabled;
  if (!c.enabled) return;
  const lease = c.lease === null ? "no lease: joining, nothing may publish" : `lease epoch ${c.epoch}`;
  document.getElementById("cluster-summary").textContent =
    `(node ${c.node} · ${lease} · ${c.watching ? "watching" : "watch down"} · leases lost ${c.leases_lost})`;
  const ago = (ms) => dur(Math.max(0, Date.now() - ms));
  fillRows(document.querySelector("#cluster-nodes tbody"), c.nodes.map((n) =>
    el("tr", { "data-node": n.node },
      el("td", {}, n.node === c.node ? `${n.node} (this node)` : n.node),
      el("td", { class: "kernel" }, n.advertise),
      el("td", {}, ago(n.since)))), 3);
  fillRows(document.querySelector("#cluster-streams tbody"), c.streams.map((s) =>
    el("tr", { "data-stream": s.stream, "data-owner": s.node },
      el("td", {}, s.stream),
      el("td", {}, s.node),
      el("td", { class: "kernel" }, s.advertise),
      el("td", {}, ago(s.since)))), 4);
}

function renderCloses(events) {
  const ol = document.getElementById("closes");
  for (const e of events) {
    const when = new Date(e.at_unix_ms).toLocaleTimeString();
    ol.prepend(el("li", { "data-reason": e.reason },
      `${when} #${e.id} ${e.role} ${e.stream || ""} `,
      el("span", { class: "reason " + e.reason }, e.detail),
      ` after ${dur(e.silence_ms)} of silence (age ${dur(e.age_ms)})`));
  }
  while (ol.children.length > 100) ol.lastChild.remove();
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const [streams, conns, events, relays, cluster] = await Promise.all([
      api("GET", "/api/v1/streams"),
      api("GET", "/api/v1/connections"),
      api("GET", "/api/v1/events?after=" + lastSeq),
      api("GET", "/api/v1/relays"),
      api("GET", "/api/v1/cluster"),
    ]);
    Watch.setPlayback(streams.playback);
    renderStreams(streams.streams);
    renderConnections(conns.connections);
    renderRelays(relays.relays);
    renderCluster(cluster);
    renderCloses(events.closes);
    lastSeq = events.last_seq;
    status.textContent = "live · updated " + new Date().toLocaleTimeString();
    status.className = "status live";
  } catch (e) {
    status.textContent = "error: " + e.message;
    status.className = "status down";
  }
}

refresh();
setInterval(refresh, 1000);

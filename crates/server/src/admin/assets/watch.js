// Lifeline watch view: plays a stream in the page through Media Source Extensions, fed with
// the live fragmented MP4 that the playback port serves at /{app}/{name}.mp4 (an init
// segment, then every part as it is made). No library: that body is already what a
// SourceBuffer takes, and its Content-Type names the codecs to create the SourceBuffer with.
"use strict";

const KEEP_BEHIND_S = 30; // media kept behind currentTime; older media is removed
const TRIM_SLACK_S = 5; // ...in steps of this much, not at every part
const MAX_LAG_S = 3; // further behind the newest media than this: jump to the live edge
const EDGE_MARGIN_S = 0.5; // where a jump lands, before the newest media
const HOLE_JUMP_S = 0.3; // this close to the end of a buffered range with another after it: jump
const RETRY_MS = 3000; // after an error, start again this much later while the view is open

// One viewing: one fetch, one MediaSource. Errors end it; the view starts a new one.
class LivePlayer {
  constructor(video, url) {
    this.video = video;
    this.url = url;
    this.queue = []; // chunks read but not appended yet (the SourceBuffer was busy)
    this.abort = new AbortController();
    this.failure = null;
    this.started = false;
  }

  // Resolves never; rejects with the reason playback stopped (unless stop() was called).
  async run() {
    try {
      await this.read();
    } catch (e) {
      throw this.failure || e;
    }
  }

  async read() {
    let resp;
    try {
      resp = await fetch(this.url, { signal: this.abort.signal, cache: "no-store" });
    } catch (e) {
      throw new Error(`cannot reach ${this.url} (${e.message})`);
    }
    if (!resp.ok) throw new Error(`${this.url}: ${resp.status} ${(await resp.text()).trim()}`);
    const type = resp.headers.get("Content-Type") || "";
    if (!window.MediaSource) throw new Error("this browser has no Media Source Extensions");
    if (!MediaSource.isTypeSupported(type)) throw new Error(`this browser cannot play ${type}`);
    const ms = new MediaSource();
    this.video.src = URL.createObjectURL(ms);
    await new Promise((ok) => ms.addEventListener("sourceopen", ok, { once: true }));
    URL.revokeObjectURL(this.video.src);
    this.sb = ms.addSourceBuffer(type);
    this.sb.addEventListener("updateend", () => { this.chase(); this.feed(); });
    this.sb.addEventListener("error", () => this.fail(new Error("the browser could not decode the stream")));
    this.video.onwaiting = () => this.chase();
    this.video.onerror = () => this.fail(new Error(`media error: ${this.video.error ? this.video.error.message : "?"}`));
    const reader = resp.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) throw new Error("the stream ended");
      this.queue.push(value);
      this.feed();
    }
  }

  // Appends what was read, in order, once the SourceBuffer is idle; trims old media first.
  // A new publisher's init segment is just the next bytes: the SourceBuffer takes it as is.
  feed() {
    const sb = this.sb;
    if (!sb || sb.updating || this.failure) return;
    try {
      const cut = this.video.currentTime - KEEP_BEHIND_S;
      if (sb.buffered.length && sb.buffered.start(0) < cut - TRIM_SLACK_S) {
        sb.remove(0, cut); // updateend feeds again
        return;
      }
      if (!this.queue.length) return;
      const chunk = join(this.queue);
      this.queue = [];
      try {
        sb.appendBuffer(chunk);
      } catch (e) {
        if (e.name !== "QuotaExceededError") throw e;
        // Full: keep the chunk, drop everything but the last second, and try again.
        this.queue.unshift(chunk);
        sb.remove(0, Math.max(0.1, this.video.currentTime - 1));
      }
    } catch (e) {
      this.fail(e);
    }
  }

  // Starts playing at the live edge (not at the keyframe the body starts with), jumps back
  // to it when playback fell behind or sits outside the buffered media, and over the hole a
  // publisher change leaves between two buffered ranges (the browser stops at a hole); not
  // while the viewer has paused.
  chase() {
    const v = this.video;
    const b = v.buffered;
    if (!b.length || (this.started && v.paused)) return;
    const last = b.length - 1;
    const edge = b.end(last);
    const t = v.currentTime;
    const i = [...Array(b.length).keys()].find((k) => b.start(k) <= t && t <= b.end(k));
    if (!this.started || i === undefined || edge - t > MAX_LAG_S) {
      v.currentTime = Math.max(b.start(last), edge - EDGE_MARGIN_S);
    } else if (i < last && b.end(i) - t < HOLE_JUMP_S) {
      v.currentTime = b.start(i + 1);
    }
    if (!this.started) {
      this.started = true;
      v.play().catch(() => {}); // refused autoplay leaves the controls to the viewer
    }
  }

  fail(e) {
    if (!this.failure) this.failure = e instanceof Error ? e : new Error(String(e));
    this.abort.abort();
  }

  stop() {
    this.fail(new Error("stopped"));
    this.video.onerror = this.video.onwaiting = null;
    this.video.removeAttribute("src");
    this.video.load();
  }
}

function join(chunks) {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.length; }
  return out;
}

// The panel: opened by #watch/{app}/{name} (the rows' watch buttons set it), closed by
// clearing the hash. app.js tells it the playback port from /api/v1/streams.
const Watch = {
  port: undefined, // undefined: not known yet; null: playback is off
  player: null,
  path: null,
  timer: null,
  failures: 0, // playbacks ended by an error since the view opened (each then started again)

  setPlayback(playback) {
    const port = playback ? playback.port : null;
    if (port === this.port) return;
    this.port = port;
    this.sync();
  },

  href(app, name) {
    return `#watch/${encodeURIComponent(app)}/${encodeURIComponent(name)}`;
  },

  // Opens, switches or closes the panel to match the location's hash.
  sync() {
    const m = location.hash.match(/^#watch\/([^/]+)\/([^/]+)$/);
    const path = m ? `${decodeURIComponent(m[1])}/${decodeURIComponent(m[2])}` : null;
    if (path === this.path && (this.player || this.timer)) return;
    this.close();
    this.path = path;
    this.failures = 0;
    if (!path || this.port === undefined) return;
    document.getElementById("watch").hidden = false;
    document.getElementById("watch-name").textContent = path;
    if (this.port === null) return this.showError("playback is off on this server ([playback] enabled = false)");
    this.start(`http://${location.hostname}:${this.port}/${m[1]}/${m[2]}.mp4${playKey()}`);
  },

  start(url) {
    this.timer = null;
    this.showError(null);
    const player = new LivePlayer(document.getElementById("watch-video"), url);
    this.player = player;
    player.run().catch((e) => {
      if (this.player !== player) return; // closed or replaced meanwhile
      player.stop();
      this.player = null;
      this.failures++;
      this.showError(`${e.message} — retrying in ${RETRY_MS / 1000} s`);
      this.timer = setTimeout(() => this.start(url), RETRY_MS);
    });
  },

  close() {
    if (this.player) this.player.stop();
    clearTimeout(this.timer);
    this.player = this.timer = this.path = null;
    document.getElementById("watch").hidden = true;
  },

  showError(text) {
    const p = document.getElementById("watch-error");
    p.hidden = !text;
    p.textContent = text || "";
  },

  // The status line under the picture: position behind the newest media, buffer, frames.
  tick() {
    const v = document.getElementById("watch-video");
    const status = document.getElementById("watch-status");
    const b = v.buffered;
    if (!this.player || !b.length) { status.textContent = this.player ? "waiting for media…" : ""; return; }
    const edge = b.end(b.length - 1);
    const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
    status.textContent = [
      v.paused ? "paused" : "playing",
      `${(edge - v.currentTime).toFixed(1)} s behind the newest media`,
      `buffer ${(edge - b.start(0)).toFixed(1)} s`,
      v.videoWidth ? `${v.videoWidth}×${v.videoHeight}` : "",
      q ? `${q.totalVideoFrames} frames, ${q.droppedVideoFrames} dropped` : "",
      this.failures ? `restarted ${this.failures}×` : "",
    ].filter(Boolean).join(" · ");
  },
};

// A play key given to the dashboard (`?key=`) is passed on to the playback port.
function playKey() {
  const key = new URLSearchParams(location.search).get("key");
  return key ? "?key=" + encodeURIComponent(key) : "";
}

window.addEventListener("hashchange", () => Watch.sync());
document.getElementById("watch-close").onclick = () => { location.hash = ""; };
setInterval(() => Watch.tick(), 500);

// VoxSpace page behaviour (loaded in <head>): single-key shortcuts, focus that moves to the next
// action, half a second more recording after a manual Stop, the hands-free loop, and one live
// region that says what happened. Gradio's recorder has no API, so this drives its buttons.
(() => {
  const TAIL_MS = 500; // people stop early: keep recording this long after Stop
  const TYPING = "textarea, select, [contenteditable=''], [contenteditable='true'], " +
    "input:not([type=checkbox]):not([type=radio]):not([type=range]):not([type=button])";
  const state = { keys: true, handsFree: false, timer: null, tail: false, bypass: false, rec: false,
                  status: "", uploading: false, saveQueued: false };

  const byId = (id) => document.getElementById(id);
  const shown = (el) => !!el && el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  const firstShown = (root, sel) => (root ? [...root.querySelectorAll(sel)].find(shown) : undefined);
  const recorder = () => byId(state.handsFree ? "handsfree-audio" : "take-audio");
  const recordButton = (root) => firstShown(root, "button.record-button");
  const stopButton = (root) => firstShown(root, "button.stop-button");

  function waitFor(get, ms) {
    return new Promise((resolve) => {
      const t0 = performance.now();
      const poll = () => {
        const v = get();
        if (v || performance.now() - t0 > ms) return resolve(v);
        setTimeout(poll, 50);
      };
      poll();
    });
  }

  function live() {
    let el = byId("vx-live");
    if (!el) {
      el = document.createElement("div");
      el.id = "vx-live";
      el.className = "vx-sr-only";
      el.setAttribute("role", "status");
      el.setAttribute("aria-live", "polite");
      el.setAttribute("aria-atomic", "true");
      document.body.appendChild(el);
    }
    return el;
  }

  function announce(message) {
    const el = live();
    el.textContent = "";
    setTimeout(() => { el.textContent = message; }, 30); // re-announce identical messages too
  }

  function badge(kind, text) {
    const el = byId("vx-rec-state");
    if (!el) return;
    el.dataset.state = kind;
    el.querySelector(".vx-shape").textContent = { recording: "●", finishing: "◐", ready: "▶", paused: "❚❚",
                                                  saving: "◐", rejected: "✗" }[kind] || "▶";
    el.querySelector(".vx-state-text").textContent = text;
  }

  function spokenText(el) { // what a screen reader would say: without the decorative shapes
    if (!el) return "";
    const copy = el.cloneNode(true);
    copy.querySelectorAll('[aria-hidden="true"]').forEach((n) => n.remove());
    return copy.textContent.replace(/\s+/g, " ").trim();
  }

  function focusEl(el) {
    if (!el) return;
    el.classList.add("vx-focus");
    el.focus({ preventScroll: false });
    el.addEventListener("blur", () => el.classList.remove("vx-focus"), { once: true });
  }

  function stopWithTail(btn) {
    if (state.tail) return;
    state.tail = true;
    badge("finishing", "Finishing the recording…");
    setTimeout(() => { state.tail = false; clickThrough(btn); }, TAIL_MS);
  }

  function clickThrough(btn) { // a click our own capture listener lets pass
    state.bypass = true;
    try { btn.click(); } finally { state.bypass = false; }
  }

  // A person's Stop (mouse, Enter, Space) gets the tail; script clicks (ours, tests) pass straight.
  document.addEventListener("click", (e) => {
    const btn = e.target.closest && e.target.closest("button.stop-button");
    if (!btn || state.bypass || !e.isTrusted || !btn.closest("#take-audio, #handsfree-audio")) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    stopWithTail(btn);
  }, true);

  // Between Stop and the end of the take's upload the player already plays, but the server has
  // no take yet: a Save pressed then waits for the upload instead of answering "nothing recorded".
  // Save pressed while still recording stops the recording first (with its tail) and then saves,
  // instead of answering "nothing recorded yet" while the recorder still runs.
  document.addEventListener("click", (e) => {
    if (state.bypass || !e.target.closest || !e.target.closest("#save-btn")) return;
    const stop = stopButton(byId("take-audio"));
    if (!state.uploading && !stop) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    state.saveQueued = true;
    if (stop) stopWithTail(stop);
    announce("Saving as soon as the recording has finished uploading.");
  }, true);

  // A recorded take not saved yet: the browser asks before the page is closed or reloaded.
  window.addEventListener("beforeunload", (e) => {
    if (document.body.dataset.vxTake !== "ready" && !state.rec && !state.uploading) return;
    e.preventDefault();
    e.returnValue = "Your take is not saved yet.";
  });

  const actions = {
    r() {
      const root = recorder();
      const stop = stopButton(root);
      if (stop) return stopWithTail(stop);
      const rec = recordButton(root);
      if (rec) return rec.click();
      if (!state.handsFree) { // a take is in the player: clear it, then record again
        byId("rerecord-btn")?.click();
        waitFor(() => recordButton(recorder()), 5000).then((b) => b && b.click());
      }
    },
    p() { firstShown(byId("take-audio"), 'button[aria-label="Play"], button[aria-label="Pause"]')?.click(); },
    x() { byId("rerecord-btn")?.click(); },
    s() { byId("save-btn")?.click(); },
    n() { byId("skip-btn")?.click(); },
    h() { document.querySelector("#handsfree-toggle input[type=checkbox]")?.click(); },
  };

  document.addEventListener("keydown", (e) => {
    if (!state.keys || e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    if (e.target && e.target.closest && e.target.closest(TYPING)) return;
    const act = actions[(e.key || "").toLowerCase()];
    if (!act) return;
    e.preventDefault();
    act();
  }, true);

  // Watch the recorder and the status line: state in words (badge + live region) on each change.
  setInterval(() => {
    const rec = !!(stopButton(byId("take-audio")) || stopButton(byId("handsfree-audio")));
    if (rec !== state.rec) {
      // A manual take stopped: its upload starts now, unless afterRecording already ran (the
      // upload can finish before this tick sees the stop; a Save then must not wait for it).
      if (state.rec && !rec && !state.handsFree && document.body.dataset.vxTake !== "ready") {
        state.uploading = true;
        setTimeout(() => { state.uploading = false; }, 20000); // never block Save for good
      }
      state.rec = rec;
      if (rec) {
        delete document.body.dataset.vxTake;
        badge("recording", "Recording. Press R to stop.");
        announce("Recording");
      }
      else if (state.handsFree) badge("saving", "Checking and saving the take…");
      else if (!state.tail) badge("ready", "Stopped. S saves, P plays, X records again.");
    }
    const status = spokenText(byId("take-status"));
    if (status && status !== state.status) {
      state.status = status;
      announce(status);
      intoView(byId("take-status"));
    }
    // The badge never says "Ready" over a take that was just refused: it says what the status says.
    const refused = byId("take-status")?.querySelector("[data-state=rejected]");
    if (refused && !state.rec && !state.tail && byId("vx-rec-state")?.dataset.state === "ready") {
      badge("rejected", "Not saved: listen to it, or press X to record again");
    }
    // Every other result line (training, publishing, imports): in view and read out when it ends.
    document.querySelectorAll(".vx-status").forEach((el) => {
      if (el.closest("#take-status")) return;
      const kind = el.dataset.state, text = spokenText(el);
      if (!["done", "error", "saved", "rejected"].includes(kind) || el.dataset.vxSaid === text) return;
      el.dataset.vxSaid = text;
      announce(text);
      intoView(el);
    });
  }, 150);

  function intoView(el) { // only when some of it is outside the window: never a jump for nothing
    if (!el || !shown(el)) return;
    const r = el.getBoundingClientRect();
    if (r.top < 0 || r.bottom > window.innerHeight) el.scrollIntoView({ block: "nearest", behavior: "auto" });
  }

  function countdown(seconds) {
    clearTimeout(state.timer);
    const box = byId("vx-countdown");
    let left = Math.max(0, Math.round(Number(seconds) || 0));
    const tick = () => {
      if (!state.handsFree) { if (box) box.textContent = ""; return; }
      if (left > 0) {
        if (box) box.textContent = `Recording in ${left}…`;
        announce(String(left));
        left -= 1;
        state.timer = setTimeout(tick, 1000);
        return;
      }
      if (box) box.textContent = "";
      waitFor(() => recordButton(byId("handsfree-audio")), 10000).then((b) => {
        if (b && state.handsFree) b.click();
      });
    };
    tick();
  }

  // --- takes this browser keeps until the server says they are safe (IndexedDB) ----------------
  // A Space without a mounted storage bucket loses its disk on restart: each saved take stays
  // here until a receipt (#vx-receipts, ui/unsent.py) names its key, and a page that loads with
  // takes still kept sends them again (the server recognises audio it already has).
  let kept = null;
  function keptDb() {
    if (!kept) kept = new Promise((resolve, reject) => {
      const req = indexedDB.open("voxspace", 1);
      req.onupgradeneeded = () => req.result.createObjectStore("unsent", { keyPath: "key" });
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    return kept;
  }
  async function keptTx(mode, work) {
    const db = await keptDb();
    return new Promise((resolve, reject) => {
      const tx = db.transaction("unsent", mode);
      const req = work(tx.objectStore("unsent"));
      tx.oncomplete = () => resolve(req ? req.result : undefined);
      tx.onerror = () => reject(tx.error);
    });
  }
  const newKey = () => (window.crypto && crypto.randomUUID ? crypto.randomUUID()
    : `${Date.now()}-${Math.random().toString(16).slice(2)}`);
  const asBase64 = (blob) => new Promise((resolve) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",")[1] || "");
    reader.readAsDataURL(blob);
  });

  let receipts = ""; // the last settled keys the server sent (#vx-receipts)
  const forget = (keys) => keptTx("readwrite", (store) => { keys.forEach((k) => k && store.delete(k)); })
    .catch((e) => console.warn("VoxSpace could not update the kept takes", e));

  async function keep(take) { // one place that stores a take: {key, blob, text, lang, phraseId[, takeId]}
    await keptTx("readwrite", (store) => store.put({ ...take, at: Date.now() }));
    if (receipts.split(" ").includes(take.key)) await forget([take.key]); // settled meanwhile
  }

  async function keepTake(args) { // Save's inputs [session, audio, key]: fill the key, keep the audio
    const audio = args[1];
    if (!audio || !audio.url || !window.indexedDB) return args;
    try {
      const blob = await (await fetch(audio.url)).blob();
      const p = document.querySelector("#phrase .vx-phrase-text");
      const take = { key: newKey(), blob, text: p ? p.textContent : "",
                     lang: (p && p.getAttribute("lang")) || "", phraseId: (p && p.dataset.phraseId) || "" };
      await keep(take);
      return [args[0], args[1], take.key];
    } catch (e) {
      console.warn("VoxSpace could not keep this take in the browser", e);
      return args;
    }
  }

  // Takes the server saved and hands back (ui/unsent.py): a hands-free take or a spoken answer with
  // its audio, or uploaded files by name only (the person still has the files).
  async function keepHandedBack(json) {
    if (!json || !window.indexedDB) return;
    try {
      for (const t of [].concat(JSON.parse(json))) {
        const take = { ...t };
        delete take.audio;
        if (t.audio) take.blob = new Blob([Uint8Array.from(atob(t.audio), (c) => c.charCodeAt(0))],
                                          { type: "audio/wav" });
        await keep(take);
      }
    } catch (e) {
      console.warn("VoxSpace could not keep this take in the browser", e);
    }
  }

  async function keptTakes() { // the oldest 20 kept takes (and every name), as ui/unsent.resend reads
    try {
      const all = ((await keptTx("readonly", (store) => store.getAll())) || []).sort((a, b) => a.at - b.at);
      const out = all.filter((t) => !t.blob).map(({ key, takeId, name }) => ({ key, takeId, name }));
      for (const t of all.filter((t) => t.blob).slice(0, 20)) {
        out.push({ key: t.key, takeId: t.takeId || "", text: t.text, lang: t.lang, phraseId: t.phraseId,
                   source: t.source || "mic", audio: await asBase64(t.blob) });
      }
      return JSON.stringify(out);
    } catch (e) {
      return "[]";
    }
  }

  setInterval(() => { // forget the takes the server says are safe
    const el = document.querySelector("#vx-receipts .vx-receipts");
    const settled = el ? el.dataset.settled || "" : "";
    if (!settled || settled === receipts || !window.indexedDB) return;
    receipts = settled;
    forget(settled.split(" "));
  }, 500);

  window.voxspace = {
    announce,
    keepTake,
    keepHandedBack,
    keptTakes,
    async keptCount() { return ((await keptTx("readonly", (store) => store.getAll())) || []).length; },
    setPhraseSize(px) { document.documentElement.style.setProperty("--vx-phrase-size", `${Number(px) || 40}px`); },
    setShortcuts(on) { state.keys = !!on; },
    restore(size, keys) { this.setPhraseSize(size); this.setShortcuts(keys); },
    focusRecord() {
      delete document.body.dataset.vxTake; // the player was cleared (skip, record again, saved)
      badge("ready", "Ready to record");
      waitFor(() => recordButton(recorder()), 5000).then(focusEl);
    },
    afterRecording() {
      state.uploading = false;
      document.body.dataset.vxTake = "ready"; // the server has the take (tests wait on this too)
      if (state.saveQueued) {
        state.saveQueued = false;
        clickThrough(byId("save-btn"));
        return;
      }
      announce("Recorded. Press S to save, P to listen, X to record again.");
      focusEl(byId("save-btn"));
    },
    afterSave() {
      delete document.body.dataset.vxTake;
      if (!state.handsFree) this.focusRecord();
    },
    handsFree(on, seconds) {
      state.handsFree = !!on;
      if (on) { countdown(seconds); return; }
      clearTimeout(state.timer);
      const box = byId("vx-countdown");
      if (box) box.textContent = "";
      this.focusRecord();
    },
    handsFreeNext(seconds) {
      if (!state.handsFree) return;
      if (document.querySelector("#take-status [data-rest]")) {
        badge("paused", "Paused for a rest. Press R to go on.");
        return;
      }
      badge("ready", "Next phrase: recording starts after the countdown");
      countdown(seconds);
    },
    vadSignal(value) {
      if (!String(value || "").startsWith("stop")) return;
      const stop = stopButton(byId("handsfree-audio"));
      if (stop) clickThrough(stop);
    },
  };
})();

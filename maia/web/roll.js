// maia's live piano roll and player: the js_on_load of a gr.HTML (app.py), run once per component with
// `element`, `props` and `watch` from Gradio. props.value is one JSON message of maia/live.py per
// streamed update: the notes so far (drawn on a canvas, prompt and continuation in two colours), the
// audio rendered since the last update (appended to a Web Audio player, which never restarts), and when
// finished the engraved sheet music with its timemap. Plain JS, no library, nothing fetched.
// window.maiaLive[slot] holds counters that the browser tests and bench/app_latency.py read.
(() => {
  const slot = (element.querySelector(".maia-live") || element).dataset.slot || "1";
  const host = element.querySelector(".maia-live") || element;
  if (host.shadowRoot) return; // already set up
  const root = host.attachShadow({ mode: "open" });
  const ICON_PLAY = '<svg viewBox="0 0 16 16" width="14" height="14"><path d="M4 2.5v11l9-5.5z" fill="currentColor"/></svg>';
  const ICON_PAUSE = '<svg viewBox="0 0 16 16" width="14" height="14"><path d="M3.5 2.5h3v11h-3zM9.5 2.5h3v11h-3z" fill="currentColor"/></svg>';
  root.innerHTML = `<style>${MAIA_CSS}</style>
    <div class="bar">
      <button class="play" title="Play / pause (space)" aria-label="play" disabled>${ICON_PLAY}</button>
      <span class="time">0:00 / 0:00</span>
      <span class="state"></span>
      <span class="grow"></span>
      <label title="Start playing with the first notes"><input type="checkbox" class="autoplay" checked> play while composing</label>
      <label title="Keep the playhead (or the newest notes) in view"><input type="checkbox" class="follow" checked> follow</label>
      <span class="zoom"><button class="zoom-out" title="Zoom out">−</button><button class="zoom-in" title="Zoom in">+</button></span>
      <span class="tabs"><button class="tab-roll on">Piano roll</button><button class="tab-sheet" disabled>Sheet music</button></span>
    </div>
    <div class="view roll-view"><canvas class="roll" aria-label="piano roll"></canvas>
      <input type="range" class="scroll" min="0" max="0" step="0.01" value="0" aria-label="scroll"></div>
    <div class="view sheet-view" hidden><div class="sheet"></div></div>
    <div class="empty">The piano roll fills in here as maia composes: blue is your prompt, orange is maia.</div>`;
  const $ = (sel) => root.querySelector(sel);
  function icon(which) { playBtn.innerHTML = which === "pause" ? ICON_PAUSE : ICON_PLAY; playBtn.setAttribute("aria-label", which); }
  const canvas = $("canvas.roll"), ctx2d = canvas.getContext("2d"), scroll = $("input.scroll");
  const scrolled = { max: null, value: null }; // the scroll bar's last values written (putScroll)
  const playBtn = $("button.play"), timeEl = $(".time"), stateEl = $(".state"), sheetEl = $(".sheet");
  const KEYS = 46; // px of keyboard strip
  const COLORS = [[59, 130, 246], [249, 115, 22]]; // user (prompt), maia
  const BLACK = new Set([1, 3, 6, 8, 10]);

  const stats = { updates: 0, seq: -1, firstNoteMs: null, firstNoteSeq: null, firstMaiaDone: null, draws: 0, drawMs: [],
    gaps: 0, chunks: 0, playStarts: 0, startedBeforeDone: null, playSeq: null, positions: [], request: null };
  (window.maiaLive = window.maiaLive || {})[slot] = stats;
  // One variation sounds at a time: starting a player pauses the others, and a player starts by itself only
  // while no other is playing.
  const players = (window.maiaPlayers = window.maiaPlayers || {});
  players[slot] = { playing: () => P.playing || P.buffering, pause: () => { if (P.playing || P.buffering) { P.buffering = false; stateEl.textContent = ""; pause(true); } } };
  const othersPlaying = () => Object.entries(players).some(([k, p]) => k !== slot && p.playing());
  stats.playing = () => P.playing;
  stats.position = () => position();
  stats.seek = (t) => seek(t);
  stats.state = () => stateEl.textContent;
  stats.view = () => ({ left: view.left, pps: view.pps, keys: KEYS, lo: view.lo, hi: view.hi });
  stats.notes = () => S.notes;
  stats.gain = () => (P.out ? P.out.gain.value : 1);
  // a phrase being played (maia/web/keys.js): drawn in the prompt's colour while nothing composed is on show
  // (a duet's too: notes [pitch, start, end, velocity, who] with maia's orange, and the beat in seconds)
  stats.take = (notes, beat) => {
    if (S.request !== null && S.request !== "take" && !S.done) return; // maia is composing here
    if (S.request !== "take") reset("take");
    S.notes = notes.map(([p, s, e, v, who = 0]) => [p, s, e, v, who]); S.done = true; S.mine = [0, 1e9];
    if (beat) S.beat = beat;
    $(".empty").hidden = S.notes.length > 0;
    fitPitches();
    let end = 0;
    for (const n of S.notes) end = Math.max(end, n[2]);
    follow(end);
    draw();
  };
  stats.notePixels = () => { // canvas pixels right of the keyboard in the prompt's blue or maia's orange
    const d = ctx2d.getImageData(0, 0, canvas.width, canvas.height).data, x0 = KEYS * (window.devicePixelRatio || 1);
    let blue = 0, orange = 0;
    for (let i = 0; i < d.length; i += 4) {
      if ((i >> 2) % canvas.width < x0) continue;
      const r = d[i], g = d[i + 1], b = d[i + 2];
      if (b - r > 60) blue++; else if (r - b > 80 && g > 70) orange++;
    }
    return { blue, orange };
  };

  let S = fresh(null);
  const view = { pps: 60, left: 0, follow: true, lo: 48, hi: 84 };
  const P = { ctx: null, playing: false, t0: 0, from: 0, pos: 0, sources: [], buffering: false, userPaused: false };

  function fresh(request) {
    return { request, notes: [], now: 0, done: false, mine: [0, 1e9], sel: null, beat: 0.5, meter: [4, 4], rate: 44100,
      chunks: [], have: 0, timemap: null, lit: [] };
  }

  function reset(request) {
    stopSources();
    P.playing = false; P.pos = 0; P.buffering = false; P.userPaused = false;
    S = fresh(request);
    view.left = 0; view.follow = $("input.follow").checked;
    sheetEl.innerHTML = ""; $(".tab-sheet").disabled = true; showTab("roll");
    Object.assign(stats, { updates: 0, seq: -1, firstNoteMs: null, firstNoteSeq: null, firstNoteDone: null, firstMaiaDone: null, gaps: 0, chunks: 0,
      playStarts: 0, startedBeforeDone: null, playSeq: null, positions: [], request });
  }

  // ---- messages ----------------------------------------------------------------------------------
  function onValue() {
    let m = null;
    try { m = props.value ? JSON.parse(props.value) : null; } catch (e) { m = null; }
    if (!m || m.v !== 1) { if (S.request !== null) reset(null); draw(); return; }
    if (m.request !== S.request) reset(m.request);
    if (m.seq <= stats.seq) return; // an update seen already
    stats.updates++; stats.seq = m.seq; stats.done = m.done; stats.final = !!m.final; stats.beat = m.beat;
    S.notes = m.notes; S.now = m.now; S.done = m.done; S.mine = m.mine;
    S.beat = m.beat; S.meter = m.meter; S.rate = m.rate;
    if (m.audio) addAudio(m.audio);
    if (S.done && P.buffering) ended(); // the player waited for more music, and the piece ended (e.g. Stop) with none
    if (m.sheet) showSheet(m.sheet);
    if (stats.firstNoteMs === null && S.notes.length) {
      stats.firstNoteMs = performance.now(); stats.firstNoteSeq = m.seq; stats.firstNoteDone = S.done;
    }
    if (stats.firstMaiaDone === null && S.notes.some((n) => n[4] === 1)) stats.firstMaiaDone = S.done; // maia's first notes
    $(".empty").hidden = S.notes.length > 0;
    fitPitches();
    if (!P.playing) follow(S.done ? null : S.now);
    draw();
  }

  function duration() {
    let end = S.now;
    for (const n of S.notes) if (n[2] > end) end = n[2];
    return Math.max(end, S.have / S.rate);
  }

  // ---- audio -------------------------------------------------------------------------------------
  function audioContext() {
    if (!P.ctx) {
      const AC = window.AudioContext || window.webkitAudioContext;
      if (!AC) return null;
      try { P.ctx = new AC({ sampleRate: S.rate }); } catch (e) { P.ctx = new AC(); }
      // every source goes through one gain, so that the page can be muted while maia plays on MIDI out
      P.out = P.ctx.createGain(); P.out.gain.value = window.maiaMuted ? 0 : 1; P.out.connect(P.ctx.destination);
    }
    return P.ctx;
  }

  function addAudio(a) {
    const ac = audioContext();
    if (!ac) return;
    const bin = atob(a.pcm), n = bin.length >> 1;
    if (a.at > S.have) stats.gaps++;
    if (!n || a.at + n <= S.have) return;
    const f = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let v = bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8);
      f[i] = (v >= 32768 ? v - 65536 : v) / 32768;
    }
    const buf = ac.createBuffer(1, n, S.rate);
    buf.copyToChannel(f, 0);
    const chunk = { at: a.at / S.rate, dur: n / S.rate, buf };
    S.chunks.push(chunk); stats.chunks++;
    S.have = Math.max(S.have, a.at + n);
    playBtn.disabled = false;
    if (P.playing) schedule(chunk);
    else if (P.buffering) play(P.pos, "buffered");
    else if (!P.userPaused && stats.playStarts === 0 && $("input.autoplay").checked && !othersPlaying()) play(P.pos, "auto");
  }

  function schedule(c) {
    if (c.at + c.dur <= P.from) return;
    const src = P.ctx.createBufferSource();
    src.buffer = c.buf;
    src.connect(P.out);
    const when = P.t0 + (c.at - P.from);
    if (when >= P.t0) src.start(when); else src.start(P.t0, P.from - c.at);
    P.sources.push(src);
    src.onended = () => { const i = P.sources.indexOf(src); if (i >= 0) P.sources.splice(i, 1); };
  }

  function stopSources() {
    for (const s of P.sources) { try { s.onended = null; s.stop(); } catch (e) { /* not started */ } }
    P.sources = [];
  }

  function position() {
    if (!P.playing) return P.pos;
    return P.from + Math.max(0, P.ctx.currentTime - P.t0);
  }

  function play(from, why) {
    const ac = audioContext();
    if (!ac || !S.chunks.length) return;
    if (ac.state === "suspended") ac.resume();
    for (const [k, p] of Object.entries(players)) if (k !== slot) p.pause();
    stopSources();
    const end = S.have / S.rate;
    if (from >= end - 0.01) from = S.done ? 0 : Math.max(0, end - 0.01);
    P.playing = true; P.buffering = false; P.from = from; P.t0 = ac.currentTime + 0.05;
    for (const c of S.chunks) schedule(c);
    if (why !== "buffered") stats.playStarts++;
    if (stats.startedBeforeDone === null) { stats.startedBeforeDone = !S.done; stats.playSeq = stats.seq; }
    icon("pause");
    requestAnimationFrame(tick);
  }

  function pause(user) {
    P.pos = position(); P.playing = false; stopSources();
    if (user) P.userPaused = true;
    icon("play");
    draw();
  }

  function ended() { // the end of a finished piece: the player stops, ready to play it again from the start
    if (P.playing) pause(false);
    P.buffering = false; P.pos = 0; stateEl.textContent = "";
    draw();
  }

  function seek(t) {
    t = Math.max(0, Math.min(t, duration()));
    if (P.playing) play(Math.min(t, S.have / S.rate), "seek"); else P.pos = t;
    draw();
  }

  function tick() {
    if (!P.playing) return;
    const pos = position(), end = S.have / S.rate;
    if (pos >= end - 0.005) {
      if (S.done) ended();
      else { pause(false); P.pos = end; P.buffering = true; stateEl.textContent = "waiting for maia…"; }
    } else put(stateEl, "textContent", "");
    if (stats.positions.length < 5000) stats.positions.push([performance.now(), position()]);
    follow(position());
    draw();
    if (P.playing) requestAnimationFrame(tick);
  }

  // ---- view --------------------------------------------------------------------------------------
  function fitPitches() { // the notes' range and a margin, at least 30 keys; it grows but never shrinks
    let lo = 48, hi = 84;
    if (S.notes.length) {
      lo = 127; hi = 0;
      for (const n of S.notes) { if (n[0] < lo) lo = n[0]; if (n[0] > hi) hi = n[0]; }
      lo -= 2; hi += 2;
      while (hi - lo < 30) { lo--; hi++; }
      if (S.fitted) { lo = Math.min(lo, view.lo); hi = Math.max(hi, view.hi); }
      S.fitted = true;
    }
    view.lo = Math.max(0, lo); view.hi = Math.min(127, hi);
  }

  function visibleSeconds() { return Math.max(1, (canvas.clientWidth - KEYS) / view.pps); }

  function follow(t) {
    if (!view.follow || t === null) return;
    const span = visibleSeconds();
    if (t > view.left + 0.85 * span || t < view.left) view.left = Math.max(0, t - 0.15 * span);
  }

  function draw() {
    const t0 = performance.now();
    const dpr = window.devicePixelRatio || 1;
    const W = canvas.clientWidth, H = canvas.clientHeight;
    if (!W || !H) { chrome(position()); return; } // the roll is hidden (sheet tab): the clock and highlight go on
    if (canvas.width !== Math.round(W * dpr) || canvas.height !== Math.round(H * dpr)) {
      canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
    }
    const g = ctx2d;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = "#fbfbfd"; g.fillRect(0, 0, W, H);
    const rows = view.hi - view.lo + 1, rowH = H / rows;
    const x = (t) => KEYS + (t - view.left) * view.pps;
    const y = (p) => H - (p - view.lo + 1) * rowH;
    const right = view.left + (W - KEYS) / view.pps;
    // black-key rows, the prompt's span, bar and beat lines
    g.fillStyle = "#f0f1f5";
    for (let p = view.lo; p <= view.hi; p++) if (BLACK.has(p % 12)) g.fillRect(KEYS, y(p), W - KEYS, rowH);
    // the user's time (the prompt; around a regenerated span) lightly blue, a selected span yellow
    g.fillStyle = "rgba(59,130,246,0.06)";
    if (S.mine[0] > view.left) g.fillRect(KEYS, 0, Math.max(0, x(S.mine[0]) - KEYS), H);
    if (S.mine[1] < right && S.notes.length) g.fillRect(Math.max(KEYS, x(S.mine[1])), 0, W, H);
    if (S.sel) { g.fillStyle = "rgba(250,204,21,0.25)"; g.fillRect(Math.max(KEYS, x(S.sel[0])), 0, Math.max(0, x(S.sel[1]) - Math.max(KEYS, x(S.sel[0]))), H); }
    const bar = S.beat * S.meter[0] * 4 / S.meter[1];
    for (let k = Math.floor(view.left / S.beat); k * S.beat <= right; k++) {
      const isBar = Math.abs((k * S.beat) / bar - Math.round((k * S.beat) / bar)) < 1e-6;
      g.fillStyle = isBar ? "#c9ccd6" : "#e6e8ee";
      g.fillRect(Math.round(x(k * S.beat)), 0, 1, H);
    }
    // notes: the sounding ones (at the playhead) brighter
    const pos = position(), lit = new Map();
    for (const n of S.notes) {
      const [p, s, e, v, who] = n;
      if (e < view.left || s > right || p < view.lo || p > view.hi) continue;
      const on = s <= pos && pos < e && (P.playing || pos > 0);
      if (on) lit.set(p, who);
      const c = COLORS[who] || COLORS[1];
      g.fillStyle = `rgba(${c[0]},${c[1]},${c[2]},${on ? 1 : 0.45 + 0.5 * v / 127})`;
      // whole pixels, and a clear pixel before the next onset: a run of fast repeated notes reads as
      // separate strikes, not one held note (a gap on a fractional pixel blurs into the notes around it)
      const x0 = Math.max(KEYS, Math.round(x(s))), x1 = Math.round(x(e));
      const w = Math.max(2, x1 - x0 - (x1 - x0 >= 4 ? 1 : 0)), top = Math.round(y(p)) + 1, h = Math.max(1, Math.round(rowH) - 1);
      g.fillRect(x0, top, w, h);
      // each strike's onset: a darker edge of the note's own colour
      g.fillStyle = `rgb(${Math.round(c[0] * 0.55)},${Math.round(c[1] * 0.55)},${Math.round(c[2] * 0.55)})`;
      g.fillRect(x0, top, 1, h);
      if (on) { g.strokeStyle = "#111827"; g.lineWidth = 1; g.strokeRect(x0 + 0.5, top + 0.5, w - 1, h - 1); }
    }
    // where sampling is, while composing
    if (!S.done && S.request && S.now >= view.left && S.now <= right) {
      g.strokeStyle = "#9ca3af"; g.setLineDash([4, 4]); g.beginPath();
      g.moveTo(x(S.now), 0); g.lineTo(x(S.now), H); g.stroke(); g.setLineDash([]);
    }
    // keyboard strip, sounding keys lit
    for (let p = view.lo; p <= view.hi; p++) {
      const black = BLACK.has(p % 12), who = lit.get(p);
      const c = who === undefined ? null : COLORS[who] || COLORS[1];
      g.fillStyle = c ? `rgb(${c[0]},${c[1]},${c[2]})` : black ? "#1f2937" : "#ffffff";
      g.fillRect(0, y(p), black ? KEYS * 0.62 : KEYS, rowH);
      g.fillStyle = "#d1d5db"; g.fillRect(0, y(p) + rowH - 0.5, KEYS, 0.5);
      if (p % 12 === 0 && rowH >= 6) { g.fillStyle = "#6b7280"; g.font = `${Math.min(10, rowH)}px sans-serif`; g.fillText(`C${p / 12 - 1}`, KEYS - 20, y(p) + rowH - 1); }
    }
    g.fillStyle = "#9ca3af"; g.fillRect(KEYS - 1, 0, 1, H);
    // playhead
    if (S.chunks.length || pos > 0) {
      g.fillStyle = "#dc2626"; g.fillRect(Math.round(x(pos)) - 1, 0, 2, H);
    }
    putScroll("max", String(Math.max(0, duration() - visibleSeconds() * 0.5)));
    putScroll("value", String(view.left));
    chrome(pos);
    stats.draws++;
    stats.drawMs.push(performance.now() - t0);
    if (stats.drawMs.length > 500) stats.drawMs.shift();
  }

  function chrome(pos) { // what follows the playhead outside the canvas: the clock and the sheet's lit notes
    put(timeEl, "textContent", `${clock(pos)} / ${clock(duration())}`);
    highlightSheet(pos);
  }

  // A frame writes to the page only what changed: any write, even of the same text, invalidates the page's layout,
  // which the next frame's canvas.clientWidth then recomputes, 60 times a second while the music plays (in headless
  // chromium, half of the renderer's main thread). Text is compared with the page's own; a range input reads back
  // its value rounded to its step, so its last value written is what is compared.
  function put(el, key, value) { if (el[key] !== value) el[key] = value; }
  function putScroll(key, value) { if (scrolled[key] !== value) { scroll[key] = value; scrolled[key] = value; } }

  function clock(t) { const s = Math.floor(t); return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`; }

  // ---- sheet music -------------------------------------------------------------------------------
  function showSheet(sh) {
    sheetEl.innerHTML = sh.pages.join("");
    // Verovio declares its music font (for the tempo mark's note, the text's symbols) in each page's <style>;
    // Chromium loads no @font-face declared inside a shadow root, so it is declared once in the document.
    for (const face of (sh.pages[0] || "").match(/@font-face\s*\{[^}]*\}/g) || []) {
      const family = (face.match(/font-family:\s*'?([^';]+)/) || [])[1] || "";
      if (document.querySelector(`style[data-maia-font="${family}"]`)) continue;
      const style = document.createElement("style");
      style.dataset.maiaFont = family; style.textContent = face;
      document.head.appendChild(style);
    }
    S.timemap = sh.timemap;
    $(".tab-sheet").disabled = false;
  }

  function highlightSheet(pos) {
    if (!S.timemap || $(".sheet-view").hidden) return;
    const tm = S.timemap;
    let lo = 0, hi = tm.length - 1, k = -1;
    while (lo <= hi) { const mid = (lo + hi) >> 1; if (tm[mid][0] <= pos + 1e-3) { k = mid; lo = mid + 1; } else hi = mid - 1; }
    const ids = k >= 0 && (P.playing || pos > 0) ? tm[k][1] : [];
    if (ids.join() === S.lit.join()) return;
    for (const id of S.lit) root.getElementById(id)?.classList.remove("playing");
    for (const id of ids) root.getElementById(id)?.classList.add("playing");
    S.lit = ids;
    const first = ids.length && root.getElementById(ids[0]);
    if (first && P.playing) first.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  function showTab(which) {
    $(".roll-view").hidden = which !== "roll";
    $(".sheet-view").hidden = which !== "sheet";
    $(".tab-roll").classList.toggle("on", which === "roll");
    $(".tab-sheet").classList.toggle("on", which === "sheet");
    draw();
  }

  // ---- controls ----------------------------------------------------------------------------------
  playBtn.addEventListener("click", () => { if (P.playing) pause(true); else { P.userPaused = false; play(P.pos, "user"); } });
  const timeAt = (e) => { const r = canvas.getBoundingClientRect(); return view.left + (e.clientX - r.left - KEYS) / view.pps; };
  let drag = null; // shift+drag selects a span to regenerate
  canvas.addEventListener("mousedown", (e) => { if (e.shiftKey && S.notes.length) { drag = Math.max(0, timeAt(e)); S.sel = [drag, drag]; e.preventDefault(); } });
  canvas.addEventListener("mousemove", (e) => { if (drag !== null) { const t = Math.max(0, timeAt(e)); S.sel = [Math.min(drag, t), Math.max(drag, t)]; draw(); } });
  canvas.addEventListener("mouseup", () => {
    if (drag === null) return;
    drag = null;
    const q = (t) => Math.round((t / S.beat) * 4) / 4; // seconds -> quarter-note beats, to a 16th
    if (q(S.sel[1]) > q(S.sel[0])) trigger("span", { from_beat: q(S.sel[0]), to_beat: q(S.sel[1]) });
    else S.sel = null;
    draw();
  });
  canvas.addEventListener("click", (e) => {
    if (e.shiftKey) return;
    const px = e.clientX - canvas.getBoundingClientRect().left;
    if (px > KEYS) seek(view.left + (px - KEYS) / view.pps);
  });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    if (e.ctrlKey || e.metaKey) {
      const r = canvas.getBoundingClientRect(), t = view.left + (e.clientX - r.left - KEYS) / view.pps;
      view.pps = Math.min(800, Math.max(5, view.pps * (e.deltaY < 0 ? 1.2 : 1 / 1.2)));
      view.left = Math.max(0, t - (e.clientX - r.left - KEYS) / view.pps);
    } else {
      view.left = Math.max(0, view.left + (e.deltaX || e.deltaY) / view.pps);
      view.follow = false; $("input.follow").checked = false;
    }
    draw();
  }, { passive: false });
  scroll.addEventListener("input", () => { view.left = Number(scroll.value); view.follow = false; $("input.follow").checked = false; draw(); });
  $("input.follow").addEventListener("change", (e) => { view.follow = e.target.checked; follow(P.playing ? position() : S.now); draw(); });
  $(".zoom-in").addEventListener("click", () => { view.pps = Math.min(800, view.pps * 1.25); draw(); });
  $(".zoom-out").addEventListener("click", () => { view.pps = Math.max(5, view.pps / 1.25); draw(); });
  $(".tab-roll").addEventListener("click", () => showTab("roll"));
  $(".tab-sheet").addEventListener("click", () => showTab("sheet"));
  host.tabIndex = 0;
  host.addEventListener("keydown", (e) => { if (e.code === "Space") { e.preventDefault(); playBtn.click(); } });
  new ResizeObserver(() => draw()).observe(canvas);
  window.addEventListener("maia-mute", () => { if (P.out) P.out.gain.value = window.maiaMuted ? 0 : 1; });

  watch("value", onValue);
  onValue();
})();

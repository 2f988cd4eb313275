// maia's instrument: play the prompt on an on-screen keyboard, the computer keyboard or a MIDI keyboard (Web
// MIDI), hear it at once from a small Web Audio synth, record it (drawn live on the roll in the prompt's
// colour) and hand it to the page as a MIDI file; and send maia's notes to a Web MIDI output (a synth, or a
// DAW through a virtual port). The js_on_load of a gr.HTML (app.py), with `element` and `trigger` from
// Gradio: trigger("recorded", {midi}) gives the server the take as a base64 Standard MIDI File.
// window.maiaKeys holds what the browser tests read. Plain JS, no library, nothing fetched.
(() => {
  const host = element.querySelector(".maia-keys") || element;
  if (host.shadowRoot) return; // already set up
  const root = host.attachShadow({ mode: "open" });
  const LOW = 48, OCTAVES = 3; // the on-screen keys: C3 up three octaves and a C (from C4 on a phone)
  const BLACK = new Set([1, 3, 6, 8, 10]);
  // the usual DAW layout: A S D F G H J K L ; white keys from C, W E T Y U O P black keys; Z X octave down, up
  const COMPUTER = { KeyA: 0, KeyW: 1, KeyS: 2, KeyE: 3, KeyD: 4, KeyF: 5, KeyT: 6, KeyG: 7, KeyY: 8, KeyH: 9,
    KeyU: 10, KeyJ: 11, KeyK: 12, KeyO: 13, KeyL: 14, KeyP: 15, Semicolon: 16 };
  let keysHtml = "";
  for (let p = LOW; p <= LOW + 12 * OCTAVES; p++) {
    keysHtml += `<div class="key ${BLACK.has(p % 12) ? "black" : "white"}${p < 60 ? " low" : ""}" data-p="${p}">${p % 12 === 0 ? `<span>C${p / 12 - 1}</span>` : ""}</div>`;
  }
  root.innerHTML = `<style>${KEYS_CSS}</style>
    <div class="bar">
      <button class="rec" title="Record a phrase; Stop makes it the prompt">● Record</button>
      <label title="Round the recording to 1/16 notes"><input type="checkbox" class="quantise" checked> quantise 1/16</label>
      <label title="Tempo of the recording (quarter notes per minute)">tempo <input type="number" class="bpm" value="120" min="30" max="300" step="1"></label>
      <label title="Capture the computer keyboard anywhere on the page except in text fields"><input type="checkbox" class="capture"> Play with the computer keys</label>
      <span class="octave" title="Z / X: octave down / up">octave 0</span>
      <span class="grow"></span>
      <span class="rec-state"></span>
    </div>
    <div class="bar midi">
      <button class="connect" title="Ask the browser for its MIDI devices">Connect MIDI</button>
      <label>in <select class="midi-in" disabled><option value="">no MIDI input</option></select></label>
      <label>out <select class="midi-out" disabled><option value="">no MIDI out</option></select></label>
      <label title="Silence the page's own audio while maia's notes go to MIDI out"><input type="checkbox" class="mute" checked> mute the page</label>
      <label title="Send the prompt's notes too"><input type="checkbox" class="mine"> + the prompt</label>
      <button class="send" disabled title="Send variation 1's finished notes to MIDI out again">Send again</button>
    </div>
    <div class="why" hidden></div>
    <div class="piano" tabindex="0" aria-label="piano keyboard: click or use the computer keys">${keysHtml}</div>`;
  const $ = (sel) => root.querySelector(sel);
  const piano = $(".piano"), recBtn = $("button.rec"), recState = $(".rec-state"), why = $(".why");
  const inSel = $("select.midi-in"), outSel = $("select.midi-out"), sendBtn = $("button.send");

  const K = (window.maiaKeys = { recording: false, t0: 0, notes: [], held: new Map(), octave: 0, sent: 0,
    why: () => (why.hidden ? "" : why.textContent), taken: 0 });

  // ---- sound: two oscillators and an envelope per note ----------------------------------------------
  let ac = null;
  const voices = new Map();
  function audio() {
    if (!ac) { const AC = window.AudioContext || window.webkitAudioContext; if (AC) ac = new AC(); }
    if (ac && ac.state === "suspended") ac.resume();
    return ac;
  }
  function sound(p, v) {
    const a = audio();
    if (!a) return;
    silence(p);
    const t = a.currentTime, f = 440 * 2 ** ((p - 69) / 12), peak = 0.05 + 0.25 * v / 127;
    const g = a.createGain();
    g.gain.setValueAtTime(0, t);
    g.gain.linearRampToValueAtTime(peak, t + 0.005); // attack
    g.gain.exponentialRampToValueAtTime(peak * 0.35, t + 0.8); // a piano-like decay
    g.connect(a.destination);
    const oscs = [["triangle", 1, 1], ["sine", 2, 0.3]].map(([type, mult, level]) => {
      const o = a.createOscillator(), og = a.createGain();
      o.type = type; o.frequency.value = f * mult; og.gain.value = level;
      o.connect(og); og.connect(g); o.start(t);
      return o;
    });
    voices.set(p, { g, oscs });
  }
  function silence(p) {
    const vo = voices.get(p);
    if (!vo || !ac) return;
    voices.delete(p);
    const t = ac.currentTime;
    vo.g.gain.cancelScheduledValues(t); vo.g.gain.setValueAtTime(vo.g.gain.value, t);
    vo.g.gain.linearRampToValueAtTime(0, t + 0.12); // release
    for (const o of vo.oscs) o.stop(t + 0.15);
  }

  // ---- playing and recording ------------------------------------------------------------------------
  function noteOn(p, v, at) {
    if (p < 0 || p > 127) return;
    sound(p, v);
    piano.querySelector(`.key[data-p="${p}"]`)?.classList.add("on");
    if (K.recording) {
      K.held.set(p, { p, s: (at - K.t0) / 1000, v }); drawTake(at);
      if (!growing) { growing = true; requestAnimationFrame(grow); }
    }
  }
  function noteOff(p, at) {
    silence(p);
    piano.querySelector(`.key[data-p="${p}"]`)?.classList.remove("on");
    const h = K.held.get(p);
    if (K.recording && h) { K.held.delete(p); K.notes.push([p, h.s, Math.max(h.s + 0.02, (at - K.t0) / 1000), h.v]); drawTake(at); }
  }
  let growing = false;
  function grow() { // the held notes lengthen on the roll while they sound
    if (!K.recording || !K.held.size) { growing = false; return; }
    drawTake(performance.now());
    requestAnimationFrame(grow);
  }
  function drawTake(now) { // the take so far on variation 1's roll, the held notes up to now
    const live = window.maiaLive && window.maiaLive["1"];
    if (!live || !live.take) return;
    const t = (now - K.t0) / 1000, held = [...K.held.values()].map((h) => [h.p, h.s, Math.max(t, h.s + 0.02), h.v]);
    live.take([...K.notes, ...held]);
  }
  function record() {
    K.recording = true; K.t0 = performance.now(); K.notes = []; K.held.clear();
    recBtn.textContent = "■ Stop recording"; recBtn.classList.add("on"); recState.textContent = "recording…";
    piano.focus();
  }
  function stopRecording() {
    const now = performance.now();
    for (const p of [...K.held.keys()]) noteOff(p, now);
    K.recording = false;
    recBtn.textContent = "● Record"; recBtn.classList.remove("on");
    if (!K.notes.length) { recState.textContent = "nothing was played"; return; }
    const bpm = Math.min(300, Math.max(30, Number($("input.bpm").value) || 120));
    const notes = arrange(K.notes, bpm, $("input.quantise").checked);
    K.take = notes; K.taken++;
    window.maiaLive?.["1"]?.take?.(notes);
    recState.textContent = `${notes.length} notes: the prompt`;
    trigger("recorded", { midi: smf(notes, bpm) });
  }
  recBtn.addEventListener("click", () => (K.recording ? stopRecording() : record()));
  // the take from its first note (at 0), in onset order; quantised, each onset and end to the nearest 1/16
  function arrange(raw, bpm, quantise) {
    const step = 60 / bpm / 4, first = Math.min(...raw.map((n) => n[1]));
    const q = (t) => (quantise ? Math.round(t / step) * step : t);
    const out = raw.map(([p, s, e, v]) => {
      const s2 = q(s - first);
      return [p, s2, Math.max(q(e - first), s2 + (quantise ? step : 0.02)), v];
    });
    return out.sort((a, b) => a[1] - b[1] || a[0] - b[0]);
  }

  // ---- a Standard MIDI File (format 0, one track) ---------------------------------------------------
  function smf(notes, bpm) {
    const TPQ = 480, tick = (t) => Math.round(t * bpm / 60 * TPQ);
    const events = [];
    for (const [p, s, e, v] of notes) { events.push([tick(s), 1, [0x90, p, Math.max(1, v)]]); events.push([tick(e), 0, [0x80, p, 0]]); }
    events.sort((a, b) => a[0] - b[0] || a[1] - b[1]); // at one tick, note-offs first
    const vlq = (n) => { const b = [n & 0x7f]; while ((n >>= 7)) b.unshift((n & 0x7f) | 0x80); return b; };
    const us = Math.round(60e6 / bpm);
    const track = [0, 0xff, 0x51, 3, (us >> 16) & 255, (us >> 8) & 255, us & 255, 0, 0xff, 0x58, 4, 4, 2, 24, 8];
    let last = 0;
    for (const [t, , ev] of events) { track.push(...vlq(t - last), ...ev); last = t; }
    track.push(0, 0xff, 0x2f, 0);
    const n = track.length;
    const bytes = [0x4d, 0x54, 0x68, 0x64, 0, 0, 0, 6, 0, 0, 0, 1, TPQ >> 8, TPQ & 255,
      0x4d, 0x54, 0x72, 0x6b, (n >>> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255, ...track];
    let bin = "";
    for (let i = 0; i < bytes.length; i += 8192) bin += String.fromCharCode(...bytes.slice(i, i + 8192)); // a long take
    return btoa(bin);
  }

  // ---- the on-screen keyboard (mouse and touch) -----------------------------------------------------
  const pointers = new Map(); // pointer id -> the key it holds
  piano.addEventListener("pointerdown", (e) => {
    const key = e.target.closest(".key");
    if (!key) return;
    e.preventDefault(); piano.focus();
    try { piano.releasePointerCapture(e.pointerId); } catch (err) { /* not captured */ }
    const p = Number(key.dataset.p);
    pointers.set(e.pointerId, p); noteOn(p, 90, performance.now());
  });
  piano.addEventListener("pointerover", (e) => { // a glissando: the held pointer moves onto another key
    if (!pointers.has(e.pointerId) || !e.buttons) return;
    const key = e.target.closest(".key"), p = key && Number(key.dataset.p);
    if (!key || p === pointers.get(e.pointerId)) return;
    noteOff(pointers.get(e.pointerId), performance.now()); pointers.set(e.pointerId, p); noteOn(p, 90, performance.now());
  });
  const release = (e) => { if (pointers.has(e.pointerId)) { noteOff(pointers.get(e.pointerId), performance.now()); pointers.delete(e.pointerId); } };
  // released wherever the pointer is then (Chromium sends the piano a pointerleave as a key is pressed)
  for (const ev of ["pointerup", "pointercancel"]) window.addEventListener(ev, release);

  // ---- the computer keyboard: while the keyboard has focus, or "Play with the computer keys" is on --------
  const down = new Map(); // key code -> the pitch it plays (an octave change never strands a note)
  function typing(e) {
    const t = e.composedPath()[0];
    return t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName));
  }
  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e)) return;
    if (!(e.currentTarget === piano || $("input.capture").checked)) return;
    if (e.currentTarget === window && e.composedPath().includes(piano)) return; // the piano's own listener has it
    if (e.type === "keydown") {
      if (e.code === "KeyZ" || e.code === "KeyX") {
        K.octave = Math.max(-3, Math.min(3, K.octave + (e.code === "KeyZ" ? -1 : 1)));
        $(".octave").textContent = `octave ${K.octave > 0 ? "+" : ""}${K.octave}`;
      } else if (e.code in COMPUTER && !e.repeat && !down.has(e.code)) {
        const p = 60 + 12 * K.octave + COMPUTER[e.code];
        down.set(e.code, p); noteOn(p, 90, performance.now());
      } else if (!(e.code in COMPUTER)) return;
    } else if (down.has(e.code)) { noteOff(down.get(e.code), performance.now()); down.delete(e.code); } else return;
    e.preventDefault();
  }
  for (const target of [piano, window]) { target.addEventListener("keydown", onKey); target.addEventListener("keyup", onKey); }

  // ---- Web MIDI: a keyboard in, maia's notes out ----------------------------------------------------
  let access = null, input = null, output = null;
  function say(text) { why.textContent = text; why.hidden = !text; }
  if (!navigator.requestMIDIAccess) {
    say("No Web MIDI in this browser (Chrome, Edge and Opera have it): play with the on-screen or computer keyboard.");
    $(".bar.midi").hidden = true;
  }
  function fill(select, ports, none, keep) {
    const ids = [...ports.values()].filter((p) => p.state !== "disconnected");
    select.innerHTML = `<option value="">${none}</option>` + ids.map((p) => `<option value="${p.id}">${(p.name || p.id).replace(/</g, "&lt;")}</option>`).join("");
    select.disabled = false;
    if (keep && ids.some((p) => p.id === keep)) select.value = keep;
    else if (select === inSel && ids.length && !keep) select.value = ids[0].id; // one keyboard: use it
  }
  function ports() { // the dropdowns again, after connecting and on every plug and unplug
    fill(inSel, access.inputs, "no MIDI input", inSel.value);
    fill(outSel, access.outputs, "no MIDI out", outSel.value);
    useInput(); useOutput();
  }
  function useInput() {
    if (input) input.onmidimessage = null;
    input = (inSel.value && access.inputs.get(inSel.value)) || null;
    if (input) input.onmidimessage = onMidi;
  }
  function useOutput() {
    output = (outSel.value && access.outputs.get(outSel.value)) || null;
    sendBtn.disabled = !output;
    window.maiaMuted = !!output && $("input.mute").checked;
    window.dispatchEvent(new Event("maia-mute"));
  }
  // the sustain pedal (CC 64): a key released while it is down sounds, and is recorded, until it comes up
  const pedal = { down: false, keys: new Set() };
  function onMidi(e) {
    const [status, p, v] = e.data, type = status & 0xf0, at = e.timeStamp || performance.now();
    if (type === 0x90 && v > 0) { pedal.keys.delete(p); noteOn(p, v, at); }
    else if (type === 0x80 || type === 0x90) { if (pedal.down) pedal.keys.add(p); else noteOff(p, at); }
    else if (type === 0xb0 && p === 64) {
      pedal.down = v >= 64;
      if (!pedal.down) { for (const k of pedal.keys) noteOff(k, at); pedal.keys.clear(); }
    }
  }
  $("button.connect").addEventListener("click", async () => {
    try {
      access = await navigator.requestMIDIAccess();
    } catch (err) {
      say(`MIDI access was refused (${err && err.name ? err.name : err}): play with the on-screen or computer keyboard.`);
      return;
    }
    say("");
    access.onstatechange = () => ports();
    ports();
    $("button.connect").textContent = "MIDI connected";
  });
  inSel.addEventListener("change", useInput);
  outSel.addEventListener("change", useOutput);
  $("input.mute").addEventListener("change", useOutput);

  // maia's notes out (and the prompt's, if asked): variation 1's finished piece, note-ons and note-offs timed by Web MIDI's timestamps
  function send() {
    const live = window.maiaLive && window.maiaLive["1"];
    if (!output || !live) return;
    const withPrompt = $("input.mine").checked;
    const t0 = performance.now() + 100, notes = live.notes().filter((n) => n[4] === 1 || withPrompt);
    const events = [];
    for (const [p, s, e, v] of notes) { events.push([s, 1, [0x90, p, Math.max(1, v)]]); events.push([e, 0, [0x80, p, 0]]); }
    events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (const [t, , bytes] of events) output.send(bytes, t0 + t * 1000);
    K.sent++;
  }
  sendBtn.addEventListener("click", send);
  let sentFor = null;
  setInterval(() => { // a piece finished while an output is chosen: it goes out once
    const live = window.maiaLive && window.maiaLive["1"];
    if (!output || !live || !live.done || live.request === null || live.request === "take" || live.request === sentFor) return;
    sentFor = live.request; send();
  }, 200);
})();

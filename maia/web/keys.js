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
      <label title="Round the recording to 1/16 notes"><input type="checkbox" class="quantise" checked> quantise</label>
      <label title="Tempo of the recording (quarter notes per minute)">tempo <input type="number" class="bpm" value="120" min="30" max="300" step="1"></label>
      <label title="A click on each beat at the tempo, the downbeat accented (4/4); never recorded, never sent to MIDI out"><input type="checkbox" class="click"> metronome</label>
      <label title="One bar of clicks before the take (and a duet's first phrase) starts; the take starts on the bar line after it"><input type="checkbox" class="count-in"> count-in</label>
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
      <label title="Send what you play to MIDI out as you play it (off if your MIDI keyboard already sounds on that output)"><input type="checkbox" class="echo"> send my playing</label>
      <button class="send" disabled title="Send variation 1's finished notes to MIDI out again">Send again</button>
    </div>
    <div class="bar duet">
      <button class="duet-on" title="Play a phrase; when you stop, maia answers; then it is your turn again">Duet</button>
      <label title="Your phrase is over after a rest this long (counted to the next beat), with no key down">rest <select class="rest"><option value="1">1 beat</option><option value="2" selected>2 beats</option><option value="4">4 beats</option></select></label>
      <label title="The length of maia's answers">answer <input type="number" class="answer-bars" value="2" min="1" max="8" step="1"> bars</label>
      <label title="Lifting the sustain pedal also ends your phrase"><input type="checkbox" class="pedal-ends"> pedal up ends it</label>
      <button class="your-turn" disabled title="End your phrase now (Enter)">Your turn, maia</button>
      <a class="duet-midi" hidden download="duet.mid" title="The whole dialogue so far, yours and maia's">duet.mid</a>
      <span class="grow"></span>
      <span class="duet-state"></span>
    </div>
    <div class="why" hidden></div>
    <div class="piano" tabindex="0" aria-label="piano keyboard: click or use the computer keys">${keysHtml}</div>`;
  const $ = (sel) => root.querySelector(sel);
  const piano = $(".piano"), recBtn = $("button.rec"), recState = $(".rec-state"), why = $(".why");
  const inSel = $("select.midi-in"), outSel = $("select.midi-out"), sendBtn = $("button.send");

  const K = (window.maiaKeys = { recording: false, t0: 0, notes: [], held: new Map(), octave: 0, sent: 0,
    why: () => (why.hidden ? "" : why.textContent), taken: 0, clicks: [], echoed: 0, grid: false, bpm: 120 });
  const D = (window.maiaDuet = {}); // the duet's state (below)

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

  // ---- the metronome: a click on each beat from `origin` (performance.now() ms, a bar line), the downbeat
  // accented (4/4), with `countIn` beats before it. Clicks are scheduled a little ahead on the Web Audio clock
  // (a 25 ms timer looking 250 ms ahead, so a busy page does not make them late; the count-in's clicks, known
  // in advance, are all scheduled at once), straight to the speakers: they are never notes, so never recorded,
  // drawn or sent to MIDI out. During the count-in they always sound; after it, while *metronome* is ticked.
  // K.clicks keeps the last clicks for the tests.
  const clickBox = $("input.click"), countInBox = $("input.count-in");
  const bpmNow = () => Math.min(300, Math.max(30, Number($("input.bpm").value) || 120));
  function metronome(onBeat) {
    const m = { origin: null, bpm: 120, next: 0, timer: null, shown: -Infinity };
    // each beat is shown once, in order: a late timer (a busy page) never shows an earlier beat over a later one
    const show = (k) => { if (onBeat && k > m.shown) { m.shown = k; onBeat(k); } };
    m.start = (origin, bpm, countIn) => {
      m.stop(); Object.assign(m, { origin, bpm, next: 0, shown: -Infinity });
      const beat = 60000 / bpm, now = performance.now();
      for (let k = -countIn; k < 0; k++) {  // the count-in: on the audio clock now, whatever the timers do later
        click(origin + k * beat, k);
        if (onBeat) setTimeout(() => show(k), Math.max(0, origin + k * beat - now));
      }
      m.timer = setInterval(m.tick, 25); m.tick();
    };
    m.stop = () => { clearInterval(m.timer); m.timer = null; };
    m.tick = () => {
      const beat = 60000 / m.bpm, now = performance.now();
      for (let at = m.origin + m.next * beat; at < now + 250; at = m.origin + ++m.next * beat) {
        const k = m.next;
        if (at < now - 100) { // missed (a hidden tab, a busy page): skipped, not played late; the take's start is
          if (k === 0) show(k); // still shown ("recording…"), or the count-in's label would stay
          continue;
        }
        if (clickBox.checked) click(at, k);
        if (onBeat && k <= 0) setTimeout(() => show(k), Math.max(0, at - now)); // the count-in shown, beat by beat
      }
    };
    return m;
  }
  function click(at, k) {
    const a = audio();
    const accent = ((k % 4) + 4) % 4 === 0;
    K.clicks.push({ beat: k, at, accent });
    if (K.clicks.length > 256) K.clicks.shift();
    if (!a) return;
    const t = a.currentTime + Math.max(0, at - performance.now()) / 1000;
    const o = a.createOscillator(), g = a.createGain();
    o.type = "square"; o.frequency.value = accent ? 1568 : 1047; // G6 on the downbeat, C6 on the others
    g.gain.setValueAtTime(0, t); g.gain.linearRampToValueAtTime(accent ? 0.22 : 0.12, t + 0.002);
    g.gain.exponentialRampToValueAtTime(0.001, t + 0.045);
    o.connect(g); g.connect(a.destination); o.start(t); o.stop(t + 0.06);
  }
  // a take or a duet on the metronome's grid is anchored at a bar line, not at its first note: the first note
  // played (`s` seconds from `origin`) moves the origin by whole bars, so that it falls in the first bar (a
  // note up to a 1/32 early counts as on the bar line; a pickup played in the count-in keeps its bar)
  function barsBefore(s, bpm) {
    const bar = 4 * 60 / bpm;
    return Math.floor((s + 60 / bpm / 8) / bar) * bar;
  }

  // ---- playing and recording ------------------------------------------------------------------------
  function noteOn(p, v, at) {
    if (p < 0 || p > 127) return;
    if (K.held.has(p) || D.held.has(p) || voices.has(p)) noteOff(p, at); // struck again while it sounds (the pedal)
    echo(p, v);
    if (!(window.maiaMuted && echoBox.checked)) sound(p, v); // sent to the output instead, with the page muted
    piano.querySelector(`.key[data-p="${p}"]`)?.classList.add("on");
    if (D.on) duetOn(p, v, at);
    if (K.recording) {
      if (K.grid && !K.notes.length && !K.held.size) K.t0 += 1000 * barsBefore((at - K.t0) / 1000, K.bpm); // the first note
      K.held.set(p, { p, s: (at - K.t0) / 1000, v }); drawTake(at);
      if (!growing) { growing = true; requestAnimationFrame(grow); }
    }
  }
  function noteOff(p, at) {
    echo(p, 0);
    silence(p);
    piano.querySelector(`.key[data-p="${p}"]`)?.classList.remove("on");
    if (D.on) duetOff(p, at);
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
    live.take([...K.notes, ...held], K.grid ? 60 / K.bpm : undefined);
  }
  // With the metronome or the count-in, the take is on their grid: it starts on the bar line where the count-in
  // ends (K.t0; Record's press without a count-in), or a whole number of bars later (before the first bar played).
  const recMetro = metronome((k) => { if (K.recording) recState.textContent = k < 0 ? `count-in ${k + 5}` : "recording…"; });
  function record() {
    K.bpm = bpmNow(); K.grid = clickBox.checked || countInBox.checked;
    const countIn = countInBox.checked ? 4 : 0;
    K.recording = true; K.t0 = performance.now() + (countIn ? 100 + countIn * 60000 / K.bpm : 0); K.notes = []; K.held.clear();
    recBtn.textContent = "■ Stop recording"; recBtn.classList.add("on"); recState.textContent = countIn ? "count-in" : "recording…";
    if (K.grid) recMetro.start(K.t0, K.bpm, countIn);
    piano.focus();
  }
  clickBox.addEventListener("change", () => { // ticked during a take: the take goes on the grid from Record's press
    if (K.recording && clickBox.checked && !K.grid) { K.grid = true; recMetro.start(K.t0, K.bpm, 0); }
  });
  function stopRecording() {
    const now = performance.now();
    for (const p of [...K.held.keys()]) noteOff(p, now);
    K.recording = false; recMetro.stop();
    recBtn.textContent = "● Record"; recBtn.classList.remove("on");
    if (!K.notes.length) { recState.textContent = "nothing was played"; return; }
    const bpm = K.grid ? K.bpm : bpmNow();
    const notes = arrange(K.notes, bpm, $("input.quantise").checked, K.grid);
    K.take = notes; K.taken++;
    window.maiaLive?.["1"]?.take?.(notes);
    recState.textContent = `${notes.length} notes: the prompt`;
    trigger("recorded", { midi: smf(notes, bpm) });
  }
  recBtn.addEventListener("click", () => (K.recording ? stopRecording() : record()));
  // the take from its first note (at 0), or on the grid from its origin (a note a little early at 0), in onset
  // order; quantised, each onset and end to the nearest 1/16
  function arrange(raw, bpm, quantise, grid = false) {
    const step = 60 / bpm / 4, on = Math.min(...raw.map((n) => n[1])), first = grid ? barsBefore(on, bpm) : on;
    const q = (t) => (quantise ? Math.round(t / step) * step : t);
    const out = raw.map(([p, s, e, v]) => {
      const s2 = Math.max(0, q(s - first));
      return [p, s2, Math.max(q(e - first), s2 + (quantise ? step : 0.02)), v];
    });
    return out.sort((a, b) => a[1] - b[1] || a[0] - b[0]);
  }

  // ---- a Standard MIDI File (format 0, one track) ---------------------------------------------------
  function smf(notes, bpm) {
    const bytes = smfBytes(notes, bpm);
    let bin = "";
    for (let i = 0; i < bytes.length; i += 8192) bin += String.fromCharCode(...bytes.slice(i, i + 8192)); // a long take
    return btoa(bin);
  }
  function smfBytes(notes, bpm) {
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
    return bytes;
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
      if (e.code === "Enter" && D.on) phraseOver("key", performance.now());
      else if (e.code === "KeyZ" || e.code === "KeyX") {
        K.octave = Math.max(-3, Math.min(3, K.octave + (e.code === "KeyZ" ? -1 : 1)));
        $(".octave").textContent = `octave ${K.octave > 0 ? "+" : ""}${K.octave}`;
      } else if (e.code in COMPUTER && !e.repeat && !down.has(e.code)) {
        const p = 60 + 12 * K.octave + COMPUTER[e.code];
        down.set(e.code, p); noteOn(p, 90, performance.now());
      } else if (!(e.code in COMPUTER) && !(e.code === "Enter" && D.on)) return;
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
  // "send my playing": each note you play goes to the output as you play it (pedal-held keys are released when
  // the pedal comes up, as the page hears them); a key struck again while sounding is released first, and
  // unticking it, or changing the output, releases what is still sounding there, so no note hangs
  const echoBox = $("input.echo"), echoing = new Set();
  function echo(p, v) {
    if (!output || !echoBox.checked) return;
    if (echoing.has(p)) { output.send([0x80, p, 0]); echoing.delete(p); K.echoed++; }
    if (v > 0) { output.send([0x90, p, Math.max(1, Math.min(127, v))]); echoing.add(p); K.echoed++; }
  }
  function echoOff() {
    for (const p of echoing) if (output) output.send([0x80, p, 0]);
    echoing.clear();
  }
  echoBox.addEventListener("change", () => { if (!echoBox.checked) echoOff(); useOutput(); });
  function useOutput() {
    const next = (outSel.value && access.outputs.get(outSel.value)) || null;
    if (next !== output) echoOff();
    output = next;
    sendBtn.disabled = !output;
    window.maiaMuted = !!output && $("input.mute").checked;
    if (window.maiaMuted && echoBox.checked) for (const p of [...voices.keys()]) silence(p); // sounding there now
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
      if (!pedal.down) {
        for (const k of pedal.keys) noteOff(k, at);
        pedal.keys.clear();
        if (D.on && $("input.pedal-ends").checked) phraseOver("pedal", at);
      }
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

  // ---- the duet: you play a phrase, maia answers on the next beat, then it is your turn again ---------------
  // The dialogue's clock starts at your first note; beats follow at the tempo above. Your phrase is over after
  // a rest (counted to a beat: the first beat at least `rest` beats after your last note-off, all keys up), when
  // the sustain pedal comes up (if asked), or on Enter / "Your turn, maia". The phrase goes to the page's own
  // server (POST maia/duet/turn, maia/duet.py) LEAD seconds before the beat maia comes in on; maia's notes
  // stream back as they are sampled and are scheduled from that beat on the page's synth and MIDI out, drawn
  // orange on the roll.
  // window.maiaDuet holds what the tests and bench/duet_latency.py read: per turn, the time the phrase's end
  // was detected and the time maia's first note sounds (performance.now(), ms).
  const LEAD = 0.25; // s between sending a phrase and the beat maia comes in on: maia's time to react
  const duetBtn = $("button.duet-on"), turnBtn = $("button.your-turn"), duetState = $(".duet-state"), duetLink = $("a.duet-midi");
  Object.assign(D, { on: false, id: null, ready: false, t0: null, bpm: 120, phrase: [], held: new Map(), notes: [],
    answering: false, answerEnd: 0, timer: null, turns: [], errors: [], lastOff: null, shift: 0, maiaHeld: new Map() });
  const beatS = () => 60 / D.bpm;
  const clock = (at) => (at - D.t0) / 1000; // performance.now() ms -> the dialogue's seconds
  // With the metronome or the count-in the dialogue's clock is their grid: it starts on the bar line where the
  // count-in ends (or when maia is ready), moved on by whole bars to the first bar you play in; without them,
  // at your first note. The metronome goes on through maia's answers.
  const duetMetro = metronome((k) => { if (D.on && !D.notes.length && !D.held.size) duetState.textContent = k < 0 ? `count-in ${k + 5}` : "play a phrase: maia answers when you stop"; });
  function duetOn(p, v, at) {
    if (D.t0 === null) { D.t0 = at; duetMetro.start(D.t0, D.bpm, 0); }
    else if (D.grid && !D.notes.length && !D.held.size) D.t0 += 1000 * barsBefore(clock(at), D.bpm); // your first note
    clearTimeout(D.timer);
    D.held.set(p, { p, s: clock(at), v });
    drawDuet();
  }
  function duetOff(p, at) {
    const h = D.held.get(p);
    if (!h) return;
    D.held.delete(p);
    const n = [p, h.s, Math.max(h.s + 0.02, clock(at)), h.v, 0];
    D.phrase.push(n); D.notes.push(n); D.lastOff = n[2];
    drawDuet();
    armRest();
  }
  function armRest() { // the phrase ends at the first beat >= the last note-off + the rest; sent LEAD before it
    clearTimeout(D.timer);
    if (!D.on || !D.phrase.length || D.held.size || pedal.keys.size || D.answering) return;
    const rest = Number($("select.rest").value) * beatS();
    const from = Math.max(D.lastOff + rest, D.answerEnd) + LEAD;
    const beat = Math.ceil(from / beatS() - 1e-9);
    D.timer = setTimeout(() => sendPhrase(beat, "rest"), Math.max(0, D.t0 + (beat * beatS() - LEAD) * 1000 - performance.now()));
  }
  function phraseOver(why, at) { // the pedal or the key: maia comes in on the first beat at least LEAD away
    if (!D.on || !D.phrase.length || D.answering) return;
    for (const p of [...D.held.keys()]) duetOff(p, at); // keys still down end here
    sendPhrase(Math.ceil((Math.max(clock(performance.now()), D.answerEnd) + LEAD) / beatS() - 1e-9), why);
  }
  function sendPhrase(beat, why) {
    clearTimeout(D.timer);
    if (!D.ready || D.answering || !D.phrase.length) return;
    const detected = performance.now();
    const ask = { type: "turn", notes: D.phrase.map(([p, s, e, v]) => [p, Math.max(0, s), Math.max(0, e), v]), beat, bars: Number($("input.answer-bars").value) || 2,
      quantise: $("input.quantise").checked, ...steering() };
    D.turns.push({ why, beat, detected, at: D.t0 + beat * beatS() * 1000, first: null, notes: 0, done: false, reply: null,
      played: D.phrase });
    D.answering = true; D.shift = 0; D.phrase = [];
    duetState.textContent = "maia is answering…";
    stream("turn", { duet: D.id, ...ask }, D.id);
  }
  // POST to the page's own server (maia/duet.py); an answer comes back one JSON line per note event as sampled
  const duetUrl = (what) => new URL(`maia/duet/${what}`, location.href.split(/[?#]/)[0]);
  async function stream(what, body, id) {
    try {
      const r = await fetch(duetUrl(what), { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
      const reader = r.body.getReader(), text = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (value) buffer += text.decode(value, { stream: true });
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0 || (done && buffer.trim())) {
          const line = nl >= 0 ? buffer.slice(0, nl) : buffer;
          buffer = nl >= 0 ? buffer.slice(nl + 1) : "";
          if (line.trim() && D.id === id) onAnswer(JSON.parse(line));
        }
        if (done) break;
      }
    } catch (err) {
      if (D.id === id) onAnswer({ type: "error", message: `maia cannot be reached (${err && err.message ? err.message : err}): is the server running?` });
    }
  }
  function onAnswer(m) {
    if (!D.ready) { started(m); return; }
    const turn = D.turns[D.turns.length - 1];
    if (m.type === "error") { // refused: one line; the phrase stays yours and the next one joins it
      D.errors.push(m.message); say(m.message);
      if (turn && !turn.done) { D.answering = false; D.turns.pop(); D.phrase = [...turn.played, ...D.phrase]; duetState.textContent = "your turn"; }
      return;
    }
    if (!turn || turn.done) return;
    if (m.type === "on") {
      let at = D.t0 + m.t * 1000 + D.shift;
      const now = performance.now();
      if (turn.first === null) { // maia's first note: on its beat, or now if it comes late (the answer keeps its rhythm)
        turn.arrived = now;
        if (at < now) { D.shift = now - at; at = now; }
        turn.first = at;
      } else if (at < now) at = now;
      maiaNote(m.p, m.v, at); turn.notes++;
      D.maiaHeld.set(m.p, D.notes.length); D.notes.push([m.p, m.t, m.t + 0.05, m.v, 1]);
    } else if (m.type === "off") {
      maiaRelease(m.p, Math.max(performance.now(), D.t0 + m.t * 1000 + D.shift));
      const i = D.maiaHeld.get(m.p);
      if (i !== undefined) { D.notes[i][2] = m.t; D.maiaHeld.delete(m.p); }
    } else if (m.type === "done") {
      turn.done = true; turn.reply = m;
      const played = new Set(turn.played); // this phrase as played is replaced by the phrase as it joined the dialogue
      D.notes = D.notes.filter((n) => !played.has(n));
      for (const n of m.yours) D.notes.push([...n, 0]);
      D.notes.sort((a, b) => a[1] - b[1] || a[0] - b[0]);
      D.answerEnd = m.end;
      setTimeout(() => { D.answering = false; duetState.textContent = `turn ${m.turn}: your turn`; armRest(); },
        Math.max(0, D.t0 + m.end * 1000 + D.shift - performance.now()));
      const url = URL.createObjectURL(new Blob([new Uint8Array(smfBytes(D.notes, D.bpm))], { type: "audio/midi" }));
      if (duetLink.href.startsWith("blob:")) URL.revokeObjectURL(duetLink.href);
      duetLink.href = url; duetLink.hidden = false;
    }
    drawDuet();
  }
  // maia's notes: scheduled on the Web Audio clock (or MIDI out's timestamps) at their performance.now() time
  function maiaNote(p, v, at) {
    if (output) output.send([0x90, p, Math.max(1, v)], at);
    const a = audio();
    if (!a || window.maiaMuted) return;
    const t = a.currentTime + Math.max(0, at - performance.now()) / 1000, f = 440 * 2 ** ((p - 69) / 12), peak = 0.05 + 0.25 * v / 127;
    const g = a.createGain();
    g.gain.setValueAtTime(0, t); g.gain.linearRampToValueAtTime(peak, t + 0.005); g.gain.exponentialRampToValueAtTime(peak * 0.35, t + 0.8);
    g.connect(a.destination);
    const oscs = [["triangle", 1, 1], ["sine", 2, 0.3]].map(([type, mult, level]) => {
      const o = a.createOscillator(), og = a.createGain();
      o.type = type; o.frequency.value = f * mult; og.gain.value = level; o.connect(og); og.connect(g); o.start(t);
      return o;
    });
    D.voices = D.voices || new Map();
    D.voices.set(p, { g, oscs });
  }
  function maiaRelease(p, at) {
    if (output) output.send([0x80, p, 0], at);
    const vo = D.voices && D.voices.get(p);
    if (!vo || !ac) return;
    D.voices.delete(p);
    const t = ac.currentTime + Math.max(0, at - performance.now()) / 1000;
    if (vo.g.gain.cancelAndHoldAtTime) vo.g.gain.cancelAndHoldAtTime(t); else vo.g.gain.cancelScheduledValues(t);
    vo.g.gain.linearRampToValueAtTime(0, t + 0.12);
    for (const o of vo.oscs) o.stop(t + 0.15);
  }
  let duetDrawing = false;
  function drawDuet() { // the dialogue on variation 1's roll: yours blue, maia's orange, held notes growing
    const live = window.maiaLive && window.maiaLive["1"];
    if (!live || !live.take || D.t0 === null) return;
    const now = clock(performance.now()), held = [...D.held.values()].map((h) => [h.p, h.s, Math.max(now, h.s + 0.02), h.v, 0]);
    live.take([...D.notes, ...held], beatS());
    if (!duetDrawing && D.on && (D.held.size || D.answering)) {
      duetDrawing = true;
      requestAnimationFrame(() => { duetDrawing = false; if (D.held.size || D.answering) drawDuet(); });
    }
  }
  // the page's settings for maia's turns: the model, composer, sampling and steering (Gradio's own inputs)
  function pageValue(label, fallback) { // a slider's number box, a dropdown's or a number's input, by its label
    const input = document.querySelector(`input[aria-label="number input for ${label}"]`) || document.querySelector(`input[aria-label="${label}"]`);
    return input ? input.value : fallback;
  }
  const composerName = (shown) => (/^any\b/i.test(shown) ? "unknown" : shown.toLowerCase().replace(/ /g, "_")); // "Any (unknown)", "Bach"
  function keyNumber(shown, fallback) { // the register's "C♯4" (or a MIDI key number) -> the MIDI key
    const m = /^([A-G])([♯#♭b]?)(-?\d)$/.exec(String(shown).trim());
    if (!m) return Number.isFinite(Number(shown)) && String(shown).trim() !== "" ? Number(shown) : fallback;
    return 12 * (Number(m[3]) + 1) + { C: 0, D: 2, E: 4, F: 5, G: 7, A: 9, B: 11 }[m[1]] + ("♯#".includes(m[2]) && m[2] ? 1 : m[2] ? -1 : 0);
  }
  function steering() {
    const key = pageValue("Key lock", "off");
    return { key: key === "off" ? "the prompt's key" : key, key_strength: Number(pageValue("Key strength", 1)),
      lowest: keyNumber(pageValue("Lowest key", 21), 21), highest: keyNumber(pageValue("Highest key", 108), 108),
      density: Number(pageValue("Note density", 1)) };
  }
  function start() {
    D.bpm = Math.min(300, Math.max(30, Number($("input.bpm").value) || 120));
    Object.assign(D, { on: true, ready: false, t0: null, phrase: [], held: new Map(), notes: [], answering: false,
      answerEnd: 0, turns: [], errors: [], lastOff: null, shift: 0, grid: clickBox.checked || countInBox.checked });
    duetBtn.textContent = "■ End the duet"; duetBtn.classList.add("on"); turnBtn.disabled = false;
    duetState.textContent = "starting…"; duetLink.hidden = true;
    const id = (D.id = {}); // this duet, until the server names it
    stream("start", { model: pageValue("Model", ""), composer: composerName(pageValue("Composer", "unknown")), bpm: D.bpm,
      top_k: Number(pageValue("Top-k", 20)), temperature: Number(pageValue("Temperature", 1)), seed: Number(pageValue("Seed", 0)) }, id);
  }
  function started(m) {
    if (m.type === "ready") {
      D.id = m.duet; D.ready = true; say(""); duetState.textContent = "play a phrase: maia answers when you stop"; piano.focus();
      const countIn = countInBox.checked ? 4 : 0;
      if (D.grid && D.t0 === null) { D.t0 = performance.now() + (countIn ? 100 + countIn * 60000 / D.bpm : 0); duetMetro.start(D.t0, D.bpm, countIn); }
    }
    else { D.errors.push(m.message); say(m.message); stop(false); }
  }
  function stop(finish = true) {
    clearTimeout(D.timer); duetMetro.stop();
    if (D.ready) fetch(duetUrl("end"), { method: "POST", body: JSON.stringify({ duet: D.id }) }).catch(() => {});
    D.on = false; D.ready = false; D.id = null;
    duetBtn.textContent = "Duet"; duetBtn.classList.remove("on"); turnBtn.disabled = true;
    const done = D.turns.filter((t) => t.done).length;
    duetState.textContent = done ? `a duet of ${done} turn${done > 1 ? "s" : ""}` : "";
    // the whole dialogue becomes the page's piece (its files, sheet music and a place in the history), with
    // maia's answers as [from, to] seconds so that its notes stay orange and yours blue
    if (finish && done) trigger("duet", { midi: smf(D.notes, D.bpm), turns: D.turns.filter((t) => t.done).map((t) => [t.beat * beatS(), t.reply.end]) });
  }
  duetBtn.addEventListener("click", () => (D.on ? stop() : start()));
  turnBtn.addEventListener("click", () => phraseOver("key", performance.now()));
})();

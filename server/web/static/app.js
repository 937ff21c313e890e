// qbdi's browser control surface. Plain JavaScript, no build step, nothing fetched from
// anywhere but the server that served this page. The server sends "hello" (its controls,
// from the one OSC address table), then every OSC message it sends, and each answered bar;
// the page sends OSC messages as JSON, which the server validates like any OSC message.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const IR_BEATS = 64;          // beats of information rate on the plot
  const SEND_EVERY_MS = 50;     // a dragged control sends at most 20 messages a second
  const KNOB_DRAG_PX = 240;     // a drag this long turns the knob through its whole range

  let ws = null;
  let controls = {};            // address -> control description (from hello)
  let knobSteps = [0];          // the bits knob's values, bottom to top
  let knobIndex = 0;            // where the knob points
  let knobHeld = false;         // the performer is turning it: the server's value waits
  let lastBar = null;
  const updaters = {};          // address -> function(args) showing the server's value
  const ir = {in: new Map(), out: new Map()};  // beat -> bits

  // -- connection ----------------------------------------------------------------------
  function connect() {
    const url = new URL("ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(url);
    ws.onopen = () => { setLink(true); send("/qbdi/status", []); };
    ws.onclose = () => { setLink(false); setTimeout(connect, 1000); };
    ws.onmessage = (event) => receive(JSON.parse(event.data));
  }

  let asked = null;  // the address of the last command: its reply is shown below

  function send(address, args) {
    asked = address;
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({osc: address, args: args}));
    }
  }

  function setLink(on) {
    const link = $("link");
    link.textContent = on ? "connected" : "offline";
    link.className = "link " + (on ? "on" : "off");
  }

  function say(text, bad) {
    const footer = $("message");
    footer.textContent = text;
    footer.className = bad ? "bad" : "good";
  }

  // -- what the server says --------------------------------------------------------------
  function receive(message) {
    if (message.type === "hello") setUp(message);
    else if (message.type === "osc") onOsc(message.address, message.args, !!message.reply);
    else if (message.type === "bar") { lastBar = message; drawRoll(); }
    else if (message.type === "refused") say("refused: " + message.reason, true);
  }

  function onOsc(address, args, reply) {
    switch (address) {
      case "/qbdi/error":
        say((reply ? "refused: " : "server: ") + args[0], true);
        return;
      case "/qbdi/bar":
        setBar(args[0]);
        $("compute").textContent = Number(args[1]).toFixed(2);
        return;
      case "/qbdi/overrun":
        $("overruns").textContent = args[2];
        return;
      case "/qbdi/heartbeat":
        setBar(args[1]);
        return;
      case "/qbdi/status":
        showStatus(args);
        return;
      case "/qbdi/ir/in":
      case "/qbdi/ir/out":
        addIr(address.endsWith("/in") ? ir.in : ir.out, args);
        return;
    }
    if (updaters[address]) {
      updaters[address](args);
      if (reply && address === asked) say(shortName(address) + " → " + args.join(" "), false);
    }
  }

  function setBar(bar) {
    $("bar").textContent = bar;
  }

  function showStatus(pairs) {
    const counts = {};
    for (let i = 0; i + 1 < pairs.length; i += 2) counts[pairs[i]] = pairs[i + 1];
    if (counts.bar !== undefined) setBar(counts.bar);
    if (counts.overruns !== undefined) $("overruns").textContent = counts.overruns;
    if (counts.compute_ms !== undefined) $("compute").textContent =
      Number(counts.compute_ms).toFixed(2);
  }

  // -- controls, built from the server's table -------------------------------------------
  function setUp(hello) {
    controls = {};
    for (const control of hello.controls) controls[control.address] = control;
    knobSteps = hello.knob_bits;
    setUpKnob();
    choiceButtons($("mode"), "/qbdi/mode");
    choiceButtons($("presets"), "/qbdi/preset", (name) => say("loading preset " + name));
    $("model-box").hidden = !controls["/qbdi/model"];  // a server with one model only
    choiceButtons($("models"), "/qbdi/model");
    setUpTempo();
    setUpThreshold();
    $("panic").onclick = () => { send("/qbdi/panic", []); say("panic sent"); };
    const irBox = $("ir-enable");
    irBox.onchange = () => send("/qbdi/ir/enable", [irBox.checked ? 1 : 0]);
    updaters["/qbdi/ir/enable"] = (args) => { irBox.checked = !!args[0]; };
    const shown = ["/qbdi/bits", "/qbdi/mode", "/qbdi/bpm", "/qbdi/threshold",
                   "/qbdi/preset", "/qbdi/model", "/qbdi/ir/enable", "/qbdi/panic",
                   "/qbdi/status"];
    const more = $("more");
    more.replaceChildren();
    for (const control of hello.controls) {
      if (!shown.includes(control.address) && control.arg) more.append(setting(control));
    }
    resize();
  }

  function shortName(address) { return address.replace("/qbdi/", ""); }

  function choiceButtons(box, address, onPick) {
    box.replaceChildren();
    const control = controls[address];
    if (!control || !control.arg) return;
    const buttons = control.arg.vals.map((value) => {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = value;
      button.title = control.doc;
      button.onclick = () => { send(address, [value]); if (onPick) onPick(value); };
      box.append(button);
      return button;
    });
    updaters[address] = (args) => buttons.forEach((b) =>
      b.classList.toggle("on", b.textContent === String(args[0])));
  }

  function setUpTempo() {
    const input = $("tempo");
    const arg = controls["/qbdi/bpm"].arg;
    input.placeholder = arg.low + "–" + arg.high;
    $("tempo-form").onsubmit = (event) => {
      event.preventDefault();
      send("/qbdi/bpm", [Number(input.value)]);  // the server checks the range
    };
    updaters["/qbdi/bpm"] = (args) => {
      $("tempo-now").textContent = Number(args[0]).toFixed(1);
      if (document.activeElement !== input) input.value = args[0];
    };
  }

  function setUpThreshold() {
    const slider = $("threshold");
    const arg = controls["/qbdi/threshold"].arg;
    const step = 0.01;
    slider.min = arg.low + (arg.low_open ? step : 0);
    slider.max = arg.high - (arg.high_open ? step : 0);
    slider.step = step;
    const sendLater = throttledLatest(() => send("/qbdi/threshold", [Number(slider.value)]));
    slider.oninput = () => {
      $("threshold-value").textContent = Number(slider.value).toFixed(2);
      sendLater();
    };
    slider.onchange = () => sendLater.flush();
    updaters["/qbdi/threshold"] = (args) => {
      slider.value = args[0];
      $("threshold-value").textContent = Number(args[0]).toFixed(2);
    };
  }

  // A generic setting: a choice list, or a number (with any words it also takes).
  function setting(control) {
    const box = document.createElement("div");
    box.className = "setting";
    const label = document.createElement("label");
    label.textContent = shortName(control.address);
    label.title = control.doc;
    const row = document.createElement("div");
    row.className = "row";
    box.append(label, row);
    const arg = control.arg;
    if (arg.vals.length) {
      const select = document.createElement("select");
      select.setAttribute("aria-label", shortName(control.address));
      for (const value of arg.vals) select.append(new Option(value, value));
      select.onchange = () => send(control.address,
        [arg.tag === "s" ? select.value : Number(select.value)]);
      updaters[control.address] = (args) => { select.value = String(args[0]); };
      row.append(select);
      return box;
    }
    const input = document.createElement("input");
    input.type = "number";
    input.step = "any";
    input.setAttribute("aria-label", shortName(control.address));
    const set = document.createElement("button");
    set.type = "button";
    set.textContent = "set";
    set.onclick = () => send(control.address, [Number(input.value)]);
    row.append(input, set);
    for (const word of arg.also) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = word;
      button.onclick = () => send(control.address, [word]);
      row.append(button);
    }
    updaters[control.address] = (args) => {
      if (document.activeElement !== input && typeof args[0] === "number") {
        input.value = args[0];
      }
    };
    return box;
  }

  // -- the bits knob -----------------------------------------------------------------------
  function setUpKnob() {
    const knob = $("knob");
    knob.setAttribute("aria-valuemax", knobSteps.length - 1);
    const sendLater = throttledLatest(() => send("/qbdi/bits", [knobSteps[knobIndex]]));
    const turnTo = (index) => {
      knobIndex = Math.max(0, Math.min(knobSteps.length - 1, Math.round(index)));
      drawKnob(knobSteps[knobIndex]);
      sendLater();
    };
    let start = null;
    knob.onpointerdown = (event) => {
      knob.setPointerCapture(event.pointerId);
      knobHeld = true;
      start = {y: event.clientY, x: event.clientX, index: knobIndex};
    };
    knob.onpointermove = (event) => {
      if (!start) return;
      const moved = (start.y - event.clientY) + (event.clientX - start.x) * 0.5;
      turnTo(start.index + moved * (knobSteps.length - 1) / KNOB_DRAG_PX);
    };
    knob.onpointerup = knob.onpointercancel = () => {
      start = null;
      knobHeld = false;
      sendLater.flush();
    };
    knob.onwheel = (event) => {
      event.preventDefault();
      turnTo(knobIndex + (event.deltaY < 0 ? 1 : -1) * (event.shiftKey ? 16 : 1));
    };
    knob.onkeydown = (event) => {
      const big = Math.max(1, Math.round(knobSteps.length / 32));
      const moves = {ArrowUp: 1, ArrowRight: 1, ArrowDown: -1, ArrowLeft: -1,
                     PageUp: big, PageDown: -big};
      if (event.key in moves) turnTo(knobIndex + moves[event.key]);
      else if (event.key === "Home") turnTo(0);
      else if (event.key === "End") turnTo(knobSteps.length - 1);
      else return;
      event.preventDefault();
    };
    $("bits-up").onclick = () => turnTo(knobIndex + 1);
    $("bits-down").onclick = () => turnTo(knobIndex - 1);
    $("bits-zero").onclick = () => send("/qbdi/bits", [0]);
    $("bits-full").onclick = () => send("/qbdi/bits", ["full"]);
    updaters["/qbdi/bits"] = (args) => {
      if (knobHeld) return;  // the performer's hand wins until released
      knobIndex = nearestStep(args[0]);
      drawKnob(args[0]);
    };
    drawKnob(knobSteps[knobIndex]);
  }

  // Sends the latest value now, then at most every SEND_EVERY_MS; flush() sends at once.
  function throttledLatest(action) {
    let timer = null;
    let pending = false;
    const fire = () => { pending = false; action(); };
    const run = () => {
      pending = true;
      if (timer !== null) return;
      fire();
      timer = setTimeout(function tick() {
        timer = null;
        if (pending) fire();
      }, SEND_EVERY_MS);
    };
    run.flush = () => { if (pending) fire(); };
    return run;
  }

  function nearestStep(value) {
    const exact = knobSteps.indexOf(value);
    if (exact >= 0) return exact;
    if (typeof value !== "number") return knobSteps.length - 1;
    let best = 0;
    knobSteps.forEach((step, i) => {
      if (typeof step === "number" && step <= value) best = i;
    });
    return best;
  }

  function drawKnob(value) {
    const knob = $("knob");
    knob.setAttribute("aria-valuenow", knobIndex);
    knob.setAttribute("aria-valuetext", value + (value === "full" ? "" : " bits"));
    $("bits-value").textContent = value;
    const canvas = $("knob-canvas");
    const ctx = fit(canvas);
    const w = canvas.width, h = canvas.height, r = Math.min(w, h) * 0.42;
    const from = 0.75 * Math.PI, sweep = 1.5 * Math.PI;
    const at = from + sweep * knobIndex / Math.max(1, knobSteps.length - 1);
    ctx.clearRect(0, 0, w, h);
    ctx.lineCap = "round";
    ctx.lineWidth = r * 0.16;
    ctx.strokeStyle = "#343a46";
    ctx.beginPath(); ctx.arc(w / 2, h / 2, r, from, from + sweep); ctx.stroke();
    ctx.strokeStyle = "#f0a23b";
    ctx.beginPath(); ctx.arc(w / 2, h / 2, r, from, at); ctx.stroke();
    ctx.fillStyle = "#e8eaef";
    ctx.beginPath();
    ctx.arc(w / 2 + Math.cos(at) * r, h / 2 + Math.sin(at) * r, r * 0.1, 0, 2 * Math.PI);
    ctx.fill();
  }

  // -- plots -------------------------------------------------------------------------------
  function fit(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.round(canvas.clientWidth * ratio);
    const height = Math.round(canvas.clientHeight * ratio);
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    return canvas.getContext("2d");
  }

  function addIr(side, args) {
    const bar = args[0], values = args.slice(1);
    values.forEach((bits, k) => side.set(bar * 4 + k * 4 / values.length, bits));
    for (const beat of side.keys()) if (side.size > IR_BEATS * 2) side.delete(beat);
    drawIr();
  }

  function drawIr() {
    const canvas = $("ir-plot");
    const ctx = fit(canvas);
    const w = canvas.width, h = canvas.height, pad = 6 * (window.devicePixelRatio || 1);
    ctx.clearRect(0, 0, w, h);
    const beats = [...ir.in.keys(), ...ir.out.keys()];
    if (!beats.length) return;
    const last = Math.max(...beats), first = last - IR_BEATS;
    const top = Math.max(1, ...ir.in.values(), ...ir.out.values());
    const x = (beat) => pad + (w - 2 * pad) * (beat - first) / IR_BEATS;
    const y = (bits) => h - pad - (h - 2 * pad) * bits / top;
    ctx.strokeStyle = "#343a46";
    ctx.lineWidth = 1;
    for (let beat = Math.ceil(first / 4) * 4; beat <= last; beat += 4) {
      ctx.beginPath(); ctx.moveTo(x(beat), pad); ctx.lineTo(x(beat), h - pad); ctx.stroke();
    }
    for (const [side, colour] of [[ir.in, "#4fa3f7"], [ir.out, "#f0a23b"]]) {
      const points = [...side.entries()].filter(([b]) => b >= first).sort((a, b) => a[0] - b[0]);
      ctx.strokeStyle = colour;
      ctx.lineWidth = 2 * (window.devicePixelRatio || 1);
      ctx.beginPath();
      points.forEach(([beat, bits], i) =>
        i ? ctx.lineTo(x(beat), y(bits)) : ctx.moveTo(x(beat), y(bits)));
      ctx.stroke();
    }
    ctx.fillStyle = "#9aa3b2";
    ctx.font = `${12 * (window.devicePixelRatio || 1)}px system-ui`;
    ctx.fillText(top.toFixed(1) + " bits", pad, pad + 12 * (window.devicePixelRatio || 1));
  }

  // The notes of one bar from the server's rows [pitch, sounding, articulated] (bit k of a
  // mask: step k), as qbdi.bars.bars_to_notes reads a bar: a note starts where it is
  // articulated, or where it sounds after a step of silence, and lasts while it sounds
  // without a new articulation. Returns [pitch, start_step, length_steps].
  function rowsToNotes(rows) {
    const notes = [];
    for (const [pitch, sounding, articulated] of rows) {
      const on = sounding | articulated;
      for (let step = 0; step < 16; step++) {
        const bit = 1 << step;
        const starts = (articulated & bit) || ((on & bit) && !(step && (on & (bit >> 1))));
        if (!starts) continue;
        let end = step + 1;
        while (end < 16 && (sounding & (1 << end)) && !(articulated & (1 << end))) end++;
        notes.push([pitch, step, end - step]);
      }
    }
    return notes.sort((a, b) => a[1] - b[1] || a[0] - b[0]);
  }
  window.qbdiRowsToNotes = rowsToNotes;  // for the tests, which hold it to the Python rule

  function drawRoll() {
    const canvas = $("roll");
    const ctx = fit(canvas);
    const w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    if (!lastBar) return;
    const notes = [...rowsToNotes(lastBar.input).map((n) => [n, 0, "#4fa3f7"]),
                   ...rowsToNotes(lastBar.answer).map((n) => [n, 16, "#f0a23b"])];
    const pitches = notes.map(([n]) => n[0]);
    let low = Math.min(...pitches, 60), high = Math.max(...pitches, 72);
    low -= 1; high += 1;
    const rows = high - low + 1, stepW = w / 32, rowH = h / rows;
    ctx.strokeStyle = "#343a46";
    for (let step = 0; step <= 32; step += 4) {
      ctx.lineWidth = step % 16 ? 1 : 3;
      ctx.beginPath(); ctx.moveTo(step * stepW, 0); ctx.lineTo(step * stepW, h); ctx.stroke();
    }
    for (const [[pitch, start, length], offset, colour] of notes) {
      ctx.fillStyle = colour;
      ctx.fillRect((offset + start) * stepW + 1, (high - pitch) * rowH,
                   Math.max(2, length * stepW - 2), Math.max(2, rowH - 1));
    }
    ctx.fillStyle = "#9aa3b2";
    ctx.font = `${12 * (window.devicePixelRatio || 1)}px system-ui`;
    ctx.fillText("bar " + lastBar.bar, 4, h - 4);
    ctx.fillText("bar " + (lastBar.bar + 1) + (lastBar.answered ? "" : " (no answer)"),
                 w / 2 + 4, h - 4);
  }

  function resize() {
    drawKnob(knobSteps[knobIndex]);
    drawIr();
    drawRoll();
  }

  window.addEventListener("resize", resize);
  connect();
})();

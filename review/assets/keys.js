() => {
  // The review app's keyboard and page behaviour (Gradio's page-level js, run once):
  // - Candidate: 1-8/0 label, u undo, j/k/n move, / note, c compare mode, space (held) flip,
  //   m mask editor, g grid. Type-ahead is safe: each key carries the candidate on screen when it
  //   was pressed; keys pressed while an action is in flight queue up and are replayed in order
  //   once its answer is shown, and a key whose candidate is no longer on screen is refused (the
  //   page shakes, a note says so, nothing is written; the server checks the same id). u is the
  //   exception: it takes back the session's last label, which the reviewer saw.
  // - Idle: no key or pointer for a minute (window.__vbIdleMs) gives the open candidate's lease
  //   up; the next key or pointer takes it again.
  // - Queue: a digit, j or Enter opens the top candidate.
  // - Grid: selection (arrows, shift, space, ctrl/shift-click, s group, a all, Esc), ] / [ next /
  //   previous group, 1-8 bulk label, u undo the last bulk label, Enter open.
  // - Every new candidate opens scrolled to the top; the mask editor loads when on screen.
  if (window.__vbKeys) return;
  window.__vbKeys = true;
  const keymap = {
    "1": "act-MV", "2": "act-TV", "3": "act-RV", "4": "act-N", "5": "act-FP-texture",
    "6": "act-FP-background", "7": "act-FP-other", "8": "act-skip", "0": "act-skip",
    "j": "nav-next", "k": "nav-prev", "n": "nav-unlabelled", "u": "act-undo",
    "o": "act-override", "Escape": "act-keep",   // the keep / override prompt (only while it shows)
  };
  const labels = {"1": "MV", "2": "TV", "3": "RV", "4": "N", "5": "FP:texture", "6": "FP:background",
                  "7": "FP:other", "8": "skip", "0": "skip"};
  const visible = (el) => !!el && el.offsetParent !== null;
  const button = (id) => {
    const el = document.getElementById(id);
    if (!el) return null;
    const b = el.tagName === "BUTTON" ? el : el.querySelector("button");
    return b && visible(b) && !b.disabled ? b : null;
  };
  const tab = (name) => {
    const t = [...document.querySelectorAll("button[role=tab]")].find((b) => b.textContent.trim() === name);
    if (t) t.click();
  };
  const current = () => {
    const v = document.querySelector("#vb-view .vb-cand");
    return v ? v.getAttribute("data-caption-id") + "|" + v.outerHTML.length : "";
  };

  // -- compare tile: swipe or onion skin, space flips ------------------------------------------
  let mode = "swipe";
  window.__vbCompare = (box, value) => {
    const after = box.querySelector(".vb-after");
    if (!after) return;
    if (mode === "swipe") { after.style.opacity = 1; after.style.clipPath = "inset(0 0 0 " + value + "%)"; }
    else { after.style.clipPath = "none"; after.style.opacity = value / 100; }
  };
  const applyCompare = () => document.querySelectorAll(".vb-compare").forEach((box) => {
    const r = box.parentElement.querySelector(".vb-range");
    const m = box.parentElement.querySelector(".vb-mode");
    box.dataset.mode = mode;
    if (m) m.textContent = mode === "swipe" ? "swipe" : "onion skin";
    window.__vbCompare(box, r ? r.value : 50);
  });

  // -- grid selection ----------------------------------------------------------------------------
  const G = {focus: 0, anchor: 0, sel: new Set()};
  const cells = () => [...document.querySelectorAll("#vb-grid-root .vb-cell")];
  const paint = () => cells().forEach((c, i) => {
    c.classList.toggle("vb-sel", G.sel.has(c.dataset.captionId));
    c.classList.toggle("vb-focus", i === G.focus);
  });
  const range = (a, b) => {
    const cs = cells();
    for (let i = Math.min(a, b); i <= Math.max(a, b); i++) if (cs[i]) G.sel.add(cs[i].dataset.captionId);
  };
  const moveTo = (i, extend) => {
    const cs = cells();
    if (!cs.length) return;
    G.focus = Math.max(0, Math.min(cs.length - 1, i));
    if (extend) range(G.anchor, G.focus); else G.anchor = G.focus;
    paint();
    cs[G.focus].scrollIntoView({block: "nearest"});
  };
  const vertical = (dir) => {
    const cs = cells(), cur = cs[G.focus];
    if (!cur) return G.focus;
    const r = cur.getBoundingClientRect();
    let best = G.focus, bestKey = null;
    cs.forEach((c, i) => {
      const q = c.getBoundingClientRect();
      if (dir > 0 ? q.top <= r.top + 4 : q.top >= r.top - 4) return;
      const key = [Math.abs(q.top - r.top), Math.abs(q.left - r.left)];
      if (bestKey === null || key[0] < bestKey[0] - 4 || (Math.abs(key[0] - bestKey[0]) <= 4 && key[1] < bestKey[1])) {
        best = i; bestKey = key;
      }
    });
    return best;
  };
  const send = (obj) => {
    const box = document.querySelector("#grid-cmd textarea, #grid-cmd input");
    const run = document.querySelector("#grid-run button, button#grid-run");
    if (!box || !run) return;
    box.value = JSON.stringify(obj);
    box.dispatchEvent(new Event("input", {bubbles: true}));
    setTimeout(() => run.click(), 0);
  };
  // ] / [ jump to the next / previous group (a group's start; [ inside a group goes to its start)
  const jumpGroup = (dir) => {
    const cs = cells();
    if (!cs.length) return;
    const grp = (i) => cs[i] && cs[i].dataset.group;
    let i = Math.min(G.focus, cs.length - 1);
    while (i > 0 && grp(i - 1) === grp(i)) i--;            // the start of the focused cell's group
    if (dir > 0) {
      let j = i;
      while (j < cs.length && grp(j) === grp(i)) j++;
      if (j >= cs.length) return;
      i = j;
    } else if (i === G.focus && i > 0) {
      i -= 1;
      while (i > 0 && grp(i - 1) === grp(i)) i--;
    }
    moveTo(i, false);
    cs[i].scrollIntoView({block: "start"});
  };
  // a selected group is brought into view from its first cell, so as much of it as fits is on screen
  const showSelection = () => {
    const first = cells().find((c) => G.sel.has(c.dataset.captionId));
    if (first) first.scrollIntoView({block: "start"});
  };
  const gridKey = (e) => {
    const cs = cells();
    const k = e.key;
    if (k === "]" || k === "[") jumpGroup(k === "]" ? 1 : -1);
    else if (k === "ArrowRight" || k === "ArrowLeft") moveTo(G.focus + (k === "ArrowRight" ? 1 : -1), e.shiftKey);
    else if (k === "ArrowDown" || k === "ArrowUp") moveTo(vertical(k === "ArrowDown" ? 1 : -1), e.shiftKey);
    else if (k === " ") { const c = cs[G.focus]; if (c) { const id = c.dataset.captionId; G.sel.has(id) ? G.sel.delete(id) : G.sel.add(id); paint(); } }
    else if (k === "s") { const c = cs[G.focus]; if (c) { cs.forEach((x) => { if (x.dataset.group === c.dataset.group) G.sel.add(x.dataset.captionId); }); paint(); showSelection(); } }
    else if (k === "a") { cs.forEach((x) => G.sel.add(x.dataset.captionId)); paint(); }
    else if (k === "Escape") { G.sel.clear(); paint(); }
    else if (k === "Enter") { const c = cs[G.focus]; if (c) send({action: "open", id: Number(c.dataset.captionId)}); }
    else if (k === "u") { const b = button("grid-undo"); if (b) b.click(); }
    else if (labels[k]) {
      const ids = G.sel.size ? [...G.sel] : (cs[G.focus] ? [cs[G.focus].dataset.captionId] : []);
      if (ids.length) send({action: "label", label: labels[k], ids: ids.map(Number)});
    } else return false;
    return true;
  };
  document.addEventListener("click", (e) => {
    const t = e.target;
    if (!t || !t.closest) return;
    const g = t.closest(".vb-selgroup");
    if (g) { cells().forEach((x) => { if (x.dataset.group === g.dataset.group) G.sel.add(x.dataset.captionId); }); paint(); return; }
    const c = t.closest("#vb-grid-root .vb-cell");
    if (!c) return;
    const i = Number(c.dataset.index), id = c.dataset.captionId;
    if (e.shiftKey) { G.focus = i; range(G.anchor, i); }
    else if (e.ctrlKey || e.metaKey) { G.focus = G.anchor = i; G.sel.has(id) ? G.sel.delete(id) : G.sel.add(id); }
    else { G.focus = G.anchor = i; G.sel.clear(); G.sel.add(id); }
    paint();
  });
  document.addEventListener("dblclick", (e) => {
    const c = e.target && e.target.closest && e.target.closest("#vb-grid-root .vb-cell");
    if (c) send({action: "open", id: Number(c.dataset.captionId)});
  });

  // -- keys ----------------------------------------------------------------------------------------
  const shownId = () => {
    const v = document.querySelector("#vb-view .vb-cand");
    return v ? v.getAttribute("data-caption-id") || "" : "";
  };
  const ackOf = () => {
    const a = document.querySelector("#vb-head .vb-ack");
    return a ? a.dataset.ack : "";
  };
  const toasts = () => [...document.querySelectorAll("[data-testid='toast-body']")];
  const Q = [];              // keys pressed while an action was in flight: {key, cid}, oldest first
  let inflight = null;       // {ack, until}: the answer (a new ack in the head, or an error toast) awaited
  const ANY_CANDIDATE = new Set(["u"]);   // undo acts on the session's last label, not on the view
  (() => {   // the shake of a refused key (its own style: the stylesheet belongs to the layout)
    const st = document.createElement("style");
    st.textContent = "@keyframes vb-shake{0%,100%{transform:none}20%,60%{transform:translateX(-6px)}" +
      "40%,80%{transform:translateX(6px)}}.vb-shake{animation:vb-shake .3s ease-in-out}" +
      "#vb-refused{position:fixed;left:50%;bottom:16px;transform:translateX(-50%);z-index:1000;" +
      "background:#b42318;color:#fff;padding:6px 12px;border-radius:6px;font-size:14px;max-width:90vw}";
    document.head.appendChild(st);
  })();
  let refusedTimer = null;
  const refuse = (text) => {
    const v = document.getElementById("vb-view");
    if (v) { v.classList.remove("vb-shake"); void v.offsetWidth; v.classList.add("vb-shake"); }
    let n = document.getElementById("vb-refused");
    if (!n) { n = document.createElement("div"); n.id = "vb-refused"; n.setAttribute("role", "status"); document.body.appendChild(n); }
    n.textContent = text;
    n.hidden = false;
    clearTimeout(refusedTimer);
    refusedTimer = setTimeout(() => { n.hidden = true; }, 4000);
  };
  window.__vbRefused = 0;    // how many keys were refused (tests read it)
  const setKeyCid = (cid) => {
    const box = document.querySelector("#vb-key-cid textarea, #vb-key-cid input");
    if (!box) return;
    box.value = cid;
    box.dispatchEvent(new Event("input", {bubbles: true}));
  };
  const fire = (item) => {
    const b = button(keymap[item.key]);
    if (!b) {
      refuse(`Key ${item.key} not applied: its action is not available on this view.`);
      window.__vbRefused += 1;
      return;
    }
    toasts().forEach((t) => { t.dataset.vbSeen = "1"; });
    inflight = {ack: ackOf(), until: Date.now() + 10000};
    setKeyCid(ANY_CANDIDATE.has(item.key) ? "" : item.cid);
    setTimeout(() => b.click(), 0);   // after the hidden id's input event
  };
  // a click on a label / prompt button means the candidate on screen (set before the click lands)
  document.addEventListener("pointerdown", (e) => {
    const b = e.target && e.target.closest && e.target.closest("#vb-actions button, #vb-conflict button");
    if (b) setKeyCid(shownId());
  }, true);
  const pump = () => {
    while (!inflight && Q.length) {
      const item = Q.shift();
      if (!ANY_CANDIDATE.has(item.key) && item.cid !== shownId()) {
        window.__vbRefused += 1;
        refuse(`Key ${item.key} not applied: it was pressed on candidate ${item.cid}, which is no longer on ` +
               "screen. Nothing written: press it again on the candidate you mean.");
        continue;
      }
      fire(item);
    }
  };
  const settled = () => {    // the awaited answer arrived: send the next queued key
    if (!inflight) return;
    const a = document.querySelector("#vb-head .vb-ack");
    const answered = (a && a.dataset.ack !== inflight.ack) || toasts().some((t) => !t.dataset.vbSeen) ||
      Date.now() > inflight.until;
    if (!answered) return;
    inflight = null;
    if (a && a.dataset.refused === "1" && a.dataset.shook !== "1") {
      a.dataset.shook = "1";
      window.__vbRefused += 1;
      refuse("Key not applied: the candidate it was pressed on is no longer open. Nothing written (see the status line).");
    }
    pump();
  };
  setInterval(settled, 250);   // the answer may change nothing the observer sees (a lost connection)
  window.__vbKeyState = () => ({queued: Q.length, inflight: !!inflight});
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    const tag = ((t && t.tagName) || "").toLowerCase();
    const typing = (tag === "input" && !["range", "checkbox", "radio", "button"].includes(t.type)) ||
      tag === "textarea" || tag === "select" || (t && t.isContentEditable);
    if (typing) { if (e.key === "Escape" && t.blur) t.blur(); return; }
    const help = document.getElementById("vb-help");
    if (e.key === "?") { if (help) help.hidden = !help.hidden; e.preventDefault(); return; }
    if (e.key === "Escape" && help && !help.hidden) { help.hidden = true; return; }
    if (visible(document.getElementById("vb-grid-root"))) {
      if (gridKey(e)) e.preventDefault();
      return;
    }
    const queue = document.getElementById("vb-queue");
    if (visible(queue) && (labels[e.key] || e.key === "Enter" || e.key === "j")) {
      const cell = queue.querySelector("[data-testid='cell-0-2'], [data-testid='cell-0-1']");
      if (cell) {   // the table selects on the pointer sequence, not on a bare click()
        e.preventDefault();
        for (const type of ["pointerdown", "mousedown", "pointerup", "mouseup", "click"]) {
          cell.dispatchEvent(new MouseEvent(type, {bubbles: true, cancelable: true, view: window}));
        }
      }
      return;
    }
    if (!visible(document.getElementById("vb-view"))) {
      if (e.key === "g") tab("Grid");
      return;
    }
    if (e.key === "/") { const n = document.querySelector("#vb-note-field textarea, #vb-note-field input"); if (n) { e.preventDefault(); n.focus(); } return; }
    if (e.key === "c") { mode = mode === "swipe" ? "onion" : "swipe"; applyCompare(); return; }
    if (e.key === " ") { e.preventDefault(); if (!e.repeat) document.querySelectorAll(".vb-compare").forEach((b) => b.classList.add("vb-flip")); return; }
    if (e.key === "m") { tab("Mask"); return; }
    if (e.key === "g") { tab("Grid"); return; }
    const id = keymap[e.key];
    if (!id) return;
    if (!inflight && !Q.length && !button(id)) return;   // e.g. Esc / o with no prompt showing: not a key here
    e.preventDefault();
    Q.push({key: e.key, cid: shownId()});   // the candidate on screen now is the one this key means
    pump();
  });
  document.addEventListener("keyup", (e) => {
    if (e.key === " ") document.querySelectorAll(".vb-compare").forEach((b) => b.classList.remove("vb-flip"));
  });
  // no dropdown opens on keyboard focus (tabbing through the filters): only a click or a typed
  // key opens one. Focus events pass the window in their capture phase before the input's own.
  let pointer = false;
  document.addEventListener("pointerdown", () => { pointer = true; setTimeout(() => { pointer = false; }, 500); }, true);
  // a key ends the pointer's grace at once: a Tab right after a click (the filters sit next to the
  // tabs) moves focus by keyboard
  document.addEventListener("keydown", () => { pointer = false; }, true);
  // Tab (and Shift for Shift+Tab) in a dropdown moves focus only: the dropdown's own key handler
  // would open its list on any key
  const passKeys = new Set(["Tab", "Shift", "Control", "Alt", "Meta"]);
  window.addEventListener("keydown", (e) => {
    const t = e.target;
    if (!t || !t.getAttribute || t.getAttribute("role") !== "combobox") return;
    if (passKeys.has(e.key)) e.stopImmediatePropagation();
    else if (e.key === "ArrowDown" && t.getAttribute("aria-expanded") !== "true") {
      e.stopImmediatePropagation();        // Arrow down opens the focused dropdown on purpose
      pointer = true;
      t.blur();
      t.focus();
      pointer = false;
    }
  }, true);
  window.addEventListener("focus", (e) => {
    const t = e.target;
    if (!pointer && t && t.getAttribute && t.getAttribute("role") === "combobox") {
      e.stopImmediatePropagation();
    }
  }, true);

  // -- per render: scroll reset on a new candidate, compare mode, grid selection, mask editor ------
  let lastCandidate = null, lastGrid = null;
  let requested = null;
  const editorOnScreen = () => {
    const ed = document.getElementById("vb-editor");
    if (!visible(ed)) return false;
    const r = ed.getBoundingClientRect();
    return r.width > 0 && r.bottom > 0 && r.top < window.innerHeight;
  };
  const loadEditor = (force) => {
    const b = document.querySelector("#mask-load button, button#mask-load");
    const v = current();
    if (!b || !v || (!force && (requested === v || !editorOnScreen()))) return;
    requested = v;
    b.click();
  };
  const onRender = () => {
    settled();
    const v = document.querySelector("#vb-view .vb-cand");
    const id = v ? v.getAttribute("data-caption-id") : null;
    if (v && id !== lastCandidate) {
      lastCandidate = id;
      window.scrollTo(0, 0);
      document.querySelectorAll(".vb-side").forEach((s) => { s.scrollTop = 0; });
      applyCompare();
    }
    const g = document.getElementById("vb-grid-root");
    if (g && g !== lastGrid) { lastGrid = g; G.sel.clear(); G.focus = G.anchor = 0; paint(); }
    loadEditor(false);
  };
  let pending = false;
  const soon = () => { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; onRender(); }); } };
  new MutationObserver(soon).observe(document.body, {childList: true, subtree: true});
  window.addEventListener("scroll", soon, {passive: true, capture: true});
  window.addEventListener("resize", soon, {passive: true});
  document.addEventListener("pointerdown", (e) => {
    if (e.target && e.target.closest && e.target.closest("#vb-mask") && requested !== current()) loadEditor(true);
  }, true);

  // -- idle: a page nobody uses gives its lease up (the server lease outlives a closed page only) ---
  window.__vbIdleMs = window.__vbIdleMs || 60000;
  let lastActive = Date.now(), idle = false;
  const hidden = (id) => document.querySelector(`#${id} button, button#${id}`);
  const active = () => {
    lastActive = Date.now();
    if (!idle) return;
    idle = false;
    const b = hidden("vb-resume");
    if (b) b.click();
  };
  for (const type of ["keydown", "pointerdown", "pointermove", "wheel"]) {
    document.addEventListener(type, active, {capture: true, passive: true});
  }
  setInterval(() => {
    if (idle || Date.now() - lastActive < window.__vbIdleMs || !shownId()) return;
    const b = hidden("vb-idle");
    if (!b) return;
    idle = true;
    b.click();
  }, 500);
}

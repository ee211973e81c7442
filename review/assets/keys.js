() => {
  // Single-key triage. Each key clicks a visible button; while an action is in flight further
  // keys are ignored until the candidate view re-renders, so a fast typist never labels the
  // same candidate twice from a stale page.
  if (window.__vbKeys) return;
  window.__vbKeys = true;
  const keymap = {
    "1": "act-MV", "2": "act-TV", "3": "act-RV", "4": "act-N", "5": "act-FP-texture",
    "6": "act-FP-background", "7": "act-FP-other", "8": "act-skip", "0": "act-skip",
    "j": "nav-next", "k": "nav-prev", "n": "nav-unlabelled", "u": "act-undo",
  };
  let busyUntil = 0;
  let shown = null;
  const view = () => {
    const v = document.querySelector("#vb-view .vb-cand");
    return v ? v.outerHTML : "";
  };
  const button = (id) => {
    const el = document.getElementById(id);
    if (!el) return null;
    const b = el.tagName === "BUTTON" ? el : el.querySelector("button");
    return b && b.offsetParent !== null && !b.disabled ? b : null;
  };
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    const tag = ((t && t.tagName) || "").toLowerCase();
    const typing = (tag === "input" && !["range", "checkbox", "radio", "button"].includes(t.type)) ||
      tag === "textarea" || tag === "select" || (t && t.isContentEditable);
    if (typing) return;
    const help = document.getElementById("vb-help");
    if (e.key === "?") { if (help) help.hidden = !help.hidden; e.preventDefault(); return; }
    if (e.key === "Escape") { if (help) help.hidden = true; return; }
    const id = keymap[e.key];
    if (!id) return;
    if (Date.now() < busyUntil && view() === shown) { e.preventDefault(); return; }
    const b = button(id);
    if (!b) return;
    e.preventDefault();
    shown = view();
    busyUntil = Date.now() + 3000;   // released when the view re-renders, or after 3 s
    b.click();
  });
  // Triage leaves the mask editor as it was (re-creating its canvas costs ~0.5 s of main thread
  // per candidate); the hidden mask-load button brings it to the current candidate's target when
  // the editor is on screen or about to be used. The server answers "nothing to do" when the
  // editor already holds it.
  let requested = null;
  const editorOnScreen = () => {
    const ed = document.getElementById("vb-mask");
    if (!ed) return false;
    const r = ed.getBoundingClientRect();
    return r.width > 0 && r.bottom > 0 && r.top < window.innerHeight;
  };
  const loadEditor = (force) => {
    const b = document.querySelector("#mask-load button, button#mask-load");
    const v = view();
    if (!b || !v || (!force && (requested === v || !editorOnScreen()))) return;
    requested = v;
    b.click();
  };
  let pending = false;
  const soon = () => { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; loadEditor(false); }); } };
  new MutationObserver(soon).observe(document.body, {childList: true, subtree: true});
  window.addEventListener("scroll", soon, {passive: true, capture: true});
  window.addEventListener("resize", soon, {passive: true});
  document.addEventListener("pointerdown", (e) => {
    if (e.target && e.target.closest && e.target.closest("#vb-mask") && requested !== view()) loadEditor(true);
  }, true);
}

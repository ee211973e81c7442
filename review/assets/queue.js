() => {
  // The queue's row focus (review/tab_queue.py): Arrow down / up move a visible focus over the
  // rows, Enter opens the focused row. Listens on the window in the capture phase, before keys.js's
  // document listener (whose Enter opens the top row), and only takes the keys it handles.
  if (window.__vbQueueKeys) return;
  window.__vbQueueKeys = true;
  const Q = {row: -1};          // -1: no row focused yet (Enter keeps keys.js's "open the top row")
  const table = () => document.getElementById("vb-queue");
  const shown = (el) => !!el && el.offsetParent !== null;
  const rows = () => {
    const t = table();
    if (!t) return [];
    // a data row (Gradio 6: a div.virtual-row) holds cells with data-testid "cell-R-C"; one entry per R
    const out = [];
    t.querySelectorAll("[data-testid^='cell-'][data-testid$='-1']").forEach((c) => {
      const m = /^cell-(\d+)-1$/.exec(c.getAttribute("data-testid"));
      if (m) out[Number(m[1])] = c.closest("tr, .virtual-row") || c.parentElement;
    });
    return out.filter(Boolean);
  };
  const paint = () => {
    const rs = rows();
    const t = table();
    if (t) t.querySelectorAll(".vb-rowfocus").forEach((r) => r.classList.remove("vb-rowfocus"));
    if (Q.row < 0 || !rs.length) return null;
    Q.row = Math.min(Q.row, rs.length - 1);
    rs[Q.row].classList.add("vb-rowfocus");
    return rs[Q.row];
  };
  const open = (row, i) => {   // the table selects on the pointer sequence, not on a bare click()
    const cell = row.querySelector(`[data-testid='cell-${i}-2'], [data-testid='cell-${i}-1']`);
    if (!cell) return;
    for (const type of ["pointerdown", "mousedown", "pointerup", "mouseup", "click"]) {
      cell.dispatchEvent(new MouseEvent(type, {bubbles: true, cancelable: true, view: window}));
    }
  };
  window.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || !shown(table())) return;
    const t = e.target;
    const tag = ((t && t.tagName) || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || (t && t.isContentEditable)) return;
    if (t && t.getAttribute && t.getAttribute("role") === "combobox") return;
    const k = e.key;
    if (k === "ArrowDown" || k === "ArrowUp") {
      const n = rows().length;
      if (!n) return;
      Q.row = Q.row < 0 ? 0 : Math.max(0, Math.min(n - 1, Q.row + (k === "ArrowDown" ? 1 : -1)));
      const r = paint();
      if (r) r.scrollIntoView({block: "nearest"});
    } else if (k === "Enter" && Q.row >= 0) {
      const r = paint();
      if (r) open(r, Q.row);
    } else return;
    e.preventDefault();
    e.stopImmediatePropagation();
  }, true);
  // the table re-renders on every page or filter: a new page starts at its top row, and the
  // focus class is painted again after each render
  let last = null;
  new MutationObserver(() => {
    const t = table();
    const first = t && t.querySelector("[data-testid='cell-0-1']");
    const key = first ? first.textContent + "|" + rows().length : null;
    if (key !== last) { last = key; if (Q.row >= 0) Q.row = 0; }
    if (Q.row >= 0 && t && !t.querySelector(".vb-rowfocus")) paint();
  }).observe(document.body, {childList: true, subtree: true});
}

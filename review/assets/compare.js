() => {
  // The Compare tab (review/tab_compare.py): a click on a row, or Enter on a focused one, opens it
  // (both models' strips) through the hidden caption box and its button.
  if (window.__vbCmpRows) return;
  window.__vbCmpRows = true;
  const open = (row) => {
    const box = document.querySelector("#vb-compare-cmd textarea, #vb-compare-cmd input");
    const go = document.querySelector("#vb-compare-go button, button#vb-compare-go");
    if (!box || !go || !row) return;
    box.value = row.dataset.captionId;
    box.dispatchEvent(new Event("input", {bubbles: true}));
    setTimeout(() => go.click(), 0);
    // the opened row (both strips and the match) is drawn below the table: bring it on screen
    const want = `.vb-cmp-open[data-caption-id="${row.dataset.captionId}"]`;
    let tries = 0;
    const show = () => {
      const el = document.querySelector(want);
      if (el) el.scrollIntoView({block: "start"});
      else if (++tries < 100) setTimeout(show, 50);
    };
    show();
  };
  // the capture phase of the window: before Gradio's own handlers on the HTML component
  window.addEventListener("click", (e) => {
    const row = e.target && e.target.closest && e.target.closest(".vb-cmp-row");
    if (row) open(row);
  }, true);
  window.addEventListener("keydown", (e) => {
    const row = e.target && e.target.closest && e.target.closest(".vb-cmp-row");
    if (row && e.key === "Enter") { open(row); e.preventDefault(); }
  }, true);
  // carry-over keys, while the Compare tab shows its groups and focus is not in a text field:
  // y confirms the group shown as B's label, u undoes the last confirmed group, ] / [ pick the next
  // / previous group
  const shown = (el) => !!el && el.offsetParent !== null;
  const click = (sel) => { const b = document.querySelector(sel); if (b && shown(b) && !b.disabled) b.click(); };
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || !shown(document.getElementById("vb-carry-group"))) return;
    const t = e.target, tag = ((t && t.tagName) || "").toLowerCase();
    if ((tag === "input" && !["radio", "checkbox", "button"].includes(t.type)) || tag === "textarea") return;
    if (e.key === "y") { click("#vb-carry-confirm"); e.preventDefault(); return; }
    if (e.key === "u") { click("#vb-carry-undo"); e.preventDefault(); return; }
    if (e.key !== "]" && e.key !== "[") return;
    const radios = [...document.querySelectorAll("#vb-carry-group input[type=radio]")];
    if (!radios.length) return;
    const at = radios.findIndex((r) => r.checked);
    const next = radios[(at + (e.key === "]" ? 1 : radios.length - 1)) % radios.length];
    next.click();
    e.preventDefault();
  });
}

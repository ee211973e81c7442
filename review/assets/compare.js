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
}

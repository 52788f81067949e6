// The reader's checks of one rendered page of the book, run in the browser by tests/test_book.py.
// Returns {mathErrors, wide, literal, missingFigures}: lists of human-readable findings (empty = clean).
// Kept in its own file so the rules are read in one place; FIGURE_WORDS and the literal patterns are the
// contract pages follow (a section headed "Training curves" must show a figure, or say with an element of
// class "no-figure" why there is none).
return (function () {
  const article = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
  const box = article.getBoundingClientRect();
  const out = {mathErrors: [], wide: [], literal: [], missingFigures: []};
  const describe = (el) => {
    const id = el.id ? "#" + el.id : "";
    const cls = el.classList.length ? "." + [...el.classList].slice(0, 3).join(".") : "";
    const text = (el.innerText || el.textContent || "").trim().replace(/\s+/g, " ").slice(0, 60);
    return `<${el.tagName.toLowerCase()}${id}${cls}> "${text}"`;
  };

  // 1. MathJax errors: MathJax 3 marks them <mjx-merror data-mjx-error="...">; MathJax 2 .MathJax_Error.
  for (const e of document.querySelectorAll("mjx-merror, [data-mjx-error], .MathJax_Error")) {
    out.mathErrors.push((e.getAttribute("data-mjx-error") || e.textContent || "").slice(0, 120));
  }

  // 2. Nothing in the article wider than the article. A horizontal scroll is allowed for code and for a
  //    table whose first column stays fixed (position: sticky); everything else must fit.
  const visible = (el, cs) => cs.display !== "none" && cs.visibility !== "hidden";
  const walk = (el) => {
    for (const ch of el.children) {
      const cs = getComputedStyle(ch);
      if (!visible(ch, cs)) continue;
      const r = ch.getBoundingClientRect();
      if (r.width > 0 && r.height > 0 && (r.right > box.right + 1 || r.left < box.left - 1)) {
        out.wide.push(`${describe(ch)} is ${Math.round(r.width)} px, spans ${Math.round(r.left)}–${Math.round(r.right)} px; the article ${Math.round(box.left)}–${Math.round(box.right)} px`);
        continue;
      }
      // Inline math: MathJax's italic overhang makes span.math's scrollWidth exceed its box by a few px; its
      // real extent is checked by the bounds test above.
      if (ch.matches("span.math, mjx-container:not([display=true])")) continue;
      const scrolls = ch.scrollWidth > ch.clientWidth + 1;
      if (scrolls && (cs.overflowX === "auto" || cs.overflowX === "scroll" || cs.overflowX === "hidden")) {
        const code = ch.matches("pre, .highlight, .highlight *") || (ch.querySelector("pre") && !ch.querySelector("table"));
        const table = ch.querySelector("table");
        const sticky = table && [...table.querySelectorAll("tr > :first-child")].every(
          (c) => getComputedStyle(c).position === "sticky");
        if (cs.overflowX === "hidden") {
          out.wide.push(`${describe(ch)} clips its content (${ch.scrollWidth} px in ${ch.clientWidth} px)`);
        } else if (!code && !sticky) {
          out.wide.push(`${describe(ch)} scrolls sideways (${ch.scrollWidth} px in ${ch.clientWidth} px) without a fixed first column`);
        }
        continue;
      }
      walk(ch);
    }
  };
  walk(article);

  // 3. No literal TeX or markdown in the visible prose (code, math and hidden elements excluded).
  const SKIP = "pre, code, kbd, samp, script, style, textarea, mjx-container, .MathJax, .highlight, .no-literal-check";
  const PATTERNS = [
    [/\$/, "a literal $ (unrendered math)"],
    [/\\_/, "a literal \\_"],
    [/\\(texttt|textbf|emph|mathrm|mathbf|frac|cdot|times|sigma|Delta|operatorname)\b/, "a literal TeX command"],
    [/(^|\s)\*\*\S.*?\S\*\*/, "literal **bold** markup"],
    [/(^|\n)\s*\|[^\n]*\|\s*($|\n)|\|\s*:?-{3,}\s*:?\|/, "a literal markdown table row"],
    [/`[^`\s][^`]*`/, "literal `code` backticks"],
  ];
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const p = n.parentElement;
    if (!n.nodeValue.trim() || !p || p.closest(SKIP) || !p.getClientRects().length) continue;
    // read whole block-level text so a row split across inline elements is still one line
    const block = p.closest("p, li, td, th, dd, dt, h1, h2, h3, h4, h5, h6, caption, figcaption, div") || p;
    if (seen.has(block)) continue;
    seen.add(block);
    const clone = block.cloneNode(true);
    for (const x of clone.querySelectorAll(SKIP)) x.remove();
    const text = clone.innerText !== undefined && clone.innerText !== "" ? clone.innerText : clone.textContent;
    for (const [re, what] of PATTERNS) {
      const m = re.exec(text);
      if (m) {
        const at = Math.max(0, m.index - 40);
        out.literal.push(`${what}: "…${text.slice(at, m.index + 60).replace(/\s+/g, " ")}…"`);
      }
    }
  }

  // 4. A section that promises a figure shows one (or says, in an element of class no-figure, why not).
  const FIGURE_WORDS = /\b(curves?|plots?|figures?|overlays?|frontier|saliency maps?|heat ?maps?)\b/i;
  for (const sec of article.querySelectorAll("section")) {
    const h = sec.querySelector(":scope > h1, :scope > h2, :scope > h3, :scope > h4");
    if (!h || !FIGURE_WORDS.test(h.textContent)) continue;
    const imgs = [...sec.querySelectorAll("img, svg:not(mjx-container svg), canvas")].filter(
      (i) => !i.closest("mjx-container") && i.getBoundingClientRect().width > 50);
    if (!imgs.length && !sec.querySelector(".no-figure")) {
      out.missingFigures.push(`section "${h.textContent.replace(/[#¶]/g, "").trim()}" promises a figure and shows none`);
    }
  }
  return out;
})();

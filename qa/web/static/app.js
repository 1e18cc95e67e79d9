() => {
  // Runs once when a page of the app loads (Gradio's `js`). Kept free of any network request.

  // Copy buttons (search desk results, chat answers): one delegated listener, because both are
  // re-rendered all the time. The text to copy is the button's value (qa/web/render.py copy_button).
  if (!window.__qaCopyInstalled) {
    window.__qaCopyInstalled = true;
    document.addEventListener("click", async (event) => {
      const button = event.target.closest && event.target.closest("button.qa-copy");
      if (!button) return;
      const text = button.value;
      let copied = false;
      try {
        await navigator.clipboard.writeText(text);
        copied = true;
      } catch (error) {
        // No clipboard API (plain http on another host): the old way through a selection.
        const area = document.createElement("textarea");
        area.value = text;
        area.setAttribute("readonly", "");
        area.style.position = "fixed";
        area.style.opacity = "0";
        document.body.appendChild(area);
        area.select();
        copied = document.execCommand("copy");
        area.remove();
      }
      window.__qaLastCopied = copied ? text : null;
      const label = button.dataset.label || button.textContent;
      button.dataset.label = label;
      button.textContent = copied ? "已复制 ✓" : "复制失败，请手动选择文本";
      setTimeout(() => { button.textContent = label; }, 2500);
    });
  }

  // Large text: the reader's choice is remembered in this browser.
  document.documentElement.classList.toggle("qa-large", localStorage.getItem("qa-large-text") === "1");
}

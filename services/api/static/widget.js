/* cmsrag chat widget: answers a site's visitors from the site's own content, with citations.
 *
 * Embed: <script src="https://API/widget.js" data-site="docs" [data-key="…"] [data-target="#el"]
 *                 [data-title="Ask the docs"] defer></script>
 * The API base is taken from this script's own src, so the widget works on any origin the API allows (CORS).
 * Without data-target it shows a floating "Ask" button that opens a panel; with it, it renders inline.
 *
 * It POSTs to /v1/ask/stream and reads the text/event-stream body itself (fetch + ReadableStream rather than
 * EventSource, so error statuses and bodies are readable). Server text only ever goes into text nodes and only
 * http(s) URLs become links. Plain ES2017, no dependencies, no build step.
 */
(() => {
  "use strict";

  const script = document.currentScript ||
    Array.from(document.querySelectorAll("script[src]")).filter((s) => /\/widget\.js(\?|$)/.test(s.src)).pop();
  if (!script) return;

  const HISTORY_MESSAGES = 6; // the last three exchanges travel with each question
  const base = new URL(".", script.src);
  const config = {
    endpoint: new URL("v1/ask/stream", base).href,
    stylesheet: new URL("widget.css", base).href,
    site: script.getAttribute("data-site") || "",
    key: script.getAttribute("data-key") || "",
    target: script.getAttribute("data-target") || "",
    title: script.getAttribute("data-title") || "Ask the docs",
  };
  const counter = (window.__cmsragWidgets = (window.__cmsragWidgets || 0) + 1);

  /* -- DOM helpers: every string goes in as text, never as markup ------------------------------------ */
  function el(tag, attrs = {}, children = []) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    children.forEach((child) => child && node.appendChild(child));
    return node;
  }

  function safeUrl(raw) {
    try {
      const url = new URL(String(raw)); // relative or scheme-less strings throw: they do not become links
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function link(url, text, cls) {
    const href = safeUrl(url);
    if (!href) return el("span", { class: cls, text });
    return el("a", { class: cls, href, target: "_blank", rel: "noopener noreferrer", text });
  }

  /* -- server-sent events, parsed by hand: a frame may be split across network chunks, or share one ----- */
  function parseFrame(frame) {
    let event = "message";
    const data = [];
    for (const line of frame.split(/\r\n|\r|\n/)) {
      if (!line || line[0] === ":") continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return null;
    try {
      return { event, data: JSON.parse(data.join("\n")) };
    } catch (e) {
      return null; // a frame we cannot read is skipped, not fatal
    }
  }

  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
        const frames = buffer.split(/\r\n\r\n|\n\n|\r\r/);
        buffer = done ? "" : frames.pop();
        for (const frame of frames) {
          const parsed = parseFrame(frame);
          if (parsed) onEvent(parsed.event, parsed.data);
        }
        if (done) return;
      }
    } catch (e) {
      reader.cancel().catch(() => {}); // stop the download when we give up on the answer
      throw e;
    }
  }

  /* -- errors a visitor can read ----------------------------------------------------------------------- */
  class WidgetError extends Error {}

  async function errorFor(response) {
    let body = {};
    try {
      body = (await response.json()) || {};
    } catch (e) { /* not JSON: the status says enough */ }
    const detail = typeof body.error === "string" ? body.error : "";
    if (response.status === 429) {
      // Cross-origin, Retry-After is readable only if the API lists it in Access-Control-Expose-Headers.
      const wait = parseInt(response.headers.get("Retry-After") || body.retry_after || "", 10);
      return new WidgetError(wait > 0 ? `Too many questions — try again in ${wait} s.`
        : "Too many questions — try again in a moment.");
    }
    if (response.status >= 500) {
      return new WidgetError(`The answer service is unavailable right now (${response.status}${detail ? ": " + detail : ""}).` +
        " Please try again shortly.");
    }
    return new WidgetError(detail ? `Your question could not be answered: ${detail}`
      : `Your question could not be answered (${response.status}).`);
  }

  /* -- an answer: text with [n] markers as superscript links, then the list of sources --------------- */
  function renderAnswer(node, text, byNumber) {
    const fragment = document.createDocumentFragment();
    String(text).split(/\[(\d+)\]/).forEach((part, i) => {
      if (i % 2 === 0) {
        if (part) fragment.appendChild(document.createTextNode(part));
        return;
      }
      const cited = byNumber[part];
      const marker = cited ? link(cited.url, `[${part}]`, "cmsrag-cite") : document.createTextNode(`[${part}]`);
      if (cited && cited.title && marker.setAttribute) marker.setAttribute("title", cited.title);
      fragment.appendChild(el("sup", { class: "cmsrag-marker" }, [marker]));
    });
    node.replaceChildren(fragment);
  }

  function renderSources(node, citations) {
    if (!citations.length) return node.replaceChildren();
    const list = el("ol", { class: "cmsrag-source-list" }, citations.map((c) => el("li", { value: String(c.n) }, [
      link(c.url, (c.section ? `${c.title} — ${c.section}` : c.title) || c.url, "cmsrag-source"),
      c.snippet ? el("p", { class: "cmsrag-snippet", text: c.snippet }) : null,
    ])));
    node.replaceChildren(el("h3", { class: "cmsrag-sources-title", text: "Sources" }), list);
  }

  /* -- the widget -------------------------------------------------------------------------------------- */
  function build(container, inline) {
    const id = `cmsrag-${counter}`;
    const log = el("div", { class: "cmsrag-log" });
    const question = el("textarea", { id: `${id}-q`, class: "cmsrag-question", rows: "2", maxlength: "1000",
      "data-cmsrag": "question", placeholder: "Type a question and press Enter", autocomplete: "off" });
    const send = el("button", { type: "submit", class: "cmsrag-send", "data-cmsrag": "send", text: "Send" });
    const error = el("p", { class: "cmsrag-error", role: "alert", "data-cmsrag": "error", hidden: "" });
    const form = el("form", { class: "cmsrag-form" }, [
      el("label", { class: "cmsrag-label", for: `${id}-q`, text: "Your question" }), question, send]);
    const panel = el("section", { class: `cmsrag-panel ${inline ? "cmsrag-inline" : "cmsrag-floating"}`,
      id: `${id}-panel`, "aria-labelledby": `${id}-title` }, [
      el("h2", { class: "cmsrag-title", id: `${id}-title`, text: config.title }), log, error, form]);
    const conversation = [];
    let busy = false;

    const showError = (message) => {
      error.textContent = message;
      error.hidden = !message;
    };
    const setBusy = (value) => {
      busy = question.disabled = send.disabled = value;
      if (!value) question.focus();
    };

    async function ask(text) {
      const body = el("div", { class: "cmsrag-answer-text" });
      const sources = el("div", { class: "cmsrag-sources", "data-cmsrag": "citations" });
      const answer = el("div", { class: "cmsrag-answer", "data-cmsrag": "answer", "data-state": "streaming",
        "aria-live": "polite", "aria-busy": "true" }, [body, sources]);
      log.appendChild(el("div", { class: "cmsrag-exchange" }, [el("p", { class: "cmsrag-asked", text }), answer]));
      log.scrollTop = log.scrollHeight;

      const byNumber = {}; // n → citation, from `sources` (all retrieved) and `done` (the cited ones)
      let streamed = "";
      let finished = false;
      const finish = (state) => {
        finished = true;
        answer.setAttribute("data-state", state);
        answer.setAttribute("aria-busy", "false");
      };
      const payload = { question: text, conversation: conversation.slice(-HISTORY_MESSAGES) };
      if (config.site) payload.filters = { site: config.site };
      const headers = { "Content-Type": "application/json", Accept: "text/event-stream" };
      if (config.key) headers["X-API-Key"] = config.key;

      try {
        let response;
        try {
          response = await fetch(config.endpoint, { method: "POST", headers, body: JSON.stringify(payload),
            mode: "cors", credentials: "omit" });
        } catch (e) {
          throw new WidgetError("Could not reach the answer service. Check your connection and try again.");
        }
        if (!response.ok) throw await errorFor(response);
        await readEvents(response, (event, data) => {
          if (finished) return;
          if (event === "sources") {
            (data.citations || []).forEach((c) => { byNumber[c.n] = c; });
          } else if (event === "token") {
            streamed += data.text || "";
            renderAnswer(body, streamed, byNumber);
            log.scrollTop = log.scrollHeight;
          } else if (event === "done") {
            (data.citations || []).forEach((c) => { byNumber[c.n] = byNumber[c.n] || c; });
            const final = typeof data.answer === "string" ? data.answer : streamed;
            renderAnswer(body, final, byNumber);
            renderSources(sources, data.citations || []);
            answer.classList.toggle("cmsrag-refused", Boolean(data.refused));
            conversation.push({ role: "user", content: text }, { role: "assistant", content: final });
            finish("done");
          } else if (event === "error") {
            const message = String(data.error || "the answer failed");
            throw new WidgetError(`${message[0].toUpperCase()}${message.slice(1)}. Please try again.`);
          }
        });
        if (!finished) throw new WidgetError("The answer was interrupted. Please try again.");
      } catch (e) {
        showError(e instanceof WidgetError ? e.message : "Something went wrong while answering. Please try again.");
        if (!streamed) body.replaceChildren(el("span", { class: "cmsrag-failed", text: "No answer." }));
        finish("error");
      }
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = question.value.trim();
      if (!text || busy) return;
      question.value = "";
      showError("");
      setBusy(true);
      ask(text).then(() => setBusy(false));
    });
    question.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.dispatchEvent(new Event("submit", { cancelable: true }));
      }
    });

    const root = el("div", { class: "cmsrag-root" }, [panel]);
    if (!inline) {
      const toggle = el("button", { type: "button", class: "cmsrag-toggle", "aria-expanded": "false",
        "aria-controls": panel.id, "data-cmsrag": "open", text: "Ask" });
      const setOpen = (open) => {
        panel.hidden = !open;
        toggle.setAttribute("aria-expanded", String(open));
        if (open) question.focus();
      };
      setOpen(false);
      toggle.addEventListener("click", () => setOpen(panel.hidden));
      panel.addEventListener("keydown", (event) => {
        if (event.key === "Escape") {
          setOpen(false);
          toggle.focus();
        }
      });
      root.appendChild(toggle);
    }
    container.appendChild(root);
  }

  function start() {
    if (!document.querySelector("link[data-cmsrag-css]")) {
      document.head.appendChild(el("link", { rel: "stylesheet", href: config.stylesheet, "data-cmsrag-css": "" }));
    }
    const target = config.target ? document.querySelector(config.target) : null;
    if (config.target && !target) console.warn(`cmsrag: no element matches ${config.target}; showing the button`);
    build(target || document.body, Boolean(target));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

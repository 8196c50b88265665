// The predicate editor: live feedback from POST /v1/check as the user types, and the error
// position underlined in place by a mirror of the text laid under the (transparent) textarea.

import { api, errorOf } from "./api.js";
import { atomText, caretSnippet, costText, count, lineColumn, utf16Index } from "./format.js";

const debounceMs = 250;

// Editor calls check(where, sources) on its own after each edit; check() can also be awaited
// directly (Start does, to refuse an invalid predicate before opening a stream).
export class Editor {
  constructor({ textarea, mirror, status, error, errorPos, errorMessage, details, warnings, atoms, atomsList, sources, onAuth }) {
    Object.assign(this, { textarea, mirror, status, error, errorPos, errorMessage, details, warnings, atoms, atomsList });
    this.sources = sources; // () => selected source names
    this.onAuth = onAuth; // (needed: bool) => void
    this.timer = 0;
    this.ctl = null;
    this.seq = 0;
    this.errorAt = -1; // UTF-16 index of the error, -1 when none
    textarea.addEventListener("input", () => {
      // Whatever was shown or asked is about other text now: drop it, say so, ask again soon.
      this.ctl?.abort();
      this.seq++;
      this.clearMark();
      this.error.classList.add("stale");
      this.setStatus("checking", "Checking…");
      this.schedule();
    });
    textarea.addEventListener("scroll", () => this.syncScroll());
    // The textarea can be resized: keep the mirror's wrapping width the same.
    if (typeof ResizeObserver === "function") new ResizeObserver(() => this.paintMark()).observe(textarea);
    errorPos.addEventListener("click", (e) => {
      e.preventDefault();
      this.focusError();
    });
  }

  get value() {
    return this.textarea.value.trim();
  }

  set value(v) {
    this.textarea.value = v;
    this.clearMark();
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.check(), debounceMs);
  }

  // check asks the server about the current predicate and shows the answer. It resolves to
  // {valid: true|false|null, error}: null when the server could not say (no check endpoint,
  // unreachable, no token).
  async check() {
    clearTimeout(this.timer);
    this.ctl?.abort();
    const ctl = new AbortController();
    this.ctl = ctl;
    const my = ++this.seq;
    const where = this.textarea.value;
    const sources = this.sources();
    const body = { where };
    if (sources.length) body.source = sources;
    this.setStatus("checking", "Checking…");
    let res;
    try {
      res = await api("v1/check", { method: "POST", body, signal: ctl.signal });
    } catch (e) {
      if (e.name === "AbortError") return { valid: null, stale: true };
      if (my !== this.seq) return { valid: null, stale: true };
      this.showUnknown(`Cannot check: ${e.message}.`);
      return { valid: null };
    }
    if (my !== this.seq) return { valid: null, stale: true };
    return this.show(res, where);
  }

  show({ status, body }, where) {
    if (status === 401 || status === 403) {
      this.onAuth?.(true);
      this.showUnknown(status === 401 ? "Cannot check: this server needs a token." : "Cannot check: this token may not do that.");
      return { valid: null };
    }
    this.onAuth?.(false);
    const err = errorOf(body);
    if (status === 405 || status === 501 || (status === 404 && (!err || err.code === "not_found"))) {
      this.showUnknown("This server cannot check predicates; Start will tell.");
      return { valid: null };
    }
    if (status === 429 || status >= 500) {
      this.showUnknown(`Cannot check now: ${err?.message ?? "HTTP " + status}.`);
      return { valid: null };
    }
    const valid = body && typeof body.valid === "boolean" ? body.valid : status >= 200 && status < 300 && !err;
    if (!valid) {
      const e = err ?? { message: status >= 400 ? `HTTP ${status}` : "invalid predicate" };
      this.showInvalid(e, where, status === 200 || /predicate/.test(e.code ?? ""));
      return { valid: false, error: e };
    }
    this.showValid(body ?? {}, where);
    return { valid: true };
  }

  setStatus(state, text) {
    if (state !== "checking") this.error.classList.remove("stale");
    this.status.dataset.state = state;
    this.status.textContent = text;
  }

  showUnknown(text) {
    this.setStatus("error", text);
    this.error.hidden = true;
    this.warnings.hidden = true;
    this.details.hidden = true;
    this.atoms.hidden = true;
    this.clearMark();
  }

  // showInvalid shows why the server refused: the predicate itself (isPredicate), or the
  // request around it (an unknown source, say).
  showInvalid(e, where, isPredicate) {
    const code = e.code ? ` (${e.code})` : "";
    this.setStatus("invalid", `✗ ${isPredicate ? "Invalid predicate" : "Refused"}${code}`);
    this.warnings.hidden = true;
    this.details.hidden = true;
    this.atoms.hidden = true;
    const msg = e.message || "invalid predicate";
    if (Number.isInteger(e.position) && e.position >= 0) {
      const i = utf16Index(where, e.position);
      const { line, column } = lineColumn(where, i);
      this.errorPos.textContent = `Line ${line}, column ${column}`;
      this.errorPos.parentElement.hidden = false;
      // cel-go's messages usually carry their own snippet with a caret; add one otherwise.
      this.errorMessage.textContent = msg.includes("^") ? msg : `${msg}\n\n${caretSnippet(where, i)}`;
      this.errorAt = i;
    } else {
      this.errorPos.parentElement.hidden = true;
      this.errorMessage.textContent = msg;
      this.errorAt = -1;
    }
    this.error.hidden = false;
    this.textarea.setAttribute("aria-invalid", "true");
    this.paintMark();
  }

  showValid(body, where) {
    this.error.hidden = true;
    this.clearMark();
    // A predicate that compiles may still not work: it fails on the history's messages, or
    // compares a field with a constant of a type the field never has there.
    const failed = typeof body.failed === "number" ? body.failed : 0;
    const warnings = Array.isArray(body.warnings) ? body.warnings : [];
    if (failed > 0 && failed === body.of) {
      this.setStatus("warning", `⚠ Compiles, but fails on every one of the last ${count(body.of)} messages`);
    } else if (warnings.length) {
      this.setStatus("warning", "⚠ Compiles, but probably not what you mean");
    } else {
      this.setStatus("valid", where.trim() ? "✓ Valid predicate" : "✓ Empty predicate: every message matches");
    }
    const items = [];
    if (failed > 0 && body.first_error) {
      const li = document.createElement("li");
      li.className = "first-error";
      // Some failures are ordinary where sources differ (a field some messages lack): they
      // are told, but only failing on every message makes the predicate suspect.
      const on = failed === body.of ? "" : `Fails on ${count(failed)} of the last ${count(body.of)} messages. `;
      li.textContent = `${on}First failure, on ${body.first_error.id}: ${body.first_error.message}`;
      items.push(li);
    }
    for (const w of warnings) {
      const li = document.createElement("li");
      li.className = "warning";
      let at = "";
      if (Number.isInteger(w.position) && w.position >= 0) {
        const { line, column } = lineColumn(where, utf16Index(where, w.position));
        at = `Line ${line}, column ${column}: `;
      }
      li.textContent = at + w.message;
      items.push(li);
    }
    this.warnings.replaceChildren(...items);
    this.warnings.hidden = items.length === 0;
    const parts = [];
    const cost = costText(body.cost);
    if (cost) parts.push(span(`Cost ${cost}`, "Estimated CEL cost per message"));
    if (typeof body.matched === "number" && typeof body.of === "number") {
      parts.push(span(`Matches ${count(body.matched)} of the last ${count(body.of)} messages`));
    }
    const per = body.sources && typeof body.sources === "object" ? Object.entries(body.sources) : [];
    if (per.length > 1 || (per.length === 1 && parts.length < 2)) {
      const list = per
        .filter(([, v]) => v && typeof v === "object")
        .map(([name, v]) => `${name}: ${count(v.matched)}/${count(v.of)}`)
        .join(", ");
      if (list) parts.push(span(`(${list})`, "Matched of the history, per source"));
    }
    this.details.replaceChildren(...parts.flatMap((p, i) => (i ? [" · ", p] : [p])));
    this.details.hidden = parts.length === 0;
    const atoms = Array.isArray(body.atoms) ? body.atoms : null;
    if (atoms && atoms.length) {
      this.atomsList.replaceChildren(
        ...atoms.map((a) => {
          const c = document.createElement("code");
          c.className = "atom";
          c.textContent = atomText(a);
          return c;
        }),
      );
      this.atoms.hidden = false;
    } else if (atoms) {
      this.atomsList.textContent = "nothing: every message is evaluated";
      this.atoms.hidden = false;
    } else {
      this.atoms.hidden = true;
    }
  }

  clearMark() {
    this.errorAt = -1;
    this.textarea.removeAttribute("aria-invalid");
    this.mirror.replaceChildren();
  }

  // paintMark copies the text into the mirror with the error's character wrapped in a mark.
  paintMark() {
    if (this.errorAt < 0) {
      this.mirror.replaceChildren();
      return;
    }
    const text = this.textarea.value;
    let i = Math.min(this.errorAt, text.length);
    // Mark one character (a whole surrogate pair); at the end or on a newline, mark a space.
    let end = i + (i < text.length && /[\ud800-\udbff]/.test(text[i]) ? 2 : 1);
    let ch = text.slice(i, end);
    if (ch === "" || ch === "\n") {
      ch = " ";
      end = i;
    }
    const mark = document.createElement("mark");
    mark.className = "error-mark";
    mark.textContent = ch;
    // A trailing newline in a pre-wrap box needs one more character to take up a line.
    this.mirror.replaceChildren(text.slice(0, i), mark, text.slice(end) + "\u200b");
    // Keep the mirror's content width equal to the textarea's, scrollbar or not.
    const cs = getComputedStyle(this.textarea);
    const sb =
      this.textarea.offsetWidth - this.textarea.clientWidth -
      parseFloat(cs.borderLeftWidth) - parseFloat(cs.borderRightWidth);
    this.mirror.style.paddingRight = `${parseFloat(cs.paddingRight) + Math.max(0, sb)}px`;
    this.syncScroll();
  }

  syncScroll() {
    this.mirror.scrollTop = this.textarea.scrollTop;
    this.mirror.scrollLeft = this.textarea.scrollLeft;
  }

  focusError() {
    if (this.errorAt < 0) return;
    this.textarea.focus();
    this.textarea.setSelectionRange(this.errorAt, this.errorAt);
  }
}

function span(text, title) {
  const s = document.createElement("span");
  s.textContent = text;
  if (title) s.title = title;
  return s;
}

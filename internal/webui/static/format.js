// Pure helpers: no DOM, no network, so that they can be tried in any JavaScript runtime.

// utf16Index turns an offset counted in Unicode code points (as the server counts a predicate's
// characters) into an index into a JavaScript string (UTF-16 code units). Offsets past the end
// give text.length.
export function utf16Index(text, codePoints) {
  if (!Number.isFinite(codePoints) || codePoints <= 0) return 0;
  let i = 0;
  let n = 0;
  while (i < text.length && n < codePoints) {
    const c = text.charCodeAt(i);
    i += c >= 0xd800 && c <= 0xdbff && i + 1 < text.length ? 2 : 1;
    n++;
  }
  return i;
}

// lineColumn gives the 1-based line and column (in code points) of UTF-16 index i in text.
export function lineColumn(text, i) {
  const before = text.slice(0, i);
  const nl = before.lastIndexOf("\n");
  const line = before.split("\n").length;
  const column = [...before.slice(nl + 1)].length + 1;
  return { line, column };
}

// caretSnippet is the line of text holding UTF-16 index i, and under it a caret at i.
export function caretSnippet(text, i) {
  const start = text.lastIndexOf("\n", i - 1) + 1;
  let end = text.indexOf("\n", i);
  if (end < 0) end = text.length;
  const line = text.slice(start, end);
  const pad = [...text.slice(start, i)].map((ch) => (ch === "\t" ? "\t" : " ")).join("");
  return line + "\n" + pad + "^";
}

// compactJSON renders v on one line, cut to at most max characters with an ellipsis.
export function compactJSON(v, max = 160) {
  let s;
  if (v === undefined) s = "";
  else if (typeof v === "string") s = v;
  else {
    try {
      s = JSON.stringify(v);
    } catch {
      s = String(v);
    }
  }
  return truncate(s, max);
}

export function truncate(s, max) {
  if (s.length <= max) return s;
  return s.slice(0, Math.max(0, max - 1)) + "…";
}

// clockTime formats an RFC 3339 time (or a Date) as local HH:MM:SS.mmm; text it cannot parse is
// returned as it is.
export function clockTime(t) {
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t ?? "");
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

// ago says how long before now a time was, roughly: "12 s", "3 min", "2 h", "4 d".
export function ago(t, now = Date.now()) {
  const ms = now - new Date(t).getTime();
  if (!Number.isFinite(ms)) return "";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

const numberFormat = new Intl.NumberFormat("en");

// count formats an integer with thousands separators; anything that is not a number gives "–".
export function count(n) {
  return typeof n === "number" && Number.isFinite(n) ? numberFormat.format(n) : "–";
}

// costText renders a cost estimate: {min, max}, a plain number, or nothing.
export function costText(cost) {
  if (cost == null) return "";
  if (typeof cost === "number") return count(cost);
  const { min, max } = cost;
  if (typeof min === "number" && typeof max === "number") {
    return min === max ? count(min) : `${count(min)}–${count(max)}`;
  }
  if (typeof max === "number") return `≤ ${count(max)}`;
  if (typeof min === "number") return `≥ ${count(min)}`;
  return "";
}

// atomText renders one indexed atom, whatever shape the server gives it: a string as it is, an
// object with a field (or path), an operator and a value or values, or else its JSON.
export function atomText(a) {
  if (typeof a === "string") return a;
  if (a && typeof a === "object") {
    const field = a.field ?? a.path ?? a.var ?? a.name;
    const op = a.op ?? a.operator ?? (Array.isArray(a.values) ? "in" : "==");
    const value = a.values ?? a.value;
    if (field !== undefined && value !== undefined) return `${field} ${op} ${JSON.stringify(value)}`;
  }
  return JSON.stringify(a);
}

// RateMeter counts events and tells their rate over a sliding window of about windowMs.
export class RateMeter {
  constructor(windowMs = 5000) {
    this.windowMs = windowMs;
    this.total = 0;
    this.samples = []; // [time, total], oldest first
  }
  add(n = 1) {
    this.total += n;
  }
  // rate samples the total at now and returns events per second over the window.
  rate(now = performance.now()) {
    this.samples.push([now, this.total]);
    while (this.samples.length > 2 && now - this.samples[1][0] >= this.windowMs) this.samples.shift();
    const [t0, n0] = this.samples[0];
    const dt = now - t0;
    return dt > 0 ? ((this.total - n0) * 1000) / dt : 0;
  }
  reset() {
    this.samples = [];
  }
}

// bytes formats a size in bytes as "512 B", "1.5 KB", "3.2 MB"; anything not a number gives "–".
export function bytes(n) {
  if (typeof n !== "number" || !Number.isFinite(n)) return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

// rates turns samples of a counter, [[time ms, total], …] oldest first, into the rate per second
// between each sample and the one before it: [[time ms, rate], …], one fewer. A total that went
// down (the server restarted) starts the series again.
export function rates(samples) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const [t0, n0] = samples[i - 1];
    const [t1, n1] = samples[i];
    if (t1 <= t0) continue;
    if (n1 < n0) {
      out.length = 0;
      continue;
    }
    out.push([t1, ((n1 - n0) * 1000) / (t1 - t0)]);
  }
  return out;
}

// sparkPoints places rates ([[time ms, rate], …], oldest first) in a width × height box for an
// SVG polyline: time runs over the windowMs up to now, left to right; rate from 0 at the bottom
// to the highest rate (at least 1) at the top. It returns the "x,y x,y …" of the points
// attribute.
export function sparkPoints(series, now, windowMs, width, height) {
  const top = Math.max(1, ...series.map(([, r]) => r));
  const r1 = (v) => Math.round(v * 10) / 10;
  return series
    .map(([t, r]) => {
      const x = Math.min(width, Math.max(0, (width * (t - (now - windowMs))) / windowMs));
      const y = height - (height * r) / top;
      return `${r1(x)},${r1(y)}`;
    })
    .join(" ");
}

// parseIds reads the ids a stream resumes after: "src:seq", several separated by commas or
// spaces. It returns {ids} or, for the first that is not one, {error}.
export function parseIds(text) {
  const ids = [];
  for (const part of String(text ?? "").split(/[\s,]+/)) {
    if (!part) continue;
    const i = part.lastIndexOf(":");
    if (i <= 0 || !/^\d+$/.test(part.slice(i + 1))) {
      return { error: `${JSON.stringify(part)} is not an id: write source:seq, as in demo:42` };
    }
    ids.push(part);
  }
  return { ids };
}

// The HTTP API as the page uses it: the token, and fetch with it. The stream is streamux.js's.
//
// Every URL is relative to the page, so that streamux works behind a proxy that mounts it under a
// path prefix: "v1/sources" from "/" is "/v1/sources", from "/streamux/" is "/streamux/v1/sources".

const tokenKey = "streamux.token";

export function getToken() {
  try {
    return sessionStorage.getItem(tokenKey) ?? "";
  } catch {
    return ""; // storage disabled: the token lives as long as the field
  }
}

export function setToken(t) {
  try {
    if (t) sessionStorage.setItem(tokenKey, t);
    else sessionStorage.removeItem(tokenKey);
  } catch {
    // storage disabled
  }
}

// ApiError is a failed call: the HTTP status (0 when the server could not be reached) and the
// server's {"error":{code, message, position}} when it sent one.
export class ApiError extends Error {
  constructor(status, error, message) {
    super(message || error?.message || (status ? `HTTP ${status}` : "server unreachable"));
    this.status = status;
    this.error = error ?? null;
  }
  get auth() {
    return this.status === 401 || this.status === 403;
  }
}

// api calls path and returns {status, body}: body is the parsed JSON (null when the response is
// not JSON). Without a token it sends no Authorization header. It rejects with an ApiError only
// when the server cannot be reached; an HTTP error status is for the caller to judge.
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, null, "server unreachable");
  }
  let parsed = null;
  if ((res.headers.get("Content-Type") || "").includes("json")) {
    try {
      parsed = await res.json();
    } catch {
      parsed = null;
    }
  } else {
    await res.text().catch(() => "");
  }
  return { status: res.status, body: parsed };
}

// errorOf returns the {code, message, position} of an error response, whatever it wraps.
export function errorOf(body) {
  if (!body || typeof body !== "object") return null;
  if (body.error && typeof body.error === "object") return body.error;
  if (typeof body.error === "string") return { message: body.error };
  return null;
}

// The one way pages talk to the API: JSON in and out, errors as ApiError with the service's error shape
// ({"error": {"code", "message", "field"}}) and Retry-After when the service sent one.

export class ApiError extends Error {
  constructor(status, code, message, { field = null, retryAfterS = null } = {}) {
    super(message);
    this.status = status; // 0 when the request never reached the service (connection lost)
    this.code = code;
    this.field = field;
    this.retryAfterS = retryAfterS;
  }
}

/** fetch /api/v1{path}; `body` is sent as JSON, `key` as a bearer token. Resolves to the parsed JSON
 *  (null for 204/304); rejects with ApiError. */
export async function api(path, { method = "GET", body, key, headers = {}, signal } = {}) {
  const sent = { ...headers };
  if (body !== undefined) sent["Content-Type"] = "application/json";
  if (key) sent.Authorization = `Bearer ${key}`;
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method, headers: sent, body: body === undefined ? undefined : JSON.stringify(body), signal,
      credentials: "same-origin",
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network", "The connection to the server was lost. Check your network and try again.");
  }
  if (response.status === 204 || response.status === 304) return null;
  const parsed = await response.json().catch(() => null);
  if (!response.ok) {
    const shape = parsed && parsed.error ? parsed.error : {};
    const retry = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    throw new ApiError(response.status, shape.code || `http_${response.status}`,
      shape.message || `The server answered ${response.status}.`,
      { field: shape.field || null, retryAfterS: Number.isFinite(retry) ? retry : null });
  }
  return parsed;
}

/** A short sentence for a person, from any error a page caught. */
export function explain(error) {
  if (error instanceof ApiError) {
    if (error.status === 429 && error.retryAfterS) return `${error.message}`;
    return error.message;
  }
  return "Something went wrong on this page. Reload it and try again.";
}

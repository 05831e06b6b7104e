// The JSON API as the pages use it: the HttpOnly session cookie, a CSRF header on every request
// that may change something, errors as readable text.
//
// No script can read the session: its secret is the HttpOnly `session` cookie, which the
// browser sends itself. The readable `csrf_token` cookie is no secret of the session: the pages
// send it back as X-CSRF-Token, which a page of another origin cannot make a browser send, and
// the server checks it against the session. Nothing is kept in web storage.

const CSRF_COOKIE = "csrf_token";
const CSRF_HEADER = "X-CSRF-Token";
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** The csrf_token cookie's value, or null: present while this browser holds a session. */
export function csrfToken() {
  for (const pair of document.cookie.split(";")) {
    const [name, ...value] = pair.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(value.join("=")) || null;
  }
  return null;
}

const FIELD_LABELS = {
  username: "Username",
  email: "Email",
  password: "Password",
  current_password: "Current password",
  new_password: "New password",
  title: "Title",
  content: "Content",
  file: "File",
  token: "Reset link",
  tags: "Tags",
};

const STATUS_MESSAGES = {
  0: "Could not reach the server. Check your connection and try again.",
  401: "Please log in again.",
  403: "You are not allowed to do that.",
  404: "Not found.",
  413: "That file is too large.",
  429: "Too many attempts. Please wait a minute and try again.",
};

// Pydantic says "String should have at least 8 characters"; people read "Should have at least 8 characters".
function readable(message) {
  const text = String(message)
    .replace(/^Value error, /, "")
    .replace(/^String should/, "Should")
    .replace(/^value is not/, "Not")
    .replace(/^Field required$/, "This field is required");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** A 422 `detail` list as {field: message}; entries without a field go under "". */
function fieldErrors(detail) {
  const errors = {};
  if (!Array.isArray(detail)) return errors;
  for (const item of detail) {
    const loc = Array.isArray(item?.loc) ? item.loc : [];
    // ["body", "tags", 2] is the third tag: the message belongs to the "tags" field.
    const names = loc.slice(1).filter((part) => typeof part === "string");
    const field = names.length ? names[names.length - 1] : "";
    const message = readable(item?.msg ?? "Invalid value");
    errors[field] = errors[field] ? `${errors[field]} ${message}` : message;
  }
  return errors;
}

function formatDetail(detail, status) {
  if (typeof detail === "string" && detail) return detail;
  if (Array.isArray(detail)) {
    return Object.entries(fieldErrors(detail))
      .map(([field, message]) => (field ? `${FIELD_LABELS[field] ?? field}: ${message}` : message))
      .join(" ");
  }
  return STATUS_MESSAGES[status] ?? "Something went wrong. Please try again.";
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(formatDetail(detail, status));
    this.status = status;
    this.fields = fieldErrors(detail);
  }
}

/**
 * Call the API. `json` sends a JSON body, `form` a urlencoded one, `body` anything else
 * (a FormData for uploads). Answers the parsed body, or throws an ApiError.
 */
export async function api(path, { method = "GET", json, form, body } = {}) {
  const headers = { Accept: "application/json" };
  const csrf = csrfToken();
  if (csrf && !SAFE_METHODS.has(method.toUpperCase())) headers[CSRF_HEADER] = csrf;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  let response;
  try {
    // The cookies go with the pages' own requests (same origin) only.
    response = await fetch(path, { method, headers, body, credentials: "same-origin" });
  } catch {
    throw new ApiError(0, null);
  }
  // The session expired, or ended elsewhere (logged out, password changed): logged out.
  if (response.status === 401) forgetCurrentUser();
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data?.detail);
  return data;
}

let current = null;

/**
 * The logged-in user (with email), or null; asked once per page. Without the csrf_token
 * cookie this browser holds no session; with it, the server says whether the session lives
 * (a 401: it ended, and the page shows the logged-out state).
 */
export function currentUser() {
  if (!current) {
    current = csrfToken() ? api("/api/users/me").catch(() => null) : Promise.resolve(null);
  }
  return current;
}

export function setCurrentUser(user) {
  current = Promise.resolve(user);
}

function forgetCurrentUser() {
  current = Promise.resolve(null);
}

/** Log in for the pages: the server sets the session and csrf_token cookies. */
export async function logIn(email, password) {
  await api("/api/users/session", { method: "POST", form: { username: email, password } });
  current = null; // asked again on the next call
}

/**
 * End the session on the server (which clears its cookies), then show the logged-out home
 * page. An already ended session (401) is logged out too; any other failure throws: the
 * session may still live, so the page must not say it ended.
 */
export async function logOut(notice = "logged-out", { revoke = true } = {}) {
  if (revoke) {
    try {
      await api("/api/users/session", { method: "DELETE" });
    } catch (error) {
      if (error.status !== 401) throw error;
    }
  }
  forgetCurrentUser();
  window.location.assign(`/?notice=${notice}`);
}

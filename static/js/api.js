// The JSON API as the pages use it: the bearer token in localStorage, errors as readable text.

const TOKEN_KEY = "blog.token";

export const token = {
  get: () => localStorage.getItem(TOKEN_KEY),
  set: (value) => localStorage.setItem(TOKEN_KEY, value),
  clear: () => localStorage.removeItem(TOKEN_KEY),
};

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
  const saved = token.get();
  if (saved) headers.Authorization = `Bearer ${saved}`;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body });
  } catch {
    throw new ApiError(0, null);
  }
  if (response.status === 401 && saved) {
    token.clear(); // expired, or the password changed elsewhere
    forgetCurrentUser();
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data?.detail);
  return data;
}

let current = null;

/** The logged-in user (with email), or null; asked once per page. */
export function currentUser() {
  if (!current) {
    current = token.get() ? api("/api/users/me").catch(() => null) : Promise.resolve(null);
  }
  return current;
}

export function setCurrentUser(user) {
  current = Promise.resolve(user);
}

function forgetCurrentUser() {
  current = Promise.resolve(null);
}

/** End the session: the server revokes the token, then this browser forgets it. */
export async function logOut(notice = "logged-out", { revoke = true } = {}) {
  if (revoke && token.get()) {
    try {
      await api("/api/users/logout", { method: "POST" });
    } catch {
      // Already expired or revoked, or the server is out of reach: forget the token anyway.
    }
  }
  token.clear();
  window.location.assign(`/?notice=${notice}`);
}

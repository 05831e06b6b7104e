// The account page: drafts, profile, picture (with a preview), password, log out, delete, and
// the sessions (where the account is logged in), each of which can end.
import { ApiError, api, currentUser, logOut, setCurrentUser } from "./api.js";
import { logOutShowing, showUser } from "./nav.js";
import { clearMessages, onSubmit, readableTime, showError, showSuccess } from "./ui.js";

let user = await currentUser();
if (!user) window.location.replace("/login?next=/account");

const profile = document.getElementById("profile-form");
const pictureForm = document.getElementById("picture-form");
const preview = document.getElementById("picture-preview");
const fileInput = document.getElementById("picture-file");
const removeButton = document.getElementById("remove-picture-button");

function show(updated) {
  user = updated;
  setCurrentUser(user);
  showUser(user);
  document.getElementById("account-summary").textContent = `Logged in as ${user.username} (${user.email}).`;
  document.getElementById("my-posts-link").href = `/users/${user.id}/posts`;
  profile.elements.username.value = user.username;
  profile.elements.email.value = user.email;
  preview.src = user.image_path;
  removeButton.hidden = !user.image_file;
  showVerification(user);
}

// --- Verification: an address not proven yet, or a new one waiting for its link ----------

function showVerification(account) {
  const banner = document.getElementById("verify-banner");
  banner.hidden = account.email_verified && !account.pending_email;
  document.getElementById("verify-banner-text").textContent = account.pending_email
    ? `Your new address ${account.pending_email} is waiting for the link mailed to it. Until it is opened, ${account.email} stays your email.`
    : `Your address ${account.email} is not verified yet: open the link mailed to it.`;
}

document.getElementById("resend-verification-button").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  const error = document.getElementById("verify-banner-error");
  const done = document.getElementById("verify-banner-done");
  error.hidden = done.hidden = true;
  button.disabled = true;
  try {
    const { message } = await api("/api/users/me/verification-email", { method: "POST" });
    done.textContent = `${message}.`;
    done.hidden = false;
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
});

if (user) show(user);

// --- Drafts (your own posts with published: false) and scheduled posts --------------------

const draftList = document.getElementById("draft-list");
const draftsError = document.getElementById("drafts-error");

function draftItem(post) {
  const item = document.createElement("li");
  item.className = "draft";
  item.dataset.postId = post.id;
  const editor = `/account/drafts/${post.id}`;
  const title = document.createElement("h3");
  const link = document.createElement("a");
  link.href = editor;
  link.textContent = post.title; // user-written text stays text
  title.append(link);
  const excerpt = document.createElement("p");
  excerpt.className = "muted";
  excerpt.textContent = post.publish_at ? `Goes out on ${readableTime(post.publish_at)}.` : post.excerpt;
  const actions = document.createElement("div");
  actions.className = "actions";
  const edit = document.createElement("a");
  edit.className = "button button-secondary";
  edit.href = editor;
  edit.textContent = "Edit";
  const publish = document.createElement("button");
  publish.type = "button";
  publish.className = "button";
  publish.textContent = post.publish_at ? "Publish now" : "Publish";
  publish.addEventListener("click", () => changeDraft(post, { method: "PATCH", json: { published: true } }));
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "button button-danger";
  remove.textContent = post.publish_at ? "Delete" : "Delete draft";
  remove.addEventListener("click", () => {
    if (window.confirm("Delete this draft? This cannot be undone.")) changeDraft(post, { method: "DELETE" });
  });
  actions.append(edit, publish);
  if (post.publish_at) {
    const unschedule = document.createElement("button");
    unschedule.type = "button";
    unschedule.className = "button button-secondary";
    unschedule.textContent = "Keep as a draft";
    unschedule.addEventListener("click", () => changeDraft(post, { method: "PATCH", json: { publish_at: null } }));
    actions.append(unschedule);
  }
  actions.append(remove);
  item.append(title, excerpt, actions);
  return item;
}

async function changeDraft(post, request) {
  draftsError.hidden = true;
  try {
    const changed = await api(`/api/posts/${post.id}`, request);
    if (changed?.published) window.location.assign(changed.url);
    else await showDrafts();
  } catch (failure) {
    draftsError.textContent = failure.message;
    draftsError.hidden = false;
  }
}

async function showDrafts() {
  // The newest 100 of your posts hold your recent drafts (a page is at most 100).
  const page = await api("/api/users/me/posts?limit=100");
  const drafts = page.posts.filter((post) => !post.published && !post.publish_at);
  draftList.replaceChildren(...drafts.map(draftItem));
  document.getElementById("no-drafts").hidden = drafts.length > 0;
  // Scheduled posts, the next to go out first (the page is newest first).
  const scheduled = page.posts.filter((post) => post.publish_at).reverse();
  document.getElementById("scheduled-list").replaceChildren(...scheduled.map(draftItem));
  document.getElementById("no-scheduled").hidden = scheduled.length > 0;
}

if (user) {
  showDrafts().catch((failure) => {
    draftsError.textContent = failure.message;
    draftsError.hidden = false;
  });
}

onSubmit(profile, async ({ username, email, current_password }) => {
  const json = { username, email };
  // A new email needs the password: a stolen session alone cannot move the account's mail.
  if (email.trim().toLowerCase() !== user.email) json.current_password = current_password;
  show(await api(`/api/users/${user.id}`, { method: "PATCH", json }));
  profile.elements.current_password.value = "";
  showSuccess(profile, "Profile saved.");
});

// The preview is a data: URL (the page's policy allows data: images, not blob:).
fileInput.addEventListener("change", () => {
  const [file] = fileInput.files;
  clearMessages(pictureForm);
  if (!file) return;
  const reader = new FileReader();
  reader.addEventListener("load", () => {
    preview.src = reader.result;
  });
  reader.readAsDataURL(file);
});

onSubmit(pictureForm, async () => {
  const [file] = fileInput.files;
  if (!file) throw new ApiError(422, [{ loc: ["body", "file"], msg: "Choose an image first." }]);
  const body = new FormData();
  body.append("file", file);
  show(await api(`/api/users/${user.id}/picture`, { method: "PATCH", body }));
  pictureForm.reset();
  showSuccess(pictureForm, "Picture updated.");
});

removeButton.addEventListener("click", async () => {
  try {
    show(await api(`/api/users/${user.id}/picture`, { method: "DELETE" }));
    showSuccess(pictureForm, "Picture removed.");
  } catch (error) {
    showError(pictureForm, error);
  }
});

const password = document.getElementById("password-form");
onSubmit(password, async ({ current_password, new_password }) => {
  await api("/api/users/me/password", { method: "PATCH", json: { current_password, new_password } });
  // The server has ended every session, this one too: log in again with the new password.
  window.location.assign("/login?notice=password-changed&next=/account");
});

document
  .getElementById("account-logout-button")
  .addEventListener("click", () => logOutShowing(document.getElementById("account-logout-error")));

document.getElementById("delete-account-button").addEventListener("click", async () => {
  if (!window.confirm("Delete your account, your posts and your picture? This cannot be undone.")) return;
  const error = document.getElementById("delete-account-error");
  error.hidden = true;
  try {
    await api(`/api/users/${user.id}`, { method: "DELETE" });
    logOut("account-deleted", { revoke: false }); // the account, and its sessions, are gone
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
  }
});

// --- Sessions: every login of this account, this browser's marked -----------------------

const sessionList = document.getElementById("session-list");
const sessionsError = document.getElementById("sessions-error");
const sessionsDone = document.getElementById("sessions-done");
const endOthersButton = document.getElementById("end-other-sessions-button");
const WHEN = new Intl.DateTimeFormat("en-US", { dateStyle: "medium", timeStyle: "short" });

const BROWSERS = [
  [/\bEdg(?:e|A|iOS)?\//, "Edge"],
  [/\b(?:OPR|Opera)\//, "Opera"],
  [/\b(?:Firefox|FxiOS)\//, "Firefox"],
  [/\b(?:HeadlessChrome|Chrome|Chromium|CriOS)\//, "Chrome"],
  [/\bVersion\/[\d.]+.*\bSafari\//, "Safari"],
];
const SYSTEMS = [
  [/\bAndroid\b/, "Android"],
  [/\b(?:iPhone|iPad|iPod)\b/, "iOS"],
  [/\bWindows\b/, "Windows"],
  [/\bMac OS X\b|\bMacintosh\b/, "macOS"],
  [/\bCrOS\b/, "ChromeOS"],
  [/\bLinux\b/, "Linux"],
];

/** "Chrome on Linux" for a browser's User-Agent; a program's own name (curl/8.5) otherwise. */
function describeClient(userAgent) {
  const text = String(userAgent ?? "").trim();
  if (!text) return "Unknown client";
  const browser = BROWSERS.find(([pattern]) => pattern.test(text))?.[1];
  const system = SYSTEMS.find(([pattern]) => pattern.test(text))?.[1];
  if (browser) return system ? `${browser} on ${system}` : browser;
  return text.split(/\s/)[0];
}

function when(label, value) {
  const line = document.createElement("span");
  const time = document.createElement("time");
  time.dateTime = new Date(value).toISOString(); // milliseconds at most, as the pages' <time>
  time.textContent = WHEN.format(new Date(value));
  line.append(`${label} `, time);
  return line;
}

function sessionItem(session) {
  const item = document.createElement("li");
  item.className = "session";
  item.dataset.sessionId = session.id;
  if (session.current) item.setAttribute("aria-current", "true");
  const head = document.createElement("div");
  head.className = "session-head";
  const client = document.createElement("h3");
  client.className = "session-client";
  client.textContent = describeClient(session.user_agent);
  head.append(client);
  if (session.current) {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "This browser";
    head.append(badge);
  }
  if (session.kind === "token") {
    const badge = document.createElement("span");
    badge.className = "badge badge-muted";
    badge.textContent = "API token";
    head.append(badge);
  }
  const body = document.createElement("div");
  body.className = "session-body";
  body.append(head);
  if (session.user_agent && session.user_agent !== client.textContent) {
    const agent = document.createElement("p");
    agent.className = "session-agent muted";
    agent.textContent = session.user_agent; // the client's own words stay text
    body.append(agent);
  }
  const times = document.createElement("p");
  times.className = "session-times muted";
  times.append(when("Logged in", session.created_at), " · ", when("last used", session.last_used_at));
  body.append(times);
  item.append(body);
  if (!session.current) {
    const end = document.createElement("button");
    end.type = "button";
    end.className = "button button-secondary";
    end.textContent = "End session";
    const started = WHEN.format(new Date(session.created_at));
    end.setAttribute("aria-label", `End session: ${client.textContent}, logged in ${started}`);
    end.addEventListener("click", () =>
      changeSessions(end, `/api/users/me/sessions/${session.id}`, "The session has ended."),
    );
    item.append(end);
  }
  return item;
}

function sayAboutSessions(line, message) {
  for (const other of [sessionsError, sessionsDone]) other.hidden = true;
  if (!line) return;
  line.textContent = message;
  line.hidden = false;
}

async function showSessions() {
  const list = await api("/api/users/me/sessions");
  sessionList.replaceChildren(...list.map(sessionItem));
  endOthersButton.hidden = !list.some((session) => !session.current);
}

async function changeSessions(button, path, done) {
  button.disabled = true;
  sayAboutSessions(null);
  try {
    try {
      await api(path, { method: "DELETE" });
    } catch (failure) {
      if (failure.status !== 404) throw failure; // 404: it had ended already
    }
    await showSessions();
    sayAboutSessions(sessionsDone, done);
  } catch (failure) {
    sayAboutSessions(sessionsError, failure.message);
  } finally {
    button.disabled = false;
  }
}

endOthersButton.addEventListener("click", () =>
  changeSessions(endOthersButton, "/api/users/me/sessions", "Every other session has ended."),
);

if (user) showSessions().catch((failure) => sayAboutSessions(sessionsError, failure.message));

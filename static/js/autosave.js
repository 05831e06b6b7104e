// The post editors keep what is being written in this browser: the "New post" dialog and a
// draft's editor save their title, content and tags (localStorage) as they change, put them
// back after a reload, and drop them once the server has them; leaving a page with changes not
// yet sent asks first (beforeunload).
//
// Only the user's own unsent text is kept, never a token: under a key per account and per post,
// so another account on this browser never gets it back. Imported by the editors' scripts; it
// wires each editor form on the page once.
import { currentUser } from "./api.js";

const FIELDS = ["title", "content", "tags"];
// Each editor form, and which post it writes: a new one, or the draft the page edits.
const EDITORS = {
  "new-post-form": () => "new",
  "draft-form": () => `post-${document.getElementById("draft-editor").dataset.postId}`,
};

export function storageKey(userId, post) {
  return `unsent-post:${userId}:${post}`;
}

function read(key) {
  try {
    const text = JSON.parse(localStorage.getItem(key));
    return FIELDS.every((field) => typeof text?.[field] === "string") ? text : null;
  } catch {
    return null; // storage off, or not ours
  }
}

function write(key, text) {
  try {
    localStorage.setItem(key, JSON.stringify(text));
  } catch {
    // Storage full or off: the text stays in the form, and leaving still asks.
  }
}

function forget(key) {
  try {
    localStorage.removeItem(key);
  } catch {
    // Storage off: nothing was kept.
  }
}

// The forms whose changes the server does not have, and those being sent to it right now.
const unsent = new Set();
const sending = new Set();

function warnBeforeLeaving(event) {
  event.preventDefault();
  event.returnValue = ""; // browsers that still want it set
}

/** Ask before leaving while some form has unsent changes, unless it is being sent. */
function updateWarning() {
  const waiting = [...unsent].some((form) => !sending.has(form));
  window.onbeforeunload = waiting ? warnBeforeLeaving : null;
}

function wire(form, key) {
  const valuesOf = () => Object.fromEntries(FIELDS.map((field) => [field, form.elements[field].value]));
  const sameAs = (a, b) => FIELDS.every((field) => a[field] === b[field]);
  let sent = valuesOf(); // what the server has (a new post: nothing)

  const notice = document.createElement("p");
  notice.className = "hint";
  notice.dataset.autosaveNotice = "";
  notice.setAttribute("role", "status");
  notice.hidden = true;
  const discard = document.createElement("button");
  discard.type = "button";
  discard.className = "link-button";
  discard.textContent = "Discard them";
  notice.append("Your unsent changes from this browser are back. ", discard);
  form.querySelector(".actions")?.before(notice);

  function fill(text) {
    for (const field of FIELDS) form.elements[field].value = text[field];
  }

  // A restored text is kept without asking before leaving: it is still stored here. Typing
  // makes the form unsent again.
  const restored = read(key);
  if (restored && !sameAs(restored, sent)) {
    fill(restored);
    notice.hidden = false;
  } else {
    forget(key);
  }

  form.addEventListener("input", () => {
    const now = valuesOf();
    if (sameAs(now, sent)) {
      forget(key);
      unsent.delete(form);
    } else {
      write(key, now);
      unsent.add(form);
    }
    updateWarning();
  });
  discard.addEventListener("click", () => {
    fill(sent);
    forget(key);
    unsent.delete(form);
    notice.hidden = true;
    updateWarning();
  });
  // The editors' scripts send the form with ui.js's onSubmit, which says how it went.
  form.addEventListener("submit", () => {
    sending.add(form);
    updateWarning();
  });
  form.addEventListener("submitted", (event) => {
    sending.delete(form);
    if (event.detail.ok) {
      sent = valuesOf(); // as the server answered it
      forget(key);
      unsent.delete(form);
      notice.hidden = true;
    }
    updateWarning();
  });
}

/** Wire `form` once it shows: a draft's editor is filled from the API first. */
function whenShown(form, then) {
  if (!form.hidden) return then();
  const observer = new MutationObserver(() => {
    if (form.hidden) return;
    observer.disconnect();
    then();
  });
  observer.observe(form, { attributes: true, attributeFilter: ["hidden"] });
}

// Not awaited at the top: the editors' scripts that import this go on wiring meanwhile.
currentUser().then((user) => {
  if (!user) return; // only a logged-in user writes
  for (const [id, post] of Object.entries(EDITORS)) {
    const form = document.getElementById(id);
    if (form) whenShown(form, () => wire(form, storageKey(user.id, post())));
  }
});

// Small DOM helpers shared by the pages: form errors, busy buttons, post cards.

/** The form's fields, with the value of the submit button that was pressed (if it has one). */
export function formValues(form, submitter = null) {
  return Object.fromEntries(new FormData(form, submitter));
}

export function clearMessages(form) {
  for (const element of form.querySelectorAll(".field-error, .form-error, .form-success")) {
    element.hidden = true;
    element.textContent = "";
  }
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

/** Each field's message next to its input; anything else in the form's error line. */
export function showError(form, error) {
  clearMessages(form);
  let shown = false;
  for (const [field, message] of Object.entries(error.fields ?? {})) {
    const slot = field && form.querySelector(`[data-error-for="${CSS.escape(field)}"]`);
    if (!slot) continue;
    slot.textContent = message;
    slot.hidden = false;
    form.querySelector(`[name="${CSS.escape(field)}"]`)?.setAttribute("aria-invalid", "true");
    shown = true;
  }
  const line = form.querySelector(".form-error");
  if (line && (!shown || error.fields?.[""])) {
    line.textContent = shown ? error.fields[""] : error.message;
    line.hidden = false;
  }
}

export function showSuccess(form, message) {
  clearMessages(form);
  const line = form.querySelector(".form-success");
  line.textContent = message;
  line.hidden = false;
}

/**
 * Run `action` on submit with the button disabled; its ApiError shows in the form. Then the
 * form dispatches "submitted", whose `detail.ok` says whether the action succeeded.
 */
export function onSubmit(form, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    // Read first: a disabled button (the one pressed included) leaves the form data.
    const values = formValues(form, event.submitter ?? null);
    const buttons = [...form.querySelectorAll('button[type="submit"]')];
    for (const button of buttons) button.disabled = true;
    clearMessages(form);
    let ok = false;
    try {
      await action(values);
      ok = true;
    } catch (error) {
      showError(form, error);
    } finally {
      for (const button of buttons) button.disabled = false;
    }
    form.dispatchEvent(new CustomEvent("submitted", { detail: { ok } }));
  });
}

/**
 * Where to go after logging in: `next` when it resolves to a path of this site, else the home
 * page. The browser's own URL parser decides, so every spelling it would follow elsewhere
 * (`/\host`, `//host`, tabs or newlines inside, `javascript:`) is caught as it would be read.
 * The path is checked too: dot segments go only as the URL is parsed, so `/.//host` (or
 * `/%2e//host`, `/x/../../\host`) has this origin but the path `//host`, which, followed as a
 * path, is another site's address.
 */
export function safeNext(value) {
  const home = "/";
  if (!value) return home;
  let url;
  try {
    url = new URL(value, window.location.origin);
  } catch {
    return home;
  }
  const path = url.pathname;
  const onePath = path.startsWith("/") && !path.startsWith("//") && !path.startsWith("/\\");
  return url.origin === window.location.origin && onePath ? path + url.search + url.hash : home;
}

const DATE_FORMAT = new Intl.DateTimeFormat("en-US", { month: "long", day: "numeric", year: "numeric" });

function element(tag, attributes = {}, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text; // user-written text stays text
  return node;
}

/** "python, Web ,," -> ["python", "Web"]: the API normalises and checks each tag. */
export function parseTags(text) {
  return String(text ?? "")
    .split(",")
    .map((tag) => tag.trim())
    .filter(Boolean);
}

/** The same markup as templates/_post_tags.html. */
export function tagList(tags) {
  const list = element("ul", { class: "tags", "aria-label": "Tags" });
  for (const tag of tags) {
    const item = element("li");
    item.append(element("a", { class: "tag", href: `/tags/${encodeURIComponent(tag)}` }, `#${tag}`));
    list.append(item);
  }
  return list;
}

/**
 * Show the Markdown of `form` rendered by the server (sanitised there: the only HTML the
 * pages insert as HTML is what the API renders and cleans), in the form's preview area.
 */
export function wirePreview(form, api) {
  const button = form.querySelector("[data-preview-button]");
  const area = form.querySelector("[data-preview]");
  const body = form.querySelector("[data-preview-body]");
  button?.addEventListener("click", async () => {
    clearMessages(form);
    try {
      const { content_html } = await api("/api/posts/preview", {
        method: "POST",
        json: { content: form.elements.content.value },
      });
      body.innerHTML = content_html;
      area.hidden = false;
    } catch (error) {
      showError(form, error);
    }
  });
  form.elements.content.addEventListener("input", () => {
    area.hidden = true;
  });
}

/** The text on one line, cut at a word with "…" past `length` characters (as the pages' `excerpt`). */
export function excerpt(text, length = 200) {
  const kept = [];
  let size = 0;
  let first = null;
  for (const [word] of text.matchAll(/\S+/g)) {
    first ??= word;
    if (size + (kept.length ? 1 : 0) + word.length > length) {
      while (kept.length && size > length - 1) size -= kept.pop().length + (kept.length ? 1 : 0);
      return kept.length ? `${kept.join(" ")}…` : `${first.slice(0, length - 1)}…`;
    }
    size += (kept.length ? 1 : 0) + word.length;
    kept.push(word);
  }
  return kept.join(" ");
}

/** The same markup as templates/_post_card.html. */
export function postCard(post) {
  const card = element("article", { class: "card post-card", "data-post-id": post.id });
  const meta = element("div", { class: "post-meta" });
  const avatar = element("img", { class: "avatar", src: post.author.image_path, alt: "", width: 40, height: 40 });
  const who = element("div");
  who.append(
    element("a", { class: "author", href: `/users/${post.author.id}/posts` }, post.author.username),
    element("time", { datetime: new Date(post.date_posted).toISOString() }, DATE_FORMAT.format(new Date(post.date_posted))),
  );
  meta.append(avatar, who);
  const title = element("h2", { class: "post-title" });
  title.append(element("a", { href: post.url }, post.title));
  const footer = element("div", { class: "post-footer" });
  if (post.tags.length) footer.append(tagList(post.tags));
  const stats = element("span", { class: "post-stats muted" }, `${post.reading_time_minutes} min read · `);
  const count = `${post.comment_count} comment${post.comment_count === 1 ? "" : "s"}`;
  stats.append(element("a", { href: `${post.url}#comments` }, count));
  footer.append(stats);
  card.append(meta, title, element("p", { class: "post-excerpt" }, post.excerpt), footer);
  return card;
}

/** A `datetime-local` value (a time in the browser's own zone) as the API takes it: UTC. */
export function scheduleTime(value) {
  return value ? new Date(value).toISOString() : null;
}

/** An API time as a `datetime-local` value, in the browser's own zone. */
export function localInputValue(iso) {
  const moment = new Date(iso);
  const two = (number) => String(number).padStart(2, "0");
  const day = `${moment.getFullYear()}-${two(moment.getMonth() + 1)}-${two(moment.getDate())}`;
  return `${day}T${two(moment.getHours())}:${two(moment.getMinutes())}`;
}

/** An API time as the reader's browser writes dates and times. */
export function readableTime(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

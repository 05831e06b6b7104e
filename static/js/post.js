// One post: its author gets edit and delete (the API checks ownership again); logged-in
// readers write comments, and edit or delete theirs (the post's author deletes any).
import { api, currentUser } from "./api.js";
import { onSubmit, parseTags, tagList, wirePreview } from "./ui.js";
import "./upload.js"; // pictures in the editor: a button, drag and drop, paste

const article = document.getElementById("post");
const postId = article.dataset.postId;
const view = document.getElementById("post-view");
const form = document.getElementById("edit-post-form");
const error = document.getElementById("post-error");

function editing(on) {
  view.hidden = on;
  form.hidden = !on;
  if (on) form.elements.title.focus();
}

document.getElementById("edit-post-button").addEventListener("click", () => editing(true));
document.getElementById("cancel-edit-button").addEventListener("click", () => editing(false));
wirePreview(form, api);

onSubmit(form, async ({ title, content, tags }) => {
  const json = { title, content, tags: parseTags(tags) };
  const post = await api(`/api/posts/${postId}`, { method: "PUT", json });
  document.getElementById("post-title").textContent = post.title;
  // HTML rendered and sanitised by the server when the post was saved (content.py).
  document.getElementById("post-content").innerHTML = post.content_html;
  document.getElementById("post-tags").replaceChildren(...(post.tags.length ? [tagList(post.tags)] : []));
  form.elements.tags.value = post.tags.join(", ");
  document.title = `${post.title} · ${document.querySelector('meta[name="application-name"]').content}`;
  editing(false);
});

document.getElementById("delete-post-button").addEventListener("click", async () => {
  if (!window.confirm("Delete this post? This cannot be undone.")) return;
  error.hidden = true;
  try {
    await api(`/api/posts/${postId}`, { method: "DELETE" });
    window.location.assign("/?notice=post-deleted");
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
  }
});

// --- Comments ----------------------------------------------------------------------------

const section = document.getElementById("comments");
const list = document.getElementById("comment-list");
const commentForm = document.getElementById("comment-form");
const replyFormTemplate = document.getElementById("reply-form-template");
const DATE_FORMAT = new Intl.DateTimeFormat("en-US", { month: "long", day: "numeric", year: "numeric" });

// The count of top-level comments (the API's `total`); replies are counted under their comment.
function setCount(delta) {
  const total = Number(section.dataset.total) + delta;
  section.dataset.total = total;
  document.getElementById("comment-count").textContent = total;
  document.getElementById("comments-heading").lastChild.textContent = total === 1 ? " comment" : " comments";
  document.getElementById("no-comments").hidden = total > 0;
}

function element(tag, attributes = {}, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text; // comments are plain text, always
  return node;
}

/** The same markup as templates/_comment.html. */
function commentItem(comment) {
  const reply = comment.parent_id !== null;
  const item = element("li", {
    class: reply ? "comment reply" : "comment",
    id: `comment-${comment.id}`,
    "data-comment-id": comment.id,
    "data-author-id": comment.author.id,
  });
  if (reply) item.dataset.parentId = comment.parent_id;
  const meta = element("div", { class: "comment-meta" });
  meta.append(
    element("img", { class: "avatar avatar-sm", src: comment.author.image_path, alt: "", width: 32, height: 32 }),
    element("a", { class: "author", href: `/users/${comment.author.id}/posts` }, comment.author.username),
    element("time", { datetime: new Date(comment.date_posted).toISOString() }, DATE_FORMAT.format(new Date(comment.date_posted))),
  );
  item.append(meta, element("p", { class: "comment-content" }, comment.content));
  if (!reply) {
    item.append(
      element("ol", {
        class: "comment-list comment-replies",
        id: `replies-${comment.id}`,
        "aria-label": `Replies to ${comment.author.username}`,
      }),
    );
  }
  return item;
}

/** Reply (on a top-level comment), Edit (its author) and Delete (its author or the post's). */
function addControls(item, user) {
  const mine = String(user.id) === item.dataset.authorId;
  const isReply = "parentId" in item.dataset;
  const id = item.dataset.commentId;
  const text = item.querySelector(":scope > .comment-content");
  const actions = element("div", { class: "comment-actions" });
  const problem = element("p", { class: "form-error", role: "alert", hidden: "" });
  if (!isReply) {
    const reply = element("button", { type: "button", class: "link-button", "aria-expanded": "false" }, "Reply");
    reply.addEventListener("click", () => openReplyForm(item, reply, user));
    actions.append(reply);
  }
  if (mine) {
    const edit = element("button", { type: "button", class: "link-button" }, "Edit");
    edit.addEventListener("click", () => openEditor(item, text, actions));
    actions.append(edit);
  }
  if (mine || String(user.id) === article.dataset.authorId) {
    const remove = element("button", { type: "button", class: "link-button danger" }, "Delete");
    remove.addEventListener("click", async () => {
      const question = isReply ? "Delete this reply?" : "Delete this comment and its replies?";
      if (!window.confirm(question)) return;
      try {
        await api(`/api/comments/${id}`, { method: "DELETE" });
        item.remove(); // its replies go with it, as on the server
        if (!isReply) setCount(-1);
      } catch (failure) {
        problem.textContent = failure.message;
        problem.hidden = false;
      }
    });
    actions.append(remove);
  }
  text.after(actions, problem);
}

/** The small form under a comment's replies; a new reply joins them. */
function openReplyForm(item, button, user) {
  const open = item.querySelector(":scope > .reply-form");
  if (open) {
    open.elements.content.focus();
    return;
  }
  const id = item.dataset.commentId;
  const form = replyFormTemplate.content.firstElementChild.cloneNode(true);
  const area = form.elements.content;
  area.id = `reply-content-${id}`;
  form.querySelector("label").htmlFor = area.id;
  const close = () => {
    form.remove();
    button.setAttribute("aria-expanded", "false");
  };
  form.querySelector("[data-cancel]").addEventListener("click", close);
  onSubmit(form, async ({ content }) => {
    const json = { content, parent_id: Number(id) };
    const reply = await api(`/api/posts/${postId}/comments`, { method: "POST", json });
    const added = commentItem(reply);
    document.getElementById(`replies-${reply.parent_id}`).append(added);
    addControls(added, user);
    close();
  });
  item.querySelector(":scope > .comment-replies").after(form);
  button.setAttribute("aria-expanded", "true");
  area.focus();
}

function openEditor(item, text, actions) {
  const editor = element("form", { class: "form comment-edit", novalidate: "" });
  const label = element("label", { for: `edit-comment-${item.dataset.commentId}` }, "Edit your comment");
  const area = element("textarea", {
    id: `edit-comment-${item.dataset.commentId}`,
    name: "content",
    rows: 3,
    maxlength: 2000,
  });
  area.value = text.textContent;
  const buttons = element("div", { class: "actions" });
  const cancel = element("button", { type: "button", class: "button button-secondary" }, "Cancel");
  buttons.append(element("button", { type: "submit", class: "button" }, "Save comment"), cancel);
  editor.append(
    element("div", { class: "field" }),
    element("p", { class: "form-error", role: "alert", hidden: "" }),
    buttons,
  );
  editor.firstChild.append(label, area, element("p", { class: "field-error", "data-error-for": "content", hidden: "" }));
  const close = () => {
    editor.remove();
    text.hidden = false;
    actions.hidden = false;
  };
  cancel.addEventListener("click", close);
  onSubmit(editor, async ({ content }) => {
    const updated = await api(`/api/comments/${item.dataset.commentId}`, { method: "PATCH", json: { content } });
    text.textContent = updated.content;
    close();
  });
  text.hidden = true;
  actions.hidden = true;
  text.after(editor);
  area.focus();
}

const user = await currentUser();
document.getElementById("owner-actions").hidden = !user || String(user.id) !== article.dataset.authorId;
if (user) {
  commentForm.hidden = false;
  document.getElementById("comment-login").hidden = true;
  for (const item of list.querySelectorAll(".comment")) addControls(item, user);
  onSubmit(commentForm, async ({ content }) => {
    const comment = await api(`/api/posts/${postId}/comments`, { method: "POST", json: { content } });
    const item = commentItem(comment);
    list.append(item);
    addControls(item, user);
    setCount(1);
    commentForm.reset();
  });
}
// Set once the comments' controls are in place, or known to be none (the page is settled).
section.dataset.signedIn = String(Boolean(user));

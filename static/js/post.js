// One post: its author gets edit and delete (the API checks ownership again).
import { api, currentUser } from "./api.js";
import { onSubmit } from "./ui.js";

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

onSubmit(form, async ({ title, content }) => {
  const post = await api(`/api/posts/${postId}`, { method: "PUT", json: { title, content } });
  document.getElementById("post-title").textContent = post.title;
  document.getElementById("post-content").textContent = post.content;
  document.title = `${post.title} · Blog`;
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

const user = await currentUser();
document.getElementById("owner-actions").hidden = !user || String(user.id) !== article.dataset.authorId;

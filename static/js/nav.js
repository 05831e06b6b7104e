// On every page: the navigation knows who is logged in; "New post" writes from anywhere.
import { api, currentUser, logOut } from "./api.js";
import { onSubmit, parseTags, scheduleTime, wirePreview } from "./ui.js";
import "./upload.js"; // pictures in the editor: a button, drag and drop, paste
import "./autosave.js"; // the text being written: kept in this browser until saved

export function showUser(user) {
  for (const group of document.querySelectorAll("[data-auth]")) {
    group.hidden = (group.dataset.auth === "in") !== Boolean(user);
  }
  if (!user) return;
  document.getElementById("nav-username").textContent = user.username;
  document.getElementById("nav-avatar").src = user.image_path;
}

const dialog = document.getElementById("new-post-dialog");
const form = document.getElementById("new-post-form");

document.getElementById("new-post-button").addEventListener("click", () => {
  dialog.showModal();
  form.elements.title.focus();
});
dialog.querySelector("[data-close-dialog]").addEventListener("click", () => dialog.close());
/** Log out; when the server could not end the session (it may still live), say so in `line`. */
export async function logOutShowing(line) {
  line.hidden = true;
  try {
    await logOut();
  } catch (failure) {
    line.textContent = `You are still logged in: ${failure.message}`;
    line.hidden = false;
  }
}

document
  .getElementById("logout-button")
  .addEventListener("click", () => logOutShowing(document.getElementById("logout-error")));

wirePreview(form, api);

// "Publish" and "Save draft" are the form's two submit buttons (name="published"); Publish
// with a time under "Schedule" schedules the post for then.
onSubmit(form, async ({ title, content, tags, published = "true", publish_at = "" }) => {
  const json = { title, content, tags: parseTags(tags), published: published === "true" };
  if (json.published && publish_at) json.publish_at = scheduleTime(publish_at);
  const post = await api("/api/posts", { method: "POST", json });
  if (post.published) return window.location.assign(post.url);
  window.location.assign(
    post.publish_at ? "/account?notice=post-scheduled#scheduled" : "/account?notice=draft-saved#drafts",
  );
});

showUser(await currentUser());

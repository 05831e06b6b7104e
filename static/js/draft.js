// A draft in the editor. The page carries no post: the API shows a draft to its author only,
// so this script loads it with the session, then saves, previews and publishes it.
import { api, currentUser } from "./api.js";
import { localInputValue, onSubmit, parseTags, readableTime, scheduleTime, showSuccess, wirePreview } from "./ui.js";
import "./upload.js"; // pictures in the editor: a button, drag and drop, paste
import "./autosave.js"; // the text being written: kept in this browser until saved

const postId = document.getElementById("draft-editor").dataset.postId;
const heading = document.getElementById("draft-heading");
const status = document.getElementById("draft-status");
const form = document.getElementById("draft-form");

function logIn() {
  window.location.replace(`/login?next=${encodeURIComponent(`/account/drafts/${postId}`)}`);
}

/** The post's own text in the fields (values, never markup). */
function fill(post) {
  form.elements.title.value = post.title;
  form.elements.content.value = post.content;
  form.elements.tags.value = post.tags.join(", ");
  form.elements.publish_at.value = post.publish_at ? localInputValue(post.publish_at) : "";
  scheduled = Boolean(post.publish_at);
  document.title = `Edit draft: ${post.title} · ${document.querySelector('meta[name="application-name"]').content}`;
  status.textContent = post.publish_at
    ? `Scheduled: it goes out by itself on ${readableTime(post.publish_at)}. Until then only you can see it.`
    : "Only you can see this draft until you publish it.";
}

let scheduled = false; // the post as loaded or last saved has a publish_at

async function load() {
  if (!(await currentUser())) return logIn();
  let post;
  try {
    post = await api(`/api/posts/${postId}`);
  } catch (failure) {
    if (failure.status === 401) return logIn();
    // Someone else's draft is a 404 too: the page never says whether it exists.
    heading.textContent = failure.status === 404 ? "Draft not found" : "The draft could not be loaded";
    status.textContent =
      failure.status === 404 ? "There is no draft of yours at this address. Your drafts are on your account page." : failure.message;
    return;
  }
  if (post.published) return window.location.replace(post.url); // its page edits it
  fill(post);
  form.hidden = false;
}

wirePreview(form, api);

// "Save draft" and "Publish" are the form's two submit buttons (name="published"). A time
// under "Schedule" schedules the post for then (either button); emptied, a scheduled post is
// a draft again, or, with Publish, goes out now.
onSubmit(form, async ({ title, content, tags, published = "false", publish_at = "" }) => {
  const json = { title, content, tags: parseTags(tags) };
  if (publish_at) json.publish_at = scheduleTime(publish_at);
  else if (published === "true") json.published = true;
  else if (scheduled) json.publish_at = null;
  const post = await api(`/api/posts/${postId}`, { method: "PATCH", json });
  if (post.published) return window.location.assign(post.url);
  fill(post);
  showSuccess(form, post.publish_at ? "Scheduled." : "Draft saved.");
});

await load();

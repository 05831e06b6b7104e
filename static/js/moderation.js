// The moderation page: the pending comments the user may decide on (under their posts; every
// one, for editors and admins), oldest first, each with Approve and Hide.
import { api, currentUser } from "./api.js";

const PAGE_SIZE = 20;
const DATE_FORMAT = new Intl.DateTimeFormat("en-US", { month: "long", day: "numeric", year: "numeric" });

const queue = document.getElementById("moderation-queue");
const summary = document.getElementById("moderation-summary");
const empty = document.getElementById("moderation-empty");
const failure = document.getElementById("moderation-error");
const more = document.getElementById("moderation-more");
let total = 0;

const user = await currentUser();
if (!user) window.location.replace("/login?next=/moderation");

function element(tag, attributes = {}, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text; // comments are plain text, always
  return node;
}

function showError(error) {
  failure.textContent = error.message;
  failure.hidden = false;
}

function showCount() {
  summary.textContent =
    total === 0 ? "No comment waits for you." : `${total} comment${total === 1 ? "" : "s"} waiting for you.`;
  empty.hidden = total > 0;
  more.hidden = queue.children.length >= total;
}

/** One pending comment: who wrote it, when, under which post, and the two decisions. */
function queueItem(comment) {
  const item = element("li", { class: "comment", id: `pending-${comment.id}`, "data-comment-id": comment.id });
  const meta = element("div", { class: "comment-meta" });
  const date = new Date(comment.date_posted);
  meta.append(
    element("img", { class: "avatar avatar-sm", src: comment.author.image_path, alt: "", width: 32, height: 32 }),
    element("a", { class: "author", href: `/users/${comment.author.id}/posts` }, comment.author.username),
    element("time", { datetime: date.toISOString() }, DATE_FORMAT.format(date)),
    element("a", { href: `/posts/${comment.post_id}` }, "on this post"),
  );
  const actions = element("div", { class: "comment-actions" });
  for (const [decision, label, style] of [
    ["approve", "Approve", "button"],
    ["hide", "Hide", "button button-secondary"],
  ]) {
    const button = element("button", { type: "button", class: style, "data-decision": decision }, label);
    button.addEventListener("click", () => decide(item, comment.id, decision));
    actions.append(button);
  }
  item.append(meta, element("p", { class: "comment-content" }, comment.content), actions);
  return item;
}

async function decide(item, id, decision) {
  failure.hidden = true;
  const buttons = item.querySelectorAll("button");
  for (const button of buttons) button.disabled = true;
  try {
    await api(`/api/comments/${id}/${decision}`, { method: "POST" });
    item.remove(); // decided: out of the queue
    total -= 1;
    showCount();
  } catch (error) {
    for (const button of buttons) button.disabled = false;
    showError(error);
  }
}

/** The next page of the queue: the comments still shown are still pending, so skip them. */
async function loadMore() {
  failure.hidden = true;
  more.disabled = true;
  try {
    const page = await api(`/api/comments?status=pending&skip=${queue.children.length}&limit=${PAGE_SIZE}`);
    total = page.total;
    for (const comment of page.comments) {
      if (!document.getElementById(`pending-${comment.id}`)) queue.append(queueItem(comment));
    }
    showCount();
  } catch (error) {
    showError(error);
  } finally {
    more.disabled = false;
  }
}

if (user) {
  more.addEventListener("click", loadMore);
  await loadMore();
}

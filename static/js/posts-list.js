// "Load more": the next page of posts from the API, appended to the list the server rendered.
import { api } from "./api.js";
import { postCard } from "./ui.js";

const list = document.getElementById("post-list");
const button = document.getElementById("load-more");
const error = document.getElementById("load-more-error");

button?.addEventListener("click", async (event) => {
  event.preventDefault(); // without JavaScript the link opens the next page instead
  button.setAttribute("aria-disabled", "true");
  error.hidden = true;
  try {
    const url = new URL(list.dataset.api, window.location.origin); // may carry ?tag= already
    // The cursor names the last post shown: the next ones, whatever was posted since.
    url.searchParams.set("cursor", list.dataset.nextCursor);
    url.searchParams.set("limit", list.dataset.limit);
    const page = await api(`${url.pathname}${url.search}`);
    list.append(...page.posts.map(postCard));
    list.dataset.nextCursor = page.next_cursor ?? "";
    button.parentElement.hidden = page.next_cursor === null;
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
  } finally {
    button.removeAttribute("aria-disabled");
  }
});

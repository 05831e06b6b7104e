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
    url.searchParams.set("skip", list.dataset.nextSkip);
    url.searchParams.set("limit", list.dataset.limit);
    const page = await api(`${url.pathname}${url.search}`);
    list.append(...page.posts.map(postCard));
    list.dataset.nextSkip = page.skip + page.posts.length;
    button.parentElement.hidden = !page.has_more;
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
  } finally {
    button.removeAttribute("aria-disabled");
  }
});

// Pictures in the post editors: "Add picture", a file dropped on the text or an image pasted
// into it is uploaded (POST /api/posts/images), and `![alt](url)` goes in at the cursor.
// Imported by the editors' scripts; it wires each editor form on the page once.
import { api } from "./api.js";
import { clearMessages, showError } from "./ui.js";

const EDITORS = ["new-post-form", "edit-post-form", "draft-form"];
const ACCEPTED = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/** The alt text a file suggests: its name without the extension, nothing Markdown would read. */
function altText(file) {
  const name = file.name.replace(/\.[^.]*$/, "").replace(/[\[\]\\\r\n]/g, " ").trim();
  return name || "picture";
}

/** `text` in place of the textarea's selection, the cursor after it, as if typed. */
function insertAtCursor(textarea, text) {
  textarea.focus();
  textarea.setRangeText(text, textarea.selectionStart, textarea.selectionEnd, "end");
  // Listeners of typing (the preview, the saved copy of a draft) hear of it.
  textarea.dispatchEvent(new Event("input", { bubbles: true }));
}

function wire(form) {
  const textarea = form.elements.content;
  const field = textarea.closest(".field");
  const row = document.createElement("div");
  row.className = "upload-row";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "button button-secondary";
  button.textContent = "Add picture";
  button.dataset.uploadButton = "";
  const input = document.createElement("input");
  input.type = "file";
  input.accept = ACCEPTED.join(",");
  input.hidden = true;
  input.setAttribute("aria-label", "Picture to add");
  const status = document.createElement("span");
  status.className = "hint";
  status.setAttribute("role", "status");
  row.append(button, input, " ", status);
  field.querySelector(".hint")?.after(row);

  async function upload(files) {
    for (const file of files) {
      const body = new FormData();
      body.append("file", file);
      button.disabled = true;
      status.textContent = `Uploading ${file.name}…`;
      clearMessages(form);
      try {
        const picture = await api("/api/posts/images", { method: "POST", body });
        insertAtCursor(textarea, `![${altText(file)}](${picture.url})`);
        status.textContent = "Picture added.";
      } catch (error) {
        status.textContent = "";
        showError(form, error);
        return;
      } finally {
        button.disabled = false;
      }
    }
  }

  const pictures = (list) => [...(list ?? [])].filter((file) => file.type.startsWith("image/"));

  button.addEventListener("click", () => input.click());
  input.addEventListener("change", async () => {
    await upload([...input.files]);
    input.value = ""; // the same file can be chosen again
  });
  textarea.addEventListener("dragover", (event) => {
    if ([...event.dataTransfer.types].includes("Files")) event.preventDefault();
  });
  textarea.addEventListener("drop", (event) => {
    const files = pictures(event.dataTransfer?.files);
    if (!files.length) return;
    event.preventDefault();
    upload(files);
  });
  textarea.addEventListener("paste", (event) => {
    const files = pictures(event.clipboardData?.files);
    if (!files.length) return; // text pastes as text
    event.preventDefault();
    upload(files);
  });
}

for (const id of EDITORS) {
  const form = document.getElementById(id);
  if (form?.elements.content) wire(form);
}

// A user's page, for admins: change the user's role, or suspend the account. The server decides
// who may (permissions.py); this only shows the controls to an admin looking at someone else.
import { api, currentUser } from "./api.js";

const controls = document.getElementById("admin-controls");
const error = document.getElementById("admin-error");
const done = document.getElementById("admin-done");
const userId = controls.dataset.userId;

function say(line, text) {
  for (const other of [error, done]) other.hidden = other !== line;
  line.textContent = text;
}

async function run(action, success) {
  try {
    await action();
    say(done, success);
  } catch (failure) {
    say(error, failure.message);
  }
}

const me = await currentUser();
if (me && me.role === "admin" && String(me.id) !== userId) {
  controls.hidden = false;
  document.getElementById("role-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const role = document.getElementById("role-select").value;
    run(
      () => api(`/api/users/${userId}/role`, { method: "PATCH", json: { role } }),
      `The role is now ${role}.`,
    );
  });
  document.getElementById("suspend-button").addEventListener("click", () => {
    if (!window.confirm("Suspend this account? Its sessions end and all it wrote is hidden.")) return;
    run(
      () => api(`/api/users/${userId}/suspension`, { method: "POST" }),
      "Suspended: the account and all it wrote are hidden until the suspension is lifted.",
    );
  });
}

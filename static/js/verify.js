// The email verification page: sends the mailed token to the API and says how it went.
//
// The token is sent when the button is pressed, not as the page loads: a mail scanner that
// opens every link it sees, scripts included, does not prove an address on its own.
import { api } from "./api.js";
import { onSubmit } from "./ui.js";

const form = document.getElementById("verify-form");

if (form) {
  onSubmit(form, async ({ token }) => {
    const { message } = await api("/api/users/verify-email", { method: "POST", json: { token } });
    document.getElementById("verify-message").textContent = `${message}.`;
    document.getElementById("verify-done").hidden = false;
    form.hidden = true;
  });
}

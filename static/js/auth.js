// Log in, register, forgot password and reset password: whichever form this page has.
import { api, logIn } from "./api.js";
import { onSubmit, safeNext } from "./ui.js";

const login = document.getElementById("login-form");
const register = document.getElementById("register-form");
const forgot = document.getElementById("forgot-form");
const reset = document.getElementById("reset-form");

if (login) {
  onSubmit(login, async ({ username, password }) => {
    await logIn(username, password); // the session is a cookie no script can read
    window.location.assign(safeNext(new URLSearchParams(window.location.search).get("next")));
  });
}

if (register) {
  onSubmit(register, async ({ username, email, password }) => {
    await api("/api/users", { method: "POST", json: { username, email, password } });
    window.location.assign("/login?notice=registered");
  });
}

if (forgot) {
  onSubmit(forgot, async ({ email }) => {
    const { message } = await api("/api/users/forgot-password", { method: "POST", json: { email } });
    const done = document.getElementById("forgot-done");
    done.textContent = message;
    done.hidden = false;
    forgot.hidden = true;
  });
}

if (reset) {
  onSubmit(reset, async ({ token: resetToken, new_password }) => {
    await api("/api/users/reset-password", { method: "POST", json: { token: resetToken, new_password } });
    // Every session of this account has ended, this browser's too: log in again.
    window.location.assign("/login?notice=password-reset");
  });
}

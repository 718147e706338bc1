// The example page: sign up with the profile fields, sign in, show the session, list sessions and
// sign out, all through Better Auth's client against the auth server on another origin.
import { authClient, type Session } from "./auth-client.ts";

const element = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const found = document.getElementById(id);
  if (!found) throw new Error(`the page has no #${id}`);
  return found as T;
};

const status = element("status");
const message = element("message");
const account = element("account");
const guest = element("guest");
const profile = element("profile");
const sessions = element<HTMLUListElement>("sessions");
const signInForm = element<HTMLFormElement>("sign-in-form");
const signUpForm = element<HTMLFormElement>("sign-up-form");
const roleOther = element("role-other");

function showError(text: string | null): void {
  message.textContent = text ?? "";
  message.hidden = !text;
}

/** Runs `action` with `button` disabled, and shows what went wrong, if anything. */
async function busy(button: HTMLButtonElement | null, action: () => Promise<{ error: { message?: string; status: number } | null }>) {
  if (button) button.disabled = true;
  showError(null);
  try {
    const { error } = await action();
    if (error) showError(error.message || `The auth server answered ${error.status}`);
    return !error;
  } catch {
    showError("The auth server could not be reached.");
    return false;
  } finally {
    if (button) button.disabled = false;
  }
}

function renderProfile({ user, session }: Session): void {
  const role = user.professionalRole === "other" && user.roleOther ? `other (${user.roleOther})` : user.professionalRole;
  const rows: Array<[string, string | null | undefined]> = [
    ["Name", user.name],
    ["Email", user.email],
    ["Experience", user.experienceLevel],
    ["Role", role],
    ["Organization", user.organization],
    ["Session ends", new Date(session.expiresAt).toLocaleString()],
  ];
  profile.replaceChildren(
    ...rows.flatMap(([term, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value || "—";
      dd.dataset.field = term.toLowerCase();
      return [dt, dd];
    }),
  );
}

let current: Session | null = null;

// The session store refetches by itself after sign-up, sign-in and sign-out.
authClient.useSession.subscribe(({ data, error, isPending }) => {
  current = data;
  if (isPending && !data) {
    status.textContent = "Checking your session…";
    return;
  }
  account.hidden = !data;
  guest.hidden = !!data;
  if (data) {
    status.textContent = `Signed in as ${data.user.email}`;
    renderProfile(data);
  } else {
    sessions.hidden = true;
    sessions.replaceChildren();
    status.textContent = error ? "The auth server could not be reached (is this site in its CORS_ORIGINS?)." : "Not signed in.";
  }
});

const formValues = (form: HTMLFormElement) => {
  const values = Object.fromEntries(new FormData(form)) as Record<string, string>;
  // An optional field left empty is not sent at all.
  return (name: string) => values[name]?.trim() || undefined;
};

const roleSelect = signUpForm.querySelector<HTMLSelectElement>("select[name=professionalRole]")!;
roleSelect.addEventListener("change", () => {
  roleOther.hidden = roleSelect.value !== "other";
});

signUpForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const value = formValues(signUpForm);
  const professionalRole = value("professionalRole");
  const signedUp = await busy(signUpForm.querySelector("button"), () =>
    authClient.signUp.email({
      name: value("name")!,
      email: value("email")!,
      password: (signUpForm.elements.namedItem("password") as HTMLInputElement).value,
      experienceLevel: value("experienceLevel"),
      professionalRole,
      roleOther: professionalRole === "other" ? value("roleOther") : undefined,
      organization: value("organization"),
    }),
  );
  if (signedUp) {
    signUpForm.reset();
    roleOther.hidden = true;
  }
});

signInForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const value = formValues(signInForm);
  const signedIn = await busy(signInForm.querySelector("button"), () =>
    authClient.signIn.email({
      email: value("email")!,
      password: (signInForm.elements.namedItem("password") as HTMLInputElement).value,
    }),
  );
  if (signedIn) signInForm.reset();
});

element<HTMLButtonElement>("sign-out").addEventListener("click", (event) =>
  busy(event.currentTarget as HTMLButtonElement, () => authClient.signOut()),
);

element<HTMLButtonElement>("list-sessions").addEventListener("click", (event) =>
  busy(event.currentTarget as HTMLButtonElement, async () => {
    const listed = await authClient.listSessions();
    if (listed.data) {
      sessions.replaceChildren(
        ...listed.data.map((session) => {
          const item = document.createElement("li");
          const here = session.id === current?.session.id ? " (this browser)" : "";
          item.textContent = `${session.userAgent ?? "unknown browser"}, since ${new Date(session.createdAt).toLocaleString()}${here}`;
          return item;
        }),
      );
      sessions.hidden = false;
    }
    return listed;
  }),
);

// Every message the server sends, in one place: its subject, plain-text part and HTML part. To change
// a wording, change it here; to add a message, add its data to `MailTemplateData` and a template to
// `templates` (src/mail/mailer.ts sends any kind listed here).

export interface MailContent {
  subject: string;
  text: string;
  html: string;
}

/** The data each kind of message needs. `url` is the link; `expiresInSeconds` how long it works. */
export interface MailTemplateData {
  "verify-email": { name: string; url: string; expiresInSeconds: number };
  "change-email-verify": { name: string; newEmail: string; url: string; expiresInSeconds: number };
  "email-change-requested": { name: string; newEmail: string };
  "password-reset": { name: string; url: string; expiresInSeconds: number };
  "password-changed": { name: string; how: "changed" | "reset" };
  "magic-link": { url: string; expiresInSeconds: number };
  "delete-account": { name: string; url: string; expiresInSeconds: number };
  /** A second-factor code for a sign-in (two-factor plugin, src/auth/plugins/two-factor.ts). */
  "two-factor-code": { name: string; code: string; expiresInSeconds: number };
  /** An invitation to an organization (src/auth/plugins/organization.ts); `url` is the site's page that accepts it. */
  "organization-invitation": {
    inviterName: string;
    inviterEmail: string;
    organizationName: string;
    role: string;
    url: string;
    expiresInSeconds: number;
  };
  "account-locked": { name: string; unlocksInSeconds: number };
  /** Someone tried to sign up with the address of an existing account; `url` is the site. */
  "sign-up-attempt": { name: string; url: string };
}

export type MailKind = keyof MailTemplateData;

const UNITS: Array<[number, string]> = [
  [86400, "day"],
  [3600, "hour"],
  [60, "minute"],
  [1, "second"],
];

/** 3600 -> "1 hour", 600 -> "10 minutes", 5400 -> "90 minutes". */
export function humanDuration(seconds: number): string {
  for (const [size, unit] of UNITS) {
    if (seconds >= size && seconds % size === 0) {
      const count = seconds / size;
      return `${count} ${unit}${count === 1 ? "" : "s"}`;
    }
  }
  return `${seconds} seconds`;
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (char) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[char]!);
}

interface Letter {
  subject: string;
  name?: string;
  paragraphs: string[];
  /** `expiresInSeconds`: a one-time link's lifetime; absent for a plain link to the site. */
  action?: { label: string; url: string; expiresInSeconds?: number };
  /** Why the reader got this mail and what to do if it was not them. */
  footer: string;
}

/** One layout for every message: greeting, paragraphs, the link and how long it lasts, footer. */
function letter(product: string, { subject, name, paragraphs, action, footer }: Letter): MailContent {
  const greeting = name ? `Hello ${name},` : "Hello,";
  const lasts = action?.expiresInSeconds ? `This link works once and expires in ${humanDuration(action.expiresInSeconds)}.` : "";
  const text = [
    greeting,
    ...paragraphs,
    ...(action ? [`${action.label}:\n${action.url}`, ...(lasts ? [lasts] : [])] : []),
    footer,
    `-- ${product}`,
  ].join("\n\n");
  const p = (content: string) => `<p style="margin:0 0 16px">${content}</p>`;
  const html = [
    `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(subject)}</title></head>`,
    `<body style="font-family:system-ui,sans-serif;line-height:1.5;color:#1a1a1a;max-width:560px;margin:0 auto;padding:24px">`,
    p(escapeHtml(greeting)),
    ...paragraphs.map((paragraph) => p(escapeHtml(paragraph))),
    ...(action
      ? [
          p(
            `<a href="${escapeHtml(action.url)}" style="display:inline-block;padding:10px 18px;background:#2f5bea;color:#fff;border-radius:6px;text-decoration:none">${escapeHtml(action.label)}</a>`,
          ),
          p(`Or open this address: <a href="${escapeHtml(action.url)}">${escapeHtml(action.url)}</a>`),
          ...(lasts ? [p(escapeHtml(lasts))] : []),
        ]
      : []),
    `<p style="margin:24px 0 0;color:#666;font-size:13px">${escapeHtml(footer)}</p>`,
    `</body></html>`,
  ].join("\n");
  return { subject, text, html };
}

const NOT_YOU = "If you did not ask for this, ignore this email; nothing changes.";
const SECURE_ACCOUNT = "If this was not you, reset your password now and check your account's sessions.";

/** Each template gets its data and the product name (APP_NAME) that signs the mail. */
export const templates: { [K in MailKind]: (data: MailTemplateData[K], product: string) => MailContent } = {
  "verify-email": ({ name, url, expiresInSeconds }, product) =>
    letter(product, {
      subject: `Verify your email address for ${product}`,
      name,
      paragraphs: ["Please confirm that this is your email address."],
      action: { label: "Verify my email address", url, expiresInSeconds },
      footer: NOT_YOU,
    }),
  "change-email-verify": ({ name, newEmail, url, expiresInSeconds }, product) =>
    letter(product, {
      subject: `Confirm your new email address for ${product}`,
      name,
      paragraphs: [`You asked to use ${newEmail} for your ${product} account. Your address changes only once you open this link.`],
      action: { label: "Confirm my new email address", url, expiresInSeconds },
      footer: NOT_YOU,
    }),
  "email-change-requested": ({ name, newEmail }, product) =>
    letter(product, {
      subject: `Your ${product} email address is being changed`,
      name,
      paragraphs: [
        `Someone signed in to your account asked to change its email address to ${newEmail}.`,
        "The change takes effect only when the link sent to the new address is opened.",
      ],
      footer: SECURE_ACCOUNT,
    }),
  "password-reset": ({ name, url, expiresInSeconds }, product) =>
    letter(product, {
      subject: `Reset your ${product} password`,
      name,
      paragraphs: ["Someone asked to reset the password of your account. Choosing a new password signs you out everywhere."],
      action: { label: "Choose a new password", url, expiresInSeconds },
      footer: NOT_YOU,
    }),
  "password-changed": ({ name, how }, product) =>
    letter(product, {
      subject: `Your ${product} password was ${how}`,
      name,
      paragraphs: [`The password of your account was ${how === "reset" ? "reset with an emailed link" : "changed"} on ${new Date().toUTCString()}.`],
      footer: SECURE_ACCOUNT,
    }),
  "magic-link": ({ url, expiresInSeconds }, product) =>
    letter(product, {
      subject: `Your sign-in link for ${product}`,
      paragraphs: ["Use this link to sign in."],
      action: { label: `Sign in to ${product}`, url, expiresInSeconds },
      footer: NOT_YOU,
    }),
  "delete-account": ({ name, url, expiresInSeconds }, product) =>
    letter(product, {
      subject: `Confirm the deletion of your ${product} account`,
      name,
      paragraphs: [
        "You asked to delete your account. Opening this link, signed in, deletes it with its sessions and sign-in methods. This cannot be undone.",
      ],
      action: { label: "Delete my account", url, expiresInSeconds },
      footer: "If you did not ask for this, ignore this email and change your password; your account stays.",
    }),
  // The code stays out of the subject, which phones show on a locked screen.
  "two-factor-code": ({ name, code, expiresInSeconds }, product) =>
    letter(product, {
      subject: `Your ${product} sign-in code`,
      name,
      paragraphs: [`Your sign-in code is ${code}`, `Enter it where you are signing in. It works once and expires in ${humanDuration(expiresInSeconds)}.`],
      footer: "If you are not signing in right now, someone knows your password: change it now and check your account's sessions.",
    }),
  "organization-invitation": ({ inviterName, inviterEmail, organizationName, role, url, expiresInSeconds }, product) =>
    letter(product, {
      subject: `${inviterName} invites you to ${organizationName} on ${product}`,
      paragraphs: [`${inviterName} (${inviterEmail}) invites you to join ${organizationName} as ${role}.`, "Sign in or create an account with this email address to accept."],
      action: { label: `Join ${organizationName}`, url, expiresInSeconds },
      footer: "If you did not expect this invitation, ignore this email; nothing changes.",
    }),
  "account-locked": ({ name, unlocksInSeconds }, product) =>
    letter(product, {
      subject: `Your ${product} account is locked for ${humanDuration(unlocksInSeconds)}`,
      name,
      paragraphs: [
        `There were too many failed attempts to sign in to your account, so sign-in is locked for ${humanDuration(unlocksInSeconds)}, even with the right password, in every browser where you have not signed in before.`,
        "Browsers where you signed in before can still sign in. It unlocks by itself; you do not need to do anything.",
      ],
      footer: "If these attempts were not you, someone may be guessing your password: once it unlocks, choose a new, long password.",
    }),
  // Sign-up answers a taken address exactly like a new one (ASVS 2.5 / no enumeration); the owner hears of it here.
  "sign-up-attempt": ({ name, url }, product) =>
    letter(product, {
      subject: `Someone tried to create a ${product} account with your email address`,
      name,
      paragraphs: [
        `Someone tried to create a new ${product} account with this email address, which already has an account. No new account was created and your account is unchanged.`,
        `If it was you, sign in instead; if you forgot your password, choose "Forgot password" on the sign-in page to get a reset link.`,
      ],
      action: { label: `Sign in to ${product}`, url },
      footer: "If it was not you, you do not need to do anything.",
    }),
};

/** The subject and both parts of one message. */
export function renderMail<K extends MailKind>(kind: K, data: MailTemplateData[K], product: string): MailContent {
  return templates[kind](data, product);
}

// The API docs page in headless Chromium. Loads /docs from the app at DOCS_BASE_URL (run.sh
// starts it under real Spin) and checks, from what the page rendered and requested:
// - every path of the description (/openapi.json, which is openapi.yaml) is shown, and every
//   operation of it;
// - "Try it out" works against the same origin: with the description's own examples it
//   registers and logs in, after which the page is authorized without copying the token, and a
//   token pasted into "Authorize" is sent too;
// - every request the page made went to the page's origin, and its files all loaded;
// - nothing broke the Content-Security-Policy the page is sent with, and no script failed.
// Saves a full-page screenshot of the page as rendered to target/docs-screenshot.png (or
// DOCS_SCREENSHOT), and exits with 1 when anything failed (with a screenshot of the page as the
// test left it, beside the other as *-failed.png).

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const base = process.env.DOCS_BASE_URL;
if (!base) {
  console.error("DOCS_BASE_URL is not set: run tests/browser/run.sh");
  process.exit(2);
}
const origin = new URL(base).origin;
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const screenshot = process.env.DOCS_SCREENSHOT ?? join(root, "target", "docs-screenshot.png");
const METHODS = ["get", "put", "post", "delete", "patch"];

const failures = [];
function check(ok, what) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
}

/** What went wrong, for a check's message: nothing when nothing did. */
function listed(label, items) {
  return items.length > 0 ? `; ${label}: ${items.join(", ")}` : "";
}

const description = await (await fetch(`${origin}/openapi.json`)).json();
const paths = Object.keys(description.paths);
const operations = paths.flatMap((path) =>
  Object.entries(description.paths[path])
    .filter(([method]) => METHODS.includes(method))
    .map(([method, operation]) => ({ method: method.toUpperCase(), path, operation })),
);

// What the page does, recorded as it happens.
const seen = { requests: [], badResponses: [], failedRequests: [], console: [], errors: [] };

const profile = mkdtempSync(join(tmpdir(), "docs-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true, // Playwright passes --headless
  // Without the background-networking flags Chromium keeps calling Google's hosts, which this
  // test would (rightly) count against the page.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 1280, height: 900 },
});
const page = context.pages()[0] ?? (await context.newPage());
try {
  await record(context);
  await loadThePage(page);
  checkEveryPathIsShown(await renderedOperations(page));
  await saveScreenshot(page, screenshot);
  await tryItOut(page);
} catch (error) {
  check(false, `the page could be used to the end (${error.message.split("\n")[0]})`);
}
// Also after a failure: what the page requested, and how it looked, tell why.
try {
  await checkWhatThePageDid(page);
  if (failures.length > 0) {
    await saveScreenshot(page, screenshot.replace(/(\.png)?$/, "-failed.png"));
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}

if (failures.length > 0) {
  console.log(`\n${failures.length} check(s) failed:\n- ${failures.join("\n- ")}`);
  process.exit(1);
}
console.log("\nthe docs page passed every check");

async function saveScreenshot(page, path) {
  mkdirSync(dirname(path), { recursive: true });
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot: ${path}`);
}

/** Records every request, failed load, console message and script error of the context. */
async function record(context) {
  // Anything for another origin is refused, so a failing run reaches no one; data: and blob:
  // URLs are the page's own content, not requests to anyone.
  const elsewhere = (url) => url.origin !== origin && !["data:", "blob:"].includes(url.protocol);
  await context.route(elsewhere, (route) => route.abort("blockedbyclient"));
  context.on("request", (request) => seen.requests.push(request.url()));
  context.on("requestfailed", (request) =>
    seen.failedRequests.push(`${request.url()}: ${request.failure()?.errorText}`),
  );
  context.on("response", (response) => {
    const path = new URL(response.url()).pathname;
    const ofThePage = path === "/docs" || path.startsWith("/docs/") || path === "/openapi.json";
    if (ofThePage && response.status() >= 400) {
      seen.badResponses.push(`${response.status()} ${response.url()}`);
    }
  });
  // Violations are also reported as DOM events, which say which directive was broken.
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (event) =>
      window.__cspViolations.push(`${event.effectiveDirective} blocked ${event.blockedURI}`),
    );
  });
  context.on("console", (message) => seen.console.push(`[${message.type()}] ${message.text()}`));
  context.on("weberror", (error) => seen.errors.push(String(error.error())));
}

async function loadThePage(page) {
  const response = await page.goto(`${origin}/docs`, { waitUntil: "networkidle" });
  check(response.status() === 200, `GET /docs answers 200 (${response.status()})`);
  const policy = response.headers()["content-security-policy"] ?? "";
  check(
    policy.includes("default-src 'none'") && policy.includes("script-src 'self';"),
    `GET /docs sends a strict Content-Security-Policy (${policy})`,
  );
  await page.waitForSelector("#swagger-ui .opblock [data-path]", { timeout: 30_000 });
}

/** "METHOD /path" of every operation the page shows. */
async function renderedOperations(page) {
  return page.$$eval("#swagger-ui .opblock", (blocks) =>
    blocks.map((block) => {
      const method = block.querySelector(".opblock-summary-method")?.textContent.trim();
      const path = block.querySelector("[data-path]")?.getAttribute("data-path");
      return `${method} ${path}`;
    }),
  );
}

function checkEveryPathIsShown(rendered) {
  const shownPaths = new Set(rendered.map((operation) => operation.split(" ")[1]));
  for (const path of paths) check(shownPaths.has(path), `shows ${path}`);
  const missing = operations
    .map(({ method, path }) => `${method} ${path}`)
    .filter((operation) => !rendered.includes(operation));
  check(
    missing.length === 0,
    `shows all ${operations.length} operations of the description${listed("missing", missing)}`,
  );
}

/** Log in and call routes the way a reader would, with the examples of the description. */
async function tryItOut(page) {
  const run = async (operationId, expected, what) => {
    const result = await execute(page, operationId);
    check(result.status === expected, `Try it out: ${what} is ${expected} (${result.status})`);
    return result;
  };
  await run("authenticate", 401, "GET /auth/authenticate without a token");
  await run("register", 201, "POST /auth/register with the example");
  const login = await run("login", 200, "POST /auth/login with the example");
  const token = (await login.response.json()).access_token;
  let result = await run("authenticate", 200, "GET /auth/authenticate after logging in");
  check(
    result.authorization === `Bearer ${token}`,
    "Try it out: after logging in, the page sends the token by itself",
  );
  await pasteToken(page, token);
  result = await run("authenticate", 200, "GET /auth/authenticate with a pasted token");
  check(
    result.authorization === `Bearer ${token}`,
    "Try it out: a token pasted into Authorize is sent",
  );
}

/** Runs an operation from its block on the page (opened if need be); its response. */
async function execute(page, operationId) {
  const { method, path, operation } = operations.find(
    (o) => o.operation.operationId === operationId,
  );
  const block = page.locator(`[id="operations-${operation.tags[0]}-${operationId}"]`);
  const button = block.locator("button.execute");
  if (!(await button.isVisible())) await block.locator(".opblock-summary-control").click();
  const [response] = await Promise.all([
    page.waitForResponse(
      (r) => new URL(r.url()).pathname === path && r.request().method() === method,
    ),
    button.click(),
  ]);
  const status = response.status();
  // The page shows what it received, too.
  await block
    .locator(".live-responses-table .response-col_status", { hasText: String(status) })
    .first()
    .waitFor();
  const authorization = await response.request().headerValue("authorization");
  return { response, status, authorization };
}

/** Forgets the page's token in the Authorize dialog, then pastes `token` there. */
async function pasteToken(page, token) {
  await page.locator(".auth-wrapper .btn.authorize").click();
  const dialog = page.locator(".modal-ux");
  await dialog.getByRole("button", { name: "Remove authorization" }).click();
  await dialog.locator("#auth-bearer-value").fill(token);
  await dialog.locator("button.authorize").click();
  await dialog.locator("button.btn-done").click();
}

async function checkWhatThePageDid(page) {
  const elsewhere = seen.requests.filter((url) => {
    const { origin: of, protocol } = new URL(url);
    return of !== origin && !["data:", "blob:"].includes(protocol);
  });
  check(
    elsewhere.length === 0,
    `all ${seen.requests.length} requests of the page went to ${origin}${listed("not", elsewhere)}`,
  );
  const { badResponses, failedRequests } = seen;
  check(badResponses.length === 0, `the page's files all loaded${listed("not", badResponses)}`);
  check(failedRequests.length === 0, `no request failed${listed("failed", failedRequests)}`);
  const violations = await page
    .evaluate(() => window.__cspViolations)
    .catch((error) => [`(the page's record of them is unreadable: ${error.message})`]);
  const reported = seen.console.filter((text) => /Content.Security.Policy|Refused to/i.test(text));
  check(
    violations.length === 0 && reported.length === 0,
    `no Content-Security-Policy violation${listed("reported", [...violations, ...reported])}`,
  );
  check(seen.errors.length === 0, `no script error${listed("errors", seen.errors)}`);
}

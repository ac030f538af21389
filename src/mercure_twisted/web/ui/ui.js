// The hub's debugging page: plain JavaScript, no build step, no external assets.
"use strict";

const hubURL = new URL("../", window.location.href).href.replace(/\/$/, "");
const $ = (id) => document.getElementById(id);
let source = null;

$("hub-url").textContent = hubURL;

function lines(text) {
  return text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
}

function token() {
  return $("token").value.trim();
}

function setStatus(element, text, kind) {
  element.textContent = text;
  element.className = "status" + (kind ? " " + kind : "");
}

// -- token: decoded header and claims, and what they grant ----------------

function base64urlDecode(part) {
  const padded = part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

function describeToken() {
  const info = $("token-info");
  info.replaceChildren();
  const value = token();
  if (!value) return;
  const parts = value.split(".");
  if (parts.length !== 3) {
    info.innerHTML = '<p class="bad">Not a JWS compact serialization (expected three dot-separated parts).</p>';
    return;
  }
  let header, claims;
  try {
    header = JSON.parse(base64urlDecode(parts[0]));
    claims = JSON.parse(base64urlDecode(parts[1]));
  } catch (e) {
    info.innerHTML = '<p class="bad">The token does not decode as JSON: ' + String(e) + "</p>";
    return;
  }
  const summary = [];
  if (claims.exp !== undefined) {
    const expires = new Date(claims.exp * 1000);
    summary.push((expires < new Date() ? "EXPIRED at " : "expires ") + expires.toISOString());
  }
  if (claims.mercure) {
    summary.push("draft-07 token");
    summary.push("may publish to: " + JSON.stringify(claims.mercure.publish || []));
    summary.push("may receive private updates of: " + JSON.stringify(claims.mercure.subscribe || []));
  }
  if (Array.isArray(claims.authorization_details)) {
    summary.push("draft-08 token, iss " + JSON.stringify(claims.iss) + ", aud " + JSON.stringify(claims.aud));
    for (const detail of claims.authorization_details) {
      summary.push(JSON.stringify(detail.actions) + " on " + JSON.stringify(detail.topics));
    }
  }
  if (!claims.mercure && !claims.authorization_details) summary.push("grants nothing on a Mercure hub");
  const pre = (label, object) => {
    const p = document.createElement("pre");
    p.textContent = label + " " + JSON.stringify(object, null, 2);
    return p;
  };
  const list = document.createElement("pre");
  list.textContent = summary.join("\n") + "\n(signature not verified by this page; the hub verifies it)";
  info.append(list, pre("header", header), pre("claims", claims));
}

// -- events ---------------------------------------------------------------

function showEvent(event, kind) {
  const item = document.createElement("li");
  item.className = "event";
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = new Date().toISOString() + "  " + kind + "  id=" + (event.lastEventId || "");
  const data = document.createElement("div");
  data.className = "data";
  data.textContent = event.data;
  item.append(meta, data);
  $("events").prepend(item);
}

function subscribe(e) {
  e.preventDefault();
  if (source) source.close();
  const url = new URL(hubURL);
  const kind = $("sub-kind").value;
  for (const topic of lines($("sub-topics").value)) url.searchParams.append(kind, topic);
  const last = $("sub-last-event-id").value.trim();
  if (last) url.searchParams.append(kind === "topic" ? "lastEventID" : "last_event_id", last);
  source = new EventSource(url, { withCredentials: $("sub-credentials").checked });
  setStatus($("sub-status"), "Connecting to " + url.href, "");
  source.onopen = () => setStatus($("sub-status"), "Subscribed: " + url.search, "good");
  source.onerror = () => setStatus($("sub-status"),
    source.readyState === EventSource.CLOSED ? "Refused (see the hub's answer in the network panel)." : "Reconnecting...", "bad");
  source.onmessage = (event) => showEvent(event, "message");
  source.addEventListener("mercure", (event) => showEvent(event, "mercure (subscription event)"));
  $("unsubscribe-button").disabled = false;
}

function unsubscribe() {
  if (source) source.close();
  source = null;
  $("unsubscribe-button").disabled = true;
  setStatus($("sub-status"), "Not subscribed.", "");
}

// -- publish --------------------------------------------------------------

async function publish(e) {
  e.preventDefault();
  const body = new URLSearchParams();
  for (const topic of lines($("pub-topics").value)) body.append("topic", topic);
  body.append("data", $("pub-data").value);
  for (const name of ["id", "type", "retry"]) {
    const value = $("pub-" + name).value.trim();
    if (value) body.append(name, value);
  }
  if ($("pub-private").checked) body.append("private", "on");
  const headers = { "Content-Type": "application/x-www-form-urlencoded" };
  if (token()) headers.Authorization = "Bearer " + token();
  try {
    const response = await fetch(hubURL, { method: "POST", body, headers });
    const text = (await response.text()).trim();
    if (response.ok) setStatus($("pub-status"), "Published: " + text, "good");
    else setStatus($("pub-status"), response.status + " " + response.statusText + ": " + text, "bad");
  } catch (error) {
    setStatus($("pub-status"), "Request failed: " + error, "bad");
  }
}

// -- active subscriptions -------------------------------------------------

async function refreshSubscriptions() {
  const headers = token() ? { Authorization: "Bearer " + token() } : {};
  const output = $("subscriptions");
  try {
    const response = await fetch(hubURL + "/subscriptions", { headers });
    const text = await response.text();
    output.textContent = response.ok ? JSON.stringify(JSON.parse(text), null, 2)
      : response.status + ": " + text;
  } catch (error) {
    output.textContent = "Request failed: " + error;
  }
}

$("token").addEventListener("input", describeToken);
$("subscribe-form").addEventListener("submit", subscribe);
$("unsubscribe-button").addEventListener("click", unsubscribe);
$("publish-form").addEventListener("submit", publish);
$("clear-events").addEventListener("click", () => $("events").replaceChildren());
$("refresh-subscriptions").addEventListener("click", refreshSubscriptions);

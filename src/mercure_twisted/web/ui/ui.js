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

let claims = null; // the pasted token's decoded claims, or null

function describeToken() {
  const info = $("token-info");
  info.replaceChildren();
  claims = null;
  checkTopic();
  const value = token();
  if (!value) return;
  const parts = value.split(".");
  if (parts.length !== 3) {
    info.innerHTML = '<p class="bad">Not a JWS compact serialization (expected three dot-separated parts).</p>';
    return;
  }
  let header;
  try {
    header = JSON.parse(base64urlDecode(parts[0]));
    claims = JSON.parse(base64urlDecode(parts[1]));
  } catch (e) {
    claims = null;
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
  checkTopic();
}

// -- what the token may do with one topic (client-side approximation) -------

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// RFC 6570 template -> regular expression, close enough for a debugging page.
function templateRegExp(template) {
  let source = "";
  for (const part of template.split(/(\{[^}]*\})/)) {
    if (!part.startsWith("{")) { source += escapeRegExp(part); continue; }
    const op = part[1];
    if (op === "+" || op === "#") source += (op === "#" ? "(?:#.*)?" : ".*");
    else if (op === "/") source += "(?:/[^/?#]*)*";
    else if (op === "?" || op === "&") source += "(?:[?&][^#]*)?";
    else if (op === ".") source += "(?:\\.[^/?#.]*)*";
    else source += "[^/?#]*";
  }
  return new RegExp("^" + source + "$");
}

function selectorMatches(selector, topic) {
  if (selector === "*" || selector === topic) return true;
  return selector.includes("{") && templateRegExp(selector).test(topic);
}

function detailMatches(entry, topic) {
  if (!entry || typeof entry.match !== "string") return false;
  if (entry.match === "*") return true;
  if ((entry.match_type || "exact") === "exact") return entry.match === topic;
  if (entry.match_type === "urlpattern" && typeof URLPattern !== "undefined") {
    try {
      return new URLPattern(entry.match, hubURL).test(new URL(topic, hubURL).href);
    } catch (e) { return false; }
  }
  return false;
}

// [may publish, may receive private updates] of `topic` under `c` (claims).
function grantsFor(c, topic) {
  const result = [false, false];
  if (c && c.mercure) {
    result[0] = (c.mercure.publish || []).some((s) => selectorMatches(s, topic));
    result[1] = (c.mercure.subscribe || []).some((s) => selectorMatches(s, topic));
  }
  if (c && Array.isArray(c.authorization_details)) {
    for (const detail of c.authorization_details) {
      if (!detail || detail.type !== "mercure" || !Array.isArray(detail.topics)) continue;
      const matches = detail.topics.some((t) => detailMatches(t, topic));
      if (!matches) continue;
      const actions = detail.actions || [];
      if (actions.includes("publish")) result[0] = true;
      if (actions.includes("subscribe")) result[1] = true;
    }
  }
  return result;
}

function checkTopic() {
  const output = $("token-check");
  output.replaceChildren();
  const topic = $("token-topic").value.trim();
  if (!topic) return;
  if (!claims) { output.textContent = "Paste a token first."; return; }
  const [publish, receive] = grantsFor(claims, topic);
  const say = (ok, text) => {
    const span = document.createElement("span");
    span.className = ok ? "yes" : "no";
    span.textContent = (ok ? "may " : "may not ") + text;
    return span;
  };
  output.append(say(publish, "publish to it"), document.createTextNode("; "),
    say(receive, "receive its private updates"),
    document.createTextNode(" (public updates: any subscriber whose matcher selects it)"));
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

let liveSource = null;
let liveTimer = null;

function subscriptionsStatus(text, kind) {
  setStatus($("subscriptions-status"), text, kind);
}

function showSubscriptions(documents) {
  const body = $("subscriptions");
  body.replaceChildren();
  for (const doc of documents) {
    const row = document.createElement("tr");
    const cells = [doc.subscriber, doc.match_type || "topic", doc.topic || doc.match,
      doc.payload === undefined ? "" : JSON.stringify(doc.payload)];
    for (const value of cells) {
      const cell = document.createElement("td");
      cell.textContent = value === undefined ? "" : String(value);
      row.append(cell);
    }
    body.append(row);
  }
  $("subscriptions-table").hidden = documents.length === 0;
}

async function refreshSubscriptions() {
  const headers = token() ? { Authorization: "Bearer " + token() } : {};
  try {
    const response = await fetch(hubURL + "/subscriptions", { headers });
    const text = (await response.text()).trim();
    if (response.ok) {
      const documents = JSON.parse(text).subscriptions || [];
      showSubscriptions(documents);
      subscriptionsStatus(documents.length + " active subscription(s), " + new Date().toISOString()
        + (liveSource || liveTimer ? " (live)" : ""), "good");
      return;
    }
    showSubscriptions([]);
    if (response.status === 404) {
      subscriptionsStatus("The subscription API is off on this hub: start it with --subscriptions "
        + "(TOML: subscriptions = true; --dev turns it on). " + text, "bad");
    } else if (response.status === 401) {
      subscriptionsStatus("401: paste a token above with a subscribe grant for "
        + "/.well-known/mercure/subscriptions/... (for example mercure.subscribe [\"*\"]). " + text, "bad");
    } else {
      subscriptionsStatus(response.status + ": " + text, "bad");
    }
  } catch (error) {
    subscriptionsStatus("Request failed: " + error, "bad");
  }
}

function stopLive() {
  if (liveSource) liveSource.close();
  if (liveTimer) clearInterval(liveTimer);
  liveSource = null;
  liveTimer = null;
}

function startLive() {
  stopLive();
  refreshSubscriptions();
  const url = new URL(hubURL);
  const path = url.pathname.replace(/\/$/, "");
  if (claims && claims.mercure) {
    // draft-07: a template selector over every subscription event, and the
    // token in the query (an EventSource cannot send an Authorization header).
    url.searchParams.append("topic", path + "/subscriptions{/topic}{/subscriber}");
    url.searchParams.append("authorization", token());
  } else {
    url.searchParams.append("match_urlpattern", path + "/subscriptions/*");
  }
  liveSource = new EventSource(url, { withCredentials: true });
  const changed = () => refreshSubscriptions();
  liveSource.onmessage = changed;
  liveSource.addEventListener("mercure", changed);
  liveSource.onerror = () => {
    if (liveSource && liveSource.readyState === EventSource.CLOSED) {
      // No subscription events for this token: poll the API instead.
      liveSource = null;
      if (!liveTimer) liveTimer = setInterval(refreshSubscriptions, 3000);
    }
  };
}

function toggleLive() {
  if ($("live-subscriptions").checked) startLive();
  else { stopLive(); refreshSubscriptions(); }
}

$("token").addEventListener("input", describeToken);
$("subscribe-form").addEventListener("submit", subscribe);
$("unsubscribe-button").addEventListener("click", unsubscribe);
$("publish-form").addEventListener("submit", publish);
$("clear-events").addEventListener("click", () => $("events").replaceChildren());
$("refresh-subscriptions").addEventListener("click", refreshSubscriptions);
$("live-subscriptions").addEventListener("change", toggleLive);
$("token-topic").addEventListener("input", checkTopic);
$("token").addEventListener("input", () => { if ($("live-subscriptions").checked) startLive(); });

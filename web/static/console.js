// The operator console (GET /console): a page of its own views over the API.
//
// - The bearer token typed in at sign-in is kept in sessionStorage (this tab
//   only) and sent on every request; the API decides what the role may read,
//   the console only hides what it knows the role cannot open.
// - Every value is put in the page as text (textContent, attributes): a
//   payload is never parsed as HTML, whatever a partner sent.
// - Views are addressed by the URL's hash (#/deliveries?…, #/delivery/S/K,
//   #/object/T/ID?…, #/parked, #/orders?…, #/order/ID?…, #/sources,
//   #/projections), so each can be bookmarked and
//   reloaded. <main data-view="…" data-state="loading|ready|error"> tells
//   which view is shown and whether its data has arrived (tests wait on it).
"use strict";

(() => {
  const TOKEN = "idemsync.token";
  const ME = "idemsync.me";
  const ROLES = ["reader", "auditor", "admin"];
  const LIVE_MS = 5000;
  const HIDDEN_HEADER = /signature|hmac|authorization|token|secret|cookie|api-key/i;
  const SECTIONS = [
    { name: "deliveries", label: "Deliveries", role: "auditor" },
    { name: "parked", label: "Parked", role: "auditor" },
    { name: "orders", label: "Orders", role: "reader" },
    { name: "sources", label: "Sources", role: "reader" },
    { name: "projections", label: "Projections", role: "admin" },
    { name: "replay", label: "Replay", role: "admin" },
  ];
  const POLL_MS = 500;
  const OUTCOMES = ["applied", "parked", "rejected", "stale", "ignored"];
  const main = document.getElementById("main");
  let timer = null;

  // --- building the page ---------------------------------------------------

  function h(tag, attributes, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
      else element.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      element.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return element;
  }

  function link(hash, text) {
    return h("a", { href: hash }, text);
  }

  function fields(pairs) {
    return h("dl", { class: "fields" },
      pairs.filter(([, value]) => value !== undefined).map(([name, value]) => [
        h("dt", {}, name),
        h("dd", {}, value === null ? "—" : value),
      ]));
  }

  function table(columns, rows, empty) {
    const body = h("tbody", {},
      rows.length
        ? rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell === null ? "—" : cell))))
        : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, empty)));
    return h("table", {},
      h("thead", {}, h("tr", {}, columns.map((column) => h("th", { scope: "col" }, column)))),
      body);
  }

  function json(value) {
    return h("pre", {}, JSON.stringify(value, null, 2));
  }

  function show(view, ...content) {
    main.dataset.view = view;
    main.replaceChildren(h("div", { class: "view" }, content));
  }

  function ready(state) {
    main.dataset.state = state;
  }

  // --- the API -------------------------------------------------------------

  function me() {
    const stored = sessionStorage.getItem(ME);
    return stored ? JSON.parse(stored) : null;
  }

  function allowed(role) {
    const who = me();
    return who !== null && ROLES.indexOf(who.role) >= ROLES.indexOf(role);
  }

  function query(params) {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== null && value !== undefined && value !== "") search.set(name, value);
    }
    const text = search.toString();
    return text ? `?${text}` : "";
  }

  class Refused extends Error {
    constructor(status, body) {
      super((body && body.message) || `HTTP ${status}`);
      this.status = status;
    }
  }

  async function api(path, params, token, method) {
    const response = await fetch(path + query(params), {
      method: method || "GET",
      headers: {
        Accept: path === "metrics" ? "text/plain" : "application/json",
        Authorization: `Bearer ${token || sessionStorage.getItem(TOKEN)}`,
      },
      cache: "no-store",
    });
    const body = await (path === "metrics" ? response.text() : response.json()).catch(() => null);
    if (response.status === 401 && !token) {
      signOut("The token is no longer accepted: sign in again.");
    }
    if (!response.ok) throw new Refused(response.status, body);
    return body;
  }

  function path(...segments) {
    return segments.map(encodeURIComponent).join("/");
  }

  // --- routing -------------------------------------------------------------

  function route() {
    const hash = location.hash.replace(/^#\/?/, "");
    const [where, search] = hash.split("?", 2);
    const parts = where.split("/").filter(Boolean).map(decodeURIComponent);
    return { parts, params: Object.fromEntries(new URLSearchParams(search || "")) };
  }

  function go(hash) {
    if (location.hash === hash) render();
    else location.hash = hash;
  }

  const VIEWS = {
    deliveries: { role: "auditor", render: deliveries },
    delivery: { role: "auditor", render: delivery },
    object: { role: "auditor", render: object },
    orders: { role: "reader", render: orders },
    order: { role: "reader", render: order },
    parked: { role: "auditor", render: parked },
    sources: { role: "reader", render: sources },
    projections: { role: "admin", render: projections },
    replay: { role: "admin", render: replay },
  };

  async function render() {
    clearInterval(timer);
    timer = null;
    const who = me();
    drawHeader(who);
    if (who === null) return signIn();
    const { parts, params } = route();
    const name = parts[0] || (allowed("auditor") ? "deliveries" : "orders");
    const view = VIEWS[name];
    ready("loading");
    if (view === undefined) {
      show("missing", h("h2", {}, "No such view"), link("#/", "Back to the start"));
      return ready("ready");
    }
    if (!allowed(view.role)) {
      show("forbidden", h("h2", {}, "Not for this role"),
        h("p", {}, `This view needs the role ${view.role}; you are signed in as ${who.role}.`));
      return ready("ready");
    }
    main.dataset.view = name;
    try {
      await view.render(parts.slice(1), params);
      ready("ready");
    } catch (error) {
      show(name, h("h2", {}, "Could not load this view"), h("p", { class: "error", role: "alert" }, error.message));
      ready("error");
    }
  }

  function drawHeader(who) {
    const current = route().parts[0] || "";
    document.getElementById("nav").replaceChildren(
      ...(who === null ? [] : SECTIONS.filter((s) => allowed(s.role)).map((s) =>
        h("a", { href: `#/${s.name}`, "aria-current": current === s.name ? "page" : null }, s.label))),
      h("a", { href: "docs" }, "API reference"));
    document.getElementById("who").textContent =
      who === null ? "" : `Signed in as ${who.name} (${who.role})`;
    document.getElementById("sign-out").hidden = who === null;
  }

  // --- sign-in -------------------------------------------------------------

  function signIn(message) {
    const input = h("input", { id: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true });
    const problem = h("p", { class: "error", role: "alert" }, message || "");
    const form = h("form", { class: "sign-in" },
      h("label", { for: "token" }, "Bearer token", input),
      h("button", { type: "submit" }, "Sign in"),
      problem,
      h("p", { class: "muted" }, "The token stays in this tab only and is sent to this server alone."));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const who = await api("auth/me", {}, input.value.trim());
        sessionStorage.setItem(TOKEN, input.value.trim());
        sessionStorage.setItem(ME, JSON.stringify(who));
        render();
      } catch (error) {
        problem.textContent = error.status === 401 ? "This token is not valid." : error.message;
        input.focus();
      }
    });
    show("sign-in", h("h2", {}, "Sign in"), form);
    ready("ready");
    input.focus();
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(ME);
    sessionStorage.removeItem("idemsync.dashboard.token");
    drawHeader(null);
    signIn(message);
  }

  // --- deliveries ----------------------------------------------------------

  const FILTERS = [
    ["source", "Source"],
    ["key", "Key"],
    ["object", "Object id"],
    ["contains", "Payload contains"],
    ["since", "Received since"],
    ["until", "Received until"],
  ];

  function filterForm(params, names) {
    const inputs = {};
    const form = h("form", { class: "filters", role: "search" },
      names.map(([name, label]) => {
        inputs[name] = h("input", { name, value: params[name] || "", placeholder: name === "since" || name === "until" ? "2026-12-01T00:00:00Z" : "" });
        return h("label", {}, label, inputs[name]);
      }));
    return { form, inputs };
  }

  async function deliveries(_, params) {
    const { form, inputs } = filterForm(params, FILTERS);
    const outcome = h("select", { name: "outcome" },
      h("option", { value: "" }, "any"),
      OUTCOMES.map((o) => h("option", { value: o, selected: params.outcome === o }, o)));
    form.append(h("label", {}, "First outcome", outcome), h("button", { type: "submit" }, "Filter"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const chosen = Object.fromEntries(Object.entries(inputs).map(([n, i]) => [n, i.value.trim()]));
      go(`#/deliveries${query({ ...chosen, outcome: outcome.value })}`);
    });
    const holder = h("div", {});
    const live = h("p", { class: "live", "aria-live": "polite" });
    show("deliveries", h("h2", {}, "Deliveries"), form, live, holder);
    const wanted = { ...params, limit: 50 };
    const draw = async () => {
      const page = await api("audit/deliveries", wanted);
      holder.replaceChildren(deliveryTable(page.items), pager("deliveries", params, page.next_cursor));
      live.textContent = params.cursor ? "" : `Oldest first; this page refreshed at ${new Date().toLocaleTimeString()} and every ${LIVE_MS / 1000} s.`;
    };
    await draw();
    if (!params.cursor) {
      timer = setInterval(() => {
        if (!holder.contains(document.activeElement)) draw().catch(() => {});
      }, LIVE_MS);
    }
  }

  function deliveryTable(items) {
    return table(
      ["Received", "Source", "Key", "First outcome", "Object", "Attempts"],
      items.map((d) => [
        d.received_at,
        d.source,
        link(`#/delivery/${path(d.source, d.key)}`, d.key),
        d.reason ? `${d.outcome} (${d.reason})` : d.outcome,
        d.aggregate ? objectLink(d.aggregate) : null,
        d.attempts,
      ]),
      "No delivery matches.");
  }

  function objectLink(aggregate) {
    const ns = aggregate.namespace ? `?namespace=${encodeURIComponent(aggregate.namespace)}` : "";
    return link(`#/object/${path(aggregate.type, aggregate.id)}${ns}`, `${aggregate.type} ${aggregate.id}`);
  }

  function pager(view, params, next) {
    return h("div", { class: "pager" },
      params.cursor ? link(`#/${view}${query({ ...params, cursor: null })}`, "First page") : null,
      next ? link(`#/${view}${query({ ...params, cursor: next })}`, "Next page") : h("span", { class: "muted" }, "Last page"));
  }

  // --- one delivery --------------------------------------------------------

  function safeHeaders(headers) {
    return Object.entries(headers || {}).map(([name, value]) => [
      name,
      HIDDEN_HEADER.test(name) ? `hidden (${String(value).length} characters)` : value,
    ]);
  }

  function pretty(payload, encoding) {
    if (payload === null) return "(pruned: retention removed the payload)";
    if (encoding !== "utf-8") return `${payload}\n\n(base64: the body is not UTF-8)`;
    try {
      return JSON.stringify(JSON.parse(payload), null, 2);
    } catch (_) {
      return payload;
    }
  }

  function retried(d) {
    if (!d.attempts || d.attempts < 2 || !d.last_seen_at) return "no retry";
    const seconds = (Date.parse(d.last_seen_at) - Date.parse(d.received_at)) / 1000;
    return `${d.attempts - 1} retr${d.attempts === 2 ? "y" : "ies"}, the last ${seconds.toFixed(1)} s after the first receipt`;
  }

  async function delivery([source, key]) {
    const d = await api(`audit/deliveries/${path(source, key)}`);
    show("delivery",
      h("h2", {}, `Delivery ${d.key}`),
      h("div", { class: "columns" },
        h("section", {},
          fields([
            ["Source", d.source],
            ["Key", d.key],
            ["Received", d.received_at],
            ["First outcome", d.outcome],
            ["Reason", d.reason],
            ["Object", d.aggregate ? objectLink(d.aggregate) : null],
            ["Attempts", d.attempts],
            ["Retries", retried(d)],
            ["Resolution", d.resolution ? `${d.resolution}${d.resolution_reason ? ` (${d.resolution_reason})` : ""}` : null],
          ]),
          h("h3", {}, "First answer"),
          json(d.answer),
          h("h3", {}, "Headers"),
          d.headers ? fields(safeHeaders(d.headers)) : h("p", { class: "muted" }, d.redacted_at ? `redacted (sha256 ${d.headers_sha256})` : "none stored")),
        h("section", {},
          h("h3", {}, "Payload"),
          d.redacted_at
            ? h("p", { class: "muted", "data-redacted": "" }, `redacted at ${d.redacted_at} (sha256 ${d.payload_sha256})`)
            : h("pre", { "data-payload": "" }, pretty(d.payload, d.payload_encoding)))),
      h("h3", {}, "Events it caused"),
      eventTable(d.events, false));
  }

  function eventTable(events, withDelivery) {
    return table(
      ["Position", "Object", "Version", "Event", "Recorded", "Occurred", withDelivery ? "Delivery" : "Data"],
      events.map((e) => [
        e.position,
        objectLink(e.aggregate),
        e.aggregate.version,
        e.type,
        e.recorded_at,
        e.occurred_at,
        withDelivery
          ? (e.delivery ? link(`#/delivery/${path(e.delivery.source, e.delivery.key)}`, e.delivery.key) : null)
          : JSON.stringify(e.data),
      ]),
      "No event.");
  }

  // --- one object ----------------------------------------------------------

  async function object([type, id], params) {
    const at = params.version ? { version: params.version } : params.as_of ? { as_of: params.as_of } : {};
    const base = `audit/aggregates/${path(type, id)}`;
    const [page, state, chain] = await Promise.all([
      api(`${base}/events`, { namespace: params.namespace, limit: 1000 }),
      api(base, { namespace: params.namespace, ...at }).catch((error) => error),
      api(`${base}/chain`, { namespace: params.namespace }).catch((error) => error),
    ]);
    const namespace = page.aggregate.namespace;
    const asOf = h("input", { name: "as_of", value: params.as_of || "", placeholder: "2026-12-01T12:00:00Z" });
    const form = h("form", { class: "filters" },
      h("label", {}, "State as of (recorded time)", asOf),
      h("button", { type: "submit" }, "Show"),
      link(`#/object/${path(type, id)}${query({ namespace })}`, "Latest state"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      go(`#/object/${path(type, id)}${query({ namespace, as_of: asOf.value.trim() })}`);
    });
    const heading = params.version ? `at version ${params.version}` : params.as_of ? `as of ${params.as_of}` : "now";
    show("object",
      h("h2", {}, `${type} ${id}`, h("span", { class: "muted" }, ` · namespace ${namespace}`)),
      form,
      h("h3", {}, `State ${heading}`),
      state instanceof Error
        ? h("p", { class: "error", "data-state-error": "" }, state.message)
        : h("div", { "data-object-state": "" },
          fields([
            ["Status", state.status],
            ["Version", state.aggregate.version],
            ["Recorded", state.recorded_at],
            ["Parked deliveries", (state.parked || []).length],
          ]),
          h("h3", {}, "Fields"),
          fields(Object.entries(state.fields || {}).map(([name, value]) => [name, typeof value === "object" && value !== null ? JSON.stringify(value) : value]))),
      h("h3", {}, "Timeline"),
      chainStatus(chain),
      table(
        ["Version", "Event", "Recorded", "Occurred", "Delivery", "Hash"],
        page.events.map((e) => [
          link(`#/object/${path(type, id)}${query({ namespace, version: e.aggregate.version })}`, e.aggregate.version),
          e.type,
          e.recorded_at,
          e.occurred_at,
          e.delivery ? link(`#/delivery/${path(e.delivery.source, e.delivery.key)}`, `${e.delivery.source} ${e.delivery.key}`) : null,
          e.hash ? `${e.hash.slice(0, 12)}…` : null,
        ]),
        "No event."),
      page.next_cursor ? h("p", { class: "muted" }, "Only the first 1,000 events are shown.") : null);
  }

  function chainStatus(chain) {
    if (chain instanceof Error) return h("p", { class: "error", "data-chain": "unknown" }, `Hash chain: not checked (${chain.message})`);
    if (chain.intact) {
      return h("p", { class: "ok", "data-chain": "intact" },
        `Hash chain: intact (${chain.events} events and ledger rows recomputed from genesis).`);
    }
    return h("div", { "data-chain": "broken" },
      h("p", { class: "error", role: "alert" }, `Hash chain: ${chain.findings.length} finding(s): the log was changed behind idemsync's back.`),
      h("ul", {}, chain.findings.map((f) => h("li", {}, `${f.kind}: ${f.message}`))));
  }

  // --- read models (role reader) ---------------------------------------------

  async function orders(_, params) {
    const { form, inputs } = filterForm(params, [["status", "Status"], ["customer_id", "Customer id"], ["namespace", "Namespace"]]);
    form.append(h("button", { type: "submit" }, "Filter"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      go(`#/orders${query(Object.fromEntries(Object.entries(inputs).map(([n, i]) => [n, i.value.trim()])))}`);
    });
    const page = await api("views/orders", { ...params, limit: 50 });
    show("orders", h("h2", {}, "Orders"), form,
      table(
        ["Order", "Namespace", "Status", "Customer", "Total", "Paid", "Updated"],
        page.items.map((o) => [
          link(`#/order/${path(o.order_id)}${query({ namespace: o.namespace })}`, o.order_id),
          o.namespace,
          o.status,
          o.customer_id,
          money(o.total_cents, o.currency),
          money(o.paid_cents, o.currency),
          o.updated_at,
        ]),
        "No order matches."),
      pager("orders", params, page.next_cursor));
  }

  function money(cents, currency) {
    return cents === null || cents === undefined ? null : `${(cents / 100).toFixed(2)} ${currency || ""}`.trim();
  }

  async function order([id], params) {
    const row = await api(`views/orders/${path(id)}`, { namespace: params.namespace });
    show("order",
      h("h2", {}, `Order ${row.order_id}`),
      fields(Object.entries(row).map(([name, value]) => [name, value])),
      allowed("auditor")
        ? h("p", {}, link(`#/object/${path("order", row.order_id)}${query({ namespace: row.namespace })}`, "Timeline and state at any time"))
        : null);
  }

  // --- the parked queue (role auditor; actions: admin) ----------------------

  function age(since) {
    const seconds = Math.max(0, (Date.now() - Date.parse(since)) / 1000);
    if (seconds < 120) return `${Math.round(seconds)} s`;
    if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
    if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
    return `${Math.round(seconds / 86400)} days`;
  }

  async function parked(_, params) {
    const page = await api("audit/deliveries", { outcome: "parked", unresolved: "1", limit: 50, cursor: params.cursor });
    const admin = allowed("admin");
    const say = (text, ok) => {
      // The view is drawn again after a settle: always the current message line.
      const line = document.getElementById("settled");
      line.className = ok ? "ok" : "error";
      line.textContent = text;
    };
    const settle = async (item, action, reasonInput) => {
      const reason = reasonInput.value.trim();
      if (!reason) {
        say("Say why first: the reason is kept in the event.", false);
        reasonInput.focus();
        return;
      }
      try {
        const done = await api(`admin/parked/${path(item.source, item.key)}/${action}`, { reason }, null, "POST");
        await parked(_, params);
        say(`${done.key}: ${action === "release" ? "released" : "discarded"} by ${done.by}, now ${done.resolution}${done.reason ? ` (${done.reason})` : ""}.`, true);
      } catch (error) {
        say(`${item.key}: ${error.message}`, false);
      }
    };
    show("parked", h("h2", {}, "Parked deliveries"),
      h("p", { class: "muted" }, "Deliveries waiting for their object, oldest first. A release decides one now (its object must exist); a discard drops it for good. Both are recorded as events with your token's name and the reason."),
      h("p", { id: "settled", role: "status", "aria-live": "polite" }),
      table(
        ["Received", "Waiting", "Source", "Key", "Object", "Reason", ...(admin ? ["Settle"] : [])],
        page.items.map((d) => {
          const reason = h("input", { "aria-label": `reason for ${d.key}`, placeholder: "reason", maxlength: 500 });
          return [
            d.received_at,
            age(d.received_at),
            d.source,
            link(`#/delivery/${path(d.source, d.key)}`, d.key),
            d.aggregate ? objectLink(d.aggregate) : null,
            d.reason,
            ...(admin ? [h("span", { class: "settle" }, reason,
              h("button", { type: "button", onclick: () => settle(d, "release", reason) }, "Release"),
              h("button", { type: "button", onclick: () => settle(d, "discard", reason) }, "Discard"))] : []),
          ];
        }),
        "Nothing is waiting."),
      pager("parked", params, page.next_cursor));
  }

  // --- replay (role admin) -------------------------------------------------

  async function replay() {
    const stats = await api("views/sources");
    const known = [...new Set(stats.items.map((row) => row.source))];
    const source = h("input", { name: "source", list: "known-sources", value: known[0] || "", required: true });
    const outcome = h("select", { name: "outcome" },
      h("option", { value: "" }, "any"),
      OUTCOMES.map((o) => h("option", { value: o }, o)));
    const since = h("input", { name: "since", placeholder: "2026-12-01T00:00:00Z" });
    const dry = h("button", { type: "button" }, "Dry run");
    const apply = h("button", { type: "button", disabled: true }, "Apply");
    const report = h("section", { id: "replay", "aria-live": "polite" });
    let tried = null;
    const chosen = () => ({ source: source.value.trim(), outcome: outcome.value, since: since.value.trim() });
    const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
    for (const input of [source, outcome, since]) {
      input.addEventListener("input", () => { apply.disabled = !same(tried, chosen()); });
    }
    const run = async (dryRun) => {
      const wanted = chosen();
      report.dataset.state = "running";
      report.replaceChildren(h("p", {}, dryRun ? "Deciding again, writing nothing…" : "Replaying…"));
      try {
        const done = await api("admin/replay", { ...wanted, dry_run: dryRun ? "1" : null }, null, "POST");
        tried = dryRun ? wanted : null;
        apply.disabled = !dryRun;
        report.replaceChildren(replayReport(done));
        report.dataset.state = "done";
      } catch (error) {
        report.replaceChildren(h("p", { class: "error", role: "alert" }, error.message));
        report.dataset.state = "failed";
      }
    };
    dry.addEventListener("click", () => run(true));
    apply.addEventListener("click", () => run(false));
    show("replay", h("h2", {}, "Replay"),
      h("p", { class: "muted" }, "Decide a source's stored deliveries again with today's mapping (after a mapping fix). A dry run decides and writes nothing; Apply runs the same selection for real, and is enabled only after a dry run of it. Replaying twice is replaying once."),
      h("datalist", { id: "known-sources" }, known.map((name) => h("option", { value: name }))),
      h("form", { class: "filters" },
        h("label", {}, "Source", source),
        h("label", {}, "Current outcome", outcome),
        h("label", {}, "Received since", since),
        dry, apply),
      report);
  }

  function replayReport(done) {
    const c = done.counts;
    const rows = [...done.deliveries].sort((a, b) => Number(b.changed || b.failed) - Number(a.changed || a.failed));
    return h("div", { "data-report": "" },
      h("p", { class: c.changed ? "ok" : "muted" },
        `${done.dry_run ? "Dry run: would change" : "Changed"} ${c.changed} of ${c.replayed} (${c.unchanged} unchanged, ${c.failed} refused by today's mapping).`),
      table(
        ["Key", "Before", "Now", "Changed", "Reason"],
        rows.map((d) => [
          link(`#/delivery/${path(done.source, d.key)}`, d.key),
          d.before,
          d.now,
          d.failed ? "refused" : d.redacted ? "redacted" : d.changed ? "yes" : "no",
          d.reason,
        ]),
        "No delivery matches."));
  }

  // --- sources (role reader) ------------------------------------------------

  function samples(text, name) {
    // The samples of one metric family in Prometheus' text format, by source.
    const found = {};
    for (const line of (text || "").split("\n")) {
      if (!line.startsWith(`${name}{`)) continue;
      const source = /source="((?:[^"\\]|\\.)*)"/.exec(line);
      const value = Number(line.slice(line.lastIndexOf(" ") + 1));
      if (source && Number.isFinite(value)) found[source[1]] = (found[source[1]] || 0) + value;
    }
    return found;
  }

  async function sources() {
    const [stats, metrics] = await Promise.all([
      api("views/sources"),
      api("metrics").catch(() => ""),
    ]);
    const bySource = {};
    for (const row of stats.items) {
      const entry = bySource[row.source] || (bySource[row.source] = { counts: {}, first: row.first_seen, last: row.last_seen });
      entry.counts[row.outcome] = row.count;
      if (row.first_seen < entry.first) entry.first = row.first_seen;
      if (row.last_seen > entry.last) entry.last = row.last_seen;
    }
    const retries = samples(metrics, "idemsync_retries_total");
    const delaySum = samples(metrics, "idemsync_retry_delay_seconds_sum");
    const delayCount = samples(metrics, "idemsync_retry_delay_seconds_count");
    show("sources", h("h2", {}, "Sources"),
      table(
        ["Source", ...OUTCOMES, "Unique", "Per minute", "Duplicates", "Duplicate ratio", "Mean retry delay"],
        Object.entries(bySource).map(([source, entry]) => {
          const unique = Object.values(entry.counts).reduce((a, b) => a + b, 0);
          const minutes = Math.max((Date.parse(entry.last) - Date.parse(entry.first)) / 60000, 1);
          const duplicates = retries[source];
          return [
            source,
            ...OUTCOMES.map((o) => entry.counts[o] || 0),
            unique,
            (unique / minutes).toFixed(1),
            duplicates === undefined ? null : duplicates,
            duplicates === undefined ? null : `${Math.round((100 * duplicates) / (unique + duplicates))}%`,
            delayCount[source] ? `${(delaySum[source] / delayCount[source]).toFixed(1)} s` : null,
          ];
        }),
        "No delivery yet."),
      h("p", { class: "muted" },
        "Counts are first outcomes, from the source_stats read model (kept for ever); duplicates (and their ratio to all 2xx answers) and retry delays are this server's counters since it started (/metrics)."),
      h("h3", {}, "Over time"),
      charts());
  }

  function charts() {
    // The dashboard's charts, framed; it reads /metrics with this tab's token.
    sessionStorage.setItem("idemsync.dashboard.token", sessionStorage.getItem(TOKEN) || "");
    return h("iframe", {
      src: "dashboard?embedded=1",
      title: "Deliveries per second, duplicate ratio, retry delay and projection lag over the last 15 minutes",
      class: "charts",
    });
  }

  // --- projections (role admin) ----------------------------------------------

  async function projections() {
    const status = await api("admin/projections");
    const verify = h("input", { type: "checkbox", id: "verify", checked: true });
    const report = h("section", { "aria-live": "polite", id: "rebuild" });
    const start = async (name, dryRun) => {
      const flags = { verify: verify.checked ? "1" : null, dry_run: dryRun ? "1" : null };
      report.replaceChildren(h("p", {}, `Starting a ${dryRun ? "dry run" : "rebuild"} of ${name}…`));
      report.dataset.state = "starting";
      try {
        await api(`admin/projections/${path(name)}/rebuild`, flags, null, "POST");
      } catch (error) {
        if (error.status !== 409) throw error;
      }
      follow(name, report);
    };
    show("projections", h("h2", {}, "Projections"),
      table(
        ["Projection", "Position", "Head", "Lag", "State", "Last rebuild here", "Rebuild"],
        status.projections.map((p) => [
          p.name,
          p.position,
          p.head,
          p.lag,
          p.error ? `${p.state}: ${p.error}` : p.state,
          p.rebuild,
          h("span", {},
            h("button", { type: "button", onclick: () => start(p.name, true) }, "Dry run"), " ",
            h("button", { type: "button", onclick: () => start(p.name, false) }, "Rebuild")),
        ]),
        "No projection."),
      h("p", {}, h("label", {}, verify, " verify: compare the rebuilt tables with the live ones")),
      h("p", { class: "muted" }, "A rebuild replays the whole log into new tables while the live ones keep serving, then swaps them in (a dry run never swaps)."),
      report);
  }

  function follow(name, report) {
    const bar = h("progress", { max: 1, value: 0 });
    const line = h("p", {}, "Starting…");
    report.replaceChildren(h("h3", {}, `Rebuild of ${name}`), bar, line);
    report.dataset.state = "running";
    const poll = async () => {
      const job = await api(`admin/projections/${path(name)}/rebuild`);
      if (job.progress) {
        const p = job.progress;
        bar.max = Math.max(p.head, 1);
        bar.value = p.position;
        line.textContent = `${p.phase}: ${p.position} of ${p.head} (${p.events} events, ${p.events_per_second}/s)`;
      }
      if (job.state === "running") return;
      clearInterval(timer);
      timer = null;
      report.dataset.state = job.state;
      bar.value = bar.max;
      report.append(job.state === "failed" ? h("p", { class: "error", role: "alert" }, job.error) : rebuildReport(job));
    };
    clearInterval(timer);
    timer = setInterval(() => poll().catch((error) => { line.textContent = error.message; }), POLL_MS);
    poll().catch(() => {});
  }

  function rebuildReport(job) {
    const r = job.report;
    const verdict = r.differences === null
      ? "not verified"
      : r.differing_rows === 0 ? "no difference" : `${r.differing_rows} rows differ`;
    return h("div", { "data-report": "" },
      fields([
        ["Kind", job.dry_run ? "dry run (not swapped)" : "rebuild"],
        ["Events", r.events],
        ["Seconds", r.seconds],
        ["Events per second", r.events_per_second],
        ["Position", r.position],
        ["Swapped", r.swapped ? "yes" : "no"],
        ["Verify", verdict],
        ["Note", r.note],
      ]),
      r.differences && r.differences.length
        ? table(["Table", "Differing rows", "Examples"],
          r.differences.map((d) => [d.table, d.differing, JSON.stringify(d.examples)]), "")
        : null);
  }

  document.getElementById("sign-out").addEventListener("click", () => signOut("Signed out."));
  window.addEventListener("hashchange", render);
  render();
})();

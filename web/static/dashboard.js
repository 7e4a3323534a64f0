/*
 * idemsync dashboard (GET /dashboard): live charts of GET /metrics.
 *
 * Every couple of seconds (?interval=SECONDS, default 2) the page fetches
 * /metrics, parses the Prometheus text format (parseMetrics below), keeps
 * the scrapes of the last 15 minutes and draws, with uPlot (vendored in
 * static/uplot, MIT):
 *
 *   per source
 *     outcome rate     deliveries/s by outcome: the increase of
 *                      idemsync_deliveries_total between two scrapes / their
 *                      time apart;
 *     duplicate ratio  duplicates / all 2xx deliveries (every outcome of
 *                      idemsync_deliveries_total, duplicates included), over
 *                      the last minute and since the server started;
 *     retry delay      mean time from a delivery's first receipt to its
 *                      duplicates: Δsum / Δcount of the histogram
 *                      idemsync_retry_delay_seconds, over the last minute and
 *                      since the server started;
 *     parked backlog   in the table: idemsync_parked_deliveries (parked,
 *                      not released yet) and idemsync_parked_oldest_seconds
 *                      (the oldest one's wait), as scraped;
 *   per projection
 *     lag              idemsync_projection_lag_events, as scraped.
 *
 * A counter that goes down (the server restarted) counts from zero again,
 * as Prometheus' rate() does. When /metrics needs a bearer token, the one
 * typed into the page is kept in sessionStorage only (this tab).
 * ?embedded=1: framed by the console's Sources view, which puts its own
 * token in that storage; the page's header (title, token form) is hidden.
 *
 * window.dashboard.latest() and window.dashboard.series() give the numbers
 * the tables and charts show, for tests and the curious.
 *
 * Plain ES2020, no framework, no build step.
 */
(function () {
  "use strict";

  const OUTCOMES = ["applied", "parked", "rejected", "stale", "ignored", "duplicate"];
  const OUTCOME_COLORS = {
    applied: "#1f7a3a",
    parked: "#d97706",
    rejected: "#b42318",
    stale: "#7c3aed",
    ignored: "#6b7280",
    duplicate: "#2563eb",
  };
  const LINE_COLORS = ["#2563eb", "#d97706", "#1f7a3a", "#b42318", "#7c3aed", "#0891b2", "#6b7280"];
  const UNKNOWN_SOURCE = "_unknown";
  const WINDOW_SECONDS = 60;
  const KEEP_SECONDS = 15 * 60;
  const CHART_HEIGHT = 220;
  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
  const TOKEN_KEY = "idemsync.dashboard.token";
  /** A parked delivery older than this is late (IdemsyncParkedBacklog's threshold). */
  const PARKED_LATE_SECONDS = 15 * 60;
  const requested = Number(new URLSearchParams(location.search).get("interval"));
  const INTERVAL_SECONDS = requested >= 0.25 ? requested : 2;

  // --- the Prometheus text format ------------------------------------------

  /** Samples of a text exposition: [{name, labels, value}], comments skipped. */
  function parseMetrics(text) {
    const samples = [];
    for (const raw of text.split("\n")) {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) continue;
      const sample = parseSample(line);
      if (sample !== null) samples.push(sample);
    }
    return samples;
  }

  /** One `name{label="value",...} value [timestamp]` line, or null. */
  function parseSample(line) {
    let i = 0;
    while (i < line.length && !"{ \t".includes(line[i])) i++;
    const name = line.slice(0, i);
    const labels = {};
    if (line[i] === "{") {
      i++;
      for (;;) {
        while (line[i] === " " || line[i] === ",") i++;
        if (i >= line.length) return null;
        if (line[i] === "}") {
          i++;
          break;
        }
        const equals = line.indexOf("=", i);
        if (equals < 0 || line[equals + 1] !== '"') return null;
        const key = line.slice(i, equals).trim();
        let value = "";
        for (i = equals + 2; i < line.length && line[i] !== '"'; i++) {
          if (line[i] === "\\" && i + 1 < line.length) {
            i++;
            value += line[i] === "n" ? "\n" : line[i];
          } else {
            value += line[i];
          }
        }
        if (i >= line.length) return null;
        i++;
        labels[key] = value;
      }
    }
    const value = parseValue(line.slice(i).trim().split(/\s+/)[0]);
    return name === "" || value === null ? null : { name, labels, value };
  }

  function parseValue(text) {
    if (text === "+Inf" || text === "Inf") return Infinity;
    if (text === "-Inf") return -Infinity;
    if (text === "NaN") return NaN;
    if (text === undefined || text === "") return null;
    const number = Number(text);
    return Number.isNaN(number) ? null : number;
  }

  // --- scrapes -------------------------------------------------------------

  /** What one scrape says, by source and by projection. */
  function snapshot(samples, at) {
    const sources = {};
    const projections = {};
    const source = (name) =>
      (sources[name] ??= {
        totals: Object.fromEntries(OUTCOMES.map((outcome) => [outcome, 0])),
        refused: 0,
        retries: 0,
        retryDelaySum: 0,
        retryDelayCount: 0,
        parked: null, // null: the store did not answer this scrape
        parkedOldestSeconds: null,
      });
    const projection = (name) => (projections[name] ??= { lag: null, position: null, failed: false });
    for (const { name, labels, value } of samples) {
      if (labels.source === UNKNOWN_SOURCE) continue;
      switch (name) {
        case "idemsync_deliveries_total":
          source(labels.source).totals[labels.outcome] = value;
          break;
        case "idemsync_requests_refused_total":
          source(labels.source).refused += value;
          break;
        case "idemsync_retries_total":
          source(labels.source).retries = value;
          break;
        case "idemsync_retry_delay_seconds_sum":
          source(labels.source).retryDelaySum = value;
          break;
        case "idemsync_retry_delay_seconds_count":
          source(labels.source).retryDelayCount = value;
          break;
        case "idemsync_parked_deliveries":
          source(labels.source).parked = value;
          break;
        case "idemsync_parked_oldest_seconds":
          source(labels.source).parkedOldestSeconds = value;
          break;
        case "idemsync_projection_lag_events":
          projection(labels.projection).lag = value;
          break;
        case "idemsync_projection_position":
          projection(labels.projection).position = value;
          break;
        case "idemsync_projection_failed":
          projection(labels.projection).failed = value === 1;
          break;
      }
    }
    return { at, sources, projections };
  }

  /** How much a counter grew from `before` to `after` (a reset counts from 0). */
  function increase(before, after) {
    if (before === undefined || after < before) return after;
    return after - before;
  }

  const sum = (values) => values.reduce((a, b) => a + b, 0);
  const ratio = (part, whole) => (whole > 0 ? part / whole : null);

  /** Source `name` as of scrape `k` of `history`: totals, rates, ratios. */
  function sourceAt(history, k, name) {
    const now = history[k];
    const current = now.sources[name];
    if (current === undefined) return null;
    const deliveries = sum(OUTCOMES.map((outcome) => current.totals[outcome]));
    const row = {
      totals: { ...current.totals },
      deliveries,
      duplicateRatio: ratio(current.totals.duplicate, deliveries),
      retries: current.retries,
      retryDelayMean: ratio(current.retryDelaySum, current.retryDelayCount),
      refused: current.refused,
      parked: current.parked,
      parkedOldestSeconds: current.parkedOldestSeconds,
      ratesPerSecond: null,
      duplicateRatioLastMinute: null,
      retryDelayMeanLastMinute: null,
    };
    if (k === 0) return row;
    const grown = (i, pick) => {
      const before = history[i - 1].sources[name];
      const after = history[i].sources[name];
      if (after === undefined) return 0;
      return increase(before === undefined ? undefined : pick(before), pick(after));
    };
    const seconds = now.at - history[k - 1].at;
    row.ratesPerSecond = Object.fromEntries(
      OUTCOMES.map((outcome) => [outcome, grown(k, (s) => s.totals[outcome]) / seconds]),
    );
    // The window: every step between the oldest scrape of the last minute
    // (at least the previous scrape) and this one.
    let first = k - 1;
    while (first > 0 && history[first - 1].at >= now.at - WINDOW_SECONDS) first--;
    let duplicates = 0;
    let all = 0;
    let delaySum = 0;
    let delayCount = 0;
    for (let i = first + 1; i <= k; i++) {
      duplicates += grown(i, (s) => s.totals.duplicate);
      all += sum(OUTCOMES.map((outcome) => grown(i, (s) => s.totals[outcome])));
      delaySum += grown(i, (s) => s.retryDelaySum);
      delayCount += grown(i, (s) => s.retryDelayCount);
    }
    row.duplicateRatioLastMinute = ratio(duplicates, all);
    row.retryDelayMeanLastMinute = ratio(delaySum, delayCount);
    return row;
  }

  // --- state ---------------------------------------------------------------

  const state = {
    history: [], // snapshots, oldest first, the last KEEP_SECONDS
    scrapes: 0,
    error: null,
    charts: new Map(), // id -> {figure, plot, title, labels, data}
    sections: new Map(), // source name -> {section, table, charts}
  };

  function sourceNames() {
    const names = new Set();
    for (const scrape of state.history) Object.keys(scrape.sources).forEach((n) => names.add(n));
    return [...names].sort();
  }

  function projectionNames() {
    const names = new Set();
    for (const scrape of state.history) Object.keys(scrape.projections).forEach((n) => names.add(n));
    return [...names].sort();
  }

  /** The latest numbers, as the tables show them. */
  function latest() {
    const k = state.history.length - 1;
    const view = {
      scrapes: state.scrapes,
      at: k < 0 ? null : state.history[k].at,
      error: state.error,
      intervalSeconds: INTERVAL_SECONDS,
      sources: {},
      projections: {},
    };
    if (k < 0) return view;
    for (const name of Object.keys(state.history[k].sources).sort()) {
      view.sources[name] = sourceAt(state.history, k, name);
    }
    for (const [name, projection] of Object.entries(state.history[k].projections)) {
      view.projections[name] = { ...projection };
    }
    return view;
  }

  /** Per chart: its title, its series' labels and the arrays it draws. */
  function chartData() {
    const time = state.history.map((scrape) => scrape.at);
    const charts = [];
    for (const name of sourceNames()) {
      const rows = state.history.map((_, k) => sourceAt(state.history, k, name));
      const column = (pick) => rows.map((row) => (row === null ? null : pick(row)));
      charts.push({
        id: `source:${name}:rate`,
        source: name,
        title: "Deliveries/s by outcome",
        labels: OUTCOMES,
        colors: OUTCOMES.map((outcome) => OUTCOME_COLORS[outcome]),
        format: formatRate,
        range: upFromZero,
        data: [time, ...OUTCOMES.map((o) => column((r) => (r.ratesPerSecond ? r.ratesPerSecond[o] : null)))],
      });
      charts.push({
        id: `source:${name}:duplicate-ratio`,
        source: name,
        title: "Duplicate ratio (duplicates / all 2xx)",
        labels: ["last minute", "since start"],
        colors: [LINE_COLORS[0], LINE_COLORS[6]],
        format: formatPercent,
        range: () => [0, 1],
        data: [time, column((r) => r.duplicateRatioLastMinute), column((r) => r.duplicateRatio)],
      });
      charts.push({
        id: `source:${name}:retry-delay`,
        source: name,
        title: "Mean retry delay (first receipt → duplicate)",
        labels: ["last minute", "since start"],
        colors: [LINE_COLORS[1], LINE_COLORS[6]],
        format: formatSeconds,
        range: upFromZero,
        data: [time, column((r) => r.retryDelayMeanLastMinute), column((r) => r.retryDelayMean)],
      });
    }
    const projections = projectionNames();
    if (projections.length > 0) {
      charts.push({
        id: "projections:lag",
        source: null,
        title: "Projection lag (events not applied yet)",
        labels: projections,
        colors: projections.map((_, i) => LINE_COLORS[i % LINE_COLORS.length]),
        format: formatCount,
        range: upFromZero,
        data: [
          time,
          ...projections.map((p) =>
            state.history.map((scrape) => (scrape.projections[p] ? scrape.projections[p].lag : null)),
          ),
        ],
      });
    }
    return charts;
  }

  function series() {
    const charts = {};
    for (const [id, chart] of state.charts) {
      charts[id] = {
        title: chart.title,
        labels: [...chart.labels],
        data: chart.data.map((column) => [...column]),
      };
    }
    return { time: state.history.map((scrape) => scrape.at), charts };
  }

  // --- formatting ----------------------------------------------------------

  function upFromZero(_plot, _min, max) {
    return [0, max !== null && max > 0 ? max * 1.15 : 1];
  }

  function formatRate(value) {
    return value == null ? "–" : `${trim(value)}/s`;
  }

  function formatPercent(value) {
    return value == null ? "–" : `${trim(value * 100)}%`;
  }

  function formatSeconds(value) {
    if (value == null) return "–";
    if (value < 1) return `${trim(value * 1000)} ms`;
    if (value < 120) return `${trim(value)} s`;
    if (value < 7200) return `${trim(value / 60)} min`;
    return `${trim(value / 3600)} h`;
  }

  /** The oldest parked delivery's wait; "–" when none is waiting. */
  function formatAge(waiting, seconds) {
    return waiting ? formatSeconds(seconds) : "–";
  }

  function formatCount(value) {
    return value == null ? "–" : String(Math.round(value));
  }

  /** At most three significant digits, no trailing zeros. */
  function trim(value) {
    if (value === 0) return "0";
    const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
    return String(Number(value.toFixed(digits)));
  }

  // --- drawing -------------------------------------------------------------

  function element(tag, attributes = {}, text = null) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    if (text !== null) node.textContent = text;
    return node;
  }

  function sourceSection(name) {
    let parts = state.sections.get(name);
    if (parts !== undefined) return parts;
    const section = element("section", { class: "card", "data-source": name });
    const heading = element("h2");
    heading.append(element("span", { class: "kind" }, "source "), document.createTextNode(name));
    const table = element("table", { class: "source-table" });
    const charts = element("div", { class: "charts" });
    section.append(heading, table, charts);
    document.getElementById("sources").append(section);
    parts = { section, table, charts };
    state.sections.set(name, parts);
    return parts;
  }

  function fillTable(table, header, rows) {
    table.replaceChildren();
    const head = element("tr");
    header.forEach((label) => head.append(element("th", {}, label)));
    table.append(head);
    for (const cells of rows) {
      const row = element("tr");
      for (const cell of cells) {
        const [text, cls] = Array.isArray(cell) ? cell : [cell, null];
        row.append(element("td", cls ? { class: cls } : {}, text));
      }
      table.append(row);
    }
  }

  function drawTables(view) {
    for (const [name, row] of Object.entries(view.sources)) {
      const rates = row.ratesPerSecond;
      const late = row.parkedOldestSeconds !== null && row.parkedOldestSeconds > PARKED_LATE_SECONDS;
      fillTable(
        sourceSection(name).table,
        [
          "",
          ...OUTCOMES,
          "all 2xx",
          "duplicate ratio",
          "mean retry delay",
          "refused (4xx/5xx)",
          "still parked",
          "oldest parked",
        ],
        [
          [
            "since start",
            ...OUTCOMES.map((o) => formatCount(row.totals[o])),
            formatCount(row.deliveries),
            formatPercent(row.duplicateRatio),
            formatSeconds(row.retryDelayMean),
            formatCount(row.refused),
            "",
            "",
          ],
          [
            "now (per second / last minute)",
            ...OUTCOMES.map((o) => (rates ? formatRate(rates[o]) : "–")),
            rates ? formatRate(sum(OUTCOMES.map((o) => rates[o]))) : "–",
            formatPercent(row.duplicateRatioLastMinute),
            formatSeconds(row.retryDelayMeanLastMinute),
            "",
            [formatCount(row.parked), "parked-waiting"],
            [formatAge(row.parked, row.parkedOldestSeconds), late ? "parked-oldest failed" : "parked-oldest"],
          ],
        ],
      );
    }
    const names = Object.keys(view.projections).sort();
    const section = document.getElementById("projections");
    section.hidden = names.length === 0;
    fillTable(
      document.getElementById("projection-table"),
      ["projection", "lag (events)", "position", "state"],
      names.map((name) => {
        const p = view.projections[name];
        return [name, formatCount(p.lag), formatCount(p.position), p.failed ? ["failed", "failed"] : "running"];
      }),
    );
  }

  function drawChart(chart) {
    let drawn = state.charts.get(chart.id);
    if (drawn !== undefined && drawn.labels.join("\n") !== chart.labels.join("\n")) {
      drawn.plot.destroy();
      drawn.figure.remove();
      state.charts.delete(chart.id);
      drawn = undefined;
    }
    if (drawn === undefined) {
      const parent =
        chart.source === null ? document.getElementById("projection-charts") : sourceSection(chart.source).charts;
      const figure = element("figure", { class: "chart", "data-chart": chart.id });
      parent.append(figure);
      const plot = new uPlot(
        {
          title: chart.title,
          width: figure.clientWidth || 420,
          height: CHART_HEIGHT,
          scales: { x: { time: true }, y: { range: chart.range } },
          legend: { live: false },
          series: [
            {},
            ...chart.labels.map((label, i) => ({
              label,
              stroke: chart.colors[i],
              width: 2,
              value: (_plot, value) => chart.format(value),
            })),
          ],
          axes: [
            {
              stroke: "#5b6475",
              grid: { stroke: "#eef0f4" },
              ticks: { stroke: "#dde1e8" },
              incrs: TIME_STEPS,
              space: 60,
            },
            {
              stroke: "#5b6475",
              size: 64,
              grid: { stroke: "#eef0f4" },
              ticks: { stroke: "#dde1e8" },
              values: (_plot, ticks) => ticks.map(chart.format),
            },
          ],
        },
        chart.data,
        figure,
      );
      drawn = { figure, plot, title: chart.title, labels: chart.labels };
      state.charts.set(chart.id, drawn);
    } else {
      drawn.plot.setData(chart.data);
    }
    drawn.data = chart.data;
  }

  function draw() {
    const view = latest();
    drawTables(view);
    for (const chart of chartData()) drawChart(chart);
  }

  function resize() {
    for (const { figure, plot } of state.charts.values()) {
      plot.setSize({ width: figure.clientWidth || 420, height: CHART_HEIGHT });
    }
  }

  // --- status, token, polling ----------------------------------------------

  function showStatus(text, ok) {
    const status = document.getElementById("status");
    status.textContent = text;
    status.className = ok ? "ok" : "error";
  }

  const memory = { token: "" };
  const tokens = {
    get() {
      try {
        return sessionStorage.getItem(TOKEN_KEY) || "";
      } catch {
        return memory.token;
      }
    },
    set(value) {
      memory.token = value;
      try {
        if (value) sessionStorage.setItem(TOKEN_KEY, value);
        else sessionStorage.removeItem(TOKEN_KEY);
      } catch {
        // storage disabled: the token stays in this page's memory only
      }
    },
  };

  async function scrape() {
    const headers = { Accept: "text/plain" };
    const token = tokens.get();
    if (token) headers.Authorization = `Bearer ${token}`;
    let text;
    try {
      const response = await fetch("metrics", { headers, cache: "no-store" });
      if (!response.ok) {
        const hint =
          response.status === 401 || response.status === 403
            ? token
              ? ": the token was refused (a token of role reader or higher is needed)"
              : ": this server's /metrics needs a bearer token of role reader; enter it above"
            : "";
        throw new Error(`GET /metrics answered ${response.status}${hint}`);
      }
      text = await response.text();
    } catch (problem) {
      state.error = String(problem.message || problem);
      showStatus(`${state.error} (trying again every ${INTERVAL_SECONDS} s)`, false);
      return;
    }
    const scraped = snapshot(parseMetrics(text), Date.now() / 1000);
    state.history.push(scraped);
    while (state.history.length > 2 && state.history[0].at < scraped.at - KEEP_SECONDS) state.history.shift();
    state.scrapes += 1;
    state.error = null;
    draw();
    const sources = Object.keys(scraped.sources).length;
    const projections = Object.keys(scraped.projections).length;
    showStatus(
      `scrape ${state.scrapes} at ${new Date(scraped.at * 1000).toLocaleTimeString()}, ` +
        `every ${INTERVAL_SECONDS} s; ${sources} source${sources === 1 ? "" : "s"}, ` +
        `${projections} projection${projections === 1 ? "" : "s"}`,
      true,
    );
  }

  let generation = 0;
  let timer = null;

  /** Scrape now, then every INTERVAL_SECONDS; a restart supersedes the loop. */
  async function poll() {
    const mine = ++generation;
    clearTimeout(timer);
    await scrape();
    if (mine === generation) timer = setTimeout(poll, INTERVAL_SECONDS * 1000);
  }

  function start() {
    if (new URLSearchParams(location.search).get("embedded") === "1") {
      // Inside the console: it signed in, and gave this tab its token.
      document.body.classList.add("embedded");
    }
    if (typeof uPlot !== "function") {
      showStatus("the chart library (static/uPlot.iife.min.js) did not load", false);
      return;
    }
    const form = document.getElementById("token-form");
    const input = document.getElementById("token");
    input.value = tokens.get();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      tokens.set(input.value.trim());
      poll();
    });
    document.getElementById("forget-token").addEventListener("click", () => {
      input.value = "";
      tokens.set("");
      poll();
    });
    window.addEventListener("resize", resize);
    poll();
  }

  window.dashboard = { latest, series, parse: parseMetrics, intervalSeconds: INTERVAL_SECONDS };
  start();
})();

/* Coverwatch console: one page over the public API, no build step.
 *
 * The API key lives in sessionStorage (this tab only) and goes in the Authorization header; never in a URL or
 * a cookie. Every read is polled with If-None-Match: a 304 reuses the cached body, and each section of a view
 * is redrawn only when the data behind it changed. Amounts arrive as decimal strings and are formatted with
 * Intl.NumberFormat straight from the string (no float arithmetic on money).
 */
"use strict";
(() => {
  const KEY = "coverwatch.key";
  const POLL_MS = Number(sessionStorage.getItem("coverwatch.poll_ms")) || 3000;
  const PAGE_SIZE = 25;
  const ALERT_LABELS = {
    exposure_above_primary: "Exposure above primary", exposure_above_cover: "Exposure above cover",
    utilisation_high: "Utilisation high", no_cover: "No cover", country_above_limit: "Country above limit",
    claim_deadline_near: "Claim deadline near", claim_deadline_missed: "Claim deadline missed",
    stop_of_cover: "Stop of cover", limit_expiring: "Limit expiring",
    limit_reduced_below_exposure: "Limit reduced below exposure", fx_rate_missing: "FX rate missing",
  };
  const REASONS = {
    outside_territory: "Outside the policy territory", outside_policy_period: "Delivered outside the policy period",
    terms_exceed_max_credit_period: "Terms exceed the maximum credit period",
    delivered_after_stop_of_cover: "Delivered during a stop of cover",
    delivered_during_stop_of_cover: "Delivered during a stop of cover",
    claim_deadline_passed: "Claim deadline passed", no_limit: "No limit", above_limit: "Above the limit",
    missing_fx_rate: "Missing FX rate",
  };
  const STATUSES = {
    ok: "OK", above_primary: "Above primary", above_cover: "Above cover", no_cover: "No cover",
    incomplete: "Incomplete",
  };

  let me = null;            // GET /v1/me: tenant, locale, today, key name and scope
  let timer = null;
  let generation = 0;       // bumps on every navigation: a late answer for an old view is dropped
  const cache = new Map();  // GET path -> {etag, data}
  const drawn = new Map();  // section id -> signature of the data it was drawn from
  const charts = new Map(); // section id -> Chart instance
  const $ = (sel, root = document) => root.querySelector(sel);

  // ---------------------------------------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.problem = problem || {};
    }
  }

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY)}`, Accept: "application/json" };
    const init = { method, headers, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" };
    const prev = method === "GET" ? cache.get(path) : undefined;
    if (prev && prev.etag) headers["If-None-Match"] = prev.etag;
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    if (r.status === 304 && prev) return prev.data;
    const text = await r.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = { detail: text }; }
    }
    if (r.status === 401) {
      signOut("The API key was refused: sign in again.");
      throw new ApiError(401, data);
    }
    if (!r.ok) throw new ApiError(r.status, data);
    if (method === "GET") cache.set(path, { etag: r.headers.get("ETag"), data });
    return data;
  }

  async function allPages(path) {
    const items = [];
    let cursor = null;
    do {
      const sep = path.includes("?") ? "&" : "?";
      const page = await api("GET", `${path}${sep}limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    return items;
  }

  const canIngest = () => me && (me.scope === "ingest" || me.scope === "admin");
  const isAdmin = () => me && me.scope === "admin";

  // ---------------------------------------------------------------------------------------- formatting

  const formatters = new Map();
  function fmt(kind, opts) {
    const k = `${kind}|${JSON.stringify(opts)}`;
    if (!formatters.has(k)) {
      formatters.set(k, kind === "n" ? new Intl.NumberFormat(me.locale, opts) : new Intl.DateTimeFormat(me.locale, opts));
    }
    return formatters.get(k);
  }
  function money(amount, currency) {
    if (amount === null || amount === undefined || amount === "") return "—";
    return fmt("n", { style: "currency", currency }).format(String(amount));
  }
  function percent(ratio) {
    if (ratio === null || ratio === undefined) return "—";
    return fmt("n", { style: "percent", maximumFractionDigits: 1 }).format(String(ratio));
  }
  function day(iso) {
    if (!iso) return "—";
    return fmt("d", { dateStyle: "medium", timeZone: "UTC" }).format(new Date(`${iso}T00:00:00Z`));
  }
  function moment(iso) {
    if (!iso) return "—";
    return fmt("d", { dateStyle: "medium", timeStyle: "short", timeZone: me.timezone }).format(new Date(iso));
  }
  function countryName(code) {
    try {
      return new Intl.DisplayNames([me.locale], { type: "region" }).of(code) || code;
    } catch { return code; }
  }
  const num = (s) => Number(s || 0); // for charts and sorting only: shown figures are formatted from the string
  const label = (map, code) => (code in map ? map[code] : code);

  // ------------------------------------------------------------------------------------------------- DOM

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function badge(code, map = STATUSES) {
    return h("span", { class: `badge ${code}`, "data-code": code }, label(map, code));
  }

  function figure(field, title, value, cls) {
    return h("div", { class: `figure ${cls || ""}`, "data-field": field },
      h("div", { class: "label" }, title), h("div", { class: "value" }, value));
  }

  function table(columns, rows, opts = {}) {
    const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.title)));
    const body = rows.map((r) => {
      const tr = h("tr", opts.rowAttrs ? opts.rowAttrs(r) : {});
      for (const c of columns) {
        const v = c.value(r);
        tr.append(h("td", { class: c.num ? "num" : null, "data-label": c.title, "data-col": c.key || null }, v));
      }
      return tr;
    });
    return h("div", { class: "table-wrap" },
      h("table", { class: "responsive" }, h("thead", {}, head), h("tbody", {}, body)));
  }

  function empty(text) {
    return h("p", { class: "muted" }, text);
  }

  function toast(text) {
    const el = h("div", { class: "toast", role: "status" }, text);
    document.body.append(el);
    setTimeout(() => el.remove(), 4000);
  }

  /** Draw a section only when its data changed since it was last drawn: unchanged data leaves the DOM alone. */
  function section(id, data, render) {
    const sig = JSON.stringify(data);
    const el = document.getElementById(id);
    if (!el || drawn.get(id) === sig) return;
    if (charts.has(id)) {
      charts.get(id).destroy();
      charts.delete(id);
    }
    const fresh = render(data, id);
    el.replaceChildren(...(Array.isArray(fresh) ? fresh : [fresh]).filter(Boolean));
    el.dataset.draws = String(Number(el.dataset.draws || 0) + 1);
    drawn.set(id, sig);
  }

  function slot(id, cls) {
    return h("div", { id, class: cls || null });
  }

  function errorsBox(errors) {
    if (!errors || !errors.length) return [];
    return h("div", { class: "errors", role: "alert", "data-testid": "errors" },
      h("strong", {}, "Some figures are unknown:"), h("ul", {}, errors.map((e) => h("li", {}, e))));
  }

  // ---------------------------------------------------------------------------------------------- charts

  const COLORS = { primary: "#1f5fa8", topup: "#2e8b57", uncovered: "#c0392b", outstanding: "#13233a" };

  function chart(id, config) {
    const canvas = h("canvas", { role: "img", "aria-label": config.ariaLabel || "chart" });
    const box = h("div", { class: `chart-box ${config.short ? "short" : ""}` }, canvas);
    queueMicrotask(() => {
      if (typeof Chart === "undefined") return;
      charts.set(id, new Chart(canvas, {
        type: config.type, data: config.data,
        options: Object.assign({ animation: false, maintainAspectRatio: false, responsive: true }, config.options),
      }));
    });
    return box;
  }

  function moneyTicks(currency) {
    return { callback: (v) => fmt("n", { style: "currency", currency, notation: "compact" }).format(v) };
  }

  function moneyTooltip(currency) {
    return { callbacks: { label: (c) => `${c.dataset.label}: ${money(String(c.raw), currency)}` } };
  }

  // ---------------------------------------------------------------------------------------------- views

  const views = {};

  views.portfolio = {
    title: "Portfolio",
    skeleton() {
      return [
        h("h1", {}, "Portfolio"),
        slot("pf-errors"),
        slot("pf-figures"),
        h("div", { class: "grid2" },
          h("div", { class: "card" }, h("h2", {}, "Buyers by status"), slot("pf-status")),
          h("div", { class: "card" }, h("h2", {}, "Aging"), slot("pf-aging"))),
        h("div", { class: "card", style: "margin-top:16px" },
          h("h2", {}, "Largest buyers: exposure against cover"), slot("pf-top")),
        h("div", { class: "card" }, h("h2", {}, "Exposure over time (daily snapshots, 90 days)"), slot("pf-history")),
        h("div", { class: "grid2" },
          h("div", { class: "card" }, h("h2", {}, h("a", { href: "#/alerts" }, "Open alerts")), slot("pf-alerts")),
          h("div", { class: "card" }, h("h2", {}, h("a", { href: "#/deadlines" }, "Coming claim deadlines")),
            slot("pf-deadlines"))),
      ];
    },
    async refresh() {
      const [p, top, hist, alerts, deadlines] = await Promise.all([
        api("GET", "/v1/exposure"),
        api("GET", "/v1/exposure/buyers?sort=-outstanding&limit=12"),
        api("GET", "/v1/exposure/history?days=90"),
        api("GET", "/v1/alerts?state=open&limit=1000"),
        allPages("/v1/claim-deadlines?within_days=30"),
      ]);
      return () => {
        const c = p.currency;
        section("pf-errors", p.errors, errorsBox);
        section("pf-figures", p, () => h("div", { class: "figures", "data-testid": "portfolio-figures" },
          figure("outstanding", "Outstanding", money(p.outstanding, c)),
          figure("covered_primary", "Covered by the primary", money(p.covered_primary, c), "primary"),
          figure("covered_top_up", "Covered by the Top Up", money(p.covered_top_up, c), "topup"),
          figure("uncovered", "Uncovered", money(p.uncovered, c), "uncovered"),
          figure("indemnifiable", "Indemnifiable", money(p.indemnifiable, c), "indemnifiable"),
          figure("buyers", "Buyers", String(p.buyers))));
        section("pf-status", p.buyers_by_status, (s) => table(
          [{ title: "Status", value: (r) => badge(r[0]) }, { title: "Buyers", num: true, key: "count", value: (r) => String(r[1]) }],
          Object.entries(s), { rowAttrs: (r) => ({ "data-status": r[0] }) }));
        const aging = [["not_due", "Not yet due"], ["overdue_1_30", "1–30 days"], ["overdue_31_60", "31–60 days"],
          ["overdue_61_90", "61–90 days"], ["overdue_over_90", "Over 90 days"]];
        section("pf-aging", aging.map(([f]) => p[f]), (_, id) => [
          chart(id, {
            type: "bar", short: true, ariaLabel: "Outstanding by age",
            data: { labels: aging.map((a) => a[1]), datasets: [{ label: "Outstanding", data: aging.map(([f]) => num(p[f])),
              backgroundColor: ["#1f5fa8", "#d9a400", "#e07b00", "#c0392b", "#7b1d14"] }] },
            options: { plugins: { legend: { display: false }, tooltip: moneyTooltip(c) }, scales: { y: { ticks: moneyTicks(c) } } },
          }),
          table([{ title: "Age", value: (r) => r[1] }, { title: "Amount", num: true, key: "amount", value: (r) => money(p[r[0]], c) }],
            aging, { rowAttrs: (r) => ({ "data-bucket": r[0] }) }),
        ]);
        section("pf-top", top.items, (items, id) => items.length ? chart(id, {
          type: "bar", ariaLabel: "Largest buyers: primary, Top Up and uncovered",
          data: {
            labels: items.map((b) => b.currency === c ? b.name : `${b.name} (${b.currency})`),
            datasets: [
              { label: "Primary", data: items.map((b) => num(b.covered_primary)), backgroundColor: COLORS.primary },
              { label: "Top Up", data: items.map((b) => num(b.covered_top_up)), backgroundColor: COLORS.topup },
              { label: "Uncovered", data: items.map((b) => num(b.uncovered)), backgroundColor: COLORS.uncovered },
            ],
          },
          options: {
            indexAxis: "y", scales: { x: { stacked: true, ticks: moneyTicks(c) }, y: { stacked: true } },
            plugins: { tooltip: moneyTooltip(c) },
            onClick: (_e, els) => { if (els.length) location.hash = `#/buyers/${encodeURIComponent(items[els[0].index].buyer_ref)}`; },
          },
        }) : empty("No exposure yet."));
        section("pf-history", hist, (days, id) => days.length ? chart(id, {
          type: "line", short: true, ariaLabel: "Exposure over time",
          data: {
            labels: days.map((d) => day(d.day)),
            datasets: [
              { label: "Primary", data: days.map((d) => num(d.covered_primary)), borderColor: COLORS.primary, backgroundColor: "rgba(31,95,168,.55)", fill: "origin", pointRadius: 0 },
              { label: "Top Up", data: days.map((d) => num(d.covered_top_up)), borderColor: COLORS.topup, backgroundColor: "rgba(46,139,87,.55)", fill: "-1", pointRadius: 0 },
              { label: "Uncovered", data: days.map((d) => num(d.uncovered)), borderColor: COLORS.uncovered, backgroundColor: "rgba(192,57,43,.45)", fill: "-1", pointRadius: 0 },
            ],
          },
          options: { scales: { y: { stacked: true, beginAtZero: true, ticks: moneyTicks(c) },
            x: { ticks: { maxTicksLimit: 10, maxRotation: 0, autoSkip: true } } }, plugins: { tooltip: moneyTooltip(c) },
            interaction: { mode: "index", intersect: false } },
        }) : empty("No snapshot yet: the daily scan takes one each day."));
        setAlertCount(alerts.items.length);
        section("pf-alerts", alerts.items.slice(0, 6), (items) => items.length ? h("ul", {},
          items.map((a) => h("li", {}, h("strong", {}, label(ALERT_LABELS, a.type)), " · ", a.buyer_ref
            ? h("a", { href: `#/buyers/${encodeURIComponent(a.buyer_ref)}` }, a.buyer_ref) : (a.country || a.subject),
          " · ", day(a.opened_on)))) : empty("No open alert."));
        section("pf-deadlines", deadlines.slice(0, 6), (items) => items.length ? h("ul", {},
          items.map((d) => h("li", {}, h("strong", {}, day(d.claim_deadline)), ` (${d.days_left} d) · `,
            h("a", { href: `#/buyers/${encodeURIComponent(d.buyer_ref)}` }, d.buyer_name), ` · ${d.invoice_ref} · `,
            money(d.open_balance, d.currency)))) : empty("No claim deadline in the next 30 days."));
      };
    },
  };

  const buyerState = { q: "", country: "", status: "", min: "", sort: "-uncovered", page: 0 };
  const BUYER_COLUMNS = [
    { key: "buyer_ref", title: "Buyer", value: (b) => h("span", {}, h("a", { href: `#/buyers/${encodeURIComponent(b.buyer_ref)}` }, b.name), h("br"), h("small", { class: "muted" }, b.buyer_ref)) },
    { key: "country", title: "Country", value: (b) => b.country },
    { key: "status", title: "Status", value: (b) => badge(b.status) },
    { key: "outstanding", title: "Outstanding", num: true, value: (b) => money(b.outstanding, b.currency) },
    { key: "covered_primary", title: "Primary", num: true, value: (b) => money(b.covered_primary, b.currency) },
    { key: "covered_top_up", title: "Top Up", num: true, value: (b) => money(b.covered_top_up, b.currency) },
    { key: "uncovered", title: "Uncovered", num: true, value: (b) => money(b.uncovered, b.currency) },
    { key: "utilisation", title: "Utilisation", num: true, value: (b) => percent(b.utilisation) },
    { key: "cover", title: "Cover", value: (b) => coverStack(b) },
  ];

  function coverStack(b) {
    const total = num(b.outstanding) || 1;
    const w = (v) => `width:${(100 * num(v) / total).toFixed(2)}%`;
    return h("div", { class: "stack", title: "primary / Top Up / uncovered" },
      h("span", { class: "p", style: w(b.covered_primary) }), h("span", { class: "t", style: w(b.covered_top_up) }),
      h("span", { class: "u", style: w(b.uncovered) }));
  }

  views.buyers = {
    title: "Buyers",
    skeleton() {
      const input = (name, attrs) => h("input", Object.assign({ name, value: buyerState[name],
        oninput: (e) => { buyerState[name] = e.target.value; buyerState.page = 0; redraw(); } }, attrs));
      const select = (name, options) => h("select", { name, onchange: (e) => { buyerState[name] = e.target.value; buyerState.page = 0; redraw(); } },
        options.map(([v, t]) => h("option", { value: v, selected: buyerState[name] === v }, t)));
      return [
        h("h1", {}, "Buyers"),
        h("div", { class: "card" },
          h("div", { class: "filters", role: "search" },
            h("label", {}, "Search", input("q", { type: "search", placeholder: "name or reference", "aria-label": "Search buyers" })),
            h("label", {}, "Country", h("select", { name: "country", id: "filter-country", onchange: (e) => { buyerState.country = e.target.value; buyerState.page = 0; redraw(); } },
              h("option", { value: "" }, "All"))),
            h("label", {}, "Status", select("status", [["", "All"], ...Object.entries(STATUSES)])),
            h("label", {}, "Uncovered at least", input("min", { type: "number", min: "0", step: "any", inputmode: "decimal" }))),
          slot("buyers-table")),
      ];
    },
    async refresh() {
      const rows = await allPages("/v1/exposure/buyers?sort=buyer_ref");
      views.buyers.rows = rows;
      return () => drawBuyers();
    },
  };

  function drawBuyers() {
    const rows = views.buyers.rows || [];
    const countries = [...new Set(rows.map((r) => r.country))].sort();
    const sel = $("#filter-country");
    if (sel && sel.options.length !== countries.length + 1) {
      sel.replaceChildren(h("option", { value: "" }, "All"),
        ...countries.map((c) => h("option", { value: c, selected: buyerState.country === c }, `${c} · ${countryName(c)}`)));
    }
    section("buyers-table", { rows, state: buyerState }, () => {
      const q = buyerState.q.trim().toLowerCase();
      let list = rows.filter((b) => (!q || b.name.toLowerCase().includes(q) || b.buyer_ref.toLowerCase().includes(q))
        && (!buyerState.country || b.country === buyerState.country) && (!buyerState.status || b.status === buyerState.status)
        && (!buyerState.min || num(b.uncovered) >= Number(buyerState.min)));
      const desc = buyerState.sort.startsWith("-");
      const key = buyerState.sort.replace(/^-/, "");
      const textual = ["buyer_ref", "country", "status"].includes(key);
      list = list.slice().sort((a, b) => {
        const x = textual ? String(a[key]).localeCompare(String(b[key])) : num(a[key] ?? -1) - num(b[key] ?? -1);
        return (desc ? -x : x) || a.buyer_ref.localeCompare(b.buyer_ref);
      });
      const pages = Math.max(1, Math.ceil(list.length / PAGE_SIZE));
      buyerState.page = Math.min(buyerState.page, pages - 1);
      const shown = list.slice(buyerState.page * PAGE_SIZE, (buyerState.page + 1) * PAGE_SIZE);
      const head = h("tr", {}, BUYER_COLUMNS.map((c) => {
        const sortable = c.key !== "cover";
        const state = key === c.key ? (desc ? "descending" : "ascending") : null;
        return h("th", { scope: "col", class: c.num ? "num" : null, "aria-sort": state },
          sortable ? h("button", { type: "button", onclick: () => {
            buyerState.sort = key === c.key && !desc ? `-${c.key}` : c.key; redraw();
          } }, c.title) : c.title);
      }));
      const body = shown.map((b) => h("tr", { "data-buyer": b.buyer_ref },
        BUYER_COLUMNS.map((c) => h("td", { class: c.num ? "num" : null, "data-label": c.title, "data-col": c.key }, c.value(b)))));
      return [
        h("p", { class: "muted", "data-testid": "buyers-count" }, `${list.length} of ${rows.length} buyers`),
        h("div", { class: "table-wrap" }, h("table", { class: "responsive", "data-testid": "buyers" }, h("thead", {}, head), h("tbody", {}, body))),
        h("div", { class: "pager" },
          h("button", { type: "button", class: "secondary", disabled: buyerState.page === 0, onclick: () => { buyerState.page--; redraw(); } }, "Previous"),
          h("span", {}, `Page ${buyerState.page + 1} of ${pages}`),
          h("button", { type: "button", class: "secondary", disabled: buyerState.page >= pages - 1, onclick: () => { buyerState.page++; redraw(); } }, "Next")),
      ];
    });
  }

  views.buyer = {
    title: "Buyer",
    skeleton(ref) {
      return [
        h("p", {}, h("a", { href: "#/buyers" }, "← Buyers")),
        slot("b-head"),
        slot("b-errors"),
        slot("b-figures"),
        h("div", { class: "grid2" },
          h("div", { class: "card" }, h("h2", {}, "Limits in force"), slot("b-limits"), h("h2", { style: "margin-top:14px" }, "Stop of cover"), slot("b-stops")),
          h("div", { class: "card" }, h("h2", {}, "Limit decisions"), slot("b-timeline"))),
        h("div", { class: "card", style: "margin-top:16px" }, h("h2", {}, "Invoices"), slot("b-invoices")),
        h("div", { class: "grid2" },
          h("div", { class: "card" }, h("h2", {}, "Alerts"), slot("b-alerts")),
          h("div", { class: "card" }, h("h2", {}, "Credit check"), creditForm(ref))),
      ];
    },
    async refresh(ref) {
      const r = encodeURIComponent(ref);
      const [d, limits, policies, alerts] = await Promise.all([
        api("GET", `/v1/exposure/buyers/${r}`),
        api("GET", `/v1/buyers/${r}/limits`),
        allPages("/v1/policies"),
        api("GET", `/v1/alerts?buyer_ref=${r}&limit=200`),
      ]);
      return () => drawBuyer(d, limits, policies, alerts.items.filter((a) => a.state !== "resolved"));
    },
  };

  function drawBuyer(d, limits, policies, alerts) {
    const c = d.currency;
    const form = $("#credit-form");
    if (form && !form.dataset.filled) {
      form.currency.value = c;
      form.dataset.filled = "1";
    }
    section("b-head", [d.name, d.buyer_ref, d.country, d.status, d.valued_on], () => h("div", {},
      h("h1", {}, d.name, " ", badge(d.status)),
      h("p", { class: "muted" }, `${d.buyer_ref} · ${countryName(d.country)} (${d.country}) · valued on ${day(d.valued_on)} · amounts in ${c}`)));
    section("b-errors", d.errors, errorsBox);
    section("b-figures", [d.outstanding, d.covered_primary, d.covered_top_up, d.uncovered, d.indemnifiable, d.utilisation,
      d.primary_limit, d.top_up_limit, d.not_due, d.overdue_1_30, d.overdue_31_60, d.overdue_61_90, d.overdue_over_90], () =>
      h("div", { class: "figures", "data-testid": "buyer-figures" },
        figure("outstanding", "Outstanding", money(d.outstanding, c)),
        figure("covered_primary", "Covered by the primary", money(d.covered_primary, c), "primary"),
        figure("covered_top_up", "Covered by the Top Up", money(d.covered_top_up, c), "topup"),
        figure("uncovered", "Uncovered", money(d.uncovered, c), "uncovered"),
        figure("indemnifiable", "Indemnifiable", money(d.indemnifiable, c), "indemnifiable"),
        figure("utilisation", "Utilisation", percent(d.utilisation)),
        figure("primary_limit", "Primary limit", money(d.primary_limit, c), "primary"),
        figure("top_up_limit", "Top Up limit", money(d.top_up_limit, c), "topup"),
        figure("overdue", "Overdue (1–30 / 31–60 / 61–90 / 90+)",
          [d.overdue_1_30, d.overdue_31_60, d.overdue_61_90, d.overdue_over_90].map((v) => money(v, c)).join(" / "))));
    section("b-limits", d.limits, (ls) => ls.length ? table([
      { title: "Policy", value: (l) => l.policy_ref }, { title: "Layer", value: (l) => l.layer === "top_up" ? "Top Up" : "Primary" },
      { title: "Amount", num: true, key: "amount", value: (l) => money(l.amount, l.currency || c) },
      { title: "Source", value: (l) => l.source }, { title: "Expires", value: (l) => day(l.expires_on) }], ls) : empty("No limit in force."));
    const stops = (d.stop_periods || []).map((s) => ({ ...s, start: s.starts_on, end: s.ends_on }));
    section("b-stops", stops, (list) => list.length ? table([
      { title: "From", value: (s) => day(s.start) }, { title: "Until", value: (s) => s.end ? day(s.end) : "still running" },
      { title: "Policy", value: (s) => s.policy_ref || "—" },
      { title: "Caused by", value: (s) => (s.invoice_refs || []).join(", ") || "—" }], list,
    { rowAttrs: () => ({ "data-testid": "stop-period" }) }) : empty("No stop of cover."));
    const kinds = Object.fromEntries(policies.map((p) => [p.policy_ref, p.kind]));
    section("b-timeline", limits.decisions, (decisions) => decisions.length ? h("ol", { class: "timeline" },
      decisions.slice().sort((a, b) => a.effective_from.localeCompare(b.effective_from) || a.id - b.id).map((x) => {
        const layer = kinds[x.policy_ref] === "top_up" ? "top_up" : "primary";
        const expired = x.expires_on && x.expires_on < me.today;
        return h("li", { class: `${layer} ${x.status}`, "data-decision": String(x.id) },
          h("strong", {}, day(x.effective_from)), " · ", layer === "top_up" ? "Top Up " : "Primary ", x.policy_ref, " · ",
          badge(x.status, {}), " ", ["refused", "withdrawn"].includes(x.status) ? "" : money(x.amount, x.currency),
          x.source === "discretionary" ? " (discretionary)" : "",
          x.expires_on ? h("span", { class: "muted" }, ` · ${expired ? "expired" : "expires"} ${day(x.expires_on)}`) : "",
          x.decision_ref ? h("span", { class: "muted" }, ` · ${x.decision_ref}`) : "");
      })) : empty("No decision on this buyer."));
    section("b-invoices", d.invoices, (invoices) => invoices.length ? table([
      { key: "invoice_ref", title: "Invoice", value: (i) => i.invoice_ref },
      { title: "Issued", value: (i) => day(i.issue_date) }, { title: "Due", value: (i) => day(i.due_date) },
      { title: "Claim deadline", value: (i) => [day(i.claim_deadline), i.claim_filed_on ? ` (claim filed ${day(i.claim_filed_on)})` : ""].join("") },
      { key: "open_balance", title: "Open", num: true, value: (i) => [money(i.open_balance, c),
        i.original_currency && i.original_currency !== c ? h("small", { class: "muted" }, h("br"), money(i.original_open_balance, i.original_currency)) : ""] },
      { key: "covered_primary", title: "Primary", num: true, value: (i) => money(i.covered_primary, c) },
      { key: "covered_top_up", title: "Top Up", num: true, value: (i) => money(i.covered_top_up, c) },
      { key: "uncovered", title: "Uncovered", num: true, value: (i) => money(i.uncovered, c) },
      { key: "reason", title: "Why uncovered", value: (i) => i.reason ? h("span", { title: i.reason, "data-code": i.reason }, label(REASONS, i.reason)) : "" },
    ], invoices, { rowAttrs: (i) => ({ "data-invoice": i.invoice_ref }) }) : empty("No open invoice."));
    section("b-alerts", alerts, (list) => list.length ? h("div", {}, list.map(alertItem)) : empty("No open alert on this buyer."));
  }

  function creditForm(ref) {
    if (!canIngest()) return empty("A key with the ingest or admin scope can run a credit check.");
    const answer = h("div", { id: "credit-answer", "aria-live": "polite" });
    const form = h("form", { id: "credit-form", class: "inline-form", "data-testid": "credit-form", onsubmit: async (e) => {
      e.preventDefault();
      const f = e.target;
      const body = { buyer_ref: ref, currency: f.currency.value.trim().toUpperCase(), amount: f.amount.value.trim() };
      if (f.delivery_date.value) body.delivery_date = f.delivery_date.value;
      if (f.terms.value !== "") body.payment_terms_days = Number(f.terms.value);
      answer.replaceChildren(h("p", { class: "muted" }, "Checking…"));
      try {
        const r = await api("POST", "/v1/credit-checks", body);
        answer.replaceChildren(creditAnswer(r));
      } catch (err) {
        answer.replaceChildren(problemBox(err));
      }
    } },
    h("label", {}, "Amount ", h("input", { name: "amount", type: "text", inputmode: "decimal", required: true, placeholder: "25000.00", size: "12" })),
    h("label", {}, "Currency ", h("input", { name: "currency", type: "text", required: true, size: "4", maxlength: "3",
      value: me.currency, oninput: (e) => { e.target.form.dataset.filled = "1"; } })),
    h("label", {}, "Delivery ", h("input", { name: "delivery_date", type: "date", value: me.today })),
    h("label", {}, "Terms (days) ", h("input", { name: "terms", type: "number", min: "0", max: "3650", value: "60", size: "5" })),
    h("button", { type: "submit" }, "Check"));
    return [form, answer];
  }

  function creditAnswer(r) {
    const c = r.currency;
    const decision = { covered: "Covered", partially_covered: "Partly covered", not_covered: "Not covered" };
    return h("div", { class: `answer ${r.decision}`, "data-testid": "credit-answer", "data-decision": r.decision },
      h("strong", {}, label(decision, r.decision)), ` · ${money(r.amount, c)}`,
      h("dl", { class: "kv" },
        h("dt", {}, "Covered by the primary"), h("dd", { "data-field": "covered_primary" }, money(r.covered_primary, c)),
        h("dt", {}, "Covered by the Top Up"), h("dd", { "data-field": "covered_top_up" }, money(r.covered_top_up, c)),
        h("dt", {}, "Uncovered"), h("dd", { "data-field": "uncovered" }, money(r.uncovered, c)),
        h("dt", {}, "Primary headroom after"), h("dd", { "data-field": "headroom_primary" }, money(r.headroom_primary, c)),
        h("dt", {}, "Top Up headroom after"), h("dd", { "data-field": "headroom_top_up" }, money(r.headroom_top_up, c)),
        h("dt", {}, "Exposure after"), h("dd", { "data-field": "exposure_after" }, money(r.exposure_after, c))),
      r.reasons && r.reasons.length ? h("p", { "data-field": "reasons" }, "Why: ", r.reasons.map((x) => label(REASONS, x)).join("; ")) : "",
      r.errors && r.errors.length ? errorsBox(r.errors) : "");
  }

  function problemBox(err) {
    const details = (err.problem && err.problem.errors) || [];
    return h("div", { class: "errors", role: "alert" }, err.message,
      details.length ? h("ul", {}, details.map((e) => h("li", {}, `${e.pointer || ""} ${e.detail || ""}`))) : "");
  }

  views.countries = {
    title: "Countries",
    skeleton() {
      return [h("h1", {}, "Countries"), h("div", { class: "card" }, slot("countries-table"))];
    },
    async refresh() {
      const rows = await api("GET", "/v1/exposure/countries");
      return () => section("countries-table", rows, (list) => list.length ? table([
        { key: "country", title: "Country", value: (r) => `${countryName(r.country)} (${r.country})` },
        { key: "buyers", title: "Buyers", num: true, value: (r) => String(r.buyers) },
        { key: "outstanding", title: "Outstanding", num: true, value: (r) => money(r.outstanding, r.currency) },
        { key: "covered_primary", title: "Primary", num: true, value: (r) => money(r.covered_primary, r.currency) },
        { key: "covered_top_up", title: "Top Up", num: true, value: (r) => money(r.covered_top_up, r.currency) },
        { key: "uncovered", title: "Uncovered", num: true, value: (r) => money(r.uncovered, r.currency) },
        { key: "indemnifiable", title: "Indemnifiable", num: true, value: (r) => money(r.indemnifiable, r.currency) },
        { key: "country_limit", title: "Country limit", num: true, value: (r) => money(r.country_limit, r.currency) },
        { key: "headroom", title: "Headroom", num: true, value: (r) => money(r.headroom, r.currency) },
        { key: "use", title: "Used", value: (r) => {
          if (r.country_limit === null || num(r.country_limit) === 0) return r.above_limit ? badge("above_cover", { above_cover: "Above limit" }) : "—";
          const share = num(r.outstanding) / num(r.country_limit);
          return h("div", { class: `bar ${r.above_limit ? "over" : ""}`, title: percent(share.toFixed(4)) },
            h("span", { style: `width:${Math.min(100, 100 * share).toFixed(1)}%` }));
        } },
        { key: "errors", title: "", value: (r) => (r.errors && r.errors.length ? h("span", { class: "error" }, r.errors.join("; ")) : "") },
      ], list, { rowAttrs: (r) => ({ "data-country": r.country, class: r.above_limit ? "above" : null }) }) : empty("No exposure yet."));
    },
  };

  const alertState = { type: "", state: "", shown: 50 };

  function alertItem(a) {
    const details = Object.entries(a.details || {}).map(([k, v]) => `${k.replace(/_/g, " ")}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
    const actions = canIngest() ? h("form", { class: "inline-form", onsubmit: (e) => e.preventDefault() },
      h("input", { type: "text", name: "note", placeholder: "Note (optional)", "aria-label": `Note on alert ${a.id}`, maxlength: "2000" }),
      a.state === "open" ? h("button", { type: "button", class: "secondary", "data-action": "acknowledge", onclick: (e) => alertAction(a, "acknowledge", e) }, "Acknowledge") : "",
      h("button", { type: "button", class: "secondary", "data-action": "resolve", onclick: (e) => alertAction(a, "resolve", e) }, "Resolve")) : "";
    return h("div", { class: "card", "data-alert-id": String(a.id), "data-state": a.state },
      h("div", {}, h("strong", {}, label(ALERT_LABELS, a.type)), " ", badge(a.state, { open: "Open", acknowledged: "Acknowledged", resolved: "Resolved" }),
        " ", h("span", { class: "muted" }, `opened ${day(a.opened_on)}`)),
      h("div", {}, a.buyer_ref ? h("a", { href: `#/buyers/${encodeURIComponent(a.buyer_ref)}` }, a.buyer_ref) : "",
        a.country ? ` · ${a.country}` : "", a.invoice_ref ? ` · invoice ${a.invoice_ref}` : ""),
      details.length ? h("div", { class: "muted" }, details.join(" · ")) : "",
      a.acknowledged_at ? h("div", { class: "muted", "data-field": "acknowledged" },
        `Acknowledged ${moment(a.acknowledged_at)}${a.acknowledged_by ? ` by ${a.acknowledged_by}` : ""}${a.acknowledged_note ? `: “${a.acknowledged_note}”` : ""}`) : "",
      actions);
  }

  async function alertAction(a, action, e) {
    const form = e.target.closest("form");
    const note = form.note.value.trim();
    e.target.disabled = true;
    try {
      await api("POST", `/v1/alerts/${a.id}/${action}`, note ? { note } : {});
      toast(action === "acknowledge" ? `Alert ${a.id} acknowledged` : `Alert ${a.id} resolved`);
      tick();
    } catch (err) {
      e.target.disabled = false;
      toast(err.message);
    }
  }

  views.alerts = {
    title: "Alerts",
    skeleton() {
      return [
        h("h1", {}, "Alerts"),
        h("div", { class: "filters" },
          h("label", {}, "Type", h("select", { id: "alert-type", onchange: (e) => { alertState.type = e.target.value; alertState.shown = 50; redraw(); } },
            h("option", { value: "" }, "All types"),
            Object.entries(ALERT_LABELS).map(([v, t]) => h("option", { value: v, selected: alertState.type === v }, t)))),
          h("label", {}, "State", h("select", { id: "alert-state", onchange: (e) => { alertState.state = e.target.value; alertState.shown = 50; redraw(); } },
            [["", "Open and acknowledged"], ["open", "Open"], ["acknowledged", "Acknowledged"]].map(([v, t]) =>
              h("option", { value: v, selected: alertState.state === v }, t))))),
        slot("alerts-list"),
      ];
    },
    async refresh() {
      const [open, acked] = await Promise.all([
        api("GET", "/v1/alerts?state=open&limit=1000"), api("GET", "/v1/alerts?state=acknowledged&limit=1000"),
      ]);
      views.alerts.items = [...open.items, ...acked.items].sort((x, y) => y.id - x.id);
      setAlertCount(open.items.length);
      return () => drawAlerts();
    },
  };

  function drawAlerts() {
    const items = views.alerts.items || [];
    const sel = $("#alert-type");
    for (const t of new Set(items.map((a) => a.type))) {
      if (sel && ![...sel.options].some((o) => o.value === t)) sel.append(h("option", { value: t }, label(ALERT_LABELS, t)));
    }
    section("alerts-list", { items, alertState }, () => {
      const list = items.filter((a) => (!alertState.type || a.type === alertState.type) && (!alertState.state || a.state === alertState.state));
      return [h("p", { class: "muted", "data-testid": "alerts-count" }, `${list.length} alert(s)`),
        ...list.slice(0, alertState.shown).map(alertItem),
        list.length > alertState.shown ? h("button", { type: "button", class: "secondary",
          onclick: () => { alertState.shown += 50; redraw(); } }, `Show more (${list.length - alertState.shown} left)`) : ""];
    });
  }

  views.deadlines = {
    title: "Claim deadlines",
    skeleton() {
      return [h("h1", {}, "Claim deadlines in the next 30 days"),
        h("p", { class: "muted" }, "Unpaid invoices with no claim filed, soonest first. Missing a deadline loses the cover."),
        h("div", { class: "card" }, slot("deadlines-table"))];
    },
    async refresh() {
      const rows = await allPages("/v1/claim-deadlines?within_days=30");
      return () => section("deadlines-table", rows, (list) => list.length ? table([
        { key: "claim_deadline", title: "Deadline", value: (d) => day(d.claim_deadline) },
        { key: "days_left", title: "Days left", num: true, value: (d) => String(d.days_left) },
        { key: "buyer", title: "Buyer", value: (d) => h("a", { href: `#/buyers/${encodeURIComponent(d.buyer_ref)}` }, d.buyer_name) },
        { key: "invoice_ref", title: "Invoice", value: (d) => d.invoice_ref },
        { key: "due_date", title: "Due", value: (d) => day(d.due_date) },
        { key: "open_balance", title: "Open", num: true, value: (d) => money(d.open_balance, d.currency) },
        { key: "covered", title: "Covered", num: true, value: (d) => money(d.covered, d.currency) },
        { key: "action", title: "", value: (d) => canIngest() ? h("button", { type: "button", class: "secondary", "data-action": "claim",
          onclick: (e) => fileClaim(d, e) }, "Claim filed") : "" },
      ], list, { rowAttrs: (d) => ({ "data-invoice": d.invoice_ref }) }) : empty("No claim deadline in the next 30 days."));
    },
  };

  async function fileClaim(d, e) {
    e.target.disabled = true;
    try {
      await api("POST", "/v1/claims", { buyer_ref: d.buyer_ref, invoice_refs: [d.invoice_ref], filed_on: me.today });
      toast(`Claim filed for ${d.invoice_ref}`);
      tick();
    } catch (err) {
      e.target.disabled = false;
      toast(err.message);
    }
  }

  views.webhooks = {
    title: "Webhooks",
    skeleton() {
      return [h("h1", {}, "Webhooks"),
        h("div", { class: "card" }, h("h2", {}, "Endpoints"), slot("wh-endpoints")),
        h("div", { class: "card" }, h("h2", {}, "Recent deliveries"), slot("wh-deliveries"))];
    },
    async refresh() {
      if (!isAdmin()) {
        return () => section("wh-endpoints", "no-admin", () => empty("Webhooks need a key with the admin scope."));
      }
      const [endpoints, deliveries] = await Promise.all([
        allPages("/v1/webhook-endpoints"), api("GET", "/v1/webhook-deliveries?limit=50"),
      ]);
      return () => {
        section("wh-endpoints", endpoints, (list) => list.length ? table([
          { title: "URL", value: (x) => x.url }, { title: "Events", value: (x) => (x.event_types.length ? x.event_types.join(", ") : "all") },
          { title: "State", value: (x) => x.enabled ? badge("delivered", { delivered: "enabled" }) : badge("failed", { failed: "disabled" }) },
          { title: "Failing since", value: (x) => moment(x.failing_since) }, { title: "Note", value: (x) => x.disabled_reason || x.description || "" },
        ], list) : empty("No webhook endpoint."));
        section("wh-deliveries", deliveries.items, (list) => list.length ? table([
          { title: "Event", value: (x) => x.event_type }, { title: "Created", value: (x) => moment(x.created_at) },
          { title: "Status", value: (x) => badge(x.status, {}) }, { title: "Attempts", num: true, value: (x) => String(x.attempts) },
          { title: "Last answer", value: (x) => x.last_status_code ? `HTTP ${x.last_status_code}` : (x.last_error || "—") },
          { title: "Next attempt", value: (x) => moment(x.next_attempt_at) },
          { title: "", value: (x) => x.status === "failed" ? h("button", { type: "button", class: "secondary", "data-action": "retry",
            onclick: (e) => retryDelivery(x, e) }, "Retry") : "" },
        ], list, { rowAttrs: (x) => ({ "data-delivery": String(x.id) }) }) : empty("No delivery yet."));
      };
    },
  };

  async function retryDelivery(x, e) {
    e.target.disabled = true;
    try {
      await api("POST", `/v1/webhook-deliveries/${x.id}/retry`, {});
      toast(`Delivery ${x.id} queued again`);
      tick();
    } catch (err) {
      e.target.disabled = false;
      toast(err.message);
    }
  }

  function setAlertCount(n) {
    const pill = $("#alert-count");
    pill.hidden = !n;
    pill.textContent = n >= 1000 ? "999+" : String(n);
  }

  // ---------------------------------------------------------------------------------------- routing, polling

  function route() {
    const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
    if (parts[0] === "buyers" && parts[1]) return { name: "buyer", arg: parts[1] };
    if (parts[0] && views[parts[0]]) return { name: parts[0], arg: null };
    return { name: "portfolio", arg: null };
  }

  let current = null;

  function redraw() {
    if (current && current.name === "buyers") drawBuyers();
    if (current && current.name === "alerts") drawAlerts();
  }

  function navigate() {
    if (!me) return;
    clearTimeout(timer);
    generation += 1;
    for (const c of charts.values()) c.destroy();
    charts.clear();
    drawn.clear();
    current = route();
    const view = views[current.name];
    document.title = `${current.arg || view.title} · Coverwatch`;
    for (const a of document.querySelectorAll("#nav a")) {
      const on = a.dataset.view === (current.name === "buyer" ? "buyers" : current.name);
      if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    }
    $("#view").replaceChildren(...view.skeleton(current.arg));
    tick();
  }

  async function tick() {
    clearTimeout(timer);
    const mine = generation;
    const view = views[current.name];
    try {
      const draw = await view.refresh(current.arg);
      if (mine !== generation) return;
      draw();
      $("#live").classList.remove("stale");
      $("#live").textContent = "live";
    } catch (err) {
      if (mine !== generation || !me) return;
      $("#live").classList.add("stale");
      $("#live").textContent = err.status === 404 ? "not found" : "retrying";
      if (err.status === 404) $("#view").replaceChildren(h("h1", {}, "Not found"), problemBox(err));
    }
    if (mine === generation && me) timer = setTimeout(tick, document.hidden ? POLL_MS * 5 : POLL_MS);
  }

  // ---------------------------------------------------------------------------------------------- sign in

  async function signIn(key) {
    sessionStorage.setItem(KEY, key);
    cache.clear();
    me = await api("GET", "/v1/me");
    $("#sign-in").hidden = true;
    $("#nav").hidden = false;
    $("#who").hidden = false;
    $("#who-text").textContent = `${me.tenant_name} · ${me.key_name} (${me.scope})`;
    navigate();
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    me = null;
    clearTimeout(timer);
    generation += 1;
    cache.clear();
    drawn.clear();
    for (const c of charts.values()) c.destroy();
    charts.clear();
    $("#view").replaceChildren();
    $("#nav").hidden = true;
    $("#who").hidden = true;
    $("#sign-in").hidden = false;
    $("#sign-in-error").textContent = message || "";
    $("#api-key").value = "";
    $("#api-key").focus();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("#sign-in-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const key = $("#api-key").value.trim();
      try {
        await signIn(key);
      } catch (err) {
        signOut(err.status === 401 ? "Unknown or revoked API key." : err.message);
      }
    });
    $("#sign-out").addEventListener("click", () => signOut());
    window.addEventListener("hashchange", () => { navigate(); $("#main").focus(); });
    document.addEventListener("visibilitychange", () => { if (!document.hidden && me) tick(); });
    const saved = sessionStorage.getItem(KEY);
    if (saved) signIn(saved).catch(() => signOut()); else signOut();
  });
})();

// The native dashboard page: draws a Grafana dashboard's panels from the spec the server
// builds out of grafana/dashboards/*.json (queries already interpolated there), reading
// Prometheus' HTTP API through the server. Charts are uPlot (static/vendor, MIT).
//
// Every panel element carries data-state: "loading", then "data" (it drew at least one
// finite value), "empty" (its queries returned nothing), "error" (a query failed) or
// "unsupported" (a panel type this page cannot draw). <body data-state="ready"> marks the
// end of the first full pass; the browser test reads these attributes.
(function () {
  "use strict";

  const header = document.querySelector("header[data-uid]");
  const grid = document.getElementById("grid");
  const summary = document.getElementById("summary");
  const params = new URLSearchParams(location.search);
  const uid = header.dataset.uid;

  // Grafana's classic palette, and its named colours as its dark theme draws them.
  const PALETTE = [
    "#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0",
    "#508642", "#CCA300", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477",
  ];
  const NAMED = {
    green: "#73BF69", "dark-green": "#37872D", "semi-dark-green": "#56A64B",
    red: "#F2495C", "dark-red": "#C4162A", "semi-dark-red": "#E02F44",
    orange: "#FF9830", "dark-orange": "#FA6400", yellow: "#FADE2A", "dark-yellow": "#E0B400",
    blue: "#5794F2", "dark-blue": "#1F60C4", purple: "#B877D9", "dark-purple": "#8F3BB8",
    text: "#CCCCDC", transparent: "transparent",
  };
  const color = (name) => NAMED[name] || name || "#CCCCDC";

  // ------------------------------------------------------------------ numbers and units

  function autoDecimals(v) {
    const a = Math.abs(v);
    if (a === 0 || a >= 100) return 0;
    if (a >= 10) return 1;
    if (a >= 1) return 2;
    return Math.min(6, 2 - Math.floor(Math.log10(a)));
  }

  function num(v, decimals) {
    const d = decimals === undefined || decimals === null ? autoDecimals(v) : decimals;
    return Number(v).toFixed(d).replace(/\.0+$/, "").replace(/(\.\d*?)0+$/, "$1");
  }

  function scaled(v, decimals, steps) {
    // steps: [[factor, suffix], ...] from the largest; the first whose factor fits.
    for (const [factor, suffix] of steps) {
      if (Math.abs(v) >= factor) return num(v / factor, decimals) + suffix;
    }
    const last = steps[steps.length - 1];
    return num(v / last[0], decimals) + last[1];
  }

  function format(v, unit, decimals) {
    if (v === null || v === undefined || !Number.isFinite(v)) return "–";
    switch (unit) {
      case "s":
      case "ms": {
        const s = unit === "ms" ? v / 1000 : v;
        if (s === 0) return "0 s";
        return scaled(s, decimals, [[3600, " h"], [60, " min"], [1, " s"], [1e-3, " ms"], [1e-6, " µs"]]);
      }
      case "reqps":
        return num(v, decimals) + " req/s";
      case "percentunit":
        return num(v * 100, decimals) + "%";
      case "percent":
        return num(v, decimals) + "%";
      case "bytes":
        return scaled(v, decimals, [[1024 ** 3, " GiB"], [1024 ** 2, " MiB"], [1024, " KiB"], [1, " B"]]);
      case "short":
        return scaled(v, decimals, [[1e9, " Bil"], [1e6, " Mil"], [1e3, " K"], [1, ""]]);
      case undefined:
      case null:
      case "":
      case "none":
        return num(v, decimals);
      default:
        if (unit.startsWith("suffix:")) return num(v, decimals) + " " + unit.slice(7).trim();
        return num(v, decimals) + " " + unit;
    }
  }

  function thresholdColor(thresholds, v) {
    const steps = (thresholds && thresholds.steps) || [];
    let chosen = steps.length ? steps[0].color : "green";
    for (const step of steps) {
      if (step.value === null || step.value === undefined || v >= step.value) chosen = step.color;
    }
    return color(chosen);
  }

  const REDUCERS = {
    lastNotNull: (ys) => { for (let i = ys.length - 1; i >= 0; i--) if (ys[i] !== null) return ys[i]; return null; },
    last: (ys) => (ys.length ? ys[ys.length - 1] : null),
    firstNotNull: (ys) => ys.find((y) => y !== null) ?? null,
    first: (ys) => (ys.length ? ys[0] : null),
    max: (ys) => { const v = ys.filter((y) => y !== null); return v.length ? Math.max(...v) : null; },
    min: (ys) => { const v = ys.filter((y) => y !== null); return v.length ? Math.min(...v) : null; },
    mean: (ys) => { const v = ys.filter((y) => y !== null); return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null; },
    sum: (ys) => ys.filter((y) => y !== null).reduce((a, b) => a + b, 0),
  };

  function reduce(panel, ys) {
    const calcs = ((panel.options || {}).reduceOptions || {}).calcs || ["lastNotNull"];
    return (REDUCERS[calcs[0]] || REDUCERS.lastNotNull)(ys);
  }

  // -------------------------------------------------------------------------- fieldConfig

  function defaults(panel) {
    return (panel.fieldConfig || {}).defaults || {};
  }

  function matches(matcher, name) {
    if (!matcher) return false;
    if (matcher.id === "byName") return matcher.options === name;
    if (matcher.id === "byRegexp") {
      try { return new RegExp(matcher.options).test(name); } catch (e) { return false; }
    }
    return false;
  }

  // The properties of a field (a series or a table column): defaults, then overrides.
  function fieldProps(panel, name) {
    const d = defaults(panel);
    const props = {
      unit: d.unit, decimals: d.decimals, thresholds: d.thresholds, min: d.min, max: d.max,
      custom: Object.assign({}, d.custom || {}), color: d.color,
    };
    for (const override of (panel.fieldConfig || {}).overrides || []) {
      if (!matches(override.matcher, name)) continue;
      for (const p of override.properties || []) {
        if (p.id.startsWith("custom.")) props.custom[p.id.slice(7)] = p.value;
        else props[p.id] = p.value;
      }
    }
    return props;
  }

  // ----------------------------------------------------------------------- Prometheus

  async function prom(path, query) {
    const response = await fetch("/api/v1/" + path, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(query),
    });
    let body;
    try { body = await response.json(); } catch (e) { throw new Error(`${path}: HTTP ${response.status}`); }
    if (body.status !== "success") throw new Error(body.error || `${path}: HTTP ${response.status}`);
    return body.data;
  }

  function legend(target, labels) {
    const text = (target.legendFormat || "").replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k) => labels[k] ?? "");
    if (text.trim()) return text.trim();
    const shown = Object.entries(labels).filter(([k]) => k !== "__name__");
    return (labels.__name__ || "") + (shown.length ? "{" + shown.map(([k, v]) => `${k}="${v}"`).join(", ") + "}" : "") || target.expr;
  }

  const value = (text) => {
    const v = parseFloat(text);
    return Number.isFinite(v) ? v : null;
  };

  // Every target's series: {refId, name, labels, xs, ys}; exemplars: {ts, value, traceId}.
  async function fetchPanel(panel, spec) {
    const series = [];
    const exemplars = [];
    await Promise.all(panel.targets.map(async (target) => {
      if (target.instant) {
        const data = await prom("query", { query: target.expr, time: spec.end });
        const results = data.resultType === "scalar" ? [{ metric: {}, value: data.result }] : data.result;
        for (const r of results) {
          series.push({ refId: target.refId, name: legend(target, r.metric), labels: r.metric, xs: [r.value[0]], ys: [value(r.value[1])] });
        }
      } else {
        const data = await prom("query_range", {
          query: target.expr, start: spec.start, end: spec.end, step: target.step,
        });
        for (const r of data.result) {
          series.push({
            refId: target.refId, name: legend(target, r.metric), labels: r.metric,
            xs: r.values.map((p) => p[0]), ys: r.values.map((p) => value(p[1])),
          });
        }
      }
      if (target.exemplar) {
        const data = await prom("query_exemplars", { query: target.expr, start: spec.start, end: spec.end });
        for (const s of data || []) {
          for (const e of s.exemplars || []) {
            const traceId = (e.labels || {}).trace_id;
            if (traceId) exemplars.push({ ts: e.timestamp, value: value(e.value), traceId, labels: s.seriesLabels || {} });
          }
        }
      }
    }));
    // Targets answer in any order: keep the JSON's order (refId), then the series names.
    const order = Object.fromEntries(panel.targets.map((t, i) => [t.refId, i]));
    series.sort((a, b) => order[a.refId] - order[b.refId] || a.name.localeCompare(b.name, undefined, { numeric: true }));
    return { series, exemplars };
  }

  const hasValue = (series) => series.some((s) => s.ys.some((y) => y !== null));

  // --------------------------------------------------------------------------- helpers

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function message(body, text) {
    body.replaceChildren(el("div", "message", text));
  }

  function traceLinks(node, exemplars, unit) {
    if (!exemplars.length) return;
    const recent = exemplars.slice().sort((a, b) => b.ts - a.ts).slice(0, 6);
    const box = el("div", "traces", "Traces:");
    for (const e of recent) {
      const link = el("a", null, `${e.traceId.slice(0, 8)} ${format(e.value, unit)}`);
      link.href = "/trace/" + e.traceId;
      link.title = `trace ${e.traceId} at ${new Date(e.ts * 1000).toLocaleTimeString()}`;
      box.appendChild(link);
    }
    node.appendChild(box);
  }

  // ------------------------------------------------------------------------ timeseries

  function drawTimeseries(panel, body, data, spec) {
    const { series, exemplars } = data;
    if (!hasValue(series)) return false;
    const d = defaults(panel);
    const custom = d.custom || {};
    const log = (custom.scaleDistribution || {}).type === "log";
    const props = series.map((s) => fieldProps(panel, s.name));
    const xs = [...new Set(series.flatMap((s) => s.xs))].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    let columns = series.map((s) => {
      const ys = new Array(xs.length).fill(null);
      s.xs.forEach((x, i) => { ys[index.get(x)] = s.ys[i]; });
      return log ? ys.map((y) => (y !== null && y > 0 ? y : null)) : ys;
    });
    if ((custom.stacking || {}).mode === "normal") {
      const total = new Array(xs.length).fill(0);
      columns = columns.map((ys) => ys.map((y, i) => (y === null ? null : (total[i] += y))));
    }
    const thresholds = (custom.thresholdsStyle || {}).mode && custom.thresholdsStyle.mode !== "off"
      ? ((d.thresholds || {}).steps || []).filter((s) => s.value !== null && s.value !== undefined)
      : [];
    const values = columns.flat().filter((y) => y !== null);
    let lo = Math.min(...values, ...thresholds.map((t) => t.value));
    let hi = Math.max(...values, ...thresholds.map((t) => t.value));
    if (!log && custom.axisSoftMin !== undefined) lo = Math.min(lo, custom.axisSoftMin);
    if (d.min !== undefined && d.min !== null) lo = d.min;
    if (d.max !== undefined && d.max !== null) hi = d.max;
    // A flat series (all 0, all 1) gets a range from 0 to its value, as Grafana draws it.
    if (lo === hi) {
      lo = Math.min(0, lo);
      hi = hi > 0 ? hi : hi === 0 ? 1 : 0;
    }
    const fixedMin = d.min !== undefined && d.min !== null;
    const fixedMax = d.max !== undefined && d.max !== null;
    const range = log
      ? () => uPlot.rangeLog(lo > 0 ? lo : 1e-4, hi > 0 ? hi : 1, 10, true)
      : () => {
        const [a, b] = uPlot.rangeNum(lo, hi, 0.1, true);
        return [fixedMin ? lo : lo >= 0 ? Math.max(a, 0) : a, fixedMax ? hi : b];
      };
    // A log axis gets one line and one label per power of ten, not uPlot's minor ones.
    const logSplits = (u) => {
      const { min, max } = u.scales.y;
      const splits = [];
      for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
        const v = 10 ** e;
        if (v >= min * 0.999 && v <= max * 1.001) splits.push(v);
      }
      return splits;
    };
    const span = spec.end - spec.start;
    const timeLabel = (v) => new Date(v * 1000).toLocaleTimeString([], span <= 900
      ? { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }
      : { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    const axisSize = (u, values) => (values ? Math.max(...values.map((v) => String(v).length)) * 7 + 26 : 50);
    const colors = props.map((p, i) => (p.color && p.color.mode === "fixed" ? color(p.color.fixedColor) : PALETTE[i % PALETTE.length]));
    const unit = d.unit;

    const legendBox = el("div", "legend");
    series.forEach((s, i) => {
      const item = el("span");
      const swatch = el("i");
      swatch.style.background = colors[i];
      item.append(swatch, document.createTextNode(s.name));
      legendBox.appendChild(item);
    });
    const hover = el("div", "hover");
    const chart = el("div", "chart");
    body.replaceChildren(hover, chart, legendBox);
    traceLinks(body, exemplars, unit);
    const used = legendBox.offsetHeight + (body.querySelector(".traces") || { offsetHeight: 0 }).offsetHeight;
    const width = Math.max(body.clientWidth - 4, 100);
    const height = Math.max(body.clientHeight - used - 4, 60);

    const drawExtras = (u) => {
      const ctx = u.ctx;
      const { left, top, width: w, height: h } = u.bbox;
      ctx.save();
      ctx.beginPath();
      ctx.rect(left, top, w, h);
      ctx.clip();
      for (const t of thresholds) {
        const y = u.valToPos(t.value, "y", true);
        ctx.strokeStyle = color(t.color);
        ctx.lineWidth = 1.5 * devicePixelRatio;
        ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
        ctx.beginPath();
        ctx.moveTo(left, y);
        ctx.lineTo(left + w, y);
        ctx.stroke();
      }
      ctx.setLineDash([]);
      for (const e of exemplars) {
        if (e.value === null || (log && e.value <= 0)) continue;
        const x = u.valToPos(e.ts, "x", true);
        const y = u.valToPos(e.value, "y", true);
        const r = 4 * devicePixelRatio;
        ctx.fillStyle = "#FADE2A";
        ctx.beginPath();
        ctx.moveTo(x, y - r); ctx.lineTo(x + r, y); ctx.lineTo(x, y + r); ctx.lineTo(x - r, y);
        ctx.closePath();
        ctx.fill();
      }
      ctx.restore();
    };

    const plot = new uPlot({
      width,
      height,
      legend: { show: false },
      cursor: { points: { size: 5 } },
      scales: { x: { time: true, range: () => [spec.start, spec.end] }, y: log ? { distr: 3, log: 10, range } : { range } },
      axes: [
        {
          stroke: "#8e8e9f", grid: { stroke: "#2c3235", width: 1 }, ticks: { stroke: "#2c3235" },
          space: span <= 900 ? 80 : 60, values: (u, vals) => vals.map(timeLabel),
        },
        {
          stroke: "#8e8e9f", grid: { stroke: "#2c3235", width: 1 }, ticks: { stroke: "#2c3235" },
          size: axisSize, splits: log ? logSplits : undefined,
          values: (u, vals) => vals.map((v) => format(v, unit)),
        },
      ],
      series: [
        {},
        ...series.map((s, i) => {
          const p = props[i];
          const c = p.custom || {};
          const fill = c.fillOpacity ? colors[i] + Math.round((c.fillOpacity / 100) * 255).toString(16).padStart(2, "0") : undefined;
          return {
            label: s.name,
            stroke: colors[i],
            width: c.lineWidth || 1,
            dash: c.lineStyle && c.lineStyle.fill === "dash" ? c.lineStyle.dash || [10, 10] : undefined,
            fill: colors[i].startsWith("#") && colors[i].length === 7 ? fill : undefined,
            paths: c.lineInterpolation === "stepAfter" ? uPlot.paths.stepped({ align: 1 }) : undefined,
            points: { show: false },
            spanGaps: false,
          };
        }),
      ],
      hooks: {
        draw: [drawExtras],
        setCursor: [(u) => {
          const i = u.cursor.idx;
          if (i === null || i === undefined) { hover.style.display = "none"; return; }
          const lines = [new Date(xs[i] * 1000).toLocaleTimeString()];
          series.forEach((s, k) => { if (columns[k][i] !== null) lines.push(`${s.name}: ${format(columns[k][i], unit)}`); });
          hover.textContent = lines.slice(0, 9).join("\n");
          hover.style.display = "block";
        }],
      },
    }, [xs, ...columns], chart);

    plot.over.addEventListener("click", (event) => {
      for (const e of exemplars) {
        if (e.value === null) continue;
        const dx = plot.valToPos(e.ts, "x") - event.offsetX;
        const dy = plot.valToPos(e.value, "y") - event.offsetY;
        if (Math.hypot(dx, dy) < 8) { location.href = "/trace/" + e.traceId; return; }
      }
    });
    return true;
  }

  // ------------------------------------------------------------------- stat and gauge

  function drawStat(panel, body, data, gauge) {
    const rows = data.series.map((s) => ({ s, v: reduce(panel, s.ys), p: fieldProps(panel, s.name) }));
    if (!rows.some((r) => r.v !== null)) return false;
    const options = panel.options || {};
    const box = el("div", "stats");
    for (const { s, v, p } of rows) {
      const c = thresholdColor(p.thresholds, v);
      const cell = el("div", "stat");
      const valueNode = el("div", "value", format(v, p.unit, p.decimals));
      if (!gauge && options.colorMode === "value") valueNode.style.color = c;
      else if (!gauge && options.colorMode !== "none") cell.style.background = c;
      cell.appendChild(valueNode);
      if (gauge) {
        const max = p.max ?? (p.unit === "percentunit" ? 1 : p.unit === "percent" ? 100 : Math.max(v, ...((p.thresholds || {}).steps || []).map((t) => t.value || 0)) || 1);
        const min = p.min ?? 0;
        const track = el("div", "gauge-track");
        const fill = el("div", "gauge-fill");
        fill.style.width = `${Math.max(0, Math.min(1, (v - min) / (max - min || 1))) * 100}%`;
        fill.style.background = c;
        track.appendChild(fill);
        cell.appendChild(track);
        valueNode.style.color = c;
      }
      if (rows.length > 1 || options.textMode === "value_and_name") cell.appendChild(el("div", "name", s.name));
      box.appendChild(cell);
    }
    body.replaceChildren(box);
    // A value as large as the cell allows.
    for (const node of box.querySelectorAll(".value")) {
      const cell = node.parentElement;
      const size = Math.max(12, Math.min(cell.clientHeight * 0.45, (cell.clientWidth / Math.max(node.textContent.length, 3)) * 1.6, 48));
      node.style.fontSize = `${size}px`;
    }
    return true;
  }

  function drawBarGauge(panel, body, data) {
    const rows = data.series.map((s) => ({ s, v: reduce(panel, s.ys), p: fieldProps(panel, s.name) }));
    if (!rows.some((r) => r.v !== null)) return false;
    const top = Math.max(...rows.map((r) => r.v || 0), ...rows.map((r) => r.p.max || 0), 1);
    const box = el("div", "bars");
    for (const { s, v, p } of rows) {
      const row = el("div", "bar-row");
      const track = el("div", "track");
      const fill = el("div", "fill");
      fill.style.width = `${Math.max(0, (v || 0) / top) * 100}%`;
      fill.style.background = thresholdColor(p.thresholds, v);
      track.appendChild(fill);
      row.append(el("div", "name", s.name), track, el("div", "num", format(v, p.unit, p.decimals)));
      box.appendChild(row);
    }
    body.replaceChildren(box);
    return true;
  }

  // ------------------------------------------------------------------------------ table

  function drawTable(panel, body, data) {
    const refIds = [...new Set(panel.targets.map((t) => t.refId))];
    const valueName = (refId) => (refIds.length > 1 ? `Value #${refId}` : "Value");
    // Grafana's merge: one row per label set, a value column per query.
    const rows = new Map();
    const labelNames = [];
    for (const s of data.series) {
      const labels = Object.fromEntries(Object.entries(s.labels).filter(([k]) => k !== "__name__"));
      for (const k of Object.keys(labels)) if (!labelNames.includes(k)) labelNames.push(k);
      const key = JSON.stringify(Object.entries(labels).sort());
      const row = rows.get(key) || Object.assign({ Time: s.xs[s.xs.length - 1] }, labels);
      row[valueName(s.refId)] = s.ys[s.ys.length - 1];
      rows.set(key, row);
    }
    if (!rows.size) return false;
    let columns = ["Time", ...labelNames, ...refIds.map(valueName)];
    const renames = {};
    for (const t of panel.transformations || []) {
      if (t.id !== "organize") continue;
      const o = t.options || {};
      columns = columns.filter((c) => !(o.excludeByName || {})[c]);
      const order = o.indexByName || {};
      columns.sort((a, b) => (order[a] ?? 1000) - (order[b] ?? 1000));
      Object.assign(renames, o.renameByName || {});
    }
    const shown = (c) => renames[c] || c;
    let list = [...rows.values()];
    const sortBy = ((panel.options || {}).sortBy || [])[0];
    if (sortBy) {
      const col = columns.find((c) => shown(c) === sortBy.displayName);
      if (col) list.sort((a, b) => ((a[col] ?? -Infinity) > (b[col] ?? -Infinity) ? 1 : -1) * (sortBy.desc ? -1 : 1));
    }
    const table = el("table", "grid-table");
    const head = el("tr");
    for (const c of columns) head.appendChild(el("th", null, shown(c)));
    table.appendChild(head);
    for (const row of list) {
      const tr = el("tr");
      for (const c of columns) {
        const p = fieldProps(panel, shown(c));
        const v = row[c];
        let text;
        if (c === "Time") text = new Date(v * 1000).toLocaleTimeString();
        else if (typeof v === "number") text = format(v, p.unit, p.decimals);
        else text = v ?? "";
        const td = el("td", null, text);
        if (typeof v === "number" && (p.custom.cellOptions || {}).type === "color-background") {
          td.style.background = thresholdColor(p.thresholds, v);
          td.style.color = "#fff";
        }
        tr.appendChild(td);
      }
      table.appendChild(tr);
    }
    const wrap = el("div", "table-wrap");
    wrap.appendChild(table);
    body.replaceChildren(wrap);
    return true;
  }

  // --------------------------------------------------------------------------- piechart

  function drawPie(panel, body, data) {
    const rows = data.series.map((s) => ({ s, v: reduce(panel, s.ys) })).filter((r) => r.v !== null && r.v > 0);
    if (!rows.length) return false;
    const total = rows.reduce((a, r) => a + r.v, 0);
    const unit = defaults(panel).unit;
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "-1 -1 2 2");
    let angle = -Math.PI / 2;
    const legendTable = el("table");
    rows.forEach((r, i) => {
      const share = r.v / total;
      const next = angle + share * 2 * Math.PI;
      const path = document.createElementNS(ns, "path");
      const large = share > 0.5 ? 1 : 0;
      const [x0, y0, x1, y1] = [Math.cos(angle), Math.sin(angle), Math.cos(next), Math.sin(next)];
      path.setAttribute("d", share >= 0.9999
        ? "M 0 -1 A 1 1 0 1 1 0 1 A 1 1 0 1 1 0 -1 Z"
        : `M 0 0 L ${x0} ${y0} A 1 1 0 ${large} 1 ${x1} ${y1} Z`);
      path.setAttribute("fill", PALETTE[i % PALETTE.length]);
      svg.appendChild(path);
      angle = next;
      const tr = el("tr");
      const swatch = el("td", null, "■");
      swatch.style.color = PALETTE[i % PALETTE.length];
      tr.append(swatch, el("td", null, r.s.name), el("td", null, format(r.v, unit, defaults(panel).decimals)), el("td", null, `${(share * 100).toFixed(1)}%`));
      legendTable.appendChild(tr);
    });
    if ((panel.options || {}).pieType === "donut") {
      const hole = document.createElementNS(ns, "circle");
      hole.setAttribute("r", "0.55");
      hole.setAttribute("fill", "#181b1f");
      svg.appendChild(hole);
    }
    const box = el("div", "pie");
    box.append(svg, legendTable);
    body.replaceChildren(box);
    return true;
  }

  // ---------------------------------------------------------------------------- heatmap

  // Drawn as cells: x = time step, y = latency bucket, colour = requests in that bucket
  // during the step (the cumulative `le` counts made per-bucket, as Grafana's heatmap
  // format does).
  function drawHeatmap(panel, body, data, spec) {
    const buckets = data.series
      .map((s) => ({ le: s.labels.le === "+Inf" ? Infinity : parseFloat(s.labels.le), s }))
      .filter((b) => !Number.isNaN(b.le))
      .sort((a, b) => a.le - b.le);
    if (!buckets.length || !hasValue(buckets.map((b) => b.s))) return false;
    const xs = [...new Set(buckets.flatMap((b) => b.s.xs))].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const cumulative = buckets.map((b) => {
      const ys = new Array(xs.length).fill(0);
      b.s.xs.forEach((x, i) => { ys[index.get(x)] = b.s.ys[i] || 0; });
      return ys;
    });
    const counts = cumulative.map((ys, k) => ys.map((y, i) => Math.max(0, y - (k ? cumulative[k - 1][i] : 0))));
    // Only the buckets that ever held a request, so the chart is not mostly empty rows.
    const used = counts.map((ys) => ys.some((y) => y > 0));
    const first = Math.max(0, used.indexOf(true) - 1);
    const last = Math.min(buckets.length - 1, used.lastIndexOf(true) + 1);
    const rows = buckets.slice(first, last + 1).map((b, k) => ({ le: b.le, ys: counts[first + k] }));
    const top = Math.max(...rows.flatMap((r) => r.ys), 1);
    const unit = (((panel.options || {}).yAxis || {}).unit) || "s";

    const canvas = el("canvas");
    body.replaceChildren(canvas);
    traceLinks(body, data.exemplars, "s");
    const linksHeight = (body.querySelector(".traces") || { offsetHeight: 0 }).offsetHeight;
    const width = Math.max(body.clientWidth - 4, 100);
    const height = Math.max(body.clientHeight - linksHeight - 4, 60);
    const ratio = devicePixelRatio;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    const left = 64, bottom = 18, plotW = width - left - 6, plotH = height - bottom - 4;
    const step = panel.targets.length ? panel.targets[0].step : panel.interval;
    const cellW = plotW / Math.max(1, (spec.end - spec.start) / step);
    const cellH = plotH / rows.length;
    const xOf = (t) => left + ((t - spec.start) / (spec.end - spec.start)) * plotW;
    rows.forEach((r, k) => {
      const y = 4 + plotH - (k + 1) * cellH;
      r.ys.forEach((count, i) => {
        if (count <= 0) return;
        const level = Math.sqrt(count / top);
        ctx.fillStyle = `rgba(255, ${Math.round(200 - 150 * level)}, 40, ${0.25 + 0.75 * level})`;
        ctx.fillRect(xOf(xs[i]) - cellW, y, Math.max(cellW - 1, 1), Math.max(cellH - 1, 1));
      });
      ctx.fillStyle = "#8e8e9f";
      ctx.font = "10px sans-serif";
      ctx.textAlign = "right";
      if (rows.length < 14 || k % Math.ceil(rows.length / 12) === 0) {
        ctx.fillText(Number.isFinite(r.le) ? "≤ " + format(r.le, unit) : "> " + format(rows[k - 1] ? rows[k - 1].le : 0, unit), left - 4, y + cellH / 2 + 3);
      }
    });
    ctx.textAlign = "center";
    for (let i = 0; i <= 4; i++) {
      const t = spec.start + ((spec.end - spec.start) * i) / 4;
      ctx.fillText(new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }), Math.min(Math.max(xOf(t), left + 20), width - 24), height - 4);
    }
    for (const e of data.exemplars) {
      const k = rows.findIndex((r) => e.value <= r.le);
      if (k < 0) continue;
      const x = xOf(e.ts), y = 4 + plotH - (k + 0.5) * cellH;
      ctx.fillStyle = "#6ED0E0";
      ctx.beginPath();
      ctx.moveTo(x, y - 4); ctx.lineTo(x + 4, y); ctx.lineTo(x, y + 4); ctx.lineTo(x - 4, y);
      ctx.fill();
    }
    canvas.addEventListener("click", (event) => {
      for (const e of data.exemplars) {
        const k = rows.findIndex((r) => e.value <= r.le);
        if (k < 0) continue;
        const dx = xOf(e.ts) - event.offsetX, dy = 4 + plotH - (k + 0.5) * cellH - event.offsetY;
        if (Math.hypot(dx, dy) < 8) { location.href = "/trace/" + e.traceId; return; }
      }
    });
    return true;
  }

  // ---------------------------------------------------------------------------- panels

  const DRAW = {
    timeseries: drawTimeseries,
    graph: drawTimeseries,
    stat: (p, b, d) => drawStat(p, b, d, false),
    gauge: (p, b, d) => drawStat(p, b, d, true),
    bargauge: drawBarGauge,
    table: drawTable,
    piechart: drawPie,
    heatmap: drawHeatmap,
  };

  function panelNode(panel) {
    const g = panel.gridPos;
    if (panel.type === "row") {
      const node = el("div", "row-title", panel.title);
      node.style.gridColumn = "1 / -1";
      node.style.gridRow = `${g.y + 1} / span 1`;
      return node;
    }
    const node = el("section", "panel");
    node.style.gridColumn = `${g.x + 1} / span ${g.w}`;
    node.style.gridRow = `${g.y + 1} / span ${g.h}`;
    node.dataset.title = panel.title;
    node.dataset.type = panel.type;
    node.dataset.state = "loading";
    const title = el("h2", null, panel.title);
    title.title = panel.description || "";
    const body = el("div", "body");
    message(body, "loading…");
    node.append(title, body);
    return node;
  }

  async function renderPanel(panel, node, spec) {
    const body = node.querySelector(".body");
    const draw = DRAW[panel.type];
    if (!draw) {
      message(body, `Panel type "${panel.type}" is not drawn natively; open it in Grafana (Docker runtime).`);
      node.dataset.state = "unsupported";
      return;
    }
    let data;
    try {
      data = await fetchPanel(panel, spec);
    } catch (error) {
      message(body, `Query failed: ${error.message}`);
      node.dataset.state = "error";
      node.dataset.error = error.message;
      return;
    }
    let drew;
    try {
      drew = draw(panel, body, data, spec);
    } catch (error) {
      message(body, `Cannot draw: ${error.message}`);
      node.dataset.state = "error";
      node.dataset.error = error.message;
      return;
    }
    if (!drew) message(body, "No data");
    node.dataset.state = drew ? "data" : "empty";
    node.dataset.series = String(data.series.length);
    node.dataset.exemplars = String(data.exemplars.length);
  }

  function variablesUi(spec) {
    const box = document.getElementById("variables");
    box.replaceChildren();
    for (const v of spec.variables) {
      const label = el("label", null, v.label + " ");
      const select = el("select");
      select.appendChild(new Option("All", ""));
      for (const option of v.options) select.appendChild(new Option(option, option, false, v.selected.length === 1 && v.selected[0] === option));
      select.onchange = () => {
        params.delete("var-" + v.name);
        if (select.value) params.set("var-" + v.name, select.value);
        location.search = params.toString();
      };
      label.appendChild(select);
      box.appendChild(label);
    }
  }

  let nodes = null;

  async function load() {
    const query = new URLSearchParams(params);
    query.set("width", String(grid.clientWidth || innerWidth));
    let spec;
    try {
      const response = await fetch(`/api/dashboards/${encodeURIComponent(uid)}?${query}`);
      spec = await response.json();
      if (!response.ok) throw new Error(spec.error || `HTTP ${response.status}`);
    } catch (error) {
      summary.textContent = `Cannot load the dashboard: ${error.message}`;
      summary.className = "error";
      document.body.dataset.state = "error";
      return null;
    }
    if (!nodes) {
      variablesUi(spec);
      nodes = spec.panels.map((panel) => {
        const node = panelNode(panel);
        grid.appendChild(node);
        return node;
      });
    }
    const drawn = spec.panels.map((panel, i) => (panel.type === "row" ? null : renderPanel(panel, nodes[i], spec)));
    await Promise.all(drawn);
    const panels = [...grid.querySelectorAll(".panel")];
    const withData = panels.filter((n) => n.dataset.state === "data").length;
    summary.className = "muted";
    summary.textContent = `${withData} of ${panels.length} panels drew data · updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.state = "ready";
    return spec;
  }

  const rangeSelect = document.getElementById("range");
  const chosenRange = params.get("range") || header.dataset.defaultRange;
  if (![...rangeSelect.options].some((o) => o.value === chosenRange)) rangeSelect.appendChild(new Option(`Last ${chosenRange}`, chosenRange));
  rangeSelect.value = chosenRange;
  rangeSelect.onchange = () => {
    params.set("range", rangeSelect.value);
    location.search = params.toString();
  };

  async function loop() {
    const spec = await load();
    const every = params.get("refresh") === "off" ? null : (spec && spec.refresh) || null;
    if (every) setTimeout(loop, every * 1000);
  }
  loop();
})();

// Charts for the overview: inline SVG built with DOM calls (no innerHTML, no
// inline style, so the strict CSP holds). Colours come from CSS classes
// (`series-0` … `series-7`, `series-other` in app.css); every series is also named
// in a legend with its value as text, so nothing is told by colour alone.

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element with string attributes. */
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    node.setAttribute(name, String(value));
  }
  for (const child of children) {
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

/** An HTML element with string attributes and text or node children. */
function html(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    node.setAttribute(name, String(value));
  }
  for (const child of children) {
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

/** A round number at or above `max` (1, 2, 2.5 or 5 times a power of ten). */
export function niceMax(max) {
  if (!(max > 0) || !Number.isFinite(max)) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(max)));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= max) return step * power;
  }
  return 10 * power;
}

/** `HH:MM` (or `MM-DD HH:MM` when the range spans days), local time. */
export function fmtClock(ms, withDay) {
  const d = new Date(ms);
  const two = (n) => String(n).padStart(2, "0");
  const clock = `${two(d.getHours())}:${two(d.getMinutes())}`;
  return withDay ? `${two(d.getMonth() + 1)}-${two(d.getDate())} ${clock}` : clock;
}

/** A short number: 1234 → "1.23k". */
export function fmtShort(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${(n / 1e9).toPrecision(3)}G`;
  if (abs >= 1e6) return `${(n / 1e6).toPrecision(3)}M`;
  if (abs >= 1e3) return `${(n / 1e3).toPrecision(3)}k`;
  if (abs === 0) return "0";
  if (abs < 0.0001) return n.toExponential(1);
  return String(Number(n.toPrecision(3)));
}

/**
 * A line chart.
 *
 * - `id`: names the chart for tests (`data-testid="chart-<id>"`);
 * - `title`, `unit`: the heading and the y axis unit;
 * - `xs`: bucket start times (ms); `step`: bucket width (ms);
 * - `series`: `[{ name, values: [number|null per bucket], summary: string, cls }]`,
 *   `summary` being the text shown in the legend beside the colour;
 * - `format(value)`: the y tick and tooltip text.
 *
 * Returns a `<figure>`; nothing is fetched here.
 */
export function lineChart({ id, title, unit, xs, step, series, format = fmtShort }) {
  const width = 640;
  const height = 220;
  const pad = { left: 56, right: 12, top: 12, bottom: 28 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  let max = 0;
  let points = 0;
  for (const s of series) {
    for (const v of s.values) {
      if (v !== null && v !== undefined && Number.isFinite(v)) {
        max = Math.max(max, v);
        points += 1;
      }
    }
  }
  const top = niceMax(max);
  const n = xs.length;
  const x = (i) => pad.left + (n <= 1 ? plotW / 2 : (i * plotW) / (n - 1));
  const y = (v) => pad.top + plotH - (v / top) * plotH;
  const figure = html("figure", {
    class: "chart",
    "data-testid": `chart-${id}`,
    "data-points": points,
    "data-buckets": xs.length,
    "data-max": max,
  });
  const captionId = `chart-${id}-title`;
  figure.append(html("figcaption", { id: captionId }, unit ? `${title} (${unit})` : title));
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-labelledby": captionId,
    class: "chart-svg",
  });
  root.append(svg("title", {}, title));
  // The y axis: 0, half, top, with grid lines.
  for (const v of [0, top / 2, top]) {
    root.append(
      svg("line", {
        x1: pad.left,
        x2: width - pad.right,
        y1: y(v),
        y2: y(v),
        class: v === 0 ? "chart-axis" : "chart-grid",
      }),
      svg(
        "text",
        { x: pad.left - 6, y: y(v) + 4, "text-anchor": "end", class: "chart-tick" },
        format(v),
      ),
    );
  }
  root.append(
    svg("line", {
      x1: pad.left,
      x2: pad.left,
      y1: pad.top,
      y2: pad.top + plotH,
      class: "chart-axis",
    }),
  );
  // The x axis: first, middle and last bucket times.
  if (n > 0) {
    const withDay = n > 1 && xs[n - 1] - xs[0] >= 86_400_000 - step;
    const ticks = n === 1 ? [0] : [0, Math.floor((n - 1) / 2), n - 1];
    for (const i of ticks) {
      root.append(
        svg(
          "text",
          {
            x: x(i),
            y: height - 8,
            "text-anchor": i === 0 && n > 1 ? "start" : i === n - 1 && n > 1 ? "end" : "middle",
            class: "chart-tick",
          },
          fmtClock(xs[i], withDay),
        ),
      );
    }
  }
  // The lines; a point alone (between gaps) is a dot.
  series.forEach((s, k) => {
    const cls = s.cls || `series-${k % 8}`;
    const group = svg("g", { class: `chart-series ${cls}`, "data-series": s.name });
    let path = "";
    s.values.forEach((v, i) => {
      if (v === null || v === undefined || !Number.isFinite(v)) {
        return;
      }
      const known = (w) => w !== null && w !== undefined && Number.isFinite(w);
      const joined = i > 0 && known(s.values[i - 1]);
      path += `${joined ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)} `;
      // A dot (with its value as a tooltip) where something happened, or where a
      // point stands alone between gaps and would otherwise not be drawn.
      const alone = !joined && !(i + 1 < s.values.length && known(s.values[i + 1]));
      if (v !== 0 || alone) {
        const dot = svg("circle", { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2.5 });
        dot.append(svg("title", {}, `${s.name} ${fmtClock(xs[i], false)}: ${format(v)}`));
        group.append(dot);
      }
    });
    if (path) {
      group.prepend(svg("path", { d: path.trim(), class: "chart-line" }));
    }
    root.append(group);
  });
  if (points === 0) {
    root.append(
      svg(
        "text",
        { x: pad.left + plotW / 2, y: pad.top + plotH / 2, "text-anchor": "middle", class: "chart-empty" },
        "no requests in this range",
      ),
    );
  }
  figure.append(root);
  const legend = html("ul", { class: "chart-legend" });
  series.forEach((s, k) => {
    const cls = s.cls || `series-${k % 8}`;
    legend.append(
      html(
        "li",
        { "data-testid": "legend-item" },
        html("span", { class: `swatch ${cls}`, "aria-hidden": "true" }),
        html("span", { class: "legend-name" }, s.name),
        " ",
        html("span", { class: "legend-value" }, s.summary ?? ""),
      ),
    );
  });
  figure.append(legend);
  return figure;
}

import { useEffect, useRef, useSyncExternalStore } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

import { zoneName } from "../../lib/format";
import { currentTheme, subscribeTheme } from "../../lib/theme";
import { axisSize, tickLabels } from "./axis";
import { COUNT_INCREMENTS, describeChart, hasNoValues, hiddenLegendRows, isolatedIndexes, legendValue, singleReading, xRange, yRange, type ValueKind } from "./chartText";

export interface ChartSeries {
  label: string;
  values: (number | null)[];
  /** A CSS colour or custom property, e.g. "var(--accent)". */
  color?: string;
  dash?: boolean;
  /** Drawn as a filled band's edge only (no line of its own in the legend). */
  band?: boolean;
  /** Join the values across nulls (x values that are another series', not a gap in this one). */
  spanGaps?: boolean;
}

export interface ChartProps {
  title: string;
  x: number[];
  series: ChartSeries[];
  /** Pairs of series indexes (1-based, as uPlot counts: 0 is x) whose gap is filled, high first. */
  bands?: [number, number][];
  time?: boolean;
  kind?: "line" | "bars" | "step";
  height?: number;
  unit?: string;
  /** Vertical markers (x values) drawn across the plot, e.g. regressions or "now". */
  markers?: number[];
  /** Category names for x = 0, 1, 2 ... (bar charts of modes, pages ...). */
  xLabels?: string[];
  /** What the values are: counts get whole-number ticks, percentages stop at 100 (default: percent for a "%" unit). */
  valueKind?: ValueKind;
}

const PALETTE = ["var(--accent)", "var(--ok)", "var(--warn)", "var(--bad)", "var(--violet)"];

function resolve(color: string, element: Element): string {
  const match = /^var\((--[\w-]+)\)$/.exec(color);
  return match ? getComputedStyle(element).getPropertyValue(match[1]).trim() || "#888" : color;
}

/** A value axis as wide as its widest label in the axis font, with its tick and gap. */
function measuredAxisSize(u: uPlot, values: string[] | null, axisIdx: number): number {
  const axis = u.axes[axisIdx];
  if (!values) return 50; // uPlot's first pass, before there are labels
  // Once built, uPlot holds the font as [font scaled to device pixels, its size, its CSS size].
  const font = axis.font as unknown as string | [string, number, number];
  const ctx = u.ctx;
  ctx.save(); // uPlot caches the context's font: leave it as found
  ctx.font = Array.isArray(font) ? font[0] : (font ?? ctx.font);
  const tickSize = axis.ticks?.show === false ? 0 : (axis.ticks?.size ?? 10);
  const size = axisSize(values, (text) => ctx.measureText(text).width / (uPlot.pxRatio || 1), tickSize, axis.gap ?? 5);
  ctx.restore();
  return size;
}

/** A small, fast canvas chart (uPlot) that follows its container's width and the theme's colours. */
export function Chart({ title, x, series, bands = [], time = true, kind = "line", height = 220, unit = "", markers = [], xLabels, valueKind }: ChartProps) {
  const kindOfValues: ValueKind = valueKind ?? (unit.trim() === "%" ? "percent" : "number");
  const holder = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const markersRef = useRef(markers);
  markersRef.current = markers;
  // The colours are resolved from the theme's custom properties when the plot is built: a theme switch
  // builds it again (it kept the old theme's colours, e.g. a near-black line on the dark background).
  const theme = useSyncExternalStore(subscribeTheme, currentTheme, () => "");
  const shape = `${series.length}:${kind}:${time}:${bands.join(";")}:${unit}:${kindOfValues}:${series.map((s) => s.label).join("|")}:${xLabels?.join("|")}`;

  useEffect(() => {
    const element = holder.current;
    if (!element) return;
    const colors = series.map((s, i) => resolve(s.color ?? PALETTE[i % PALETTE.length], element));
    const axis = resolve("var(--muted)", element);
    const grid = resolve("var(--line)", element);
    const paths =
      kind === "bars" ? uPlot.paths.bars!({ size: [0.9, 40] }) : kind === "step" ? uPlot.paths.stepped!({ align: 1 }) : undefined;
    const options: uPlot.Options = {
      width: Math.max(element.clientWidth, 200),
      height,
      scales: {
        x: xLabels
          ? { time: false, range: [-0.5, xLabels.length - 0.5] }
          : { time, range: (u, min, max) => xRange(u.data[0] as number[], min, max, time) },
        y: {
          range: (_u, min, max) =>
            yRange(min, max, kindOfValues) ?? uPlot.rangeNum(min, max, 0.1, true),
        },
      },
      axes: [
        {
          stroke: axis,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid },
          ...(xLabels ? { splits: () => xLabels.map((_, i) => i), values: () => xLabels } : {}),
        },
        {
          stroke: axis,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid },
          size: measuredAxisSize,
          ...(kindOfValues === "count" ? { incrs: COUNT_INCREMENTS } : {}),
          values: (_, ticks, _axis, _space, incr) => tickLabels(ticks, incr, unit),
        },
      ],
      series: [
        {},
        ...series.map((s, i) => ({
          label: s.label,
          stroke: colors[i],
          width: s.band ? 0 : 2,
          dash: s.dash ? [6, 4] : undefined,
          fill: kind === "bars" ? colors[i] : undefined,
          paths,
          // A line needs two points: a value with none beside it (a single reading) is drawn as a dot.
          points: {
            show: (u: uPlot, seriesIdx: number) => !s.band && kind !== "bars" && isolatedIndexes(u.data[seriesIdx] as (number | null)[]).length > 0,
            filter: (u: uPlot, seriesIdx: number) => isolatedIndexes(u.data[seriesIdx] as (number | null)[]),
            size: 8,
            fill: colors[i],
          },
          // A null step (nothing measured) is a gap in the line, and "no data" in the legend, never 0.
          spanGaps: s.spanGaps ?? false,
          // Off the plot (no index) the legend shows no value at all, not "no data" for every series.
          value: (_u: uPlot, value: number | null, _s: number, idx: number | null) => (idx === null ? "" : legendValue(value, unit)),
        })),
      ],
      bands: bands.map(([high, low]) => ({ series: [high, low] as [number, number], fill: `${colors[high - 1]}33` })),
      // Live: the legend says each series' value at the cursor ("no data" where a step has none).
      legend: { live: true },
      hooks: {
        // A band's edges are drawn as its fill only: their legend entries (coloured boxes for lines that
        // are not there, P10 in red) are hidden.
        init: [
          (u) => {
            const rows = u.root.querySelectorAll<HTMLElement>(".u-legend .u-series");
            for (const row of hiddenLegendRows(series, rows.length)) rows[row].style.display = "none";
          },
        ],
        draw: [
          (u) => {
            const ctx = u.ctx;
            ctx.save();
            ctx.strokeStyle = resolve("var(--bad)", element);
            ctx.setLineDash([4, 4]);
            for (const at of markersRef.current) {
              const px = u.valToPos(at, "x", true);
              ctx.beginPath();
              ctx.moveTo(px, u.bbox.top);
              ctx.lineTo(px, u.bbox.top + u.bbox.height);
              ctx.stroke();
            }
            ctx.restore();
          },
        ],
      },
    };
    plot.current = new uPlot(options, [x, ...series.map((s) => s.values)] as uPlot.AlignedData, element);
    const observer = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(element.clientWidth, 200), height }));
    observer.observe(element);
    return () => {
      observer.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // The plot is rebuilt only when its shape changes; new numbers go through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape, height, theme]);

  useEffect(() => {
    plot.current?.setData([x, ...series.map((s) => s.values)] as uPlot.AlignedData);
  }, [x, series]);

  const text = { title, x, series, unit, time, xLabels };
  const empty = hasNoValues(text);
  const single = singleReading(text);
  return (
    <figure className="chart">
      <figcaption>
        {title}
        {/* uPlot draws times in this browser's zone; the server, its logs and reports are in UTC. */}
        {time && !xLabels && !empty ? <span className="muted chart-zone"> · times in {zoneName()}</span> : null}
      </figcaption>
      {empty ? <p className="muted">No data in this range yet.</p> : null}
      <div ref={holder} role="img" aria-label={describeChart(text)} hidden={empty} />
      {single && !empty ? (
        <p className="chart-note" data-testid="single-reading">
          {single}
        </p>
      ) : null}
    </figure>
  );
}

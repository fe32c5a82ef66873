/** Tick labels and the room they need on a chart's value axis (pure, so they are tested without a canvas). */

/**
 * Decimals that tell ticks `incr` apart: 0 for 20, 1 for 2.5, 3 for 0.005. Fixed at 2 they showed
 * 0.008 and 0.01 both as "0.01".
 */
export function tickDecimals(incr: number): number {
  if (!Number.isFinite(incr) || incr <= 0) return 2;
  for (let decimals = 0; decimals < 12; decimals += 1) {
    const scaled = incr * 10 ** decimals;
    // Float noise (0.30000000000000004) is not a digit of its own.
    if (Math.abs(scaled - Math.round(scaled)) < 1e-6 * Math.max(1, scaled)) return decimals;
  }
  return 12;
}

/** Each tick with the decimals its increment needs, and the unit. */
export function tickLabels(ticks: number[], incr: number, unit = ""): string[] {
  const decimals = tickDecimals(incr);
  return ticks.map((tick) => {
    const text = tick.toFixed(decimals);
    return `${/^-0(\.0*)?$/.test(text) ? text.slice(1) : text}${unit}`;
  });
}

/**
 * CSS pixels a vertical axis needs: its widest label as measured in the axis font, plus the tick and the
 * gap between tick and label (a guess of 7 px a character cut "140 mmHg" to "40 mmHg").
 */
export function axisSize(labels: readonly string[], measure: (text: string) => number, tickSize: number, gap: number): number {
  const widest = labels.reduce((most, label) => Math.max(most, measure(label)), 0);
  return Math.ceil(widest + tickSize + gap + 2); // 2: room for antialiasing at the canvas edge
}

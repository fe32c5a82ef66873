/** Numbers as the dashboard shows them: a dash for nothing, fixed digits, an optional unit. */
export function fixed(value: number | null | undefined, digits = 1, unit = ""): string {
  return value === null || value === undefined || Number.isNaN(value) ? "—" : `${value.toFixed(digits)}${unit}`;
}

export function percent(share: number | null | undefined, digits = 1): string {
  return share === null || share === undefined ? "—" : `${(share * 100).toFixed(digits)}%`;
}

export function seconds(total: number): string {
  if (total % 3600 === 0) return `${total / 3600} h`;
  if (total % 60 === 0) return `${total / 60} min`;
  return `${total} s`;
}

export function count(value: number): string {
  return value.toLocaleString("en-US");
}

export function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : "—";
}

/** Seconds since the epoch, as uPlot's time axis wants them. */
export function epoch(iso: string): number {
  return Date.parse(iso) / 1000;
}

/** Numbers as the dashboard shows them: a dash for nothing, fixed digits, an optional unit. */
export function fixed(value: number | null | undefined, digits = 1, unit = ""): string {
  return value === null || value === undefined || Number.isNaN(value) ? "—" : `${value.toFixed(digits)}${unit}`;
}

export function percent(share: number | null | undefined, digits = 1): string {
  return share === null || share === undefined || Number.isNaN(share) ? "—" : `${(share * 100).toFixed(digits)}%`;
}

export function seconds(total: number): string {
  if (total % 3600 === 0) return `${total / 3600} h`;
  if (total % 60 === 0) return `${total / 60} min`;
  return `${total} s`;
}

export function count(value: number): string {
  return value.toLocaleString("en-US");
}

/**
 * A moment in this browser's time zone, named ("12/5/2026, 7:01:02 AM GMT+1"): the server, its logs and
 * its reports are in UTC, and an hour's difference across a DST change or a remote site was a guess.
 */
export function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString(undefined, { timeZoneName: "short" }) : "—";
}

/** A time of day in this browser's time zone, named: "7:01:02 AM GMT+1". */
export function clockTime(ms: number): string {
  return new Date(ms).toLocaleTimeString(undefined, { timeZoneName: "short" });
}

/** This browser's time zone as it names it ("GMT+1", "CET", "UTC"): what a chart's time axis is drawn in. */
export function zoneName(at: Date = new Date()): string {
  return new Intl.DateTimeFormat(undefined, { timeZoneName: "short" }).formatToParts(at).find((part) => part.type === "timeZoneName")?.value ?? "";
}

/** How long ago, roughly: "4 s", "3 min", "2 h". */
export function ago(ms: number): string {
  const secondsAgo = Math.max(0, Math.round(ms / 1000));
  if (secondsAgo < 120) return `${secondsAgo} s`;
  if (secondsAgo < 7200) return `${Math.round(secondsAgo / 60)} min`;
  return `${Math.round(secondsAgo / 3600)} h`;
}

/** Seconds since the epoch, as uPlot's time axis wants them. */
export function epoch(iso: string): number {
  return Date.parse(iso) / 1000;
}

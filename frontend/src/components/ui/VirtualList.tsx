import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useId, useRef, useState, type KeyboardEvent, type ReactNode } from "react";

export interface VirtualListProps {
  count: number;
  rowHeight: number;
  height: number;
  label: string;
  header: ReactNode;
  renderRow: (index: number) => ReactNode;
  /** Called with the first and last index on screen (after each scroll), to fetch what is missing. */
  onRange?: (first: number, last: number) => void;
  /**
   * Opens a row (Enter, or a click on it). Given, the list is a keyboard grid: one Tab stop, the arrow keys
   * (and Page Up/Down, Home, End) move the active row, Enter opens it. Without, a table the keyboard scrolls.
   */
  onOpen?: (index: number) => void;
  /** Columns too many for a phone's width: the list keeps a readable width and scrolls sideways in its box. */
  wide?: boolean;
}

/** The active row after a key, or null for a key the grid leaves alone. */
export function nextActive(key: string, active: number, count: number, pageRows: number): number | null {
  if (count === 0) return null;
  const to = { ArrowDown: active + 1, ArrowUp: active - 1, PageDown: active + pageRows, PageUp: active - pageRows, Home: 0, End: count - 1 }[key];
  return to === undefined ? null : Math.min(count - 1, Math.max(0, to));
}

/**
 * A list that keeps only the rows on screen (plus a few) in the DOM, however many there are: 100k
 * patients scroll as smoothly as 100. Rows are fixed height, so no row is ever measured.
 */
export function VirtualList({ count, rowHeight, height, label, header, renderRow, onRange, onOpen, wide = false }: VirtualListProps) {
  const scroller = useRef<HTMLDivElement>(null);
  const id = useId();
  const [active, setActive] = useState(0);
  const virtualizer = useVirtualizer({
    count,
    getScrollElement: () => scroller.current,
    estimateSize: () => rowHeight,
    overscan: 8,
  });
  const items = virtualizer.getVirtualItems();
  const first = items[0]?.index ?? 0;
  const last = items[items.length - 1]?.index ?? 0;
  useEffect(() => {
    if (count) onRange?.(first, last);
  }, [first, last, count, onRange]);
  // A new search's shorter list: the active row stays within it.
  const current = Math.min(active, Math.max(count - 1, 0));
  const grid = Boolean(onOpen);
  const rowId = (index: number) => `${id}-row-${index}`;

  // Every row was a Tab stop of its own (its button): reaching the chart past 30 patients took 30 presses.
  // As a grid, the list is one Tab stop whose active row (aria-activedescendant) the keys move; the
  // virtualizer scrolls it into view, so the row it names is always in the DOM.
  const onKeyDown = (event: KeyboardEvent<HTMLDivElement>) => {
    if (event.key === "Enter" || event.key === " ") {
      if (count === 0) return;
      event.preventDefault();
      onOpen?.(current);
      return;
    }
    const to = nextActive(event.key, current, count, Math.max(1, Math.floor(height / rowHeight) - 1));
    if (to === null) return;
    event.preventDefault();
    setActive(to);
    virtualizer.scrollToIndex(to, { align: "auto" });
  };

  return (
    // The header is row 1 (ARIA counts every row of a table): the last of 100,000 patients is row 100,001
    // of 100,001, where a screen reader said "row 100,000 of 100,000" and the header row was uncounted.
    <div
      className={wide ? "vlist vlist-wide" : "vlist"}
      role={grid ? "grid" : "table"}
      aria-label={label}
      aria-rowcount={count + 1}
      {...(grid
        ? { tabIndex: 0, onKeyDown, "aria-activedescendant": count ? rowId(current) : undefined, "data-testid": "vlist-grid" }
        : {})}
    >
      <div role="rowgroup">{header}</div>
      {/* The scroller is the rows' group itself: a focusable box with no role between the table and its rows
          broke the table's structure for assistive technology (axe: aria-required-children); the sizer
          inside it has no role, so the rows are the group's own. */}
      <div
        ref={scroller}
        role="rowgroup"
        className="vlist-scroller"
        style={{ height }}
        tabIndex={grid ? -1 : 0}
        aria-label={grid ? undefined : `${label}, scrollable`}
        data-testid="vlist-scroller"
      >
        <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
          {items.map((item) => (
            <div
              key={item.key}
              id={grid ? rowId(item.index) : undefined}
              role="row"
              aria-rowindex={item.index + 2}
              className={grid && item.index === current ? "vlist-row vlist-active" : "vlist-row"}
              style={{ height: rowHeight, transform: `translateY(${item.start}px)` }}
              onClick={grid ? () => setActive(item.index) : undefined}
            >
              {renderRow(item.index)}
            </div>
          ))}
        </div>
      </div>
    </div>
  );
}

import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useRef, type ReactNode } from "react";

export interface VirtualListProps {
  count: number;
  rowHeight: number;
  height: number;
  label: string;
  header: ReactNode;
  renderRow: (index: number) => ReactNode;
  /** Called with the first and last index on screen (after each scroll), to fetch what is missing. */
  onRange?: (first: number, last: number) => void;
}

/**
 * A list that keeps only the rows on screen (plus a few) in the DOM, however many there are: 100k
 * patients scroll as smoothly as 100. Rows are fixed height, so no row is ever measured.
 */
export function VirtualList({ count, rowHeight, height, label, header, renderRow, onRange }: VirtualListProps) {
  const scroller = useRef<HTMLDivElement>(null);
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

  return (
    // The header is row 1 (ARIA counts every row of a table): the last of 100,000 patients is row 100,001
    // of 100,001, where a screen reader said "row 100,000 of 100,000" and the header row was uncounted.
    <div className="vlist" role="table" aria-label={label} aria-rowcount={count + 1}>
      <div role="rowgroup">{header}</div>
      <div ref={scroller} className="vlist-scroller" style={{ height }} tabIndex={0} data-testid="vlist-scroller">
        <div role="rowgroup" style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
          {items.map((item) => (
            <div
              key={item.key}
              role="row"
              aria-rowindex={item.index + 2}
              className="vlist-row"
              style={{ height: rowHeight, transform: `translateY(${item.start}px)` }}
            >
              {renderRow(item.index)}
            </div>
          ))}
        </div>
      </div>
    </div>
  );
}

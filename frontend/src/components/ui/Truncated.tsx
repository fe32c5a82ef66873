/**
 * Text of any length in a table cell: cut to the cell's room with an ellipsis, the whole of it in a tooltip
 * (and to a screen reader, which reads the text itself). One long service or plan name made its column, and on
 * a phone the table, as wide as the name.
 */
export function Truncated({ text, className = "" }: { text: string; className?: string }) {
  return (
    <span className={`truncate ${className}`.trim()} title={text}>
      {text}
    </span>
  );
}

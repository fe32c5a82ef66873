"""In-page measurements shared by the browser test and bench/frontend.py."""

from __future__ import annotations

# Scroll the virtualized list from top to bottom in `ms`, one step per animation frame, recording each
# frame's interval and the long tasks (> 50 ms) the browser reports meanwhile.
SCROLL_FRAMES_JS = """
async ({ ms, selector }) => {
  const scroller = document.querySelector(selector);
  const total = scroller.scrollHeight - scroller.clientHeight;
  const longTasks = [];
  const observer = new PerformanceObserver((list) => list.getEntries().forEach((e) => longTasks.push(e.duration)));
  try { observer.observe({ type: "longtask" }); } catch (error) { /* not supported */ }
  const frames = [];
  let maxRows = 0;
  const start = await new Promise((resolve) => requestAnimationFrame(resolve));
  let last = start;
  await new Promise((resolve) => {
    const step = (now) => {
      frames.push(now - last);
      last = now;
      maxRows = Math.max(maxRows, scroller.querySelectorAll("[role=row]").length);
      const progress = Math.min((now - start) / ms, 1);
      scroller.scrollTop = total * progress;
      if (progress < 1) requestAnimationFrame(step); else resolve();
    };
    requestAnimationFrame(step);
  });
  observer.disconnect();
  frames.shift();
  return { frames, longTasks, maxRows, scrollHeight: scroller.scrollHeight, scrollTop: scroller.scrollTop };
}
"""


def frame_figures(result: dict) -> dict:
    """Frame intervals (ms) as percentiles, and the share of frames over one 60 Hz frame (16.7 ms)."""
    frames = sorted(result["frames"])
    if not frames:
        return {"frames": 0}

    def at(q: float) -> float:
        return round(frames[min(len(frames) - 1, int(q * len(frames)))], 2)

    return {
        "frames": len(frames),
        "p50_ms": at(0.5),
        "p95_ms": at(0.95),
        "max_ms": round(frames[-1], 2),
        "over_16_7_ms_share": round(sum(f > 16.7 * 1.25 for f in frames) / len(frames), 4),
        "long_tasks": len(result["longTasks"]),
        "max_rows_in_dom": result["maxRows"],
    }

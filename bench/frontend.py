"""The dashboard's budgets, measured: bundle sizes, Lighthouse (desktop preset, Debian's Chromium) and
frame times while scrolling 100,000 patients, on the product as `make run` serves it.

Baselines from the same run: Lighthouse also measures the admin's login page (a plain server-rendered
page of the same server), and the frames of an idle second of the same page are measured beside the
scroll. Prints JSON; exits 1 when a budget is missed. Lighthouse's HTML reports go to var/bench/frontend/.
Run: .venv/bin/python bench/frontend.py [--runs 3] [--patients 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from harness import REPO_ROOT, emit, progress

sys.path.insert(0, str(REPO_ROOT))

from tests.e2e.browser import SCROLL_FRAMES_JS, frame_figures
from tests.e2e.budgets import INITIAL_JS_BUDGET_KB, PAGE_CHUNK_BUDGET_KB, bundle_sizes
from tests.e2e.stack import CHROMIUM, CHROMIUM_ARGS, log_in, prepare, running

LIGHTHOUSE = REPO_ROOT / "frontend" / "node_modules" / "lighthouse" / "cli" / "index.js"
OUT = REPO_ROOT / "var" / "bench" / "frontend"
BUDGETS = {"fcp_s": 1.0, "lcp_s": 1.5, "interactive_s": 2.0, "score": 95}

IDLE_FRAMES_JS = """
async (ms) => {
  const frames = [];
  let last = await new Promise((resolve) => requestAnimationFrame(resolve));
  const end = last + ms;
  await new Promise((resolve) => {
    const step = (now) => { frames.push(now - last); last = now; now < end ? requestAnimationFrame(step) : resolve(); };
    requestAnimationFrame(step);
  });
  return { frames, longTasks: [], maxRows: 0 };
}
"""


def lighthouse(url: str, name: str, cookie: str | None, runs: int) -> dict:
    """Median of `runs` Lighthouse runs: score, FCP, LCP, time to interactive, TBT, CLS."""
    results = []
    for run in range(runs):
        progress(f"lighthouse {name} ({run + 1}/{runs})")
        path = OUT / f"{name}-{run + 1}"
        command = [
            "node", str(LIGHTHOUSE), url, "--preset=desktop", "--only-categories=performance", "--quiet",
            "--output=json", "--output=html", f"--output-path={path}",
            f"--chrome-flags=--headless=new {' '.join(CHROMIUM_ARGS)}",
        ]  # fmt: skip
        if cookie:
            command.append("--extra-headers=" + json.dumps({"Cookie": cookie}))
        for attempt in range(3):  # Lighthouse now and then fails to record a trace (NO_NAVSTART): run it again
            done = subprocess.run(command, env={**os.environ, "CHROME_PATH": CHROMIUM}, timeout=300)
            if done.returncode == 0:
                break
            progress(f"lighthouse {name}: attempt {attempt + 1} failed, running it again")
        else:
            raise RuntimeError(f"Lighthouse failed three times on {url}")
        report = json.loads(path.with_suffix(".report.json").read_text())
        audits = report["audits"]
        results.append({
            "score": round(report["categories"]["performance"]["score"] * 100),
            "fcp_s": audits["first-contentful-paint"]["numericValue"] / 1000,
            "lcp_s": audits["largest-contentful-paint"]["numericValue"] / 1000,
            "interactive_s": audits["interactive"]["numericValue"] / 1000,
            "tbt_ms": audits["total-blocking-time"]["numericValue"],
            "cls": audits["cumulative-layout-shift"]["numericValue"],
            "final_url": report["finalDisplayedUrl"],
        })  # fmt: skip
    return {
        key: (round(statistics.median(r[key] for r in results), 3) if key != "final_url" else results[-1][key])
        for key in results[0]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--patients", type=int, default=100_000)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    sizes = bundle_sizes(REPO_ROOT / "static" / "dashboard")
    env = prepare(patients=args.patients, var_dir=OUT / "var", database="cp_bench_frontend", redis_db=12,
                  progress=progress)  # fmt: skip
    with running(env) as stack, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        log_in(page, stack)
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
        progress("scrolling 100k patients, and an idle second for the baseline")
        page.goto(f"{stack.base}/dashboard/patients")
        page.wait_for_selector(f"text={args.patients:,} patients")
        idle = frame_figures(page.evaluate(IDLE_FRAMES_JS, 2000))
        scroll = frame_figures(
            page.evaluate(SCROLL_FRAMES_JS, {"ms": 4000, "selector": "[data-testid=vlist-scroller]"})
        )
        browser.close()

        baseline = lighthouse(f"{stack.base}/admin/login/", "admin-login", None, args.runs)
        pages = {
            name: lighthouse(f"{stack.base}/dashboard/{path}", name, cookie, args.runs)
            for name, path in (("overview", ""), ("patients", "patients"))
        }

    missed = [f"initial JS {sizes['initial_js_kb']} KB > {INITIAL_JS_BUDGET_KB}"] * (
        sizes["initial_js_kb"] > INITIAL_JS_BUDGET_KB
    )
    missed += [
        f"{p} chunk {kb} KB > {PAGE_CHUNK_BUDGET_KB}" for p, kb in sizes["pages"].items() if kb > PAGE_CHUNK_BUDGET_KB
    ]
    for name, figures in pages.items():
        if "/dashboard/" not in figures["final_url"]:
            missed.append(f"{name}: Lighthouse was redirected to {figures['final_url']}")
        for key, limit in BUDGETS.items():
            value = figures[key]
            if (value < limit) if key == "score" else (value >= limit):
                missed.append(f"{name}: {key} {value} (budget {'>=' if key == 'score' else '<'} {limit})")
    if scroll["p95_ms"] > 16.7 * 1.25:
        missed.append(f"scroll frames p95 {scroll['p95_ms']} ms")
    emit(
        {
            "bench": "frontend",
            "bundle_gzip_kb": sizes,
            "budgets": {**BUDGETS, "initial_js_kb": INITIAL_JS_BUDGET_KB, "page_chunk_kb": PAGE_CHUNK_BUDGET_KB},
            "lighthouse_desktop_median": {"admin_login_baseline": baseline, **pages},
            "ratio_to_admin_login": {
                name: {
                    k: round(figures[k] / baseline[k], 3) for k in ("fcp_s", "lcp_s", "interactive_s") if baseline[k]
                }
                for name, figures in pages.items()
            },
            "scroll_100k_patients_frames": scroll,
            "idle_frames_baseline": idle,
            "scroll_p95_over_idle_p95": round(scroll["p95_ms"] / idle["p95_ms"], 3),
            "missed": missed,
        }
    )
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()

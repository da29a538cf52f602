"""Turn raw runs into results.json, Markdown tables, a chart and the targets check."""

import json
import re
import statistics
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.catalog import System, has_bulk

ROOT = Path(__file__).resolve().parent.parent
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"

PEERS = ("huey", "dramatiq", "celery", "rq", "rq-fork")
THROUGHPUT = (
    ("enqueue_one", "Enqueue one by one"),
    ("enqueue_bulk", "Bulk enqueue"),
    ("drain_1", "Drain, 1 process"),
    ("drain_2", "Drain, 2 processes"),
)


def stats(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": values,  # type: ignore[dict-item]
    }


def summarize(runs: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, Any]]:
    return {
        system: {metric: stats(values) for metric, values in metrics.items()}
        for system, metrics in runs.items()
    }


def _median(summary: dict[str, Any], system: str, metric: str) -> float | None:
    value = summary.get(system, {}).get(metric)
    return None if value is None else value["median"]


def _rate(summary: dict[str, Any], system: str, metric: str) -> str:
    value = summary.get(system, {}).get(metric)
    if value is None:
        return "–"
    return f"**{value['median']:,.0f}** ({value['min']:,.0f}–{value['max']:,.0f})"


def _ms(summary: dict[str, Any], system: str, metric: str) -> str:
    value = summary.get(system, {}).get(metric)
    if value is None:
        return "–"
    return f"{value['median']:.2f} ({value['min']:.2f}–{value['max']:.2f})"


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def best_peer(summary: dict[str, Any], metric: str) -> tuple[str, float] | None:
    found = [
        (peer, _median(summary, peer, metric))
        for peer in PEERS
        if _median(summary, peer, metric) is not None
    ]
    if not found:
        return None
    return max(found, key=lambda item: item[1] or 0.0)  # type: ignore[return-value]


def targets(summary: dict[str, Any], counts: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with what was measured in this run."""
    rows: list[dict[str, Any]] = []

    def ratio_row(
        metric: str, label: str, factor: float, peer: tuple[str, float] | None
    ):
        ours = _median(summary, "ours", metric)
        if ours is None or peer is None:
            return
        ratio = ours / peer[1]
        rows.append(
            {
                "target": label,
                "measured": f"{ours:,.0f}/s vs {peer[0]} {peer[1]:,.0f}/s",
                "ratio": f"{ratio:.2f}× (goal {factor:g}×)",
                "met": ratio >= factor,
            }
        )

    ratio_row(
        "enqueue_one",
        "Enqueue one by one ≥ fastest peer",
        1.0,
        best_peer(summary, "enqueue_one"),
    )
    rq_bulk = _median(summary, "rq", "enqueue_bulk")
    ratio_row(
        "enqueue_bulk",
        "Bulk enqueue ≥ 2.5× RQ's enqueue_many",
        2.5,
        ("rq", rq_bulk) if rq_bulk else None,
    )
    ratio_row(
        "drain_1",
        "Drain, 1 process ≥ 3× fastest peer",
        3.0,
        best_peer(summary, "drain_1"),
    )
    ratio_row(
        "drain_2",
        "Drain, 2 processes ≥ 2× fastest peer",
        2.0,
        best_peer(summary, "drain_2"),
    )
    for metric, label, goal in (
        ("latency_p50_ms", "Latency p50 < 0.5 ms", 0.5),
        ("latency_p99_ms", "Latency p99 < 2 ms", 2.0),
    ):
        ours = _median(summary, "ours", metric)
        floor = _median(summary, "floor", metric)
        if ours is None:
            continue
        rows.append(
            {
                "target": label,
                "measured": f"{ours:.2f} ms"
                + (f" (floor: {floor:.2f} ms)" if floor is not None else ""),
                "ratio": f"{ours / floor:.2f}× the floor" if floor else "",
                "met": ours < goal,
            }
        )
    drain = counts.get("ours", {}).get("drain_1")
    if drain:
        rows.append(
            {
                "target": "Redis commands per job in the drain ≤ 3",
                "measured": f"{drain['top']:.2f} top-level "
                f"({drain['top'] + drain['script']:.2f} with those inside scripts)",
                "ratio": "",
                "met": drain["top"] <= 3,
            }
        )
    idle = counts.get("ours", {}).get("idle")
    if idle:
        rows.append(
            {
                "target": "Idle worker: no busy polling",
                "measured": f"{idle['top_per_s']:.1f} commands/s "
                f"(+{idle['script_per_s']:.1f} inside scripts)",
                "ratio": "",
                "met": idle["top_per_s"] <= 5,
            }
        )
    return rows


def markdown(
    meta: dict[str, Any], summary: dict[str, Any], counts: dict[str, Any]
) -> str:
    systems = meta["systems"]
    o = meta["options"]
    lines = [
        f"Run of {meta['date']}: Redis {meta['redis_version']}, "
        f"Python {meta['python']}, {meta['machine']}; {o['repeat']} runs per "
        "scenario, median in bold "
        f"(min–max). {o['jobs']:,} no-op jobs per throughput run; bulk calls of "
        f"{o['chunk']:,} jobs. Took {meta.get('seconds', 0)} s.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        "",
        "### Throughput (jobs/s)",
        "",
        "| System | Worker configuration | "
        + " | ".join(t for _, t in THROUGHPUT)
        + " |",
        "| --- | --- | " + " | ".join("---:" for _ in THROUGHPUT) + " |",
    ]
    for key, info in systems.items():
        label = info["label"]
        if info["drain_jobs"] != o["jobs"]:
            label += f" ({info['drain_jobs']:,} jobs per drain)"
        cells = [_rate(summary, key, metric) for metric, _ in THROUGHPUT]
        lines.append(f"| {label} | {info['concurrency']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"### Latency, enqueue to start, at {o['latency_rate']:g} jobs/s "
        f"({o['latency_jobs']:,} jobs, 1 worker process), and an idle worker",
        "",
        "| System | p50 ms | p99 ms | max ms "
        "| Idle worker: commands/s (inside scripts) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, info in systems.items():
        idle = counts.get(key, {}).get("idle")
        idle_text = (
            f"{idle['top_per_s']:.1f} ({idle['script_per_s']:.1f})" if idle else "–"
        )
        lines.append(
            f"| {info['label']} | {_ms(summary, key, 'latency_p50_ms')} | "
            f"{_ms(summary, key, 'latency_p99_ms')} | "
            f"{_ms(summary, key, 'latency_max_ms')} | {idle_text} |"
        )
    lines += [
        "",
        "### Redis cost per job",
        "",
        f"Commands from MONITOR over a separate pass of {o['count_jobs']:,} jobs: "
        "top-level commands, then in brackets those run inside Lua scripts, which "
        "`INFO commandstats` counts as well. Redis CPU is the server's "
        "used_cpu_user + used_cpu_sys delta over the timed runs; producer CPU is "
        "the enqueuing process's own CPU time, worker CPU that of the worker "
        "process (/proc), per job, medians.",
        "",
        "| System | Enqueue: commands | Enqueue: Redis CPU µs | Enqueue: producer "
        "CPU µs | Drain: commands | Drain, 1 process: Redis CPU µs | Drain, 1 "
        "process: worker CPU µs | Top-level commands per job in the drain |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for key, info in systems.items():
        c = counts.get(key, {})
        enq, drain = c.get("enqueue_one"), c.get("drain_1")
        enq_text = f"{enq['top']:.2f} ({enq['script']:.2f})" if enq else "–"
        drain_text = f"{drain['top']:.2f} ({drain['script']:.2f})" if drain else "–"
        names = (
            ", ".join(f"{k} {v:g}" for k, v in drain["top_by_name"].items())
            if drain
            else ""
        )
        cells = [
            _num(_median(summary, key, metric), 1)
            for metric in (
                "enqueue_one_cpu_us",
                "enqueue_one_client_cpu_us",
                "drain_1_cpu_us",
                "drain_1_worker_cpu_us",
            )
        ]
        lines.append(
            f"| {info['label']} | {enq_text} | {cells[0]} | {cells[1]} | "
            f"{drain_text} | {cells[2]} | {cells[3]} | {names} |"
        )
    lines += [
        "",
        "### Delivery guarantees",
        "",
        "| System | Guarantee |",
        "| --- | --- |",
    ]
    for info in systems.values():
        lines.append(f"| {info['label']} | {info['guarantee']} |")
    rows = targets(summary, counts)
    if rows:
        lines += [
            "",
            "### Targets (django-redisjobs, ratios within this run)",
            "",
            "| Target | Measured | Ratio | Met |",
            "| --- | --- | --- | --- |",
        ]
        for row in rows:
            met = "yes" if row["met"] else "**no**"
            lines.append(
                f"| {row['target']} | {row['measured']} | {row['ratio']} | {met} |"
            )
    return "\n".join(lines) + "\n"


def chart(meta: dict[str, Any], summary: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    systems = meta["systems"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    panels = [*THROUGHPUT, ("latency", "Latency at 200 jobs/s (ms)")]
    for ax, (metric, title) in zip(axes.flat, panels, strict=False):
        if metric == "latency":
            _latency_panel(ax, systems, summary)
        else:
            keys = [k for k in systems if metric in summary.get(k, {})]
            labels = [systems[k]["label"] for k in keys]
            med = [summary[k][metric]["median"] for k in keys]
            low = [
                m - summary[k][metric]["min"] for k, m in zip(keys, med, strict=True)
            ]
            high = [
                summary[k][metric]["max"] - m for k, m in zip(keys, med, strict=True)
            ]
            colors = ["#c0392b" if k == "ours" else "#7f8c8d" for k in keys]
            ax.barh(labels, med, xerr=[low, high], color=colors, capsize=3)
            ax.invert_yaxis()
            ax.set_title(f"{title} (jobs/s)")
            for y, value in enumerate(med):
                ax.text(value, y, f" {value:,.0f}", va="center", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(
        f"django-redisjobs and peers on Redis {meta['redis_version']} "
        f"({meta['machine']}; median, bars min–max)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _latency_panel(ax: Any, systems: dict[str, Any], summary: dict[str, Any]) -> None:
    keys = [k for k in systems if "latency_p50_ms" in summary.get(k, {})]
    if not keys:
        ax.axis("off")
        return
    labels = [systems[k]["label"] for k in keys]
    p50 = [summary[k]["latency_p50_ms"]["median"] for k in keys]
    p99 = [summary[k]["latency_p99_ms"]["median"] for k in keys]
    ys = range(len(keys))
    ax.barh([y - 0.2 for y in ys], p50, height=0.4, label="p50", color="#2980b9")
    ax.barh([y + 0.2 for y in ys], p99, height=0.4, label="p99", color="#e67e22")
    ax.set_yticks(list(ys), labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_title("Latency enqueue→start at 200 jobs/s (ms, log)")
    ax.legend(fontsize=8)


def write(
    meta: dict[str, Any],
    runs: dict[str, dict[str, list[float]]],
    counts: dict[str, Any],
    out: Path,
    *,
    update_docs: bool,
) -> str:
    summary = summarize(runs)
    data = {
        "meta": meta,
        "results": summary,
        "counts": counts,
        "targets": targets(summary, counts),
    }
    (out / "results.json").write_text(json.dumps(data, indent=2) + "\n")
    text = markdown(meta, summary, counts)
    drew = chart(meta, summary, out / "chart.png")
    if drew:
        text += "\n![Benchmark chart](bench/chart.png)\n"
    (out / "results.md").write_text(text)
    if update_docs and DOCS_PAGE.exists():
        page = DOCS_PAGE.read_text()
        pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
        DOCS_PAGE.write_text(pattern.sub(lambda _: f"{START}\n{text}{END}", page))
    return text


def check_smoke(
    runs: dict[str, dict[str, list[float]]], systems: Iterable[System]
) -> None:
    """The smoke run must have measured every scenario of every system it ran."""
    for system in systems:
        metrics = runs.get(system.key, {})
        wanted = ["drain_1", "drain_2"]
        if system.enqueue:
            wanted.append("enqueue_one")
        if has_bulk(system):
            wanted.append("enqueue_bulk")
        wanted += ["latency_p50_ms"]
        missing = [m for m in wanted if not metrics.get(m)]
        if missing:
            raise SystemExit(
                f"bench: {system.key} did not measure {', '.join(missing)}"
            )


def summarize_stacks(raw: str, top: int = 30) -> str:
    """py-spy raw (collapsed) stacks → per-thread totals and the hottest functions."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        if frames[0].startswith(("thread (", "process ")):
            threads[frames.pop(0)] += count
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    if not total:
        return "no samples\n"

    def block(title: str, counter: Counter[str]) -> list[str]:
        rows = [title]
        for name, count in counter.most_common(top):
            rows.append(f"{100 * count / total:6.1f}%  {name}")
        return [*rows, ""]

    lines = [f"{total} samples of the thread holding the GIL (py-spy --gil)", ""]
    if threads:
        lines += block("By thread:", threads)
    lines += block("Inclusive (function and what it calls):", inclusive)
    lines += block("Self (the function's own code):", own)
    return "\n".join(lines)

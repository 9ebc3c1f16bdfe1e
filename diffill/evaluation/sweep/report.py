"""The quality-against-latency table of `diffill sweep`, and its pick.

The pick is the best-quality point whose warm single-line p50 meets the budget (edit
similarity, then exact match, then the faster); without quality figures (a latency-only
sweep) it is the point with the most parameters within the budget.
"""

from __future__ import annotations

HEAD = (
    "| point | params M | layers | width | canvas | vocab | tokens seen | held-out loss "
    "| edit sim | exact | warm p50 ms | warm p95 ms | cold p50 ms | steps | within budget |"
)
RULE = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"


def within(row: dict, budget_ms: float) -> bool:
    return row["warm_p50_ms"] <= budget_ms


def pick(rows: list[dict], budget_ms: float) -> dict | None:
    fits = [r for r in rows if within(r, budget_ms)]
    if not fits:
        return None
    if all(r.get("edit_similarity") is None for r in fits):
        return max(fits, key=lambda r: r["parameters"])
    return max(fits, key=lambda r: (r["edit_similarity"], r["exact_match"], -r["warm_p50_ms"]))


def _figure(value: float | int | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def row_line(r: dict, budget_ms: float) -> str:
    cells = [
        r["name"],
        f"{r['parameters'] / 1e6:.2f}",
        str(r["n_layers"]),
        str(r["d_model"]),
        str(r["canvas_size"]),
        str(r["vocab_size"]),
        _figure(r.get("tokens_seen"), ","),
        _figure(r.get("heldout_loss"), ".3f"),
        _figure(r.get("edit_similarity"), ".3f"),
        _figure(r.get("exact_match"), ".1%"),
        f"{r['warm_p50_ms']:.1f}",
        f"{r['warm_p95_ms']:.1f}",
        f"{r['cold_p50_ms']:.1f}",
        f"{r['warm_steps']:.1f}",
        "yes" if within(r, budget_ms) else "no",
    ]
    return "| " + " | ".join(cells) + " |"


def notes(rows: list[dict], settings: dict) -> list[str]:
    s = settings
    lines = [
        f"Latency: ONNX Runtime on {s['threads']} threads, one session at a time, medians "
        f"of {s['rounds']} rounds over {s['positions_found']} held-out single-line positions, "
        f"context cut to {s['context_tokens']} "
        f"tokens, max_tokens {s['max_tokens']}, {s['steps']} steps per block, threshold "
        f"{s['threshold']}. Warm: the context prepared first (as the server does on didChange); "
        f"cold: encoded in the request. steps: mean denoising steps of a warm request. "
        f"Budget: warm p50 <= {s['budget_ms']:g} ms.",
        "Held-out loss is nats per token of each point's own tokenizer: not comparable across "
        "vocabulary sizes (different tokens).",
    ]
    loads = [r["load_average"] for r in rows]
    lines.append(
        f"1-minute load average around each point's latency (the larger of before and after): "
        f"{min(loads):.1f} to {max(loads):.1f}."
    )
    borrowed = {r["name"]: r["latency_machine"] for r in rows if r["latency_machine"] != "here"}
    if borrowed:
        lines.append(
            f"Latency of {', '.join(borrowed)}: from {s['latency_from']}, measured on "
            f"{'; '.join(sorted(set(borrowed.values())))}; the other points' here."
        )
    if s["latency_only"]:
        lines.append(
            "Latency-only: random weights of each shape. They never reach the confidence "
            "threshold, so every block takes its full step budget unless a line break or "
            "end token is decoded."
        )
    else:
        lines.append(
            f"Quality: diffusion on {s['eval_limit']} held-out examples per span kind "
            f"(diffill eval's scoring), after {training_budget(s)} of training per point "
            f"(train preset {s['train_preset']})."
        )
    return lines


def training_budget(settings: dict) -> str:
    parts = [f"{settings['minutes']:g} minutes"] if settings["minutes"] else []
    parts += [f"{settings['train_steps']} steps"] if settings["train_steps"] else []
    return " or ".join(parts) or "the preset's steps"


def report(rows: list[dict], settings: dict) -> str:
    """The table, its notes and the pick, as markdown."""
    budget = settings["budget_ms"]
    lines = [f"Sweep {settings['plan']}: {settings['machine']}", "", HEAD, RULE]
    lines += [row_line(r, budget) for r in rows]
    lines += ["", *notes(rows, settings), ""]
    best = pick(rows, budget)
    if best is None:
        lines.append(f"Pick: none; no point meets the {budget:g} ms budget.")
    else:
        why = "most parameters" if settings["latency_only"] else "best edit similarity"
        lines.append(f"Pick: {best['name']} ({why} within the {budget:g} ms budget).")
    return "\n".join(lines)

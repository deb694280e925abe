"""Selection report: how well each candidate's equivariance error separates on from off."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import Tensor

from equireg_lit.probes.objectives import auroc, effect_size
from equireg_lit.utils.io import atomic_write, atomic_write_json, atomic_write_text

KEY_SOURCE = "off_eval_dps_mid"  # what the penalty has to catch; candidates are ranked on it


def write_selection_report(errors: dict[str, dict[str, Tensor]], out_dir: str | Path,
                           blocks: dict[str, dict | None] | None = None) -> list[dict]:
    """``errors[candidate][source]`` -> per-sample errors. The reference set is ``on_eval``
    (validation samples) when present, else ``on_test`` (MNIST's report).

    Writes ``selection.csv``, ``selection.md``, ``selection.json``, one histogram PNG per
    candidate, and ``best_regularizer.yaml`` (the winner's ready ``regularizer:`` block) when
    its config is known. Returns the ranked rows.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, by_source in errors.items():
        ref = "on_eval" if "on_eval" in by_source else "on_test"
        on = by_source[ref]
        row: dict = {"candidate": name, f"{ref}_mean": float(on.mean())}
        for src, e in sorted(by_source.items()):
            if src == ref:
                continue
            row[f"auroc/{src}"] = auroc(on, e)
            row[f"d/{src}"] = effect_size(on, e)
        row["score"] = row.get(f"auroc/{KEY_SOURCE}", float("nan"))
        rows.append(row)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        hi = torch.cat(list(by_source.values())).quantile(0.99).item()
        for src, e in sorted(by_source.items()):
            ax.hist(e.clamp(max=hi).numpy(), bins=40, alpha=0.45, density=True, label=src)
        ax.set_xlabel("equivariance error R(x)")
        ax.set_title(f"{name}: AUROC({ref.removeprefix('on_')} vs DPS mid) = {row['score']:.3f}")
        ax.legend(fontsize=6)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        atomic_write(out / f"hist_{name}.png", lambda p: p.write_bytes(buf.getvalue()))
    write_ranking(rows, out, blocks)
    return rank(rows)


def rank(rows: list[dict]) -> list[dict]:
    """Best first: AUROC on the key source, ties broken by the effect size on it."""
    return sorted(rows, key=lambda r: (-r["score"], -r.get(f"d/{KEY_SOURCE}", float("-inf"))))


def write_ranking(rows: list[dict], out: Path, blocks: dict[str, dict | None] | None = None) -> None:
    """The ranked table (CSV, Markdown, JSON) and the winner's ``regularizer:`` block."""
    import yaml

    rows = rank(rows)
    cols = ["candidate", "score"] + sorted({k for r in rows for k in r} - {"candidate", "score"})
    atomic_write_text(out / "selection.csv", ",".join(cols) + "\n" + "\n".join(
        ",".join(f"{r.get(c, '')}" if isinstance(r.get(c), str) else f"{r.get(c, float('nan')):.4f}" for c in cols)
        for r in rows) + "\n")
    auroc_cols = [c for c in cols if c.startswith("auroc/")]
    md = ["| rank | candidate | effect size d (DPS mid) | " + " | ".join(c.replace("auroc/", "AUROC ") for c in auroc_cols) + " |",
          "|---|---|---|" + "---|" * len(auroc_cols)]
    for i, r in enumerate(rows, 1):
        md.append(f"| {i} | {r['candidate']} | {r.get('d/' + KEY_SOURCE, float('nan')):.2f} | "
                  + " | ".join(f"{r[c]:.3f}" for c in auroc_cols) + " |")
    atomic_write_text(out / "selection.md", "\n".join(md) + "\n")
    atomic_write_json(out / "selection.json", rows)
    if blocks and rows and blocks.get(rows[0]["candidate"]):
        atomic_write_text(out / "best_regularizer.yaml",
                          f"# winner: {rows[0]['candidate']} (AUROC test vs DPS mid = {rows[0]['score']:.3f}, "
                          f"effect size {rows[0].get('d/' + KEY_SOURCE, float('nan')):.2f})\n"
                          + yaml.safe_dump({"regularizer": blocks[rows[0]["candidate"]]}, sort_keys=False))

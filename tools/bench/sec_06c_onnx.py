"""Chapter 6: the deployed models in ONNX Runtime against eager PyTorch, in one run.

Recipe: the seed-0 baseline (dense), the line-up's magnitude AGP 90 % model (zeros in the
LSTM and the classifier, the embedding dense), and the two 32-unit structured models
(group lasso, GAL), each exported with ``deploy.onnx_runtime.export_onnx`` (dynamic batch
and time), checked against eager PyTorch on the whole test set, quantized to int8 by
PyTorch (``quantize_int8``) and by ONNX Runtime (``quantize_onnx_int8``, the same layers),
and the sixteen versions timed in the same interleaved rounds at one thread, full-length
articles of 400 tokens. Needs the ``deploy`` extra; without it the section says so.
"""

from __future__ import annotations

import tempfile

from common import md_table

from course_utils import get_baseline
from course_utils.deploy import onnx_runtime
from course_utils.experiments import zoo
from course_utils.verdicts import speed

__all__ = ["markdown", "run", "settings"]


def settings(mode: str) -> dict:
    if mode == "full":
        return {"budget": "short", "seq_len": 400, "rounds": 5, "repeats": 7}
    return {"budget": "tiny", "seq_len": 50, "rounds": 1, "repeats": 2}


def run(mode: str) -> dict:
    cfg = settings(mode)
    if not onnx_runtime.available():
        results = {"settings": cfg, "skipped": onnx_runtime.INSTALL_HINT}
        return {"results": results, "markdown": markdown(results)}
    from course_utils.experiments.onnx_speed import onnx_comparison

    baseline = get_baseline(seed=0)
    entries = zoo.lineup_models(seed=0, budget=cfg["budget"], baseline=baseline)
    pick = {"dense": baseline.model.eval()}
    for e in entries:
        if (e.method == "magnitude_agp" and not e.include_embedding) or e.method in (
            "group_lasso",
            "gal",
        ):
            pick[e.label] = e.model
    with tempfile.TemporaryDirectory() as folder:
        out = onnx_comparison(
            pick,
            baseline.loader("test"),
            folder,
            seq_len=cfg["seq_len"],
            rounds=cfg["rounds"],
            repeats=cfg["repeats"],
        )
    checks = [dict(r) | {"max_abs_diff": out.largest_diff[r["model"]]} for r in out.checks]
    results = {"settings": cfg, "checks": checks, "timings": [dict(r) for r in out.timings]}
    return {"results": results, "markdown": markdown(results)}


def markdown(results: dict) -> str:
    title = "## Chapter 6: ONNX Runtime against eager PyTorch"
    if "skipped" in results:
        return "\n".join([title, "", f"Not run: {results['skipped']}"])
    cfg = results["settings"]
    checks = md_table(
        [
            "model",
            "same labels",
            "max logit difference",
            "test acc fp32",
            "int8 PyTorch",
            "int8 ONNX Runtime",
            "ONNX MB (int8)",
        ],
        [
            [
                c["model"],
                f"{c['same labels']:.1%} of {c['examples']}",
                f"{c['max_abs_diff']:.1e}",
                f"{c['test acc']:.1%}",
                f"{c['test acc int8 (PyTorch)']:.1%}",
                f"{c['test acc int8 (ONNX Runtime)']:.1%}",
                f"{c['onnx MB']:.2f} ({c['onnx int8 MB']:.2f})",
            ]
            for c in results["checks"]
        ],
    )
    timings = md_table(
        ["model", "precision", "batch", "PyTorch ms", "ONNX Runtime ms", "ONNX Runtime speed-up"],
        [
            [
                t["model"],
                t["precision"],
                bs,
                f"{t[f'PyTorch b{bs} (ms)']:.2f}",
                f"{t[f'ONNX Runtime b{bs} (ms)']:.2f}",
                f"{t[f'ONNX Runtime speed-up b{bs}']:.2f}x "
                f"({speed(t[f'ONNX Runtime speed-up b{bs}'])})",
            ]
            for t in results["timings"]
            for bs in (1, 64)
        ],
    )
    slower = [
        f"{t['model']} {t['precision']} at batch {bs}"
        for t in results["timings"]
        for bs in (1, 64)
        if speed(t[f"ONNX Runtime speed-up b{bs}"]) == "slower"
    ]
    where = (
        "ONNX Runtime is slower than PyTorch for: " + "; ".join(slower) + ". "
        if slower
        else "ONNX Runtime is nowhere slower than PyTorch. "
    )
    return "\n".join(
        [
            title,
            "",
            checks,
            "",
            timings,
            "",
            where + "Both runtimes run the same graph with the same weights (the logits agree "
            "to the difference in the first table), so the times differ by the kernels: "
            "PyTorch's fused float32 LSTM against ONNX's LSTM operator, and PyTorch's dynamic "
            "int8 LSTM, which quantizes its input at every step and runs separate int8 "
            "products, against ONNX Runtime's single DynamicQuantizeLSTM operator.",
            "",
            f"Latency: one thread for both runtimes, full-length inputs of {cfg['seq_len']} "
            f"tokens, {cfg['rounds']} interleaved rounds of {cfg['repeats']} runs. The "
            "speed-up is PyTorch's time over ONNX Runtime's at the same precision; a verdict "
            "counts only beyond 1 +/- 0.2. ONNX's LSTM operator takes dense weights: the AGP "
            "model's zeros are multiplied like any other number.",
        ]
    )

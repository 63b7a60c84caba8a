"""Every widget shows something useful without a kernel: GitHub, nbviewer, HTML exports."""

from __future__ import annotations

import io
import json

import ipywidgets as w
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from helpers import NOTEBOOKS  # noqa: E402

from course_utils.widgets.common import live_box, static_view  # noqa: E402

WIDGET = "application/vnd.jupyter.widget-view+json"


def _png() -> bytes:
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def test_a_live_box_carries_a_picture_of_its_current_state():
    slider = w.FloatSlider(value=0.9, min=0, max=0.99, description="sparsity")
    label = w.HTML("<b>accuracy 91.2 %</b>")
    image = w.Image(value=_png(), format="png")
    box = live_box(
        [slider, w.VBox([label, image])],
        "test-box",
        controls=[slider],
        update=lambda change=None: None,
    )
    bundle = box._repr_mimebundle_()
    assert WIDGET in bundle and "text/plain" in bundle  # JupyterLab still shows the widget
    assert "sparsity = 0.9" in bundle["text/html"] and "accuracy 91.2 %" in bundle["text/html"]
    assert 'src="data:image/png;base64,' in bundle["text/html"]
    assert bundle["image/png"] == static_view(box)["image/png"]
    slider.value = 0.5  # the picture follows the controls
    assert "sparsity = 0.5" in box._repr_mimebundle_()["text/html"]


def test_plain_labels_are_escaped_in_the_static_view():
    box = live_box([w.Label("<unk> is 3 %")], "test-box", controls=[], update=lambda: None)
    assert "&lt;unk&gt; is 3 %" in box._repr_mimebundle_()["text/html"]


def test_every_committed_widget_output_has_a_static_fallback():
    found = 0
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if WIDGET in data:
                    found += 1
                    assert "A static view" in "".join(data.get("text/html", "")), (
                        f"{path.name}: a widget output without a static view"
                    )
    assert found >= 5

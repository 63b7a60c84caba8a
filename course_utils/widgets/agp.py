"""Chapter 2's AGP schedule widget: sliders for s_i, s_f, t0, n and Δt, and the plot.

A pure function (:func:`agp_curve`, tested headless) plus a thin view
(:func:`agp_schedule_widget`). Stable CSS classes for browser tests: ``agp-widget`` (the
VBox), sliders ``agp-initial``, ``agp-final``, ``agp-start``, ``agp-updates``,
``agp-frequency``, the HTML ``agp-summary`` (``11 pruning steps; sparsity reaches 90.0 %
at step 500``) and the Image ``agp-plot``.
"""

from __future__ import annotations

from ..checks import integer, non_negative_int, number, positive_int
from ..pruning.schedules import agp_sparsity
from .common import WidgetView, add_classes, error_html, figure_png, live_box, new_figure, percent

# slider ranges: a start value outside them is refused (ipywidgets would clamp it silently)
RANGES = {
    "initial": (0.0, 0.95),
    "final": (0.0, 0.99),
    "start_step": (0, 2000),
    "num_updates": (1, 50),
    "frequency": (1, 500),
}


def agp_curve(
    *,
    initial: float,
    final: float,
    start_step: int,
    num_updates: int,
    frequency: int,
    total_steps: int | None = None,
    exponent: float = 3.0,
) -> tuple[list[int], list[float]]:
    """Steps ``0..total_steps`` and the AGP target sparsity at each.

    ``end_step = start_step + num_updates * frequency``; ``total_steps`` defaults to a
    quarter beyond it. Bad arguments raise at once, naming the argument
    (``final < initial``, ``frequency=0``...).
    """
    num_updates = positive_int("num_updates", num_updates)
    start_step = non_negative_int("start_step", start_step)
    frequency = positive_int("frequency", frequency)
    end_step = start_step + num_updates * frequency
    if total_steps is None:
        total_steps = end_step + max(1, (end_step - start_step) // 4)
    else:
        total_steps = non_negative_int("total_steps", total_steps)
    steps = list(range(total_steps + 1))
    schedule = {"initial": initial, "final": final, "start_step": start_step, "end_step": end_step}
    values = [agp_sparsity(t, **schedule, frequency=frequency, exponent=exponent) for t in steps]
    return steps, values


class AGPScheduleWidget(WidgetView):
    """Sliders for s_i, s_f, t0, n and Δt and the schedule they give (see module doc).

    Start values outside the sliders' ranges (:data:`RANGES`) or a schedule that
    :func:`agp_curve` refuses (``final < initial``, ``frequency=0``) raise a ValueError
    naming the argument; a slider move that makes the schedule invalid shows the error
    in the summary and clears the plot (``curve`` becomes None), so no stale curve stays.
    """

    def __init__(
        self,
        *,
        initial: float = 0.0,
        final: float = 0.9,
        start_step: int = 0,
        num_updates: int = 10,
        frequency: int = 50,
    ):
        import ipywidgets as w

        given = {
            "initial": initial,
            "final": final,
            "start_step": start_step,
            "num_updates": num_updates,
            "frequency": frequency,
        }
        for name, (low, high) in RANGES.items():
            check = number if isinstance(low, float) else integer
            given[name] = check(name, given[name], minimum=low, maximum=high)
        agp_curve(**given)  # and the schedule itself: final >= initial
        initial, final, start_step, num_updates, frequency = given.values()
        style = {"description_width": "initial"}
        self.initial = w.FloatSlider(
            value=initial, min=0, max=0.95, step=0.05, description="s_i", style=style
        )
        self.final = w.FloatSlider(
            value=final, min=0, max=0.99, step=0.01, description="s_f", style=style
        )
        self.start = w.IntSlider(
            value=start_step, min=0, max=2000, step=10, description="t0", style=style
        )
        self.updates = w.IntSlider(value=num_updates, min=1, max=50, description="n", style=style)
        self.frequency = w.IntSlider(
            value=frequency, min=1, max=500, description="Δt (steps)", style=style
        )
        self.summary = w.HTML()
        self.plot = w.Image(format="png")
        self._figure = new_figure((6, 3))
        controls = (self.initial, self.final, self.start, self.updates, self.frequency)
        classes = ("agp-initial", "agp-final", "agp-start", "agp-updates", "agp-frequency")
        add_classes(zip(controls, classes, strict=True))
        add_classes([(self.summary, "agp-summary"), (self.plot, "agp-plot")])
        self.curve: tuple[list[int], list[float]] | None = None
        self.widget = live_box(
            [w.HBox(controls[:2]), w.HBox(controls[2:]), self.summary, self.plot],
            "agp-widget",
            controls=controls,
            update=self.update,
        )

    def update(self, change=None) -> None:
        """Redraw for the current slider values; an invalid schedule shows its error in the
        summary, with no plot."""
        try:
            steps, values = agp_curve(
                initial=self.initial.value,
                final=self.final.value,
                start_step=self.start.value,
                num_updates=self.updates.value,
                frequency=self.frequency.value,
            )
        except ValueError as err:
            self.summary.value = error_html(err)
            self.curve, self.plot.value = None, b""  # no stale curve under the error
            return
        end = self.start.value + self.updates.value * self.frequency.value
        self.curve = (steps, values)
        self.summary.value = (
            f"{self.updates.value + 1} pruning steps; sparsity reaches "
            f"<b>{percent(self.final.value)}</b> at step {end}"
        )
        fig = self._figure
        fig.clear()
        ax = fig.subplots()
        ax.plot(steps, [100 * v for v in values], color="tab:blue")
        ax.axvline(self.start.value, color="grey", ls=":", lw=1)
        ax.axvline(end, color="grey", ls=":", lw=1)
        ax.set_xlabel("training step")
        ax.set_ylabel("target sparsity (%)")
        ax.set_ylim(0, 100)
        ax.set_title("AGP schedule (Zhu & Gupta 2017)")
        self.plot.value = figure_png(fig)


def agp_schedule_widget(**start_values) -> AGPScheduleWidget:
    """Sliders for s_i, s_f, t0, n and Δt with the AGP schedule plotted."""
    return AGPScheduleWidget(**start_values)


__all__ = ["AGPScheduleWidget", "agp_curve", "agp_schedule_widget"]

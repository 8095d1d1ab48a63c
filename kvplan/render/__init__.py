"""Rendering: results to rich tables, charts, JSON, CSV, JUnit and plots. Every figure comes
from a result; the only arithmetic is unit conversion and the geometry of bars and charts (widths,
stacked heights, axis limits). Renderers import results (and units), never calculators or specs."""

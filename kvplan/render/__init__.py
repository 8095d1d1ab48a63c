"""Rendering: results to rich tables, charts, JSON, CSV, JUnit and plots. No arithmetic beyond
unit formatting; renderers import results (and units), never calculators or specs."""

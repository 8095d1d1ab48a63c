"""Frozen results of every calculator, one module per command (or family of commands).

Results import nothing from kvplan but units; calculators fill them, renderers read them."""

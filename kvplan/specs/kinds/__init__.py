"""Layer kinds of one architecture family each (a module per family, with its tests), beside the
shared kinds of :mod:`kvplan.specs.layers`, which registers every kind in one union."""

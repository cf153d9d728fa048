"""Shared test helpers: the autograd oracle, sample graphs, a headless browser, subprocesses."""

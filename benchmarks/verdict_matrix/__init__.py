"""The independent accuracy matrix of lncheck's verdicts (issue 11).

Random inputs (``cases``), correct kernels that differ only in rounding (``correct``, over the
reductions of ``algorithms``), bugs (``bugs``), an extended-precision exact output (``exact``),
lncheck's verdict through its public API (``judge``), the loop (``run``), the counts
(``tally``) and re-creatable folders of single rows (``dump``). The entry point is
``benchmarks/verdict_matrix.py``.
"""

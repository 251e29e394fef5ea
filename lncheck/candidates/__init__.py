"""Candidates the user brings: results given as files, programs and Python callables.

Everything under test is enumerated in one place, ``lncheck.pipeline.candidates``; this package
holds the machinery it uses for the user's candidates:

* ``specs``: the values of ``--expected``, ``--candidate-cmd`` and ``--candidate`` as the option
  table parses them (pure Python, so that ``lncheck --help`` stays light);
* ``bundles``: arrays named after quantities, checked against the layer and laid out as the
  reference lays them out (files, a program's output, a callable's return value);
* ``command``: a program run once per case, without a shell, with a timeout;
* ``callable``: a Python function found by ``module.path:function``; the backend calls it
  (``lncheck.backends.torch.callables``);
* ``repeat``: runs of one candidate compared bitwise with its first run.

A candidate that cannot produce a result (a program that crashes, hangs or writes nothing, a
callable that raises or changes its input) is a failed check with a note, never a crash; so is
one quantity it cannot give while it gives the others (``NotProduced``).
"""

from __future__ import annotations

from dataclasses import dataclass

# The quantities a candidate may give, named as the reference names them. ``output`` is the
# norm's output, ``activation`` the output after ``--activation``; statistics are one value per
# group; running statistics are the values after the update; gradients need ``--grad``.
QUANTITIES: tuple[str, ...] = (
    "output",
    "activation",
    "mean",
    "rstd",
    "var",
    "running_mean",
    "running_var",
    "grad_input",
    "grad_weight",
    "grad_bias",
)
# An input file may carry the quantities of the candidate ``expected`` under these names.
EXPECTED_PREFIX = "expected_"


class CandidateFailed(Exception):
    """A candidate produced no usable result; the message says why (it becomes a check's note).

    Not an ``LncheckError``: it is a verdict on the candidate, not an invalid input.
    """


@dataclass(frozen=True)
class NotProduced:
    """A quantity a candidate gives no value for, and why: what a backend's ``call`` returns in
    its place (it becomes that check's note, while the candidate's other quantities are checked).

    A zero-filled stand-in would be compared as if the candidate had computed zeros, and fail
    as a mismatch that says nothing of the cause.
    """

    reason: str

"""Reports on runs: tables, figures and the markdown summary (:func:`rlcli.report.runs.report`).

``rlcli.report(...)`` is the library call, and ``rlcli.report`` is also this package: once the package is
imported, Python binds the name to it, so the package itself is made callable (a module subclass with
``__call__``) and forwards to :func:`rlcli.report.runs.report`. Either spelling works at any time.
"""

import sys
import types


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from rlcli.report.runs import report

        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

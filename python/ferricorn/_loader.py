"""Turns an APP_MODULE string into the WSGI callable, as gunicorn's ``import_app`` does.

Accepted forms: ``pkg.module`` (attribute ``application``), ``pkg.module:name`` and
``pkg.module:factory(literal, args, key=literal)``. Arguments are evaluated with
``ast.literal_eval`` only, never ``eval``.
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
import sysconfig
import traceback


class AppLoadError(Exception):
    """The app could not be loaded; the message is meant for the operator, whole.

    ``kind`` says which of the server's ``LoadError`` variants (src/load.rs) this is:
    ``spec`` (APP_MODULE malformed), ``not_found`` (no such module or name), ``raised``
    (the app's code raised; the message is its traceback) or ``not_callable``.
    """

    def __init__(self, message: str, kind: str = "spec"):
        super().__init__(message)
        self.kind = kind


def load(spec: str):
    module_name, sep, expr = spec.partition(":")
    if not module_name:
        raise AppLoadError(f"APP_MODULE {spec!r} names no module")
    expr = expr.strip() if sep else "application"
    name, args, kwargs = _parse_expr(spec, expr)
    module = _import(module_name)
    try:
        obj = getattr(module, name)
    except AttributeError:
        raise AppLoadError(
            f"module {module_name!r} has no attribute {name!r}", "not_found"
        ) from None
    if args is not None:
        try:
            obj = obj(*args, **kwargs)
        except Exception as exc:
            raise AppLoadError(_app_traceback(exc), "raised") from None
    if obj is None:
        raise AppLoadError(
            f"{spec!r} is None; a factory must return the WSGI application", "not_callable"
        )
    if not callable(obj):
        raise AppLoadError(f"{spec!r} is not callable (it is {type(obj).__name__})", "not_callable")
    return obj


def _parse_expr(spec: str, expr: str):
    """``name`` or ``name(literals)`` into (name, args or None, kwargs)."""
    try:
        node = ast.parse(expr, mode="eval").body
    except SyntaxError:
        raise AppLoadError(f"failed to parse {expr!r} in {spec!r} as a name or call") from None
    if isinstance(node, ast.Name):
        return node.id, None, {}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        try:
            args = [ast.literal_eval(arg) for arg in node.args]
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
        except ValueError:
            raise AppLoadError(
                f"the arguments in {expr!r} must be literals (strings, numbers, ...)"
            ) from None
        if len(kwargs) != len(node.keywords):
            raise AppLoadError(f"**kwargs are not supported in {expr!r}")
        return node.func.id, args, kwargs
    raise AppLoadError(f"{expr!r} in {spec!r} must be a name or a call with literal arguments")


def _import(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # The module itself (or a parent package) is missing: one line is enough.
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppLoadError(f"no module named {exc.name!r}", "not_found") from None
        raise AppLoadError(_app_traceback(exc), "raised") from None
    except BaseException as exc:  # SyntaxError, SystemExit, ... from the app's own code
        raise AppLoadError(_app_traceback(exc), "raised") from None


def _app_traceback(exc: BaseException) -> str:
    """The traceback of the app's code, with this module's and importlib's frames cut."""
    frames = traceback.extract_tb(exc.__traceback__)
    kept = [f for f in frames if f.filename != __file__ and "importlib" not in f.filename]
    lines = ["Traceback (most recent call last):\n"] if kept else []
    lines += traceback.format_list(kept)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip("\n")


def prepend_paths(paths: list[str]) -> None:
    """--pythonpath and the working directory go first on sys.path, as in gunicorn."""
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)


def module_files() -> list[str]:
    """Source files of the loaded modules outside the standard library, for ``--reload``."""
    stdlib = tuple(os.path.join(sysconfig.get_paths()[key], "") for key in ("stdlib", "platstdlib"))
    files = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path.endswith(".py"):
            path = os.path.abspath(path)
            if not path.startswith(stdlib):
                files.append(path)
    return files

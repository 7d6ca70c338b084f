"""The import rules of docs/architecture.md, checked by reading every module's imports.

Lower rooms never import higher ones: the pure modules import no Django, the domain (models,
services, selectors) and the engine import none of the faces (REST API, pages, admin), the
accounts app does not import the usage app that builds on it, and no app's admin imports
another app's admin.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("accounts", "usage", "portal", "webhooks")

PURE = {"usage.pricing", "usage.months", "accounts.keys"}
FACES = (
    "usage.api",
    "usage.pages",
    "usage.admin",
    "accounts.admin",
    "accounts.views",
    "portal.api",
    "webhooks.views",
    "webhooks.admin",
)
DOMAIN = (
    "usage.models",
    "usage.services",
    "usage.selectors",
    "usage.importing",
    "usage.ingesting",
    "usage.plans",
    "usage.job_query",
    "usage.job_selectors",
    "usage.engine",
    "webhooks.models",
    "webhooks.services",
    "webhooks.selectors",
    "webhooks.detection",
    "webhooks.delivery",
    "webhooks.notifications",
    "webhooks.signing",
    "webhooks.ssrf",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _modules() -> dict[str, set[str]]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                found[_module_name(path)] = _imports(path)
    return found


MODULES = _modules()


def _within(name: str, prefixes) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _violations(importers, forbidden) -> list[str]:
    return sorted(
        f"{module} imports {name}"
        for module, names in MODULES.items()
        if _within(module, importers)
        for name in names
        if _within(name, forbidden)
    )


def test_the_modules_were_found():
    assert {"usage.engine.refresh", "usage.api.views", "portal.api.views", "accounts.admin.keys"} <= set(
        MODULES
    )


@pytest.mark.parametrize("module", sorted(PURE))
def test_pure_modules_import_no_django(module):
    assert not [name for name in MODULES[module] if _within(name, ("django", "rest_framework", *PACKAGES))]


def test_the_domain_and_the_engine_import_no_face():
    assert _violations(DOMAIN, FACES) == []


def test_the_accounts_app_does_not_import_the_usage_app():
    assert _violations(("accounts",), ("usage",)) == []


def test_the_engine_and_accounts_do_not_import_the_webhooks_app():
    """Webhooks build on both: they register into ``usage.engine.hooks`` and ``portal.events``."""
    assert _violations(("usage", "accounts", "portal"), ("webhooks",)) == []


@pytest.mark.parametrize("module", ["webhooks.signing", "webhooks.ssrf"])
def test_the_webhook_crypto_and_guard_import_no_orm(module):
    assert not [
        name for name in MODULES[module] if _within(name, ("django", "rest_framework", "accounts", "usage"))
    ]


def test_no_admin_imports_another_apps_admin():
    assert _violations(("usage.admin",), ("accounts.admin",)) == []
    assert _violations(("accounts.admin",), ("usage.admin",)) == []


def test_the_shared_api_plumbing_imports_no_endpoint():
    assert _violations(("portal.api",), ("usage",)) == []


def test_a_violation_would_be_seen(tmp_path):
    """The checker itself: an engine module importing a page is reported."""
    MODULES["usage.engine.example"] = {"usage.pages.views"}
    try:
        assert _violations(DOMAIN, FACES) == ["usage.engine.example imports usage.pages.views"]
    finally:
        del MODULES["usage.engine.example"]

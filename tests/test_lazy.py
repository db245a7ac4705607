"""Lazy packages: a submodule or exported name is imported on first access, never before."""

import sys
import textwrap

import pytest

from oneshot_lab.util.lazy import attach, submodules


@pytest.fixture()
def package(tmp_path, monkeypatch):
    """A package `lazypkg` with submodules `alpha` (exports VALUE), `beta` and a private `_hidden`, made lazy by attach."""
    root = tmp_path / "lazypkg"
    root.mkdir()
    (root / "__init__.py").write_text(textwrap.dedent("""
        from oneshot_lab.util.lazy import attach
        __getattr__, __dir__, __all__ = attach(__name__, __path__, {"VALUE": "alpha"}, globals())
    """))
    (root / "alpha.py").write_text("VALUE = 42\n")
    (root / "beta.py").write_text("NAME = 'beta'\n")
    (root / "_hidden.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield __import__("lazypkg")
    for name in [m for m in sys.modules if m == "lazypkg" or m.startswith("lazypkg.")]:
        del sys.modules[name]


def test_nothing_is_imported_before_it_is_used(package):
    assert "lazypkg.alpha" not in sys.modules and "lazypkg.beta" not in sys.modules
    assert package.beta.NAME == "beta" and "lazypkg.beta" in sys.modules and "lazypkg.alpha" not in sys.modules


def test_an_exported_name_comes_from_its_module_and_is_kept(package):
    assert package.VALUE == 42 and "lazypkg.alpha" in sys.modules
    assert vars(package)["VALUE"] == 42  # later look-ups no longer go through __getattr__


def test_names_are_listed_before_import_and_private_modules_are_not(package):
    assert {"alpha", "beta", "VALUE"} <= set(dir(package)) and "_hidden" not in dir(package)
    assert sorted(package.__all__) == ["VALUE", "alpha", "beta"]
    assert submodules(package.__path__) == ("alpha", "beta")


def test_an_unknown_name_is_an_attribute_error_naming_the_package(package):
    with pytest.raises(AttributeError, match="module 'lazypkg' has no attribute 'gamma'"):
        package.gamma
    with pytest.raises(AttributeError):
        attach("lazypkg", package.__path__)[0]("VALUE")  # not exported by this attach

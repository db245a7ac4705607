"""Math on the documentation site as MathML, drawn by the browser itself: no script, nothing from a CDN.

A Sphinx math renderer (`html_math_renderer = "mathml"` in docs/conf.py; MathJax would come from the network); the
TeX is converted by docutils."""

from __future__ import annotations

import html
import re

from docutils import nodes

NAME = "mathml"  # the value of `html_math_renderer` in docs/conf.py
# TeX takes one token per unbraced argument (\tfrac12 is \tfrac{1}{2}); docutils' converter reads the digits as one.
SHORT_FRACTION = re.compile(r"\\([dt]?frac)\s*(\d)\s*(\d)")


def mathml(tex: str, block: bool = False) -> str:
    """The MathML of TeX `tex`, or, where docutils cannot convert it, the TeX itself as code (with a warning)."""
    from docutils.utils.math import latex2mathml
    from sphinx.util import logging

    try:
        return latex2mathml.tex2mathml(SHORT_FRACTION.sub(r"\\\1{\2}{\3}", tex), as_block=block)
    except Exception as err:  # docutils' converter raises SyntaxError and others on TeX it does not know
        logging.getLogger(__name__).warning(f"math shown as TeX, not converted to MathML ({err}): {tex}")
        return f'<code class="math">{html.escape(tex)}</code>'


def visit_inline(translator, node: nodes.math) -> None:
    """Write inline math as MathML."""
    translator.body.append(f'<span class="math">{mathml(node.astext())}</span>')
    raise nodes.SkipNode


def visit_block(translator, node: nodes.math_block) -> None:
    """Write display math as a MathML block, with its equation number if it has one."""
    number = node.get("number")
    label = f'<span class="eqno">({number})</span>' if number else ""
    translator.body.append(f'<div class="math">{label}{mathml(node.astext(), block=True)}</div>')
    raise nodes.SkipNode


def setup(app) -> dict:
    """Register the `mathml` math renderer with Sphinx."""
    app.add_html_math_renderer(NAME, inline_renderers=(visit_inline, None), block_renderers=(visit_block, None))
    return {"parallel_read_safe": True, "parallel_write_safe": True}

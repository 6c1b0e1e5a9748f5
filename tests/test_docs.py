"""The instructor's guide quotes the checks' hints; the quotes must stay true to the code."""

import re

from conftest import ROOT

GUIDE = (ROOT / "docs" / "instructor.md").read_text()
CHECKS = "\n".join(p.read_text() for p in sorted((ROOT / "fcconv" / "course" / "checks").glob("*.py")))


def test_every_quoted_hint_is_in_fcconv_checks():
    section = GUIDE.split("## The mistakes learners make most", 1)[1].split("\n## ", 1)[0]
    quotes = re.findall(r'"([^"]{12,})"', section)
    assert len(quotes) >= 10
    flat = re.sub(r'"\s*\\?\n\s*f?"', "", CHECKS)
    missing = [q for q in quotes if q not in flat]
    assert not missing, missing


def test_guide_has_both_lecture_plans_and_names_every_explorer_it_demos():
    assert "## A 50-minute lecture" in GUIDE and "## A 90-minute lecture" in GUIDE
    for name in ("FC vs conv explorer", "shapes explorer", "photo explorer", "efficiency explorer",
                 "digit detector explorer", "weight-row explorer"):
        assert name in GUIDE
    for topic in ("repo2docker", "Zero to JupyterHub", "nbgrader", "environment.yml"):
        assert topic in GUIDE

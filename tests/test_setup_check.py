"""The setup notebook's checks and its widget, without a browser."""

import pytest

from fcconv.course import setup_check
from fcconv.widgets.base import shown_png, shown_text
from fcconv.widgets.setup import SetupExplorer, draw, smoothed


def test_all_checks_pass_in_the_course_environment():
    checks = setup_check.run_checks()
    assert [c.name for c in checks] == ["python", "torch", "numpy", "matplotlib", "ipywidgets",
                                        "jupyterlab widget manager"]
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]


def test_failed_checks_say_what_to_do():
    old = setup_check.check_python((3, 8))
    assert not old.ok and "3.10" in old.advice
    missing = setup_check.check_package("no_such_package_fcconv", "1.0")
    assert not missing.ok and "make lab" in missing.advice
    too_old = setup_check.check_package("numpy", "999.0")
    assert not too_old.ok and "older than the 999.0" in too_old.advice
    html = setup_check.report_html([old, missing])
    assert "Some checks failed" in html and "3.10" in html


def test_version_parsing_handles_local_builds():
    assert setup_check.version_tuple("2.13.0+cpu") == (2, 13, 0)
    assert setup_check.version_tuple("1.26.0rc1") == (1, 26, 0)


def test_slider_redraws_the_figure():
    ex = SetupExplorer()
    first = shown_png(ex.out)
    assert first is not None and first.startswith(b"\x89PNG")
    ex.slider.value = 5
    assert shown_png(ex.out) != first
    ex.slider.value = 0
    assert shown_png(ex.out) == first  # the drawing is a function of the slider alone


def test_impossible_position_shows_a_message_not_a_traceback():
    with pytest.raises(ValueError, match="between 0 and"):
        draw(len(smoothed()))
    ex = SetupExplorer()
    ex.slider.max = 100
    ex.slider.value = 50
    assert "between 0 and" in shown_text(ex.out)

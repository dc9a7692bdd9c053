"""Fixtures of the widget tests: Chromium (tests/widget/browser.py)."""

from tests.widget.browser import chromium  # noqa: F401

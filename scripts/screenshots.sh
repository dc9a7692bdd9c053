#!/usr/bin/env bash
# Regenerates the dashboard and widget screenshots under docs/screenshots/ by running the browser
# tests that take them (real headless Chromium; each test saves its pages when
# CHATWELL_SCREENSHOTS_DIR is set). Look at the PNGs before committing them.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
# The phone test runs first: the desktop tests after it take the shared set-up page's picture.
CHATWELL_SCREENSHOTS_DIR="$PWD/docs/screenshots" "$PYTHON" -m pytest -n 0 -q -p no:randomly \
  tests/dashboard/test_phone_layout_browser.py \
  tests/dashboard/test_dashboard_browser.py \
  tests/dashboard/test_agent_workspace_browser.py \
  tests/dashboard/test_forgiving_settings_browser.py \
  tests/dashboard/test_improve_answers_browser.py \
  tests/dashboard/test_api_docs_browser.py \
  tests/dashboard/test_crawl_browser.py \
  tests/dashboard/test_playground_browser.py \
  tests/widget/test_widget_ux_browser.py

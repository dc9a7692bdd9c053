"""Transcripts show answers' Markdown rendered safely (issue 23 item 11): formatting and http(s)
links render; raw HTML, javascript: links and images do not."""

from __future__ import annotations

from chatwell.api.dashboard.web import render_markdown


def test_markdown_is_rendered_safely() -> None:
    html = str(
        render_markdown(
            "**Open** 9-5\n\n- Mon\n- Tue\n\n[site](https://shop.example) "
            "<script>alert(1)</script> [bad](javascript:alert(1)) ![x](https://t.example/p.png)"
        )
    )
    assert "<strong>Open</strong>" in html and "<li>Mon</li>" in html
    assert (
        '<a rel="noopener noreferrer nofollow" target="_blank" href="https://shop.example">site</a>'
        in html
    )
    assert "<script" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html and "<img" not in html

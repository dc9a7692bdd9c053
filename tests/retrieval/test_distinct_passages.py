"""A search's passages: near-duplicate pages collapse to the better one; one page can not take
every place while other pages have candidates."""

from __future__ import annotations

import uuid

from chatwell.retrieval.service import Passage, distinct_passages

FAQ, FAQ_COPY, MANUAL, NEWS = (uuid.uuid4() for _ in range(4))


def passage(n: int, source: uuid.UUID, text: str, score: float) -> Passage:
    return Passage(
        chunk_id=n,
        source_id=source,
        source_type="file",
        title=str(source)[:4],
        url=None,
        page=None,
        heading="",
        text=text,
        score=score,
        similarity=score,
    )


def test_duplicates_collapse_and_one_page_leaves_room_for_others() -> None:
    leak = (
        "Use --leak-check=full to see the details of every leaked memory block in the leak summary."
    )
    passages = [
        passage(1, MANUAL, "Memcheck option one: " + leak, 0.95),
        passage(2, FAQ, "Question 5.2. " + leak + " It is slower.", 0.9),
        passage(
            3, FAQ_COPY, "Question 5.2. " + leak + " It is slower.", 0.89
        ),  # the same FAQ twice
        passage(
            4,
            MANUAL,
            "Memcheck option two: --track-origins=yes shows where values came from.",
            0.88,
        ),
        passage(5, MANUAL, "Memcheck option three: --show-leak-kinds=all lists every kind.", 0.87),
        passage(
            6, MANUAL, "Memcheck option four: --freelist-vol sets the freed memory kept.", 0.86
        ),
        passage(7, NEWS, "Release 3.20 adds leak checking for large programs.", 0.5),
    ]
    chosen = distinct_passages(passages, 5, max_per_source=3)
    assert [p.chunk_id for p in chosen] == [1, 2, 4, 5, 7]
    # With nothing else to show, the page's other passages fill the places.
    assert [
        p.chunk_id for p in distinct_passages(passages[:1] + passages[3:6], 4, max_per_source=3)
    ] == [1, 4, 5, 6]

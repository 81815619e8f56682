"""Who published a document: matching a document's own addresses to the known sources."""

from __future__ import annotations

from pipeline.models import Source, SourceHint
from pipeline.sources import resolve_source

KNOWN = [
    Source("lab", "Meridian Labs", tier=1, match=("meridianlabs.example",)),
    Source("letter", "Policy Memo", tier=2, match=("memo@policymemo.example",)),
]


def test_a_link_blog_stays_its_own_source_whatever_it_links_to() -> None:
    hint = SourceHint(name="Link Notes", site_url="https://linknotes.example/")
    src = resolve_source(hint, KNOWN, item_urls=["https://meridianlabs.example/blog/post"])
    assert src.id == "linknotes-example" and src.name == "Link Notes" and src.tier == 3


def test_a_feed_is_known_by_its_site_and_a_sender_by_its_address() -> None:
    assert resolve_source(SourceHint(site_url="https://www.meridianlabs.example/"), KNOWN).id == "lab"
    assert resolve_source(SourceHint(name="Memo", email="memo@policymemo.example"), KNOWN).id == "letter"


def test_a_document_that_says_nothing_of_itself_goes_by_what_it_links_to() -> None:
    assert resolve_source(SourceHint(), KNOWN, item_urls=["https://meridianlabs.example/blog/x"]).id == "lab"

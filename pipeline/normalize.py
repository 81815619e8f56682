"""Normalize: parsed entries in, clean items out.

Titles are cleaned, HTML becomes Markdown (markdownify), times are UTC, URLs
are canonical (no tracking parameters, fragment or default port), and every
item gets a content hash of its normalized text.

Before HTML is converted, what a reader never sees is dropped (scripts, styles,
hidden preheaders, tracking pixels, Outlook conditionals), and tables used for
layout, as in nearly every e-mail newsletter, are unwrapped into plain blocks,
so only tables that hold data become Markdown tables.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import re
from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from bs4 import BeautifulSoup, Declaration, NavigableString, PageElement, ProcessingInstruction, Tag
from markdownify import MarkdownConverter

from .boilerplate import clean_markdown
from .links import unwrap
from .roundup import split_stories
from .models import Entry, Item
from .readers import NON_CONTENT_TAGS
from .store import item_id_for

TRACKING_PARAMS = {
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid", "twclid", "ttclid",
    "mc_cid", "mc_eid", "_hsenc", "_hsmi", "__hssc", "__hstc", "__hsfp", "hsctatracking",
    "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_conv", "vero_id", "ck_subscriber_id",
    "ref", "ref_src", "ref_url", "referrer", "src", "cmpid", "s_cid", "spm", "at_medium", "at_campaign",
    "sr_share", "ncid", "ocid", "wt.mc_id", "trk", "trkcampaign", "sc_campaign", "sc_channel",
}
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "piwik_", "matomo_", "hsa_", "__s", "_bta_")
DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str | None, base: str | None = None) -> str | None:
    """The URL without click tracker, tracking parameters, fragment or default port; None if not http(s)."""
    if not url:
        return None
    url = html_lib.unescape(url.strip())
    if base:
        url = urljoin(base, url)
    url = unwrap(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower().rstrip(".")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in TRACKING_PARAMS and not k.lower().startswith(TRACKING_PREFIXES)
    ]
    path = parts.path or "/"
    return urlunsplit((scheme, netloc, path, urlencode(query, doseq=True), ""))


def clean_text_line(value: str | None) -> str:
    """One line of plain text: entities decoded, control characters and extra spaces removed."""
    if not value:
        return ""
    text = html_lib.unescape(value)
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]", " ", text)
    return " ".join(text.split())


class _Converter(MarkdownConverter):
    """markdownify with ATX headings and '-' bullets."""

    def __init__(self) -> None:
        super().__init__(heading_style="ATX", bullets="-", escape_underscores=False, escape_asterisks=False)


_converter = _Converter()


_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
_TINY = re.compile(r"^\s*[01](?:\.0*)?\s*(?:px)?\s*$", re.I)
_TINY_STYLE = re.compile(r"(?:^|[;\s])(?:width|height)\s*:\s*[01](?:px)?\s*(?:;|$)", re.I)
_TABLE_PARTS = ("table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption")


def _is_tracking_pixel(img: Tag) -> bool:
    width, height = str(img.get("width") or ""), str(img.get("height") or "")
    return (
        not img.get("src")
        or bool(_TINY.match(width))
        or bool(_TINY.match(height))
        or bool(_TINY_STYLE.search(str(img.get("style") or "")))
    )


def _is_layout_table(table: Tag) -> bool:
    """A table used to lay out a page or an e-mail rather than to hold data.

    Nested tables, tables marked role="presentation" and tables whose rows
    have a single cell are layout; Markdown table syntax would only mangle them.
    """
    if str(table.get("role") or "").lower() in ("presentation", "none"):
        return True
    if table.find("table") is not None or table.find_parent("table") is not None:
        return True
    rows = table.find_all("tr")
    return all(len(row.find_all(("td", "th"), recursive=False)) <= 1 for row in rows)


def _gone(element: PageElement) -> bool:
    """Whether an element was decomposed (with an ancestor, say).

    bs4's ``decomposed`` property looks the flag up with getattr, and on a live
    tag the miss falls through to ``Tag.__getattr__``, a search of its subtree.
    """
    return "_decomposed" in element.__dict__


def _unwrap_layout_tables(tables: list[Tag]) -> None:
    for table in tables:
        if _gone(table) or table.name != "table" or not _is_layout_table(table):
            continue  # removed, or renamed already as part of an outer layout table
        for part in [table, *table.find_all(_TABLE_PARTS)]:
            part.name = "div"


_DROPPED_TAGS = frozenset((*NON_CONTENT_TAGS, "head", "title"))


class _Tag(Tag):
    """A bs4 Tag whose ``find_parent(name)`` walks up the tree directly.

    markdownify asks every tag whether it sits inside a <pre>; bs4's general
    matching machinery made that a tenth of the time spent converting HTML.
    """

    def find_parent(self, name=None, attrs=None, **kwargs):  # type: ignore[no-untyped-def,override]
        if not isinstance(name, str) or attrs or kwargs:
            return super().find_parent(name, attrs or {}, **kwargs)
        parent = self.parent
        while parent is not None:
            if parent.name == name:
                return parent
            parent = parent.parent
        return None


class _Soup(BeautifulSoup):
    """``BeautifulSoup(html, "html.parser")`` that builds the same tree with less work, and notes
    as it goes what html_to_markdown changes afterwards (so no second pass over the tree).

    bs4's general tree building (namespaces, filters, string containers) was half the time
    spent converting a feed entry. Plain tags and strings take the short path here, which
    sets exactly the fields bs4's own path sets; anything unusual (<script>, <style>, <pre>,
    <meta>, declarations, ...) goes through bs4 itself.
    """

    # Tags bs4 treats specially while building: their own string classes, kept whitespace,
    # charset substitution.
    _SPECIAL = frozenset(("meta", "script", "style", "template", "rt", "rp", "pre", "textarea"))

    def reset(self) -> None:
        super().reset()
        self.dropped: list[PageElement] = []
        self.tables: list[Tag] = []
        self.anchors: list[Tag] = []
        self._plain: dict[str, dict[str, object]] = {}

    def _plain_fields(self, name: str) -> dict[str, object] | None:
        """The fields Tag.__init__ gives every tag of this name (None: use bs4's own path)."""
        fields = self._plain.get(name)
        if fields is None:
            builder = self.builder
            if name in self._SPECIAL or name in builder.string_containers or name in builder.preserve_whitespace_tags:
                return None
            fields = {
                "parser_class": self.__class__,
                "name": name,
                "namespace": None,
                "prefix": None,
                "attribute_value_list_class": builder.attribute_value_list_class,
                "known_xml": builder.is_xml,
                "hidden": False,
                "can_be_empty_element": builder.can_be_empty_element(name),
                "cdata_list_attributes": builder.cdata_list_attributes,
                "preserve_whitespace_tags": builder.preserve_whitespace_tags,
                "interesting_string_types": Tag.MAIN_CONTENT_STRING_TYPES,
            }
            self._plain[name] = fields
        return fields

    def handle_starttag(self, name, namespace, nsprefix, attrs, sourceline=None, sourcepos=None,  # type: ignore[no-untyped-def,override]
                        namespaces=None):
        fields = None if (namespace or nsprefix or namespaces or self.parse_only) else self._plain_fields(name)
        if fields is None:
            tag = super().handle_starttag(name, namespace, nsprefix, attrs, sourceline=sourceline,
                                          sourcepos=sourcepos, namespaces=namespaces)
        else:
            self.endData()
            parent = self.currentTag
            previous = self._most_recent_element
            tag = _Tag.__new__(_Tag)
            tag.__dict__.update(fields)
            tag._namespaces = {}
            tag.sourceline = sourceline
            tag.sourcepos = sourcepos
            tag.attrs = (self.builder._replace_cdata_list_attribute_values(name, attrs) if attrs is not None
                         else self.builder.attribute_dict_class())
            tag.contents = []
            tag.parent = parent
            tag.previous_element = previous
            if previous is not None:
                previous.next_element = tag
            tag.next_element = None
            tag.next_sibling = None
            siblings = parent.contents
            if siblings:
                tag.previous_sibling = siblings[-1]
                siblings[-1].next_sibling = tag
            else:
                tag.previous_sibling = None
            self._most_recent_element = tag
            siblings.append(tag)
            self.tagStack.append(tag)
            self.currentTag = tag
            self.open_tag_counter[name] += 1
        if tag is not None:
            if (
                name in _DROPPED_TAGS
                # hidden e-mail preheaders and the like: nothing a reader ever sees
                or _HIDDEN_STYLE.search(str(tag.get("style") or ""))
                # tracking pixels and spacer images carry nothing a reader needs
                or (name == "img" and _is_tracking_pixel(tag))
            ):
                self.dropped.append(tag)
            elif name == "table":
                self.tables.append(tag)
            elif name == "a":
                self.anchors.append(tag)
        return tag

    def endData(self, containerClass=None):  # type: ignore[no-untyped-def,override]
        data = self.current_data
        if not data:
            return
        if containerClass is not None or self.string_container_stack or self.parse_only:
            super().endData(containerClass)
            if containerClass in (Declaration, ProcessingInstruction):
                # <![if !mso]> in e-mails, <?php ?> in pages: markup, not text
                self.dropped.append(self._most_recent_element)
            return
        text = data[0] if len(data) == 1 else "".join(data)
        self.current_data = []
        if not self.preserve_whitespace_tag_stack and not text.strip(self.ASCII_SPACES):
            text = "\n" if "\n" in text else " "
        string = NavigableString(text)
        parent = self.currentTag
        previous = self._most_recent_element
        string.parent = parent
        string.previous_element = previous
        if previous is not None:
            previous.next_element = string
        siblings = parent.contents
        if siblings:
            string.previous_sibling = siblings[-1]
            siblings[-1].next_sibling = string
        self._most_recent_element = string
        siblings.append(string)


def html_to_markdown(html: str) -> str:
    if "<" not in html:
        # No markup at all: what markdownify does to text (entities decoded, a run of
        # whitespace holding a line break becomes one, other runs one space), without a tree.
        text = re.sub(r"[\t \r\n]*[\r\n][\t \r\n]*", "\n", html_lib.unescape(html))
        return tidy_markdown(re.sub(r"[\t ]+", " ", text))
    soup = _Soup(html, "html.parser", element_classes={Tag: _Tag})
    for element in soup.dropped:
        if _gone(element):
            continue  # inside something dropped already
        if isinstance(element, Tag):
            element.decompose()
        elif element.parent is not None:
            element.extract()
    _unwrap_layout_tables(soup.tables)
    for a in soup.anchors:
        if _gone(a):
            continue  # inside something dropped above
        href = str(a.get("href") or "").strip()
        if href.startswith(("http://", "https://")):
            a["href"] = canonical_url(href) or href  # one link per story, whichever tracker it came through
    return tidy_markdown(_converter.convert_soup(soup))


# Characters that show nothing; e-mail preheaders pad with them ("&shy;&zwnj;&nbsp;").
_INVISIBLE_LINE = re.compile(r"^[\s\u00ad\u034f\u200b-\u200d\u2060\ufeff]*$")


def tidy_markdown(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ").replace("\xad", "")
    lines = ["" if _INVISIBLE_LINE.match(line) else line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def to_markdown(content: str, content_type: str) -> str:
    if content_type == "html":
        return html_to_markdown(content)
    return tidy_markdown(content)


_LINK_TARGET = re.compile(r"\]\((?:[^()\s]|\([^()\s]*\))*(?:\s+\"[^\"]*\")?\)")


def content_hash(title: str, body: str) -> str:
    """Hash of the normalized text, so the same content found twice is recognized.

    Link targets are left out: the same issue of a newsletter sent to two
    addresses differs only in the personal tokens of its links.
    """
    text = _LINK_TARGET.sub("]", body)
    norm = " ".join(title.lower().split()) + "\n" + " ".join(text.lower().split())
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()[:32]


def _title_from_body(body: str) -> str:
    plain = re.sub(r"[#*_`>\[\]]|\(http[^)]*\)", "", body)
    first = re.split(r"(?<=[.!?])\s|\n", plain.strip(), maxsplit=1)[0]
    return first[:117] + "..." if len(first) > 120 else first


def _utc(when: datetime | None) -> datetime | None:
    """The same instant in UTC; a time without a zone is taken to be UTC already."""
    if when is None:
        return None
    if when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


class EmptyEntry(ValueError):
    """An entry with neither a title nor any text."""


def normalize_entry(entry: Entry, *, source_id: str, raw_id: str | None, base_url: str | None) -> Item:
    body = clean_markdown(to_markdown(entry.content or "", entry.content_type))
    title = clean_text_line(entry.title) or clean_text_line(_title_from_body(body))
    if not title and not body:
        raise EmptyEntry("entry has neither a title nor any text")
    url = canonical_url(entry.url, base_url)
    guid = (entry.guid or url or content_hash(title, body)).strip()
    return Item(
        id=item_id_for(source_id, guid),
        source_id=source_id,
        guid=guid,
        url=url,
        title=title or "(untitled)",
        author=clean_text_line(entry.author) or None,
        published=_utc(entry.published),
        body=body,
        content_hash=content_hash(title, body),
        raw_id=raw_id,
        categories=tuple(dict.fromkeys(clean_text_line(c) for c in entry.categories if clean_text_line(c))),
    )


def _story_key(title: str) -> str:
    """What names a story within its issue: its title, which stays the same when the issue is
    mailed to another address with other tracking tokens in its links, or edited."""
    return "title:" + " ".join(re.sub(r"[^\w\s]", " ", title.lower()).split())


def children_of(parent: Item, *, mode: str = "auto") -> tuple[Item, ...]:
    """The stories of a roundup as items of their own, pointing at it; () when it is one story.

    A story's entry id is the roundup's plus the story's title, so it keeps its
    id when the issue is read again, even if stories move or links change.
    """
    stories = split_stories(parent.body, mode=mode, title=parent.title)
    children: list[Item] = []
    seen: dict[str, int] = {}
    for story in stories:
        title = clean_text_line(story.title)
        if not title:
            continue
        url = canonical_url(story.url)
        key = _story_key(title)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            key += f"#{seen[key]}"
        guid = f"{parent.guid}#story:{key}"
        body = tidy_markdown(story.body)
        children.append(
            Item(
                id=item_id_for(parent.source_id, guid),
                source_id=parent.source_id,
                guid=guid,
                url=url,
                title=title,
                author=parent.author,
                published=parent.published,
                body=body,
                content_hash=content_hash(title, body),
                raw_id=parent.raw_id,
                categories=parent.categories,
                parent_id=parent.id,
            )
        )
    return tuple(children)

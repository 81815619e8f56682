"""Roundups: split a newsletter issue that covers several stories into one story each.

Works on the Markdown body every item has, so it serves e-mail, feed entries
and text files alike. It reads the shapes newsletters use:

- a heading per story (``## Title``), stories under section headings too;
- bold lead-in paragraphs (``**Chip rules tighten.** The Commerce ...``);
- stories between horizontal rules;
- numbered or bulleted lists whose items start with the story's link;
- in plain text, capitalised title lines and numbered titles, links on lines of their own.

A block becomes a story when it has a title and either a link of its own or
some text; sponsor slots, job boards, greetings and sign-offs are not stories.
In ``auto`` mode an issue is split only when it holds at least three stories
that each have their own link, and no one block carries most of the text
(an essay with section headings, or one story with a "related reading" list,
is a single story). ``always`` splits whenever there are two stories;
``never`` never does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

SPLIT_MODES = ("auto", "always", "never")

MIN_STORIES = 3
MIN_TITLE_WORDS = 4  # the median story title of a roundup reads as a headline
MAX_TITLE_CHARS = 200

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_RULE = re.compile(r"^\s{0,3}(?:[-*_]\s*){3,}$|^\s*[=~]{3,}\s*$")
_LIST_ITEM = re.compile(r"^\s{0,3}(?:[-*+\u2022]|\d{1,2}[.)])\s+(.*)$")
_NUMBERED = re.compile(r"^\s{0,3}\d{1,2}[.)]\s+")
_LINK = re.compile(r"(?<!!)\[((?:[^\[\]]|\[[^\]]*\])*)\]\((https?://[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_BARE_URL = re.compile(r"<?(https?://[^\s<>()]+[^\s<>().,;:!?'\"])>?")
_BOLD_LEAD = re.compile(r"^\s*(?:\*\*|__)(.+?)(?:\*\*|__)\s*(.*)$", re.S)
_LEADING_LINK = re.compile(r"^\s*(?:\*\*|__)?\s*\[((?:[^\[\]]|\[[^\]]*\])*)\]\((https?://[^)\s]+)[^)]*\)\s*(?:\*\*|__)?")

# Blocks that are not stories, by their opening words.
NOT_A_STORY = re.compile(
    r"^(?:sponsor(?:ed)?\b|presented by|brought to you by|(?:a )?(?:word|message) from (?:our|this week'?s) sponsor"
    r"|partner(?:ed)? (?:content|post)|advertis|promoted\b|together with\b|in partnership with"
    r"|(?:good )?(?:morning|afternoon|evening)\b|hello\b|hi\b|hey\b|welcome\b|dear\b|greetings"
    r"|thanks? (?:you )?for reading|that'?s (?:it|all)|see you|until next|(?:cheers|best|regards)\b|sign[- ]off"
    r"|in (?:this|today'?s) (?:issue|edition)|(?:today'?s|this week'?s) (?:issue|edition)|table of contents"
    r"|housekeeping|programming note|a note from|about (?:us|this newsletter)|share (?:this|the)"
    r"|(?:in case you missed it|icymi)\b|from the archive|(?:related|further|recommended) reading"
    r"|more from us|keep reading|elsewhere on the site|see also\b|enlarge\b|continue reading|read \d+ (?:more|remaining)"
    r"|(?:event|\u00e9v\u00e9nement|veranstaltung|webinar|livestream|meetup|save the date|register now|tickets?)\s*:"
    r"|source:|photo:|image:|credit:|\(?via\b)",
    re.I,
)
# Whole titles of blocks that are not stories: job boards, event calendars, notes.
NOT_A_STORY_TITLE = re.compile(
    r"^(?:jobs?|job board|jobs? of the (?:week|day)|(?:we'?re )?hiring|careers?|open roles|events?|event calendar"
    r"|upcoming events|contents|feedback|related|read more|footnotes?|references|notes?|sources|corrections?"
    r"|about|colophon|credits)\W*$",
    re.I,
)
# Titles that only name a section of the issue ("Quick hits", "Policy"), whose items are the stories.
SECTION_TITLE = re.compile(
    r"^(?:(?:the )?(?:top|main|big|other|more|quick|short|lightning) (?:stories|story|news|hits|takes|links|reads|bits)"
    r"|quick hits|in brief|briefly|briefs?|the rest|everything else|also (?:notable|worth reading)|worth (?:reading|a look)"
    r"|links?|news|headlines|research|papers|policy|security|compute|business|funding|deals|open (?:models|weights|source)"
    r"|(?:the )?reading list|(?:what )?(?:we'?re|i'?m) reading|recommended|worth your time|noted|bookmarks"
    r"|models|releases|launches|tools|regulation|in other news|elsewhere|around the web|what we'?re reading"
    r"|(?:this|the) week(?:'s)? (?:in|news)\b.*|(?:today|this week)(?: in \w+)?|what (?:happened|mattered)(?: this week)?"
    r"|(?:the )?(?:long|short) reads?)\W*$",
    re.I,
)
# Link targets that are never a story's own link.
NOT_A_STORY_LINK = re.compile(
    r"unsubscribe|/preferences|/subscribe\b|/share\b|mailto:|twitter\.com/intent|x\.com/intent"
    r"|facebook\.com/sharer|linkedin\.com/(?:share|sharing)|/account\b|/login\b",
    re.I,
)


@dataclass(frozen=True)
class Story:
    title: str
    body: str  # Markdown, without the title
    url: str | None


# --- blocks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    kind: str  # heading, rule, item, para
    text: str
    level: int = 0
    numbered: bool = False


def _blocks(markdown: str) -> list[_Block]:
    """The Markdown as headings, rules, list items and paragraphs, in order."""
    out: list[_Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            out.append(_Block("para", "\n".join(para).strip()))
            para.clear()

    item: list[str] | None = None
    item_numbered = False

    def flush_item() -> None:
        nonlocal item
        if item is not None:
            out.append(_Block("item", "\n".join(item).strip(), numbered=item_numbered))
            item = None

    for line in markdown.split("\n"):
        heading = _HEADING.match(line)
        if heading:
            flush(), flush_item()
            out.append(_Block("heading", _clean_title(heading.group(2)), level=len(heading.group(1))))
            continue
        if _RULE.match(line):
            flush(), flush_item()
            out.append(_Block("rule", ""))
            continue
        list_item = _LIST_ITEM.match(line)
        if list_item:
            flush(), flush_item()
            item, item_numbered = [list_item.group(1)], bool(_NUMBERED.match(line))
            continue
        if not line.strip():
            flush(), flush_item()
            continue
        if item is not None and line.startswith((" ", "\t")):
            item.append(line.strip())
            continue
        flush_item()
        para.append(line)
    flush(), flush_item()
    return _text_headings(out)


_CAPS_TITLE = re.compile(r"^[^a-z]*[A-Z][^a-z]*$")


def _text_headings(blocks: list[_Block]) -> list[_Block]:
    """Plain-text newsletters: a paragraph whose first line is in capitals (or '1. Title'
    followed by text) starts with a title line."""
    out: list[_Block] = []
    for b in blocks:
        if b.kind == "para" and "\n" in b.text:
            first, rest = b.text.split("\n", 1)
            words = first.split()
            if 2 <= len(words) <= 16 and _CAPS_TITLE.match(first) and sum(c.isalpha() for c in first) >= 6:
                out.append(_Block("heading", _clean_title(_uncap(first) if first.isupper() else first), level=7))
                out.append(_Block("para", rest.strip()))
                continue
        if b.kind == "item" and b.numbered and not _LEADING_LINK.match(b.text) and not _LINK.search(b.text):
            first, _, rest = b.text.partition("\n")
            if len(first) <= MAX_TITLE_CHARS and not _ends_sentence(first) and not _BARE_URL.search(first):
                out.append(_Block("heading", _clean_title(first), level=7))
                if rest.strip():
                    out.append(_Block("para", rest.strip()))
                continue
        out.append(b)
    return out


def _uncap(line: str) -> str:
    """A title written in capitals, in title case; abbreviations (U.S.) and figures ($20BN) stay."""
    return " ".join(
        w if ("." in w or any(c.isdigit() for c in w) or w.strip("'\u2019:,;") in _ACRONYMS) else w[:1] + w[1:].lower()
        for w in line.split()
    )


_ACRONYMS = frozenset("AI US UK EU UN ML LLM GPU CPU TPU API CEO CTO IPO FTC SEC DOJ NIST CISA NSA FBI NATO".split())


def _ends_sentence(text: str) -> bool:
    return bool(re.search(r"[.!?:;][\"'\u201d\u2019)]*$", text.strip()))


def _clean_title(text: str) -> str:
    text = _LINK.sub(r"\1", text)
    text = re.sub(r"(\*\*|__|\*|`)", "", text)
    text = re.sub(r"\\([\\`*_{}\[\]()#+\-.!<>])", r"\1", text)
    text = re.sub(r"^\s*\d{1,2}[.)]\s+", "", text)
    text = " ".join(text.split()).strip(" -\u2013\u2014:|")
    return re.sub(r"[.:]$", "", text).strip()


# --- candidates --------------------------------------------------------------------------


@dataclass
class _Draft:
    title: str
    parts: list[str]
    lead_url: str | None = None  # the link the title itself carries

    def body(self) -> str:
        return "\n\n".join(p for p in self.parts if p.strip()).strip()

    def story(self) -> Story:
        return Story(self.title, self.body(), self.lead_url or _primary_link(self.body()))


def _links(text: str) -> list[str]:
    text = _IMAGE.sub(" ", text)
    found = [(m.start(), m.group(2)) for m in _LINK.finditer(text)]
    stripped = _LINK.sub(" ", text)
    found += [(len(text) + m.start(), m.group(1)) for m in _BARE_URL.finditer(stripped)]
    return [u for _, u in sorted(found)]


def _primary_link(text: str) -> str | None:
    return next((u for u in _links(text) if not NOT_A_STORY_LINK.search(u)), None)


def _bold_lead(text: str) -> tuple[str, str, str | None] | None:
    """(title, rest, the title's own link) of a paragraph opening with a bold title."""
    lead = _LEADING_LINK.match(text)
    bold = text.lstrip().startswith(("**", "__")) or lead is not None and "**" in lead.group(1)[:3]
    if lead and (bold or _LINK.match(text.lstrip())):
        rest = text[lead.end():].lstrip(" .:\u2013\u2014-")
        title = _clean_title(lead.group(1))
        # a link alone on its line is a title only when it is set in bold: "Read more" is not
        long_enough = len(title.split()) >= MIN_TITLE_WORDS - 1  # "Full advisory", "Read more" are buttons
        if title and len(title) <= MAX_TITLE_CHARS and long_enough and (rest or bold):
            return title, rest, lead.group(2)
    m = _BOLD_LEAD.match(text)
    if not m:
        return None
    title, rest = _clean_title(m.group(1)), m.group(2).lstrip(" .:\u2013\u2014-")
    if not title or len(title) > MAX_TITLE_CHARS or (not rest and _ends_sentence(m.group(1))):
        return None  # a bold paragraph on its own is a title only when it does not read as a sentence
    if not rest and len(title.split()) < MIN_TITLE_WORDS - 1:
        return None  # a short bold label ("Severity", "Fixed in") heads a field, not a story
    if len(title.split()) <= 3 and m.group(1).rstrip().endswith(":") and not _LINK.search(m.group(1)):
        return None  # a speaker's name in an interview ("**Q:**", "**Ada Park:**"), not a story title
    return title, rest, None


def _link_item(text: str) -> tuple[str, str, str | None] | None:
    """(title, rest, link) of a list item that opens with a link or a bold title."""
    lead = _LEADING_LINK.match(text)
    if lead:
        title = _clean_title(lead.group(1))
        rest = text[lead.end():].lstrip(" .:,\u2013\u2014-|")
        return (title, rest, lead.group(2)) if title else None
    bold = _bold_lead(text)
    if bold and _primary_link(bold[1]):
        return bold
    return None


def _drafts_in(blocks: list[_Block]) -> list[_Draft]:
    """Stories of a run of blocks with no story headings: bold lead-ins or link-list items."""
    drafts: list[_Draft] = []
    current: _Draft | None = None
    for b in blocks:
        lead = _bold_lead(b.text) if b.kind == "para" else None
        item = _link_item(b.text) if b.kind == "item" else None
        if lead or item:
            title, rest, url = lead or item  # type: ignore[misc]
            current = _Draft(title, [rest], url)
            drafts.append(current)
        elif current is not None and (b.kind == "para" or (b.kind == "item" and not _LEADING_LINK.match(b.text))):
            # what follows a story's title is its text; a list item that opens with a link but is
            # not a story of its own (too short a title) belongs to no story
            current.parts.append(b.text)
    return drafts


def _sections(blocks: list[_Block], level: int) -> list[tuple[_Block | None, list[_Block]]]:
    """The blocks cut at every heading of ``level`` or above: (heading, blocks under it)."""
    out: list[tuple[_Block | None, list[_Block]]] = [(None, [])]
    for b in blocks:
        if b.kind == "heading" and b.level <= level:
            out.append((b, []))
        else:
            out[-1][1].append(b)
    return out


def sections(markdown: str) -> list[tuple[str, str]]:
    """A roundup body's parts as (title, text), to read each story on its own: what stands under
    each heading when there are two or more (before the first one: a masthead, a greeting, left
    out), otherwise each paragraph and list item, a bold lead-in read as its title."""
    blocks = _blocks(markdown)
    if sum(b.kind == "heading" for b in blocks) >= 2:
        return [
            (head.text, "\n\n".join(b.text for b in under if b.text))
            for head, under in _sections(blocks, 7)  # every heading, of any level
            if head is not None
        ]
    out = []
    for b in blocks:
        if b.kind in ("para", "item"):
            lead = _BOLD_LEAD.match(b.text)
            out.append((_clean_title(lead.group(1)), lead.group(2).strip()) if lead else ("", b.text))
    return out


def _by_rules(blocks: list[_Block]) -> list[list[_Block]]:
    out: list[list[_Block]] = [[]]
    for b in blocks:
        if b.kind == "rule":
            out.append([])
        else:
            out[-1].append(b)
    return [seg for seg in out if seg]


def _draft_of_section(title: str | None, blocks: list[_Block]) -> list[_Draft]:
    """The stories of one section: its items if it lists several, else the section itself."""
    inner = _drafts_in(blocks)
    if len(inner) >= 2 or (inner and title and SECTION_TITLE.match(_bare(title))):
        return inner
    if title is None:
        # no heading: a rule-separated block, titled by its first heading or bold lead
        first = next((b for b in blocks if b.kind in ("heading", "para", "item")), None)
        if first is None:
            return []
        rest_blocks = blocks[blocks.index(first) + 1:]
        if first.kind == "heading":
            title, blocks = first.text, rest_blocks
        elif (first.kind == "para" and "\n" not in first.text and rest_blocks and len(first.text) <= MAX_TITLE_CHARS
              and not _ends_sentence(first.text) and not _LINK.search(first.text) and not _BARE_URL.search(first.text)):
            title, blocks = _clean_title(first.text), rest_blocks  # a title line on its own, as plain text has it
        else:
            lead = _bold_lead(first.text) or (_link_item(first.text) if first.kind == "item" else None)
            if lead is None:
                return [_Draft("", [b.text for b in blocks])]
            draft = _Draft(lead[0], [lead[1]], lead[2])
            draft.parts += [b.text for b in blocks[blocks.index(first) + 1:] if b.kind != "heading"]
            return [draft]
    sub = [b for b in blocks if b.kind == "heading"]
    parts = [b.text for b in blocks if b.kind != "heading"] + [b.text for b in sub]
    return [_Draft(title, parts)]


def _listed_items(blocks: list[_Block]) -> list[_Draft]:
    """The items of a section that lists links ("Reading list", "Quick hits"): one story per linked item."""
    drafts = []
    for b in blocks:
        if b.kind != "item":
            continue
        item = _link_item(b.text)
        if item:
            drafts.append(_Draft(item[0], [item[1]], item[2]))
        elif _primary_link(b.text):
            title = _clean_title(b.text)
            if len(title) > 140:
                title = title[:137].rsplit(" ", 1)[0] + "..."
            drafts.append(_Draft(title, [b.text]))
    return drafts


SPONSOR_LABEL = re.compile(
    r"^\W*(?:together with|sponsored by|presented by|in partnership with|brought to you by|(?:today'?s |this week'?s )?"
    r"sponsor(?:ed)?|partner|advertisement|\bad\b|(?:a )?(?:message|word|note) from (?:our|this week'?s|today'?s) "
    r"(?:sponsors?|partners?))\b", re.I
)


def _prune(blocks: list[_Block]) -> list[_Block]:
    """The blocks without what is never a story: the issue's own title, sections headed
    "Jobs" or "Related reading", and sections a sponsor label introduces."""
    out: list[_Block] = []
    skip_below: int | None = None  # dropping a section: until a heading at this level or above
    sponsor_next = skip_para = False
    for n, b in enumerate(blocks):
        if b.kind == "heading":
            skip_para = False
            if skip_below is not None and b.level > skip_below:
                continue
            skip_below = None
            if n == 0 and b.level == 1:
                continue  # the newsletter's name or the title
            if sponsor_next or NOT_A_STORY.match(_bare(b.text)) or NOT_A_STORY_TITLE.match(_bare(b.text)):
                skip_below, sponsor_next = b.level, False
                continue
            out.append(b)
            continue
        if skip_below is not None:
            continue
        if b.kind == "para" and len(b.text) <= 80 and SPONSOR_LABEL.match(b.text):
            sponsor_next = True
            continue
        if sponsor_next and b.kind in ("para", "item") and _bold_lead(b.text):
            skip_para = True  # the sponsor's bold-titled block, up to the next story
            sponsor_next = False
            continue
        if skip_para:
            if b.kind in ("para", "item") and not _bold_lead(b.text):
                continue
            skip_para = False
        out.append(b)
    return out


def _candidates(markdown: str) -> list[_Draft]:
    blocks = _prune(_blocks(markdown))
    by_level: dict[int, int] = {}
    for b in blocks:
        if b.kind == "heading":
            by_level[b.level] = by_level.get(b.level, 0) + 1
    levels = [lv for lv, n in sorted(by_level.items()) if n >= 2]
    best: list[_Draft] = []
    for level in levels + [0]:
        drafts: list[_Draft] = []
        for heading, section in _sections(blocks, level) if level else [(None, blocks)]:
            if heading is not None and SECTION_TITLE.match(_bare(heading.text)):
                drafts += _drafts_in(section) or _listed_items(section)
            elif heading is None or heading.level < level:
                # text before the first story heading, or under the issue's own title: an intro,
                # unless it lists stories itself
                segments = _by_rules(section) if not level else []
                if len(segments) >= 3:
                    for seg in segments:
                        drafts += _draft_of_section(None, seg)
                else:
                    drafts += _drafts_in(section)
            else:
                drafts += _draft_of_section(heading.text, section)
        drafts = [d for d in drafts if _is_story(d)]
        if _linked(drafts) > _linked(best):
            best = drafts
    return best


def _linked(drafts: list[_Draft]) -> int:
    return len({url for url in (d.story().url for d in drafts) if url})


_LEADING_SYMBOLS = re.compile(r"^[^\w\"'\u201c\u2018(\[]+")


def _bare(title: str) -> str:
    """A title without the emoji and symbols newsletters put before section names."""
    return _LEADING_SYMBOLS.sub("", title)


_PAID = re.compile(r"[(\[](?:sponsor(?:ed)?|ad|advertisement|partner|promoted)[)\]]\s*$", re.I)


def _is_story(d: _Draft) -> bool:
    if _IMAGE.search(d.title) or d.title.startswith("!["):
        return False  # an image that links somewhere, not a title
    if _PAID.search(d.title):
        return False  # "Ship evals, not vibes (Sponsor)"
    title = _bare(d.title)
    if not title or NOT_A_STORY.match(title) or NOT_A_STORY_TITLE.match(title) or SECTION_TITLE.match(title):
        return False
    body = d.body()
    if NOT_A_STORY.match(body) and not d.lead_url:
        return False
    return bool(d.lead_url or _primary_link(body) or len(body) >= 80)


# --- the decision -----------------------------------------------------------------------------


_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def _words(text: str) -> int:
    """The length of a text in words; for scripts written without spaces (Chinese, Japanese,
    Korean), in characters / 2."""
    plain = _IMAGE.sub(" ", _LINK.sub(r"\1", text))
    words = len(plain.split())
    unspaced = len(_UNSPACED.findall(plain))
    return max(words, unspaced // 2) if unspaced > 0.3 * max(1, len(plain) - plain.count(" ")) else words


_GUIDE_TITLE = re.compile(r"^\s*(?:#+\s*)?(?:guide\b|how to\b|a guide to\b|checklist\b|tutorial\b|step[- ]by[- ]step)", re.I)
# Verbs that open the steps of a how-to ("Verify the checksums", "Pin the exact revision").
_IMPERATIVE = frozenset(
    """add avoid ask build change check choose compare configure copy create decide delete disable download enable
    ensure export find fix follow get give install keep know learn limit log look make measure monitor move open pick
    pin plan prefer prepare put read record reduce remember remove rename replace review rotate run save scan set
    sign start stop store subscribe switch tell test try turn update upgrade use verify watch write""".split()
)


_TITLE_WORD = re.compile(r"[^\W\d_][\w'’-]{3,}")
_COMMON = frozenset("""what when where which with from that this have will your about into over after their more than
    just they them were been does also first last next week year news update updates part stage step
    model models open data""".split())


def _one_subject(stories: list[Story]) -> bool:
    """Whether the titles keep naming the same things, as the sections of one article do
    ("Things about Ghost...", "Migrating from Ghost..."), unlike the stories of a roundup."""
    counts: dict[str, int] = {}
    for s in stories:
        for w in {w.lower() for w in _TITLE_WORD.findall(s.title)} - _COMMON:
            counts[w] = counts.get(w, 0) + 1
    return max(counts.values(), default=0) >= max(2, math.ceil(0.6 * len(stories)))


_LISTING = re.compile(r";|,.*,|\band\b.*,|:.*\band\b|\||\+")


def _echo_title(stories: list[Story], title: str) -> bool:
    """Whether most section titles take up words of the post's own title, as the parts of an essay
    do ("Open weights are a supply chain" > "What a supply chain needs"). A title that lists its
    stories ("grid queues, Malmö heat and São Paulo's cluster") says nothing of the kind."""
    if not title or _LISTING.search(title):
        return False
    own = {w.lower() for w in _TITLE_WORD.findall(title)} - _COMMON
    echoing = sum(1 for s in stories if own & ({w.lower() for w in _TITLE_WORD.findall(s.title)} - _COMMON))
    return echoing >= 0.5 * len(stories)


def _steps(stories: list[Story]) -> bool:
    """Whether the titles read as the steps of a how-to rather than as headlines."""
    verbs = sum(1 for s in stories if s.title.split()[0].lower().strip(":,") in _IMPERATIVE)
    return verbs >= 0.6 * len(stories)


def split_stories(markdown: str, *, mode: str = "auto", title: str = "") -> list[Story]:
    """The stories of a roundup, in order; [] when the text is one story (or mode is ``never``)."""
    if mode == "never" or not markdown.strip():
        return []
    if mode == "auto" and markdown.count("http") < MIN_STORIES:
        return []  # fewer links than stories: cannot be a roundup in auto mode
    drafts = _candidates(markdown)
    stories = [d.story() for d in drafts]
    if mode == "always":
        return stories if len(stories) >= 2 else []
    linked = [s for s in stories if s.url]
    if len(stories) < MIN_STORIES or len({s.url for s in linked}) < MIN_STORIES:
        return []
    if len(linked) < 0.6 * len(stories):
        return []
    stories = linked  # a block without a link of its own, among linked stories, is an intro or a note
    if len({" ".join(s.title.lower().split()) for s in stories}) < len(stories):
        return []  # the same title twice: references or a table of contents, not stories
    sizes = sorted(_words(s.title) for s in stories)
    if sizes[len(sizes) // 2] < MIN_TITLE_WORDS:
        return []  # short labels ("Known issues", "Thoughts"): the sections of one text, not headlines
    if _GUIDE_TITLE.match(title) or _steps(stories):
        return []  # the steps of a guide
    if _one_subject(stories) or _echo_title(stories, title):
        return []  # sections of one article about one subject
    total = _words(markdown)
    longest = max(_words(s.body) for s in stories)
    if longest > 0.5 * total and longest > 250:
        return []  # one block carries the issue: an essay or a single story with extras
    if sum(_words(s.title) + _words(s.body) for s in stories) < 0.4 * total:
        return []  # the stories are a small part of a text about something else
    words = sorted(_words(s.body) for s in stories)
    if words[len(words) // 2] > 400:
        return []  # long sections under headings: an essay, not a roundup
    return stories

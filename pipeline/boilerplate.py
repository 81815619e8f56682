"""Boilerplate: what a newsletter wraps around its stories, found and removed.

An e-mail newsletter carries more than its stories: a "view in browser" link,
share buttons, an unsubscribe footer with the postal address the law asks
for, "you are receiving this because" notes. None of it belongs in an item.
This module finds those blocks in e-mail HTML and plain text and drops them,
keeping every block that holds anything else.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, NavigableString, Tag

# The link a newsletter offers to its own web copy: "View in browser", "Read this issue on the web",
# "View online", "Web version".
VIEW_ONLINE = (
    r"\b(?:view|read|open|see)\b(?: (?:it|this|the)(?: (?:e-?mail|issue|post|newsletter|message|edition))?)?"
    r" (?:in|on) (?:your |a |the )?(?:web ?)?(?:browser|web|online)\b"
    r"|\b(?:view|read) (?:it |this )?online\b|\b(?:web|online)[- ]?version\b"
)
# Sentences that only ever appear in the wrapping of a newsletter.
BOILERPLATE = re.compile(
    r"\bunsubscribe\b|manage (?:your )?(?:e-?mail )?(?:preferences|subscriptions?)"
    r"|update (?:your )?(?:e-?mail )?preferences|e-?mail preferences|subscription preferences"
    r"|" + VIEW_ONLINE +
    r"|you(?:'re|\u2019re| are)? receiv(?:ing|ed) this|you(?:'re|\u2019re| are) getting this|was sent to \S+@"
    r"|you(?:'re|\u2019re| are) (?:reading|getting|receiving) .{1,60}\bbecause\b"
    r"|this (?:e-?mail|message|newsletter) was sent|forwarded (?:this|you this)|(?:was|were) you forwarded"
    r"|no longer (?:wish|want) to receive|add us to your address book|to ensure (?:delivery|you receive)"
    r"|powered by (?:mailchimp|substack|beehiiv|convertkit|kit|buttondown|ghost|sendinblue|brevo|klaviyo)"
    r"|\b(?:view|read|open|see) (?:this|the|our) (?:\w+ ){0,2}(?:e-?mail|issue|advisory|newsletter|message|edition"
    r"|post|digest|bulletin|alert|briefing|update|interview|story) (?:online|in (?:your |a )?browser"
    r"|on (?:the |our )?web(?:site)?)\b"
    r"|^\W*read (?:it |this )?on [\w-]+(?:\.[\w-]+)+\W*$"
    r"|came from outside (?:your|the|our) organi[sz]ation|\btell your friends\b|\brefer a friend\b"
    r"|\bwant to advertise\b|\badvertise with us\b|\bbuy me a coffee\b|\bforward this (?:e-?mail|newsletter|issue)\b"
    r"|currently an? (?:free|paid) subscriber|upgrade (?:your subscription|to (?:a )?paid)",
    re.I,
)
# Signs of a footer that also turn up in stories ("users can opt out", "© 2026 Getty", "10 Downing
# Street"): a block goes for them only with two of them, or one near the end of the message.
WEAK = re.compile(
    r"\bopt[- ]out\b|\ball rights reserved\b|\u00a9\s*\d{4}|\bcopyright\s*(?:\u00a9\s*)?\d{4}|\breferral"
    r"|\bprivacy policy\b|\bterms of (?:service|use)\b",
    re.I,
)
TAIL = 0.75  # the share of a message after which its footer sits

# Paragraphs of a newsletter post (in a feed) that only ask the reader to subscribe or share.
APPEAL = re.compile(
    r"thanks? (?:you )?for reading\b.{0,80}(?:subscribe|share|support)|\bsubscribe (?:for free|now|today|to \w+)"
    r"|get (?:every|each|the next) (?:issue|post|edition) in your inbox|\bshare this (?:post|issue|newsletter)\b"
    r"|\bleave a comment\b|if you (?:enjoyed|liked) this.{0,60}(?:share|subscribe|forward)"
    r"|\bbuy me a coffee\b|\btell your friends\b|\brefer a friend\b|\bget it by e-?mail\b|\bsign up for\b"
    r"|\benjoy(?:ing)? [\w ]{1,40}\?|\bone (?:e-?mail|newsletter|issue) a (?:week|day|month)\b|\bno spam\b",
    re.I,
)
MAX_APPEAL_CHARS = 300
# Link texts of a newsletter's own buttons: sharing, subscribing, the legal pages.
BUTTON = re.compile(
    r"^(?:share(?: (?:this(?: \w+)?|on \w+|by e-?mail|via \w+))?|tweet(?: this(?: \w+)?)?|post|email this|e-mail this"
    r"|forward(?: (?:this|to a friend))?|like|comment|restack"
    r"|subscribe(?: now| here| for free)?|sign up(?: now| here)?|upgrade(?: to paid)?|donate|become a member"
    r"|privacy(?: policy)?|terms(?: of (?:service|use))?|contact us|advertise(?: with us)?|follow us(?: on \w+)?"
    r"|twitter|x|facebook|linkedin|instagram|youtube|bluesky|mastodon|threads|rss|get the app|open in app)$",
    re.I,
)
# A postal address line, as the footer of every commercial mailing carries.
POSTAL = re.compile(
    r"\b\d{1,5}[a-z]?,? [A-Z][\w'.-]*(?: [A-Z][\w'.-]*)* (?:Street|St\.?|Lane|Ln\.?|Road|Rd\.?|Avenue|Ave\.?|Way"
    r"|Boulevard|Blvd\.?|Drive|Dr\.?|Square|Place|Court|Strasse|Straße|Str\.)(?=[\s,.]|$)"
    r"|\bP\.?O\.? Box \d+|\b(?:Suite|Floor) \d+\b.*\b\d{5}\b"
    r"|\b(?:Calle|Avenida|Rua|Rue|Via|Viale|Piazza|Plaza|Platz|Straße|Strasse|Carrer|Boulevard) [\w' -]{2,40}? \d{1,5}\b",
)
# Blocks that can be dropped as a whole, smallest first.
_BLOCKS = ("p", "li", "td", "th", "tr", "div", "table", "section", "center", "span", "font", "small")
MAX_BLOCK_CHARS = 420  # a footer block is short; a longer one holds story text too


def _weak_signs(text: str) -> int:
    return len(WEAK.findall(text)) + len(POSTAL.findall(text))


def is_boilerplate(text: str, *, near_end: bool = False) -> bool:
    """Whether a short block is a newsletter's wrapping: a sure sign, or two weak ones, or one
    weak sign near the end of the message."""
    text = " ".join(text.split())
    if not text or len(text) > MAX_BLOCK_CHARS:
        return False
    if BOILERPLATE.search(text):
        return True
    weak = _weak_signs(text)
    return weak >= 2 or (weak == 1 and near_end)


def _text(tag: Tag) -> str:
    return " ".join(tag.get_text(" ").split())


def _removable_block(node: NavigableString | Tag) -> Tag | None:
    """The largest block around ``node`` that is short and holds no heading: what to drop."""
    chosen: Tag | None = None
    parent = node if isinstance(node, Tag) else node.parent
    while isinstance(parent, Tag) and parent.name not in ("body", "html", "[document]"):
        if parent.name in _BLOCKS:
            if len(_text(parent)) > MAX_BLOCK_CHARS or parent.find(("h1", "h2", "h3", "h4", "img")) is not None:
                break
            chosen = parent
        parent = parent.parent
    return chosen


def clean_html(html: str) -> str:
    """E-mail HTML without its footer, share links and 'view in browser' notes."""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all("footer"):
        tag.decompose()
    doomed: list[Tag] = []
    for a in soup.find_all("a"):
        label = _text(a) or str(a.get("title") or a.get("aria-label") or "")
        if BUTTON.match(label.strip(" .:!>\u203a\u2192")):
            doomed.append(a)
            continue
        if BOILERPLATE.search(label) or "unsubscribe" in str(a.get("href") or "")[:300].lower():
            block = _removable_block(a)
            if block is not None and is_boilerplate(_text(block)):
                doomed.append(block)
            else:
                doomed.append(a)
    strings = [s for s in soup.find_all(string=True) if s.strip() and not isinstance(s.parent, type(None))]
    total = sum(len(s) for s in strings) or 1
    seen = 0
    for string in strings:
        text = str(string)
        seen += len(text)
        if not (BOILERPLATE.search(text) or WEAK.search(text) or POSTAL.search(text)):
            continue
        block = _removable_block(string)
        if block is not None and is_boilerplate(_text(block), near_end=seen >= TAIL * total):
            doomed.append(block)
    for tag in doomed:
        if not tag.decomposed:
            tag.decompose()
    return str(soup)


_SIGNATURE = re.compile(r"^-- ?$")


def clean_text(text: str) -> str:
    """A plain-text newsletter without its footer lines and 'view in browser' notes."""
    lines = text.replace("\r\n", "\n").split("\n")
    kept: list[str] = []
    for n, line in enumerate(lines):
        if _SIGNATURE.match(line) and len("\n".join(lines[n + 1:])) <= 1200:
            break  # what follows a signature line is the sender's footer
        near_end = n >= TAIL * len(lines)
        if len(line) < 200 and is_boilerplate(line, near_end=near_end):
            continue
        kept.append(line)
    return "\n".join(kept)


def clean_markdown(markdown: str) -> str:
    """A post without the short paragraphs that only ask the reader to subscribe, share or upgrade.

    Cheap enough for every feed entry: only short paragraphs are looked at.
    """
    paragraphs = markdown.split("\n\n")
    kept = [
        para for para in paragraphs
        if len(para) > MAX_APPEAL_CHARS * 2 or len(plain := " ".join(para.split())) > MAX_APPEAL_CHARS
        or not APPEAL.search(plain)
    ]
    if len(kept) == len(paragraphs) or not kept:
        return markdown  # nothing to drop, or nothing but the appeal: then it is the post itself
    return "\n\n".join(kept)

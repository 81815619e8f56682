"""Rendering: digests and pages as Markdown, HTML, plain text and e-mail.

Everything here is pure: records in, text or bytes out. Two Jinja
environments share one loader (the user's ``digest.templates`` folder first,
then the built-in templates): one for Markdown and text, which escapes with
the ``md`` filter, and one for HTML, which autoescapes. Text that came from
feeds or e-mails (titles, names, summaries: all plain text) reaches HTML only
as escaped text. The ``rich`` filter (Markdown to HTML, through the nh3
sanitizer with a short allow-list) is there for user templates; the built-in
ones do not use it.
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import css_inline
import jinja2
import nh3
from bs4 import BeautifulSoup
from markdown_it import MarkdownIt
from markupsafe import Markup

if TYPE_CHECKING:
    from .config import DigestConfig
    from .digest import DigestView

# --- Markdown ----------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")
_BLOCK_MARK = re.compile(r"^(?:[#+-](?=\s|$)|[=-]+$)")  # a heading, a list item, a rule or an underline
_LIST_NUMBER = re.compile(r"^(\d{1,9})([.)])(?=\s|$)")  # an ordered list item: 1. or 1)


def md_escape(text: str) -> str:
    """Text safe to place inline in Markdown: special characters escaped, one line.

    What would start a block where the text is placed is escaped too: a
    heading ``#``, a list item ``-`` or ``+``, a rule ``---``, and an ordered
    list item, whose number stays as it is (``1\\. Introducing``).
    """
    text = " ".join(str(text).split())
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = _LIST_NUMBER.sub(r"\1\\\2", text, count=1)
    return "\\" + text if _BLOCK_MARK.match(text) else text


def md_url(url: str) -> str:
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")


# --- HTML safety -------------------------------------------------------------

SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
_ALLOWED_TAGS = {
    "a", "p", "br", "em", "strong", "b", "i", "code", "pre", "blockquote", "ul", "ol", "li", "sup", "sub",
    "h3", "h4", "h5", "h6", "hr", "del", "s", "small",
}
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
_markdown = MarkdownIt("commonmark", {"html": True, "linkify": False})


def sanitize_html(fragment: str) -> str:
    """An HTML fragment from a feed or an e-mail, reduced to harmless markup.

    Scripts, styles, frames, forms, event handler attributes, inline styles
    (and with them CSS expressions) and URLs with other schemes than http,
    https and mailto are removed; the text of script and style elements goes too.
    """
    return nh3.clean(
        fragment,
        tags=_ALLOWED_TAGS,
        clean_content_tags={"script", "style", "iframe", "object", "embed", "template", "noscript", "textarea"},
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=set(SAFE_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def rich(text: str) -> Markup:
    """Markdown (possibly holding raw HTML) from an input, as sanitized HTML."""
    return Markup(sanitize_html(_markdown.render(str(text))).strip())


def safe_url(url: str | None) -> str:
    """The URL when it is an absolute http(s)/mailto URL, else an empty string."""
    if not url:
        return ""
    url = "".join(str(url).split())
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return ""
    return url if scheme in SAFE_SCHEMES else ""


# --- file names ----------------------------------------------------------------

_SLUG_DROP = re.compile(r"[^a-z0-9]+")


def safe_name(text: str, *, fallback: str = "page", limit: int = 80) -> str:
    """A file name stem made of lower-case letters, digits and dashes only.

    Whatever the input (titles, ids, ``../../etc/passwd``), the result cannot
    leave its folder, start with a dot or be empty.
    """
    slug = _SLUG_DROP.sub("-", str(text).lower()).strip("-")[:limit].strip("-")
    if not slug:
        slug = fallback
    return slug


# --- environments ----------------------------------------------------------------


def _loader(user_dir: Path | None) -> jinja2.BaseLoader:
    loaders: list[jinja2.BaseLoader] = []
    if user_dir is not None:
        loaders.append(jinja2.FileSystemLoader(str(user_dir)))
    loaders.append(jinja2.PackageLoader("pipeline", "templates"))
    return jinja2.ChoiceLoader(loaders)


def wrap(text: str, width: int = 72, indent: str = "", first: str | None = None) -> str:
    """Plain text filled to ``width``, each line indented (the first by ``first``, when given).

    Hyphenated words and long words such as URLs are never split.
    """
    return textwrap.fill(" ".join(str(text).split()), width=width,
                         initial_indent=indent if first is None else first, subsequent_indent=indent,
                         break_on_hyphens=False, break_long_words=False)


def underline(text: str, char: str = "=") -> str:
    """A rule as long as the longest line of ``text``."""
    return char * max((len(line) for line in str(text).splitlines()), default=0)


def template_environment(user_dir: Path | None) -> jinja2.Environment:
    """The environment for Markdown and plain-text templates."""
    env = jinja2.Environment(
        loader=_loader(user_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # Markdown and text output; HTML has its own environment
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = md_escape
    env.filters["md_url"] = md_url
    env.filters["safe_url"] = safe_url
    env.filters["wrap"] = wrap
    env.filters["underline"] = underline
    env.filters["oneline"] = lambda text: " ".join(str(text).split())
    return env


def html_environment(user_dir: Path | None) -> jinja2.Environment:
    """The environment for HTML templates: every variable is escaped unless it went through ``rich``."""
    env = jinja2.Environment(
        loader=_loader(user_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["rich"] = rich
    env.filters["safe_url"] = safe_url
    return env


def tidy_markdown(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text).rstrip("\n") + "\n"


def tidy_html(text: str) -> str:
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"


# --- e-mail ------------------------------------------------------------------------


def inline_css(html: str) -> str:
    """The page with its <style> rules moved into style attributes, as mail clients need.

    Media queries stay in a <style> element (clients that read them get the narrow layout).
    """
    return css_inline.inline(html, keep_at_rules=True, load_remote_stylesheets=False)


def message_id(digest_id: str, content_hash: str, domain: str) -> str:
    token = hashlib.sha256(f"{digest_id}\0{content_hash}".encode()).hexdigest()[:16]
    return f"<{safe_name(digest_id)}.{token}@{domain}>"


def mail_domain(site_url: str, sender: str) -> str:
    host = urlsplit(site_url).hostname if site_url else None
    return host or sender.rpartition("@")[2] or "localhost"


def build_email(
    *,
    subject: str,
    text: str,
    html: str,
    sender: str,
    sender_name: str,
    to: tuple[str, ...],
    date: datetime,
    msg_id: str,
) -> EmailMessage:
    """A multipart/alternative message (plain text first, then HTML), byte-for-byte reproducible."""
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = " ".join(subject.split())  # a title from a feed cannot add header lines
    msg["From"] = formataddr((" ".join(sender_name.split()), sender))
    msg["To"] = ", ".join(to) if to else "undisclosed-recipients:;"
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = msg_id
    msg["MIME-Version"] = "1.0"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    boundary = "==pipeline-" + hashlib.sha256((text + html).encode()).hexdigest()[:24]
    msg.set_boundary(boundary)
    return msg


# --- site and links ------------------------------------------------------------------


@dataclass(frozen=True)
class SiteInfo:
    title: str = "Data Points"
    url: str = ""  # where digests/ is published, or "" when it is not
    install: str = ""  # what tells this installation apart when there is no url: the output folder's absolute path

    @property
    def base(self) -> str | None:
        """The site URL ending in a slash, or None."""
        return (self.url.rstrip("/") + "/") if self.url else None


_DIGEST_KEY = re.compile(r"^[0-9]{4}-(W[0-9]{2}|[0-9]{2}-[0-9]{2})$")


@dataclass(frozen=True)
class Links:
    """Hrefs from one page to the others: relative (``base`` "../" or ""), absolute, or none (None)."""

    base: str | None
    ext: str  # md or html

    def _href(self, path: str) -> str:
        return "" if self.base is None else self.base + path

    def event(self, event_id: str) -> str:
        return self._href(f"events/{safe_name(event_id, fallback='event')}.{self.ext}")

    def topic(self, topic_id: str) -> str:
        return self._href(f"topics/{safe_name(topic_id, fallback='topic')}.{self.ext}")

    def topic_feed(self, topic_id: str) -> str:
        return self._href(f"topics/{safe_name(topic_id, fallback='topic')}.xml")

    def digest(self, period: str, key: str) -> str:
        if not _DIGEST_KEY.match(key):
            return ""
        return self._href(f"{safe_name(period)}/{key}.{self.ext}")

    def index(self) -> str:
        return self._href(f"index.{self.ext}")

    def feed(self) -> str:
        return self._href("feed.xml")


# --- digests ---------------------------------------------------------------------


def render_markdown(view: DigestView, env: jinja2.Environment, *, site: SiteInfo | None = None,
                    links: Links | None = None) -> str:
    text = env.get_template("digest.md.j2").render(digest=view, site=site or SiteInfo(), links=links or Links(None, "md"))
    return tidy_markdown(text)


def render_text(view: DigestView, env: jinja2.Environment, *, site: SiteInfo, links: Links) -> str:
    return tidy_markdown(env.get_template("digest.txt.j2").render(digest=view, site=site, links=links))


def render_html(view: DigestView, env: jinja2.Environment, *, site: SiteInfo, links: Links) -> str:
    return tidy_html(env.get_template("digest.html.j2").render(digest=view, site=site, links=links))


def digest_email(view: DigestView, *, text: str, html: str, cfg: DigestConfig, date: datetime, content_hash: str,
                 to: tuple[str, ...] | None = None) -> EmailMessage:
    """The digest as a multipart/alternative e-mail with its CSS inlined."""
    email_cfg = cfg.email
    return build_email(
        subject=view.title,
        text=text,
        html=inline_css(html),
        sender=email_cfg.sender,
        sender_name=cfg.site_title,
        to=email_cfg.to if to is None else to,
        date=date,
        msg_id=message_id(f"{view.period}-{view.key}", content_hash, mail_domain(cfg.site_url, email_cfg.sender)),
    )


@dataclass(frozen=True)
class RenderedDigest:
    markdown: str
    html: str
    text: str
    email_html: str  # the page with absolute links (or none), before its CSS is inlined
    feed_html: str  # the HTML body for feed entries, with absolute links only
    content_hash: str


def render_digest(view: DigestView, cfg: DigestConfig) -> RenderedDigest:
    md_env = template_environment(cfg.templates)
    html_env = html_environment(cfg.templates)
    site = SiteInfo(title=cfg.site_title, url=cfg.site_url)
    markdown = render_markdown(view, md_env, site=site, links=Links("../", "md"))
    page = render_html(view, html_env, site=site, links=Links("../", "html"))
    absolute = Links(site.base, "html")
    text = render_text(view, md_env, site=site, links=absolute)
    feed_page = render_html(view, html_env, site=site, links=absolute)
    return RenderedDigest(
        markdown=markdown,
        html=page,
        text=text,
        email_html=feed_page,
        feed_html=body_of(feed_page),
        content_hash=hashlib.sha256(markdown.encode()).hexdigest(),
    )


def body_of(page: str) -> str:
    """The inside of the page's card (else its body): what a feed entry shows."""
    soup = BeautifulSoup(page, "html.parser")
    part = soup.select_one("div.card") or soup.body or soup
    return part.decode_contents().strip() + "\n"

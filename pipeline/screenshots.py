"""Screenshots of the sample digest as a web page and as an e-mail, in headless Chromium.

    python -m pipeline.screenshots [--config config.toml] [--out digests/screenshots] [--now TIME]

Runs the bundled samples through every stage into a temporary folder (the
project's database and digests are left alone), then has Chromium render the
digest's HTML page and the HTML part of its e-mail at a desktop width and at a
narrow phone width, and saves PNG files. Needs Chromium (Debian: ``apt-get
install chromium``); nothing here touches the network.
"""

from __future__ import annotations

import argparse
import email
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from email import policy
from pathlib import Path

from .cluster import cluster_step
from .config import StoreConfig, load_config
from .digest import digest_step
from .ingest import ingest_paths
from .store import Store
from .tag import tag_step

SAMPLE_NOW = datetime(2026, 4, 13, 6, 0, tzinfo=timezone.utc)
SIZES = {"desktop": (1280, 2200, 1), "phone": (390, 1700, 2)}  # width, height (CSS px), scale
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--hide-scrollbars",
    "--disable-extensions",
)


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("Chromium not found (Debian: apt-get install chromium)")


def build_sample(config_path: Path, work: Path, now: datetime) -> tuple[Path, Path]:
    """The sample digest's HTML page and e-mail HTML, written under ``work``."""
    config = load_config(config_path)
    config = replace(
        config,
        store=StoreConfig(path=work / "pipeline.db"),
        digest=replace(config.digest, output_dir=work / "digests"),
    )
    with Store(config.store.path) as store:
        store.sync_sources(config.sources)
        ingest_paths(store, config, config.ingest.paths, now)
        tag_step(store, config, now)
        cluster_step(store, config, now)
        result = digest_step(store, config, now, deliver=False)
    page = Path(result.paths[0]).with_suffix(".html")
    msg = email.message_from_bytes(page.with_suffix(".eml").read_bytes(), policy=policy.default)
    html_part = next(p for p in msg.walk() if p.get_content_type() == "text/html")
    mail = work / "email.html"
    mail.write_text(html_part.get_content(), encoding="utf-8")
    return page, mail


def screenshot(chromium: str, page: Path, target: Path, width: int, height: int, scale: int, profile: Path) -> None:
    cmd = [
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        f"--force-device-scale-factor={scale}",
        f"--screenshot={target}",
        page.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not target.exists():
        raise SystemExit(f"Chromium failed on {page}: {proc.stderr.strip()[-500:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.screenshots", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("config.toml"), help="config whose samples to render")
    parser.add_argument("--out", type=Path, default=Path("digests/screenshots"), help="folder for the PNG files")
    parser.add_argument("--now", default=SAMPLE_NOW.isoformat(), help="time of the sample run (ISO 8601)")
    args = parser.parse_args(argv)
    now = datetime.fromisoformat(args.now.replace("Z", "+00:00"))
    chromium = find_chromium()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pipeline-shots-") as tmp:
        work = Path(tmp)
        page, mail = build_sample(args.config, work, now)
        for name, source in (("digest", page), ("email", mail)):
            for size, (width, height, scale) in SIZES.items():
                target = args.out / f"{name}-{size}.png"
                profile = Path(tempfile.mkdtemp(prefix="profile-", dir=work))
                screenshot(chromium, source, target, width, height, scale, profile)
                print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())

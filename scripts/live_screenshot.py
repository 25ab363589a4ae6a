"""The docs' picture of the live page (docs/images/live.png): `zoomdream live` as a user runs
it, the page in Debian's headless chromium (`make browser`), after a few changes so that the
controls show values in effect.

    python scripts/live_screenshot.py [-o docs/images/live.png]"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from livepage import LiveServer, Page  # noqa: E402
from test_live import chromium  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", default=str(ROOT / "docs/images/live.png"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, LiveServer("--size", "256x256", "--out", d, cwd=Path(d)) as server:
        page = Page(server.ws_url)
        page.frame_at_least(40, timeout=600)
        page.send({"type": "set", "key": "rotate", "value": 12.0})
        page.send({"type": "objective", "text": "features.12 + 0.4*features.7"})
        page.frame_at_least(page.frame["n"] + 30, timeout=600)
        browser = chromium()
        try:
            browser.set_window_size(1280, 860)
            browser.get(server.url)
            time.sleep(6)  # a few frames in, the stats settled
            browser.save_screenshot(args.output)
        finally:
            browser.quit()
        page.close()
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

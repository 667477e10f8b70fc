"""The API's documentation pages work without internet: every script, style and icon they load is
served by Lotline itself (most GMP networks have no internet; FastAPI's own pages load a CDN's)."""

from __future__ import annotations

import re

from tests.api.conftest import Api


def test_docs_and_redoc_load_only_assets_the_server_itself_serves(empty_api: Api) -> None:
    for page in ("/docs", "/redoc"):
        answer = empty_api.client.get(page)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
        html = answer.text
        assert "http://" not in html and "https://" not in html, f"{page} loads something from elsewhere"
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(r"url: ?'([^']+)'", html)
        assert any(a.endswith(".js") for a in assets), assets
        for asset in assets:
            fetched = empty_api.client.get(asset)
            assert fetched.status_code == 200 and fetched.content, asset
    assert empty_api.client.get("/docs/oauth2-redirect").status_code == 200

"""The browser the other tests drive: Debian's Chromium, launched by Playwright. Without it,
this is the one test that says why (skipped; under CI=true, failed)."""

from tests.browser import chromium
from tests.browser.conftest import Wall


async def test_debians_chromium_runs_the_page_scripts(wall: Wall) -> None:
    await wall.page.set_content("<p id=out></p><script>out.textContent = 6 * 7</script>")
    assert await wall.page.inner_text("#out") == "42"
    version = wall.page.context.browser.version  # type: ignore[union-attr]
    assert version.split(".")[0].isdigit(), version
    assert chromium.missing() is None

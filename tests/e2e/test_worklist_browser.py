"""The worklist in a real browser: Debian's Chromium driven by Playwright (never a downloaded browser), against a
real `carepath serve` on a free loopback port with the demo data, axe-core (shipped in the
axe-playwright-python package) on every page. Screenshots go to tests/e2e/artifacts/ (git-ignored).

Sign-in runs for real on a second server started with CAREPATH_AUTH=dev: the browser goes through `/app/login`, the
development issuer's authorize page and `/app/callback` (code flow with PKCE) before it sees the worklist.

Without /usr/bin/chromium the tests skip, unless CAREPATH_REQUIRE_SERVICES=1 (CI installs it in .ci/run).
The live update is real: a `$apply` through the FHIR API while the worklist is open reaches the page through the
outbound stream and `/app/live` (server-sent events), and the page changes without a reload.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from tests.live_server import free_port

CHROMIUM = Path(os.environ.get("CAREPATH_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).parent / "artifacts"
BIN = Path(sys.executable).parent


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"No Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does it)"
    if os.environ.get("CAREPATH_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _serve(data: Path, auth: str) -> Iterator[str]:
    """`carepath demo`, then `carepath serve` on a free loopback port with CAREPATH_AUTH=`auth`."""
    env = {**os.environ, "CAREPATH_DATA_DIR": str(data), "CAREPATH_DATABASE_URL": "", "CAREPATH_REDIS_URL": "",
           "CAREPATH_AUTH": auth, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}  # fmt: skip
    subprocess.run([str(BIN / "carepath"), "demo"], env=env, check=True, capture_output=True, timeout=300)
    port = free_port()
    log = (data / "serve.log").open("wb")
    proc = subprocess.Popen([str(BIN / "carepath"), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail(f"carepath serve did not start: {(data / 'serve.log').read_text()[-2000:]}")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _require_chromium()
    yield from _serve(tmp_path_factory.mktemp("e2e"), "off")


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with CAREPATH_AUTH=dev: the worklist signs in through the development issuer (the real flow)."""
    _require_chromium()
    yield from _serve(tmp_path_factory.mktemp("e2e-dev"), "dev")


@asynccontextmanager
async def _browser_page(base: str) -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        # axe is injected by evaluate; the pages' CSP (script-src 'self') would refuse it as an inline script
        context = await browser.new_context(base_url=base, viewport={"width": 1280, "height": 900},
                                            bypass_csp=True, locale="en-GB")  # fmt: skip
        yield await context.new_page()
        await browser.close()


@pytest.fixture
async def page(server: str) -> AsyncIterator[object]:
    async with _browser_page(server) as opened:
        yield opened


@pytest.fixture
async def dev_page(dev_server: str) -> AsyncIterator[object]:
    async with _browser_page(dev_server) as opened:
        yield opened


async def _axe(page: object, name: str) -> None:
    """No serious or critical axe-core violation (WCAG 2.1 A/AA rules); a screenshot of the page as an artifact."""
    import axe_playwright_python

    source = (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text(encoding="utf-8")
    await page.evaluate(source + ";0")  # type: ignore[attr-defined]
    result = await page.evaluate(  # type: ignore[attr-defined]
        "() => axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
    )
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]
           if v["impact"] in ("serious", "critical")]  # fmt: skip
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
    assert bad == [], bad


async def test_coordinator_flow(page: object, server: str) -> None:
    from playwright.async_api import Page, expect

    assert isinstance(page, Page)
    await page.goto("/app")
    await expect(page.get_by_text("Development mode — no sign-in")).to_be_visible()
    await _axe(page, "worklist")
    # filter to overdue work: a GET form, so the filter is in the URL and the back button returns to it
    await page.get_by_label("Overdue").check()
    await page.get_by_role("button", name="Apply filters").click()
    await expect(page).to_have_url(re.compile(r"/app\?due=overdue&"))
    rows = page.locator("table.worklist tbody tr")
    assert await rows.count() == 2  # the demo's two late Tasks
    await expect(rows.first.locator(".badge.overdue")).to_have_text("⚠ Overdue")
    await _axe(page, "worklist-overdue")
    # open a task and read why it exists
    await rows.first.locator("td:nth-child(3) a").click()
    await expect(page.get_by_role("heading", name="Why this task exists")).to_be_visible()
    await page.go_back()  # the back button returns to the filtered list
    await expect(page).to_have_url(re.compile(r"/app\?due=overdue&"))
    await page.go_forward()
    await expect(page.get_by_role("heading", name="Why this task exists")).to_be_visible()
    await expect(page.locator("ul.why li").first).not_to_be_empty()
    await _axe(page, "task")
    # an invalid move (completing a task not started): the state machine's refusal is explained on the page
    await page.locator("form.action-start input[name=action]").evaluate("e => e.value = 'complete'")
    await page.locator("form.action-start button").click()
    await expect(page.locator("#action-error")).to_contain_text("This change was refused")
    await expect(page.locator("#action-error")).to_contain_text("completed")
    await _axe(page, "task-refused")
    # start it, then complete it with a note
    await page.locator("form.action-start button").click()
    await expect(page.get_by_text("The task is in progress.")).to_be_visible()
    await page.locator("form.action-complete textarea").fill("Reassessed in clinic (e2e)")
    await page.locator("form.action-complete button").click()
    await expect(page.get_by_text("The task is completed.")).to_be_visible()
    await expect(page.locator("#task-status")).to_have_text("Completed")
    waited = page.locator("#waited-by li")
    if await waited.count():  # what waited for it is listed with its status (after navigation, not live)
        await expect(waited.first.locator(".dep-status")).not_to_be_empty()
    await page.goto("/app?due=overdue")
    assert await page.locator("table.worklist tbody tr").count() == 1  # the completed one has left the list
    # the patient's timeline and pathway
    await page.locator("table.worklist tbody tr td:nth-child(4) a").first.click()
    await expect(page.locator("svg.timeline > title")).to_contain_text("Timeline of")
    await expect(page.locator("svg.pathway > title")).to_contain_text("steps and their dependencies")
    assert await page.locator("svg.pathway g.step.overdue").count() >= 1
    await _axe(page, "patient")
    # switch language
    await page.get_by_label("Language").select_option("fr")
    await expect(page.locator("html")).to_have_attribute("lang", "fr")
    await expect(page.get_by_role("heading", name="Plans de soins")).to_be_visible()
    await _axe(page, "patient-fr")
    await page.get_by_label("Langue").select_option("en")
    await expect(page.locator("html")).to_have_attribute("lang", "en")


async def test_concurrent_edit_and_refused_input(page: object, server: str) -> None:
    from playwright.async_api import Page, expect

    assert isinstance(page, Page)
    await page.goto("/app")
    await page.locator("table.worklist tbody tr td:nth-child(3) a").last.click()
    task_url = page.url
    # a second coordinator changes the task meanwhile (another browser tab)
    other = await page.context.new_page()
    await other.goto(task_url)
    await other.locator("form.action-claim button").click()
    await expect(other.get_by_text("You now own this task.")).to_be_visible()
    # the first one, on the stale page, tries to cancel it: told, nothing lost
    await page.locator("form.action-cancel textarea").fill("Duplicate request (e2e)")
    await page.locator("form.action-cancel button").click()
    await expect(page.locator("#action-error")).to_contain_text("Someone else changed this task")
    await expect(page.locator("form.action-cancel textarea")).to_have_value("Duplicate request (e2e)")
    await _axe(page, "task-conflict")
    # an input the move needs is missing: explained on the page (the browser's own check is bypassed)
    await page.locator("form.action-reject textarea").evaluate("e => e.removeAttribute('required')")
    await page.locator("form.action-reject button").click()
    await expect(page.locator("#action-error")).to_contain_text("A reason is needed to reject")


async def test_worklist_updates_live_when_work_is_created(page: object, server: str) -> None:
    from playwright.async_api import Page, expect

    assert isinstance(page, Page)
    await page.goto("/app?patient=P03&status=all")
    before = await page.locator("#total").text_content()
    await page.evaluate("window.notReloaded = true")
    parameters = {"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": "https://fhir.carepath.dev/PlanDefinition/chemo-failure-follow-up"},
        {"name": "subject", "valueString": "Patient/P03"}, {"name": "persist", "valueBoolean": True}]}  # fmt: skip
    async with httpx.AsyncClient(base_url=server) as api:
        response = await api.post("/fhir/PlanDefinition/$apply", json=parameters,
                                  headers={"Content-Type": "application/fhir+json"})  # fmt: skip
        assert response.status_code in (200, 201), response.text
    await expect(page.locator("#live-region")).to_have_text("The list has changed.", timeout=15000)
    await expect(page.locator("#total")).not_to_have_text(before or "", timeout=5000)
    assert await page.evaluate("window.notReloaded") is True  # updated in place, not reloaded


async def test_sign_in_through_the_development_issuer(dev_page: object, dev_server: str) -> None:
    from playwright.async_api import Page, expect

    page = dev_page
    assert isinstance(page, Page)
    await page.goto("/app?due=overdue")
    # not signed in: sent to the sign-in, which is the development issuer's authorize page
    await expect(page).to_have_url(re.compile(r"/app/dev-issuer/authorize\?.*code_challenge_method=S256"))
    await expect(page.get_by_role("heading", name="Development sign-in")).to_be_visible()
    await _axe(page, "sign-in")
    await page.get_by_label("Sophie Laurent (RCP secretary)").check()
    await page.get_by_role("button", name="Sign in").click()
    # back where the browser was going, signed in as the chosen practitioner, without the no-sign-in banner
    await expect(page).to_have_url(re.compile(r"/app\?due=overdue$"))
    await expect(page.locator("header .user strong")).to_have_text("Sophie Laurent (RCP secretary)")
    assert await page.get_by_text("Development mode — no sign-in").count() == 0
    rows = page.locator("table.worklist tbody tr")
    assert await rows.count() >= 1
    await _axe(page, "worklist-signed-in")
    await rows.first.locator("td:nth-child(3) a").click()
    await expect(page.get_by_role("heading", name="Why this task exists")).to_be_visible()
    await page.locator("form.action-claim button").click()
    await expect(page.get_by_text("You now own this task.")).to_be_visible()
    await expect(page.locator("#task-owner")).to_contain_text("Sophie Laurent")
    # sign out: the worklist asks for a sign-in again
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_text("You are signed out.")).to_be_visible()
    await page.goto("/app")
    await expect(page.get_by_role("heading", name="Development sign-in")).to_be_visible()

"""End to end in a real headless browser: Debian's Chromium driven by Playwright against the served app."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the MOS app's libraries are the extra srlab[mos]")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright (pip install playwright)")

from mos_fixtures import db_url, make_study  # noqa: E402,F401  (db_url: a fixture, SQLite and PostgreSQL)
from mos_server import served_in_thread  # noqa: E402

from srlab.mos import db  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.slow,  # a browser start and a served app: over 10 s on two busy cores (.ci/run runs them)
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: apt-get install -y chromium"),
]


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """One Chromium for the module, on an empty profile of its own."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(chromium):
    """The module's browser with no cookies (cookies ignore ports: each test's server is a new site)."""
    chromium.clear_cookies()
    yield chromium
    for page in chromium.pages:
        page.close()


def consent(page, url):
    page.goto(url)
    page.locator("#agree").check()
    page.locator("#start").click()


def trial_on_screen(page, previous=None) -> str:
    """Wait for the next trial to be on screen (its images loaded) and return its id."""
    page.wait_for_function(
        "prev => { const s = document.getElementById('study');"
        " return !s.hidden && s.dataset.trial && s.dataset.trial !== prev; }", arg=previous)
    return page.locator("#study").get_attribute("data-trial")


def test_a_rater_completes_an_acr_study_with_the_keyboard(tmp_path, browser, db_url):
    study_dir = make_study(tmp_path, "acr", attention_checks=2)
    with served_in_thread(study_dir, db_url) as (url, app):
        page = browser.new_page()
        consent(page, url)
        pressed = {}
        trial = None
        total = len(app.state.study.trials)
        for k in range(total):
            trial = trial_on_screen(page, trial)
            assert page.locator("#count").inner_text() == f"Trial {k + 1} of {total}"
            if k == 2:  # the rater reloads mid-trial: the same trial comes back, nothing is duplicated
                page.reload()
                assert trial_on_screen(page) == trial
            key = str(k % 5 + 1)
            page.keyboard.press(key)
            pressed[trial] = int(key)
        page.locator("#finished").wait_for(state="visible")
        width = page.locator("#fill").evaluate("e => e.style.width")
    trials, ratings = db.load_records(study_dir, db_url)
    assert {r.trial.id: r.score for r in ratings} == pressed
    assert len(ratings) == total
    assert float(width.rstrip("%")) == pytest.approx(100 * (total - 1) / total, abs=1e-3)  # the last trial's bar


def test_the_admin_page_shows_progress_with_the_token_only(tmp_path, browser):
    study_dir = make_study(tmp_path, "acr")
    with served_in_thread(study_dir, admin_token="s3cret") as (url, _):
        page = browser.new_page()
        consent(page, url)
        trial_on_screen(page)
        page.keyboard.press("4")
        page.wait_for_function("() => document.getElementById('count').innerText.startsWith('Trial 2')")
        admin = browser.new_page()
        admin.goto(f"{url}/admin")
        admin.locator("#token").fill("wrong")
        admin.locator("#login button").click()
        admin.locator("#error").wait_for(state="visible")
        assert "Authorization: Bearer" in admin.locator("#error").inner_text()
        assert admin.locator("#progress").is_hidden()
        admin.locator("#token").fill("s3cret")
        admin.locator("#login button").click()
        admin.locator("#progress").wait_for(state="visible")
        assert admin.locator("#summary").inner_text() == "1 raters, 0 finished, 1 ratings"
        assert admin.locator("#raters tbody td").nth(2).inner_text() == "1"
        with admin.expect_download() as download:
            admin.locator("#export").click()
        exported = json.loads(Path(download.value.path()).read_text())
        assert [r["score"] for r in exported["ratings"]] == [4]


def test_pairs_zoom_together_and_arrows_choose(tmp_path, browser):
    study_dir = make_study(tmp_path, "pair", repeats=2)
    files = {t["id"]: t for t in json.loads((study_dir / "study.json").read_text())["trials"]}
    with served_in_thread(study_dir) as (url, app):
        page = browser.new_page()
        consent(page, url)
        expected, trial = {}, None
        for k in range(len(app.state.study.trials)):
            trial = trial_on_screen(page, trial)
            if k == 0:  # wheel over the left image: both images get the same zoom
                before = page.locator(".view img").first.evaluate("e => e.style.transform")
                page.locator(".view").first.hover()
                page.mouse.wheel(0, -200)
                transforms = page.locator(".view img").evaluate_all("imgs => imgs.map(e => e.style.transform)")
                assert transforms[0] == transforms[1] != before
            left = page.request.get(f"{url}/api/trials/{trial}/images/left").body()
            t = files[trial]
            left_method = t["method"] if left == (study_dir / t["files"]["first"]).read_bytes() else t["other"]
            right_method = t["other"] if left_method == t["method"] else t["method"]
            key = "ArrowLeft" if k % 2 == 0 else "ArrowRight"
            page.keyboard.press(key)
            expected[trial] = left_method if key == "ArrowLeft" else right_method
        page.locator("#finished").wait_for(state="visible")
    _, ratings = db.load_records(study_dir)
    assert {r.trial.id: r.winner for r in ratings} == expected


def test_the_page_fits_a_phone(tmp_path, browser):
    study_dir = make_study(tmp_path, "pair")
    with served_in_thread(study_dir) as (url, _):
        page = browser.new_page()
        page.set_viewport_size({"width": 375, "height": 667})
        consent(page, url)
        trial_on_screen(page)
        first, second = (page.locator(".view").nth(k).bounding_box() for k in range(2))
        assert second["y"] >= first["y"] + first["height"] - 1  # stacked, not side by side
        assert first["x"] + first["width"] <= 375
        page.locator("#answers button").last.click()  # buttons work where there is no keyboard
        page.wait_for_function("() => document.getElementById('count').innerText.startsWith('Trial 2')")
        scroll_width = page.evaluate("() => document.documentElement.scrollWidth")
        assert scroll_width <= 375


def test_the_report_matches_the_keys_pressed(tmp_path, browser):
    from srlab.mos import report

    study_dir = make_study(tmp_path, "acr")
    with served_in_thread(study_dir) as (url, app):
        page = browser.new_page()
        consent(page, url)
        by_method, trial = {}, None
        for k in range(len(app.state.study.trials)):
            trial = trial_on_screen(page, trial)
            page.keyboard.press(str(k % 5 + 1))
            by_method.setdefault(app.state.study.trial(trial).trial.method, []).append(k % 5 + 1)
        page.locator("#finished").wait_for(state="visible")
    trials, ratings = db.load_records(study_dir)
    out = tmp_path / "report.json"
    report.write_report(study_dir, trials, ratings, design="acr", json_out=out, html_out=None, csv_out=None)
    methods = {m["name"]: m for m in json.loads(out.read_text())["methods"]}
    for method, scores in by_method.items():
        assert methods[method]["mos"] == pytest.approx(sum(scores) / len(scores))
        assert methods[method]["n"] == len(scores)

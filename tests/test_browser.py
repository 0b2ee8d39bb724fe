"""The admin in a real browser: Debian's chromium, driven by Selenium through the system chromedriver.

Skipped where no browser is installed (.ci/run installs `chromium` and
`chromium-driver`). Selenium never downloads a browser or a driver: both
paths are given, and Selenium Manager is refused outright.

The live server speaks plain http, so the test relaxes, for itself only, the
production settings that demand https (tests/settings.py keeps DEBUG off and
SECURE_SSL_REDIRECT on).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.test import override_settings
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.selenium_manager import SeleniumManager
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from accounts import identity, ledger, pins
from accounts.models import Account, Transfer

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_SECONDS = 15
PENDING_MEMBER_ID = "654321"

pytestmark = [
    pytest.mark.skipif(
        not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
        reason=f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): "
        "apt-get install chromium chromium-driver",
    ),
]


def _rebuild_middleware(server) -> None:
    """Build the live server's middleware again, from the settings as they are now.

    The server's app is Django's WSGIHandler wrapped in the static- and
    media-file handlers, and a wrapper may answer through middleware of its own
    (the media one does, for every path when MEDIA_URL is empty): every layer's
    is rebuilt (the static-file handler's load_middleware does nothing).
    """
    handler = server.thread.httpd.get_app()
    while handler is not None:
        handler.load_middleware()
        handler = getattr(handler, "application", None)


@pytest.fixture
def http_server(live_server) -> Iterator:
    """pytest-django's live server, reachable over plain http for this test only.

    The server outlives the test (it is session-wide) and built its middleware
    when it started, with production settings: SecurityMiddleware read
    SECURE_SSL_REDIRECT then. So the middleware is built again under the
    relaxed settings, and once more with the real ones afterwards.
    """
    relaxed = override_settings(
        SECURE_SSL_REDIRECT=False,
        SESSION_COOKIE_SECURE=False,
        CSRF_COOKIE_SECURE=False,
        ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "localhost", "127.0.0.1"],
    )
    try:
        with relaxed:
            _rebuild_middleware(live_server)
            yield live_server
    finally:
        _rebuild_middleware(live_server)


@pytest.fixture
def browser(monkeypatch) -> Iterator[webdriver.Chrome]:
    """Headless chromium with the network log on; never a download of anything."""

    def refuse(*args, **kwargs):
        raise RuntimeError("Selenium Manager must not run: the browser and driver paths are given")

    monkeypatch.setattr(SeleniumManager, "binary_paths", refuse)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,1024",
        # Nothing but the page under test on the network.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS * 2)
    try:
        yield driver
    finally:
        driver.quit()


@contextmanager
def screenshot_on_failure(driver: webdriver.Chrome, tmp_path: Path) -> Iterator[None]:
    """On a failure, what the browser showed, saved in the test's tmp_path (and named in the error)."""
    try:
        yield
    except Exception as error:
        path = tmp_path / "browser-failure.png"
        try:
            driver.save_screenshot(str(path))
            error.add_note(f"screenshot: {path} (at {driver.current_url})")
        except Exception as screenshot_error:  # the browser itself may be gone
            error.add_note(f"no screenshot: {screenshot_error!r}")
        raise


@pytest.fixture
def seeded(account, recipient) -> dict[str, Account]:
    """An active account (123456, 100 dollars) with a submitted transfer, and a pending registration."""
    ledger.transfer_submit(
        account=account, recipient_code=recipient.code, amount_cents=25_00, idempotency_key="browser-test-transfer"
    )
    pending, _code = identity.account_register(member_id=PENDING_MEMBER_ID, pin_hash=pins.hash_pin("8052"))
    assert not pending.is_verified
    return {"active": account, "pending": pending}


def sign_in(driver: webdriver.Chrome, server, username: str, password: str) -> None:
    """Open /admin/, which sends a stranger to the login form, and sign in through it."""
    driver.get(server.url + "/admin/")
    assert urlsplit(driver.current_url).path == "/admin/login/", driver.current_url
    driver.find_element(By.ID, "id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
    WebDriverWait(driver, WAIT_SECONDS).until(expected_conditions.presence_of_element_located((By.ID, "user-tools")))
    assert urlsplit(driver.current_url).path == "/admin/", driver.current_url


def assert_same_origin_resources(driver: webdriver.Chrome, server) -> None:
    """Every script, stylesheet and image the page names comes from the server itself (no CDN)."""
    origin = urlsplit(server.url)
    for selector, attribute in (("script[src]", "src"), ("link[href]", "href"), ("img[src]", "src")):
        for element in driver.find_elements(By.CSS_SELECTOR, selector):
            # The property is the resolved, absolute URL.
            url = urlsplit(element.get_property(attribute))
            if url.scheme == "data":
                continue
            assert (url.scheme, url.netloc) == (origin.scheme, origin.netloc), (
                f"{selector} from elsewhere: {url.geturl()}"
            )


def requested_urls(driver: webdriver.Chrome) -> list[str]:
    """Every URL the browser requested since the last call, from chromium's performance log."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def assert_no_other_host(urls: list[str], server) -> None:
    origin = urlsplit(server.url)
    assert urls, "the performance log recorded no request"
    elsewhere = [
        url
        for url in urls
        if urlsplit(url).scheme not in ("data", "blob", "about")
        and (urlsplit(url).scheme, urlsplit(url).netloc) != (origin.scheme, origin.netloc)
    ]
    assert not elsewhere, f"requests to other hosts: {elsewhere}"


def test_an_operator_signs_in_and_finds_an_account(http_server, browser, admin_user, seeded, tmp_path):
    """What exists now: the login form, the admin index, the accounts list, all from the server alone."""
    with screenshot_on_failure(browser, tmp_path):
        sign_in(browser, http_server, admin_user.username, "password")
        # Signed in: the index greets the operator and offers to sign out, with no error.
        assert admin_user.username.upper() in browser.find_element(By.ID, "user-tools").text.upper()
        assert browser.find_elements(By.ID, "logout-form")
        assert not browser.find_elements(By.CSS_SELECTOR, ".errornote")
        assert_same_origin_resources(browser, http_server)

        browser.find_element(By.CSS_SELECTOR, '#content a[href="/admin/accounts/account/"]').click()
        WebDriverWait(browser, WAIT_SECONDS).until(
            expected_conditions.presence_of_element_located((By.ID, "result_list"))
        )
        assert urlsplit(browser.current_url).path == "/admin/accounts/account/"
        results = browser.find_element(By.ID, "result_list").text
        assert seeded["active"].member_id in results
        assert PENDING_MEMBER_ID in results
        assert_same_origin_resources(browser, http_server)

        assert_no_other_host(requested_urls(browser), http_server)


def test_the_admin_index_is_the_operators_dashboard(http_server, browser, admin_user, seeded, tmp_path):
    """The dashboard's DOM contract: its title, server-side SVG charts, and the four lists operators work from."""
    with screenshot_on_failure(browser, tmp_path):
        sign_in(browser, http_server, admin_user.username, "password")

        assert "MyiBot operations" in browser.title, browser.title
        dashboards = browser.find_elements(By.ID, "dashboard")
        assert len(dashboards) == 1, "no #dashboard on the admin index"
        dashboard = dashboards[0]

        charts = dashboard.find_elements(By.CSS_SELECTOR, "svg.chart")
        assert charts, "no svg.chart in #dashboard"
        for chart in charts:
            titles = chart.find_elements(By.CSS_SELECTOR, ":scope > title")
            assert titles and titles[0].get_property("textContent").strip(), "an svg.chart without a <title> naming it"

        # Each list is a list or a "none" message. With the seeded data, one
        # account awaits verification and one transfer awaits settlement.
        for section_id in ("awaiting-verification", "awaiting-settlement", "locked-accounts", "spray"):
            sections = dashboard.find_elements(By.ID, section_id)
            assert sections, f"no #{section_id} in #dashboard"
            section = sections[0]
            assert section.find_elements(By.TAG_NAME, "li") or section.text.strip(), f"#{section_id} is empty"
        for section_id in ("awaiting-verification", "awaiting-settlement"):
            assert dashboard.find_element(By.ID, section_id).find_elements(By.TAG_NAME, "li"), (
                f"#{section_id} lists nothing"
            )

        assert_same_origin_resources(browser, http_server)
        assert_no_other_host(requested_urls(browser), http_server)


def action_menu(driver: webdriver.Chrome, server, path: str) -> list[str]:
    """The actions the list at path offers, as the browser shows its menu (none: no menu at all)."""
    driver.get(server.url + path)
    WebDriverWait(driver, WAIT_SECONDS).until(expected_conditions.presence_of_element_located((By.ID, "result_list")))
    options = driver.find_elements(By.CSS_SELECTOR, "select[name=action] option")
    return [option.get_attribute("value") for option in options if option.get_attribute("value")]


def test_a_view_only_user_is_offered_no_action_that_moves_money(
    http_server, browser, django_user_model, seeded, tmp_path
):
    """An auditor's view: every list, no settle, reject, reverse, verify or unlock; exporting stays."""
    viewer = django_user_model.objects.create_user("audrey", password="a long auditor passphrase", is_staff=True)
    viewer.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="accounts", codename__in=["view_account", "view_transfer", "view_ledgerentry"]
        )
    )
    with screenshot_on_failure(browser, tmp_path):
        sign_in(browser, http_server, "audrey", "a long auditor passphrase")
        assert action_menu(browser, http_server, "/admin/accounts/transfer/") == ["export_csv"]
        assert action_menu(browser, http_server, "/admin/accounts/ledgerentry/") == []
        assert action_menu(browser, http_server, "/admin/accounts/account/") == []
        # The list is there to read, all the same.
        assert PENDING_MEMBER_ID in browser.find_element(By.ID, "result_list").text
        assert_no_other_host(requested_urls(browser), http_server)


def test_an_operator_settles_a_transfer_after_the_confirmation_page(http_server, browser, admin_user, seeded, tmp_path):
    """Tick, choose Settle, read what will change, confirm: the transfer is settled once and on record."""
    transfer = Transfer.objects.get()
    with screenshot_on_failure(browser, tmp_path):
        sign_in(browser, http_server, admin_user.username, "password")
        assert "settle" in action_menu(browser, http_server, "/admin/accounts/transfer/")
        browser.find_element(By.CSS_SELECTOR, f'input[name=_selected_action][value="{transfer.pk}"]').click()
        browser.find_element(By.CSS_SELECTOR, "select[name=action] option[value=settle]").click()
        browser.find_element(By.CSS_SELECTOR, "#changelist-form button[name=index]").click()
        WebDriverWait(browser, WAIT_SECONDS).until(
            expected_conditions.presence_of_element_located((By.ID, "planned-changes"))
        )
        assert "marked settled" in browser.find_element(By.ID, "planned-changes").text
        transfer.refresh_from_db()
        assert transfer.status == "submitted", "nothing changes before the confirmation"

        browser.find_element(By.CSS_SELECTOR, "#content form [type=submit]").click()
        WebDriverWait(browser, WAIT_SECONDS).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".messagelist"))
        )
        assert "Settled 1 transfer(s)." in browser.find_element(By.CSS_SELECTOR, ".messagelist").text
        transfer.refresh_from_db()
        assert transfer.status == "settled"
        assert LogEntry.objects.get().user == admin_user

"""Drives the hub's dashboard in headless Chromium (selenium), as a manager would.

Called by scripts/check-dashboard.sh with a running hub, an agent enrolled to it and a
manager's token. Signs in with the keyboard, sends a detractor through the agent's intake,
waits for its case to appear on the cases page (live refresh, no reload), assigns it,
completes it with a note, and saves a screenshot of every page (English and Russian, desktop
and phone) into OUT. Fails if the page asked for anything outside the hub, if the console
shows an error (a Content-Security-Policy violation is one), or if a form field has no label.

    python3 dashboard-browser.py HUB_URL TOKEN INTAKE_URL OUT
"""

import json
import pathlib
import sys
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).parent / "lib"))
import chromium  # noqa: E402 - scripts/lib
import uuid

from selenium.webdriver.common.by import By
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.keys import Keys

hub, token, intake, out = sys.argv[1:5]
WAIT = 30  # seconds, for anything the page should show


def api(path, method="GET", body=None):
    request = urllib.request.Request(hub + path, method=method, data=None if body is None else json.dumps(body).encode())
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


# The page swaps its content every few seconds: an element found just before a refresh is
# stale after it, and is looked up again.
CHANGING = (StaleElementReferenceException, NoSuchElementException)


def on_case(step, what):
    """Runs step(article) on the new case's article, again if a refresh replaced it meanwhile."""
    for _ in range(5):
        try:
            return step(driver.find_element(*find))
        except CHANGING:
            time.sleep(0.2)
    fail(f"could not {what}: the case kept changing under the browser")


driver = chromium.start("1280,1000", WAIT)
check = chromium.Check("check-dashboard", driver, out, WAIT, ignored_exceptions=CHANGING)
fail, wait_for, shot = check.fail, check.wait_for, check.shot
try:
    # 1. A page without a session leads to sign-in; the token is typed and Enter pressed.
    driver.get(hub + "/cases")
    wait_for(lambda: "/login" in driver.current_url, "the redirect to /login")
    shot("01-login")
    # By keyboard alone: Tab from the top reaches the skip link first, then the token field.
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    if driver.switch_to.active_element.get_attribute("class") != "skip":
        fail("the first Tab does not reach the skip link")
    for _ in range(6):
        if driver.switch_to.active_element.get_attribute("id") == "token":
            break
        driver.switch_to.active_element.send_keys(Keys.TAB)
    else:
        fail("Tab never reaches the token field")
    driver.switch_to.active_element.send_keys(token + Keys.ENTER)
    wait_for(lambda: driver.current_url.rstrip("/").endswith("/cases"), "the cases page after signing in")
    if driver.get_cookies() and any(c["name"] == "fm_session" and not c["httpOnly"] for c in driver.get_cookies()):
        fail("the session cookie is readable by scripts")
    if token in driver.page_source:
        fail("the token is on the page after signing in")

    # 2. A detractor through the real agent appears as a case without a reload.
    subject = f"checkout-{uuid.uuid4().hex[:8]}"
    rating = {"source": "popup", "scale": "nps", "score": 3, "site": "branch-042", "subject": subject, "comment": "slow checkout"}
    request = urllib.request.Request(intake + "/v1/feedback", data=json.dumps(rating).encode(),
                                     headers={"Content-Type": "application/json"})
    sent = time.monotonic()
    with urllib.request.urlopen(request, timeout=10) as answer:
        if answer.status != 202:
            fail(f"the agent answered {answer.status}")
    find = (By.XPATH, f"//article[contains(@class,'case')][.//dd[normalize-space()='{subject}']]")
    wait_for(lambda: driver.find_elements(*find), f"the case of subject {subject}")
    print(f"  the detractor's case appeared on the open page {time.monotonic() - sent:.1f} s after the agent took it")
    case_id = on_case(lambda article: article.get_attribute("id"), "read the case id").removeprefix("case-")
    shot("02-cases-new-case")

    # 3. Assign it, then complete it with a note, by keyboard-reachable controls.
    def assign(article):
        owner = article.find_element(By.NAME, "owner")
        owner.clear()
        owner.send_keys("Anna Petrova")
        article.find_element(By.CSS_SELECTOR, "button[data-action=assign]").click()

    on_case(assign, "assign the case")
    wait_for(lambda: "Anna Petrova" in driver.find_element(*find).text, "the owner on the case")

    def fill(article):
        # Typing makes the form dirty, so no refresh replaces it until it is sent.
        note = article.find_element(By.NAME, "note")
        note.clear()
        note.send_keys("Called back, refunded the delivery fee.")
        reached = article.find_element(By.NAME, "customerReached")
        if not reached.is_selected():
            reached.click()

    on_case(fill, "write the closing note")
    shot("03-cases-completing")
    on_case(lambda article: article.find_element(By.CSS_SELECTOR, "button[data-action=complete]").click(), "complete the case")
    wait_for(lambda: not driver.find_elements(*find), "the completed case to leave the list of cases not closed")
    case = api(f"/v1/alerts/{case_id}")
    if case["status"] != "completed" or case.get("owner") != "Anna Petrova" or case.get("customerReached") is not True:
        fail(f"the case is not as the page left it: {case}")
    history = api(f"/v1/alerts/{case_id}/history")["history"]
    if not any(entry["to"] == "completed" and entry["note"].startswith("Called back") for entry in history):
        fail(f"the audit trail lacks the completion: {history}")
    print(f"  case {case_id}: assigned, completed with its note; the audit trail has {len(history)} entries")

    # 4. Every page, in both languages, on a desk and on a phone.
    for path, name in [("/", "overview"), ("/cases?status=all", "cases-all"), ("/fleet", "fleet"), ("/health", "health")]:
        driver.get(hub + path)
        wait_for(lambda: driver.find_element(By.TAG_NAME, "h1").text, f"the heading of {path}")
        unlabeled = driver.execute_script(
            "return [...document.querySelectorAll('main input, main select, main textarea')]"
            ".filter(e => !e.closest('label') && !e.getAttribute('aria-label') && !(e.id && document.querySelector('label[for=\"' + e.id + '\"]')))"
            ".map(e => e.name)")
        if unlabeled:
            fail(f"{path}: fields without a label: {unlabeled}")
        shot(f"04-{name}")
    driver.get(hub + "/?lang=ru")
    wait_for(lambda: driver.find_element(By.TAG_NAME, "h1").text == "Обзор", "the Russian overview")
    shot("05-overview-ru")
    driver.get(hub + "/cases?status=all")
    wait_for(lambda: driver.find_element(By.TAG_NAME, "h1").text == "Обращения", "the language kept by its cookie")
    driver.set_window_size(390, 844)
    shot("06-cases-ru-phone")
    width = driver.execute_script("return document.documentElement.scrollWidth")
    if width > 400:
        fail(f"the cases page is {width} px wide on a 390 px phone")
    driver.set_window_size(1280, 1000)
    driver.get(hub + "/?lang=en")

    # 5. Sign out ends the session.
    driver.find_element(By.ID, "sign-out").click()
    wait_for(lambda: "/login" in driver.current_url, "the sign-in page after signing out")
    driver.get(hub + "/")
    wait_for(lambda: "/login" in driver.current_url, "a page after signing out to lead to sign-in")

    # 6. Nothing but the hub was asked for; no console error (CSP violations are errors).
    origin = hub.rstrip("/")
    requested = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            requested.add(message["params"]["request"]["url"])
    foreign = sorted(url for url in requested if not url.startswith(origin + "/"))
    if foreign:
        fail(f"the pages asked for something outside the hub: {foreign}")
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    if errors:
        fail(f"console errors: {errors}")
    print(f"  {len(requested)} distinct requests, all to {origin}; no console error")
finally:
    driver.quit()
print("check-dashboard: OK")

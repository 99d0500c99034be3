"""Drives the popup widget in headless Chromium (selenium), as a customer would.

Called by scripts/check-widget.sh with a hub, an agent whose intake has a survey key for
the page's origin, the product page on that origin (SHOP) and the same page on another
origin (OTHER), and a viewer token for the hub. With the keyboard only, answers 3 with a
comment; the rating must reach the hub as NPS 3 with that comment; a reload must not show
the widget again; on the other origin the answer must be refused and nothing stored;
Escape dismisses the widget and it stays dismissed. Saves screenshots into OUT. Fails if
the widget asked for anything but the agent, if the page's own script did not run beside
it, or if a control has no accessible name.

    python3 widget-browser.py SHOP OTHER HUB_URL TOKEN AGENT_URL OUT
"""

import json
import pathlib
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).parent / "lib"))
import chromium  # noqa: E402 - scripts/lib

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

shop, other, hub, token, agent, out = sys.argv[1:7]
WAIT = 30  # seconds, for anything the page should show
COMMENT = "The checkout kept timing out"


def ratings():
    query = urllib.parse.urlencode({"site": "web-eu", "limit": 100})
    request = urllib.request.Request(f"{hub}/v1/ratings?{query}")
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)["ratings"]


def refused_from_other_origins():
    """The agent's count of answers refused for their origin (its /metrics, from this machine)."""
    with urllib.request.urlopen(f"{agent}/metrics", timeout=10) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith("feedback_agent_intake_responses_total{") and 'reason="foreignOrigin"' in line:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def widget():
    hosts = driver.find_elements(By.CSS_SELECTOR, "[data-feedbackmesh]")
    return hosts[0].shadow_root if hosts else None


def check_page_script():
    text = driver.find_element(By.ID, "page-script").text
    if text != "the page script ran":
        fail(f"the page's own script did not run beside the widget: {text!r}")


driver = chromium.start("1100,800", WAIT)
check = chromium.Check("check-widget", driver, out, WAIT)
fail, wait_for, shot = check.fail, check.wait_for, check.shot
try:
    # 1. The page shows the widget; its own script still runs.
    driver.get(shop)
    root = wait_for(widget, "the widget to appear")
    check_page_script()
    dialog = root.find_element(By.CSS_SELECTOR, "section[role=dialog]")
    if not dialog.get_attribute("aria-label"):
        fail("the widget's dialog has no accessible name")
    scores = root.find_elements(By.CSS_SELECTOR, "button[data-score]")
    if [b.text for b in scores] != [str(n) for n in range(11)]:
        fail(f"the NPS widget should offer 0–10, offers {[b.text for b in scores]}")
    unnamed = [b.text for b in root.find_elements(By.CSS_SELECTOR, "button") if not (b.get_attribute("aria-label") or b.text.strip())]
    if unnamed:
        fail(f"buttons without an accessible name: {unnamed}")
    if not root.find_elements(By.CSS_SELECTOR, "label[for=fm-c]"):
        fail("the comment field has no label")
    print("  the widget is shown beside the page's own script; every control is named")

    # 2. Keyboard only: Enter on 3, type a comment, Enter on Send.
    scores[3].send_keys(Keys.ENTER)
    wait_for(lambda: scores[3].get_attribute("aria-pressed") == "true", "the 3 to be chosen with Enter")
    root.find_element(By.CSS_SELECTOR, "textarea").send_keys(COMMENT)
    shot("01-widget-answered")
    root.find_element(By.CSS_SELECTOR, "button.send").send_keys(Keys.ENTER)
    wait_for(lambda: root.find_element(By.CSS_SELECTOR, "[role=status]").text == "Thank you!", "the thanks after sending")
    shot("02-widget-thanks")

    # 3. The rating reached the hub through the agent: NPS 3 with the comment.
    deadline = time.time() + WAIT
    stored = []
    while time.time() < deadline:
        stored = [r for r in ratings() if r["comment"] == COMMENT]
        if stored:
            break
        time.sleep(0.5)
    if len(stored) != 1:
        fail(f"the answer should reach the hub once, found {len(stored)}")
    rating = stored[0]
    if (rating["scale"], rating["score"], rating["source"], rating["survey"], rating["site"]) != ("nps", 3, "popup", "onboarding-nps", "web-eu"):
        fail(f"the hub stored something else: {rating}")
    print(f"  the hub has it: NPS {rating['score']}, survey {rating['survey']}, site {rating['site']}, comment {rating['comment']!r}")

    # 4. A reload does not ask again.
    driver.get(shop)
    check_page_script()
    time.sleep(1.5)
    if widget() is not None:
        fail("the widget was shown again after the customer answered")
    print("  not shown again after a reload")

    # Only the page's origin and the agent were asked for; no console error on the allowed page.
    requested = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            requested.add(message["params"]["request"]["url"])
    shop_origin = shop.split("/index.html")[0]
    foreign = sorted(u for u in requested if not u.startswith(shop_origin + "/") and "/v1/widget.js" not in u and "/v1/feedback" not in u)
    if foreign:
        fail(f"something outside the page and the agent was asked for: {foreign}")
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    if errors:
        fail(f"console errors on the allowed page: {errors}")
    print(f"  {len(requested)} distinct requests, to the page and the agent only; no console error")

    # 5. The same page on another origin (in Russian) cannot submit.
    driver.get(other)
    root = wait_for(widget, "the widget on the other origin")
    check_page_script()
    question = root.find_element(By.CSS_SELECTOR, "#fm-q").text
    if not question.startswith("Насколько вероятно"):
        fail(f"data-lang=ru should ask in Russian, asks {question!r}")
    root.find_elements(By.CSS_SELECTOR, "button[data-score]")[7].click()
    root.find_element(By.CSS_SELECTOR, "button.send").click()
    wait_for(lambda: "Не удалось отправить" in root.find_element(By.CSS_SELECTOR, "[role=status]").text, "the refusal on the other origin, in Russian")
    shot("03-widget-other-origin-refused-ru")
    # The agent itself refused it (not only the browser hiding the answer): counted as foreignOrigin.
    if refused_from_other_origins() < 1:
        fail("the agent did not refuse the other origin's answer (no foreignOrigin in its /metrics)")
    if any(r["score"] == 7 for r in ratings()):
        fail("a page on another origin submitted a rating")
    print("  a page on another origin (in Russian) is refused by the agent; nothing stored")

    # 6. Escape dismisses it, and a dismissed widget stays away.
    root.find_element(By.CSS_SELECTOR, "textarea").send_keys(Keys.ESCAPE)
    wait_for(lambda: widget() is None, "Escape to dismiss the widget")
    driver.get(other)
    time.sleep(1.5)
    if widget() is not None:
        fail("the widget came back after it was dismissed")
    print("  Escape dismisses it and it stays dismissed")
finally:
    driver.quit()
print("check-widget: browser checks passed")

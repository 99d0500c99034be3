"""Headless Chromium for the browser checks (scripts/*-browser.py): Debian's chromium and
chromium-driver, every request and console message logged for the checks to read."""

import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait


def start(window_size, page_load_timeout):
    """A headless Chromium driven by selenium, its window `window_size` ("W,H")."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={window_size}",
                     "--lang=en-US", "--no-first-run", "--disable-background-networking", "--disable-component-update"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(page_load_timeout)
    return driver


class Check:
    """What every browser check does around its steps: fail with a line and a screenshot,
    wait for a condition with a bound, save a named screenshot."""

    def __init__(self, name, driver, out, wait, ignored_exceptions=()):
        self.name, self.driver, self.out, self.wait = name, driver, out, wait
        self.ignored_exceptions = ignored_exceptions

    def fail(self, message):
        """Says what failed, saves the page as failure.png if the browser is still there, exits 1."""
        print(f"{self.name}: FAILED: {message}", file=sys.stderr)
        try:
            self.driver.save_screenshot(f"{self.out}/failure.png")
            print(f"{self.name}: screenshot of the failure in {self.out}/failure.png", file=sys.stderr)
        except Exception:  # noqa: BLE001 - the browser may be gone
            pass
        sys.exit(1)

    def wait_for(self, condition, what, seconds=None):
        """condition()'s first true value within `seconds` (the check's wait), else a failure naming `what`."""
        seconds = seconds or self.wait
        try:
            return WebDriverWait(self.driver, seconds, poll_frequency=0.2, ignored_exceptions=self.ignored_exceptions).until(
                lambda _: condition())
        except Exception:  # noqa: BLE001 - the timeout
            self.fail(f"waited {seconds} s for {what}")

    def shot(self, name):
        """Saves the page as OUT/name.png."""
        self.driver.save_screenshot(f"{self.out}/{name}.png")
        print(f"  screenshot {name}.png")

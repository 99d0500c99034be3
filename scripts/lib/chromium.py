"""Headless Chromium for the browser checks (scripts/*-browser.py): Debian's chromium and
chromium-driver, every request and console message logged for the checks to read."""

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


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

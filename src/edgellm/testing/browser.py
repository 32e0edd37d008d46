"""Headless Chromium for the monitor's tests and screenshots: Debian's ``chromium`` and
``chromium-driver`` packages driven by Selenium, both found on this machine (the
driver's path is given, so Selenium's own manager never downloads anything)."""

import importlib.util
import os
import shutil

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVER = "chromedriver"


def browser_paths():
    """(browser binary, chromedriver) found on PATH (or /usr/bin), either None."""
    binary = next((p for p in (shutil.which(b) for b in BROWSERS) if p), None)
    driver = shutil.which(DRIVER) or ("/usr/bin/chromedriver"
                                      if os.path.exists("/usr/bin/chromedriver") else None)
    return binary, driver


def missing_browser():
    """Why no headless browser can run here (one line), or None."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install 'edgellm[test-tools]')"
    binary, driver = browser_paths()
    if binary is None or driver is None:
        return ("no chromium or chromedriver on PATH (Debian: apt-get install chromium "
                "chromium-driver)")
    return None


def headless_chromium(width=1400, height=1000):
    """A Selenium driver of headless Chromium that keeps the console's messages
    (``console_errors``)."""
    # imported here: selenium is a test tool, not a dependency of the library
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-extensions", "--disable-background-networking",
                f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(arg)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to run as root otherwise
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


def console_errors(driver):
    """The console's errors since the last call (the log is drained as it is read)."""
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]

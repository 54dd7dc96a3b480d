"""Headless Chromium (Debian's chromium and chromedriver) through Selenium.

No browser is downloaded: the binaries are the system's (system-packages.txt).
Every page the test reaches is screenshotted in memory; on failure the
screenshots are written to ``.test-screenshots/<test>/`` (git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("CHROMIUM_BINARY") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / ".test-screenshots"
WAIT_SECONDS = 120  # a restore on a busy machine; never asserted on


class Browser:
    def __init__(self, *, width: int = 1280, height: int = 900):
        self.profile = Path(tempfile.mkdtemp(prefix="psico-chromium-"))
        self.downloads = self.profile / "downloads"
        self.downloads.mkdir()
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            f"--user-data-dir={self.profile / 'profile'}",
            f"--window-size={width},{height}",
        ):
            options.add_argument(argument)
        options.add_experimental_option(
            "prefs",
            {
                "download.default_directory": str(self.downloads),
                "download.prompt_for_download": False,
                "safebrowsing.enabled": False,
            },
        )
        # Selenium Manager is never asked for anything: both binaries are given.
        os.environ.setdefault("SE_OFFLINE", "true")
        self.driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        self.driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(self.downloads)}
        )
        if width < 500:
            # Chromium windows are at least ~500 px wide: narrower screens are emulated.
            self.driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True},
            )
        self.screenshots: list[tuple[str, bytes]] = []

    # Driving ---------------------------------------------------------------------------

    def open(self, url: str) -> None:
        self.driver.get(url)
        self.snap()

    def find(self, css: str):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def fill(self, label_text: str, value: str) -> None:
        """Type into the control whose <label> says ``label_text`` (labels must exist)."""
        label = self.driver.find_element(By.XPATH, f"//label[normalize-space()={_xpath_literal(label_text)}]")
        control = self.driver.find_element(By.ID, label.get_attribute("for"))
        control.clear()
        control.send_keys(value)

    def click_button(self, text: str) -> None:
        """Click a button that submits a form, and wait for the next page."""
        self._navigating(lambda: self.button(text).click())

    def button(self, text: str):
        return self.driver.find_element(By.XPATH, f"//button[normalize-space()={_xpath_literal(text)}]")

    def click_link(self, text: str) -> None:
        self._navigating(
            lambda: self.driver.find_element(By.XPATH, f"//a[normalize-space()={_xpath_literal(text)}]").click()
        )

    def press_enter_in(self, label_text: str) -> None:
        """Submit a form from the keyboard: Enter in the labelled control."""
        label = self.driver.find_element(By.XPATH, f"//label[normalize-space()={_xpath_literal(label_text)}]")
        control = self.driver.find_element(By.ID, label.get_attribute("for"))
        self._navigating(lambda: control.send_keys(Keys.ENTER))

    def _navigating(self, action) -> None:
        old_page = self.find("html")
        action()

        def replaced(_driver) -> bool:
            try:
                old_page.is_enabled()
            except StaleElementReferenceException:
                return True
            return False

        # Mid-navigation, Chromium may answer other errors about the old document: retried.
        wait = WebDriverWait(self.driver, WAIT_SECONDS, ignored_exceptions=(WebDriverException,))
        wait.until(replaced)
        wait.until(lambda driver: driver.execute_script("return document.readyState") == "complete")
        self.snap()

    def wait_for(self, css: str):
        return WebDriverWait(self.driver, WAIT_SECONDS).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
        )

    def text(self) -> str:
        return self.find("body").text

    def heading(self) -> str:
        return self.find("h1").text

    def downloaded_file(self, name: str) -> Path:
        path = self.downloads / name
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            partial = list(self.downloads.glob("*.crdownload"))
            if path.exists() and not partial:
                return path
            time.sleep(0.1)
        raise AssertionError(f"{name} no se descargó: {sorted(p.name for p in self.downloads.iterdir())}")

    # Evidence --------------------------------------------------------------------------

    def snap(self) -> None:
        try:
            title = self.driver.title or "pagina"
            self.screenshots.append((title, self.driver.get_screenshot_as_png()))
        except Exception as error:  # evidence only: never the reason a test fails
            print(f"Sin captura de pantalla: {error!r}")

    def save_screenshots(self, test_name: str) -> Path:
        folder = SCREENSHOT_DIR / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.snap()
        for index, (title, png) in enumerate(self.screenshots, start=1):
            slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-")[:60] or "pagina"
            (folder / f"{index:02d}-{slug}.png").write_bytes(png)
        return folder

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


def _xpath_literal(text: str) -> str:
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    parts = text.split("'")
    return "concat(" + ', "\'", '.join(f"'{part}'" for part in parts) + ")"

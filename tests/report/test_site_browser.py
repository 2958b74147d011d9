"""Browser test of the static site (issue #9): headless Chromium, driven over the DevTools
protocol, opens index.html from disk, searches a class, opens a pair page, and checks that every
image loaded and the console shows no errors; a screenshot is saved and its path printed.

Chromium is Debian's `chromium`, installed with apt-get when missing (the test fails, never skips,
when it cannot be installed)."""

import json
import re
import shutil
import subprocess
import time
import urllib.request

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--remote-debugging-port=0",
         "--disable-default-apps", "--disable-sync", "--window-size=1200,900"]  # fmt: skip


def chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        r = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, text=True, env=env)
        if r.returncode != 0:  # stale package lists
            subprocess.run(["apt-get", "update"], capture_output=True, env=env)
            r = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, text=True, env=env)
        exe = shutil.which("chromium")
        assert exe is not None, f"could not install chromium with apt-get: {r.stderr[-2000:]}"
    return exe


class DevTools:
    """Minimal DevTools protocol client: commands by id, events kept in order."""

    def __init__(self, ws_url: str):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id, self.events = 0, []

    def send(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                assert "error" not in msg, f"{method}: {msg['error']}"
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 30):
        start, seen = time.monotonic(), len(self.events)
        while time.monotonic() - start < timeout:
            if any(e.get("method") == method for e in self.events[seen:]):
                return
            self.events.append(json.loads(self.ws.recv()))
        raise AssertionError(f"no {method} within {timeout} s")

    def navigate(self, url: str):
        seen = len(self.events)
        self.send("Page.navigate", url=url)
        if not any(e.get("method") == "Page.loadEventFired" for e in self.events[seen:]):
            self.wait_for("Page.loadEventFired")

    def eval(self, expression: str):
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in r, r["exceptionDetails"]
        return r["result"].get("value")

    def errors(self) -> list[str]:
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(json.dumps(p.get("args"))[:300])
            elif m == "Runtime.exceptionThrown":
                out.append(json.dumps(p.get("exceptionDetails"))[:300])
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(p["entry"].get("text", "")[:300] + " " + p["entry"].get("url", ""))
        return out


@pytest.fixture
def browser(tmp_path):
    proc = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        ws, start = None, time.monotonic()
        while ws is None and time.monotonic() - start < 60:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "chromium exited before listening"
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            ws = m.group(1) if m else None
        assert ws, "chromium did not open its DevTools port"
        port = re.search(r":(\d+)/", ws).group(1)
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        dt = DevTools(page["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log"):
            dt.send(f"{domain}.enable")
        yield dt
        dt.ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
def test_site_in_headless_chromium(small_site, browser, tmp_path):
    out, names = small_site["out"], small_site["classes"]
    index = (out / "index.html").as_uri()
    wanted = names[1]
    # search through the URL, then by typing into the box
    browser.navigate(f"{index}?q={wanted}")
    shown = browser.eval("Array.from(document.querySelectorAll('#results a')).map(a => a.textContent)")
    assert shown and all(s.startswith(wanted) for s in shown), shown
    assert len(shown) == len(list(out.glob("pages/*_c1_*.html")))  # every page of class 1, only those
    typed = browser.eval(f"""(() => {{ const box = document.getElementById('q'); box.value = '{names[2]}';
        box.dispatchEvent(new Event('input')); return Array.from(document.querySelectorAll('#results a'))
        .map(a => a.textContent); }})()""")  # fmt: skip
    assert typed and all(s.startswith(names[2]) for s in typed), typed
    # open the class's first (class, feature) page from the search results
    href = browser.eval("document.querySelector('#results a[href*=\"feature_\"]').href")
    browser.eval("document.querySelector('#results a[href*=\"feature_\"]').click()")
    browser.wait_for("Page.loadEventFired")
    assert browser.eval("location.href") == href
    images = browser.eval("Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
    assert len(images) >= 4, images
    broken = [src for src, complete, width in images if not complete or width == 0]
    assert not broken, f"images not loaded: {broken}"
    assert browser.errors() == [], browser.errors()
    shot = tmp_path / "results" / "site_pair_page.png"
    shot.parent.mkdir()
    import base64

    shot.write_bytes(base64.b64decode(browser.send("Page.captureScreenshot", format="png")["data"]))
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


@pytest.mark.slow
def test_browser_check_sees_broken_images_and_console_errors(browser, tmp_path):
    """Control: the same checks flag a missing image and a console error."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img src="missing.png"><script>console.error("boom")</script></body></html>'
    )
    browser.navigate(page.as_uri())
    images = browser.eval("Array.from(document.images).map(i => i.naturalWidth)")
    assert images == [0]
    errors = " ".join(browser.errors())
    assert "boom" in errors and "missing.png" in errors, errors

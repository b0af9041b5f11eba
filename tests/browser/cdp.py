"""Loads pages in headless Chromium over the DevTools protocol and reports,
as one JSON object per page on stdout, what an investigator would see:
console errors and exceptions, every request the page made, each image's
source and whether it decoded (naturalWidth), the text of <mark> elements,
the page's title and final location, and the service workers registered for
its origin. A page with an element `#custody-test-click` is clicked once
(a real mouse event) before it is probed.

Usage: cdp.py CHROMIUM [--login BASE TOKEN] URL [URL...]
(run by tests/it/browser.rs). With --login, signs in first through the UI's
login form at BASE/login, so the pages are read with the token's cookie.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket  # websocket-client


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Tab:
    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=30)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method, timeout=30):
        deadline = time.time() + timeout
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                del self.events[: i + 1]
                return e
        while time.time() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == method:
                return msg
            self.events.append(msg)
        raise TimeoutError(method)


PROBE = """(async () => {
  let workers = null;
  try {
    workers = (await navigator.serviceWorker.getRegistrations()).map(r => r.scope);
  } catch (e) {
    workers = 'unavailable: ' + e.name;
  }
  return {
    title: document.title,
    location: location.href,
    images: Array.from(document.images).map(i => ({src: i.currentSrc || i.src, complete: i.complete, naturalWidth: i.naturalWidth})),
    marks: Array.from(document.querySelectorAll('mark')).map(m => m.textContent),
    text: document.body ? document.body.innerText.slice(0, 20000) : '',
    service_workers: workers,
  };
})()"""

# A page that has an element with this id gets one real mouse click on it
# (a user gesture, which popups need) after it loads.
CLICK = """(() => {
  const e = document.getElementById('custody-test-click');
  if (!e) return null;
  const r = e.getBoundingClientRect();
  return {x: r.left + r.width / 2, y: r.top + r.height / 2};
})()"""


def main():
    chromium, urls = sys.argv[1], sys.argv[2:]
    login = None
    if urls[:1] == ["--login"]:
        login, urls = (urls[1], urls[2]), urls[3:]
    profile = tempfile.mkdtemp(prefix="custody-chromium-")
    port = free_port()
    proc = subprocess.Popen(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-dev-shm-usage", "--disable-extensions", "--disable-background-networking",
         f"--remote-debugging-port={port}", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
                page = next(t for t in targets if t["type"] == "page")
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        tab = Tab(page["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log", "Network"):
            tab.call(f"{domain}.enable")
        if login:
            base, token = login
            tab.call("Page.navigate", url=f"{base}/login")
            tab.wait_for("Page.loadEventFired")
            tab.call("Runtime.evaluate", expression=(
                "document.querySelector('input[name=token]').value = %s;"
                "document.querySelector('form').submit();" % json.dumps(token)))
            tab.wait_for("Page.loadEventFired")
        for url in urls:
            tab.events.clear()
            tab.call("Page.navigate", url=url)
            tab.wait_for("Page.loadEventFired")
            time.sleep(0.5)  # late console messages and image decodes
            at = tab.call("Runtime.evaluate", expression=CLICK, returnByValue=True)["result"].get("value")
            if at:
                for kind in ("mousePressed", "mouseReleased"):
                    tab.call("Input.dispatchMouseEvent", type=kind, x=at["x"], y=at["y"],
                             button="left", clickCount=1)
                time.sleep(3)  # what the click sets off
            probe = tab.call("Runtime.evaluate", expression=PROBE, returnByValue=True,
                             awaitPromise=True)["result"]["value"]
            # Drain what arrived meanwhile.
            tab.ws.settimeout(0.3)
            try:
                while True:
                    tab.events.append(json.loads(tab.ws.recv()))
            except Exception:
                pass
            tab.ws.settimeout(30)
            errors, requests = [], []
            for e in tab.events:
                m, p = e.get("method"), e.get("params", {})
                if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                    errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
                elif m == "Runtime.exceptionThrown":
                    errors.append(p["exceptionDetails"].get("text", "exception"))
                elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                    errors.append(p["entry"].get("text", ""))
                elif m == "Network.requestWillBeSent":
                    requests.append(p["request"]["url"])
            probe.update({"url": url, "console_errors": errors, "requests": requests})
            print(json.dumps(probe), flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Loads pages in headless Chromium over the DevTools protocol and reports,
as one JSON object per page on stdout, what an investigator would see:
console errors and exceptions, every request the page made (its frames'
included), each image's source and whether it decoded (naturalWidth), the
text of <mark> elements, the page's title and final location, the service
workers registered for its origin, the positions of custody's banner and
frame and of every element with a `data-custody-measure` attribute (named
by its value), and whatever the page's own script left in
`window.__custody_test`. Each frame of the page (custody's frame page holds
the archived page in one) is reported the same way under "frames". An
element `#custody-test-click`, in the page or a frame, is clicked once (a
real mouse event) before the page is probed.

Usage: cdp.py CHROMIUM [--login BASE TOKEN] [--wait-for EXPR] [--act EXPR] URL [URL...]
(run by tests/it/browser.rs). With --login, signs in first through the UI's
login form at BASE/login, so the pages are read with the token's cookie.
With --wait-for, each page is probed once the JavaScript expression EXPR is
true in it (polled for up to 60 s; the report's "waited" says whether it
came true), for applications that render after their load event; EXPR may
use deepText() and deepAll(selector), which see into open shadow roots.
The report's "deep_text" is deepText(): the page's text with that of open
shadow roots.
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
    """One page target; frames in other processes are attached as child
    sessions of the same connection (flattened)."""

    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=30)
        self.next_id = 0
        self.events = []
        # frameId -> default execution context, for frames in this process.
        self.contexts = {}
        # sessionId -> frameId of each frame in another process.
        self.sessions = {}

    def send(self, method, session=None, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        return self.next_id

    def handle(self, msg):
        m, p = msg.get("method"), msg.get("params", {})
        if m == "Runtime.executionContextCreated" and not msg.get("sessionId"):
            aux = p["context"].get("auxData", {})
            if aux.get("isDefault"):
                self.contexts[aux.get("frameId")] = p["context"]["id"]
        elif m == "Runtime.executionContextsCleared" and not msg.get("sessionId"):
            self.contexts.clear()
        elif m == "Target.attachedToTarget":
            sid = p["sessionId"]
            self.sessions[sid] = p["targetInfo"].get("targetId")
            for domain in ("Runtime", "Network", "Log"):
                self.send(f"{domain}.enable", session=sid)
            self.send("Runtime.runIfWaitingForDebugger", session=sid)
        elif m == "Target.detachedFromTarget":
            self.sessions.pop(p.get("sessionId"), None)
        self.events.append(msg)

    def call(self, method, session=None, **params):
        my_id = self.send(method, session=session, **params)
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.handle(msg)

    def wait_for(self, method, timeout=30):
        deadline = time.time() + timeout
        for i, e in enumerate(self.events):
            if e.get("method") == method and not e.get("sessionId"):
                del self.events[: i + 1]
                return e
        while time.time() < deadline:
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                if msg.get("method") == method and not msg.get("sessionId"):
                    return msg
                self.handle(msg)
        raise TimeoutError(method)

    def drain(self, seconds):
        self.ws.settimeout(seconds)
        try:
            while True:
                msg = json.loads(self.ws.recv())
                if "method" in msg:
                    self.handle(msg)
        except Exception:
            pass
        self.ws.settimeout(30)

    def evaluate(self, expression, session=None, context=None):
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        if context is not None:
            params["contextId"] = context
        try:
            result = self.call("Runtime.evaluate", session=session, **params)
        except RuntimeError:
            return None
        return result.get("result", {}).get("value")

    def child_frames(self):
        """(session, context) of every frame but the main one."""
        tree = self.call("Page.getFrameTree")["frameTree"]
        main = tree["frame"]["id"]
        out = []

        def walk(node):
            for child in node.get("childFrames", []):
                fid = child["frame"]["id"]
                if fid in self.contexts and fid != main:
                    out.append((None, self.contexts[fid]))
                walk(child)

        walk(tree)
        out.extend((sid, None) for sid in list(self.sessions))
        return out


# What the probe and --wait-for expressions may use: the page's text and
# its elements, open shadow roots included (applications built of web
# components render there).
HELPERS = """
const deepWalk = visit => {
  const w = n => { visit(n); if (n.shadowRoot) w(n.shadowRoot); n.childNodes.forEach(w); };
  w(document);
};
const deepText = () => {
  let t = '';
  deepWalk(n => {
    if (n.nodeType === 3 && !['SCRIPT', 'STYLE'].includes(n.parentNode && n.parentNode.nodeName)) t += n.textContent + ' ';
  });
  return t.replace(/\\s+/g, ' ');
};
const deepAll = selector => {
  const found = [];
  deepWalk(n => { if (n.nodeType === 1 && n.matches(selector)) found.push(n); });
  return found;
};
"""

PROBE = """(async () => {""" + HELPERS + """
  let workers = null;
  try {
    workers = (await navigator.serviceWorker.getRegistrations()).map(r => r.scope);
  } catch (e) {
    workers = 'unavailable: ' + e.name;
  }
  const measured = {};
  const rect = e => {
    const r = e.getBoundingClientRect();
    return {top: r.top, left: r.left, bottom: r.bottom, right: r.right, width: r.width, height: r.height};
  };
  for (const e of document.querySelectorAll('[data-custody-measure], #custody-banner, #custody-frame')) {
    measured[e.getAttribute('data-custody-measure') || e.id] = rect(e);
  }
  return {
    deep_text: deepText().slice(0, 50000),
    title: document.title,
    location: location.href,
    images: Array.from(document.images).map(i => ({src: i.currentSrc || i.src, complete: i.complete, naturalWidth: i.naturalWidth})),
    marks: Array.from(document.querySelectorAll('mark')).map(m => m.textContent),
    text: document.body ? document.body.innerText.slice(0, 20000) : '',
    service_workers: workers,
    measured: measured,
    test: window.__custody_test === undefined ? null : window.__custody_test,
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


def click(tab):
    """Clicks `#custody-test-click` once, in the page or in one of its
    frames (a frame's point is offset by custody's frame element)."""
    at = tab.evaluate(CLICK)
    if not at:
        offset = tab.evaluate("(() => { const f = document.getElementById('custody-frame');"
                              " if (!f) return {x: 0, y: 0}; const r = f.getBoundingClientRect();"
                              " return {x: r.left, y: r.top}; })()") or {"x": 0, "y": 0}
        for s, c in tab.child_frames():
            inner = tab.evaluate(CLICK, session=s, context=c)
            if inner:
                at = {"x": inner["x"] + offset["x"], "y": inner["y"] + offset["y"]}
                break
    if not at:
        return
    for kind in ("mousePressed", "mouseReleased"):
        tab.call("Input.dispatchMouseEvent", type=kind, x=at["x"], y=at["y"],
                 button="left", clickCount=1)
    time.sleep(3)  # what the click sets off
    tab.drain(0.2)


def main():
    chromium, urls = sys.argv[1], sys.argv[2:]
    login = None
    if urls[:1] == ["--login"]:
        login, urls = (urls[1], urls[2]), urls[3:]
    wait_for = None
    if urls[:1] == ["--wait-for"]:
        wait_for, urls = urls[1], urls[2:]
    # With --act, each page, once loaded, runs EXPR (which ends by sending
    # a form, as a user would), and what the form leads to is probed.
    act = None
    if urls[:1] == ["--act"]:
        act, urls = urls[1], urls[2:]
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
        tab.call("Target.setAutoAttach", autoAttach=True, waitForDebuggerOnStart=False, flatten=True)
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
            tab.drain(0.8)  # late console messages, image decodes, frames' scripts
            waited = None
            if wait_for:
                deadline = time.time() + 60
                waited = False
                while time.time() < deadline and not waited:
                    waited = bool(tab.evaluate("(() => {" + HELPERS + "return (" + wait_for + "); })()"))
                    if not waited:
                        tab.drain(0.5)
                tab.drain(0.5)
            click(tab)
            if act:
                tab.events.clear()
                done = tab.evaluate("(() => {" + HELPERS + "return (" + act + "); })()")
                if done is not True:
                    raise RuntimeError(f"--act on {url} returned {done!r}")
                tab.wait_for("Page.loadEventFired")
                tab.drain(0.8)
            probe = tab.evaluate(PROBE) or {}
            probe["waited"] = waited
            probe["frames"] = [tab.evaluate(PROBE, session=s, context=c) for s, c in tab.child_frames()]
            tab.drain(0.3)
            errors, requests = [], []
            for e in tab.events:
                m, p = e.get("method"), e.get("params", {})
                if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                    errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
                elif m == "Runtime.exceptionThrown":
                    errors.append(p["exceptionDetails"].get("text", "exception") + " " + str(
                        p["exceptionDetails"].get("exception", {}).get("description", "")))
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

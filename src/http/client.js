// custody's client-side rewriter (src/http/rewrite.rs puts it first in the
// head of every replayed document, called with that document's settings:
// prefix, timestamp, modifier and archived URL).
//
// Scripts build URLs the server-side rewriter never sees: absolute ones
// (https://cdn.example/tile/3/4.png), and paths that the browser would
// resolve against custody's origin rather than the archived site's. This
// maps them into the archive as they are used: fetch, XMLHttpRequest,
// sendBeacon, EventSource, history, the URL properties and attributes of
// elements, and markup inserted as text (after the fact, by a
// MutationObserver). Module specifiers are mapped by the import map placed
// before this script. Archived code can undo all of it: this is for
// fidelity only; the replay's Content-Security-Policy is what keeps every
// request inside the archive.
(function (C) {
  "use strict";
  var loc = window.location;
  var origin = loc.protocol + "//" + loc.host;
  var root = C.prefix + "/replay/";
  var EMBED = "if_";

  // The archived URL inside a replay URL, or null.
  function unwrap(u) {
    var s = String(u);
    var i = s.indexOf("/replay/");
    if (i < 0) return null;
    var rest = s.slice(i + 8);
    var slash = rest.indexOf("/");
    if (slash < 0) return null;
    var tail = rest.slice(slash + 1);
    return /^https?:\/\//i.test(tail) ? tail : null;
  }

  // What relative URLs resolve against: the archived base of the document.
  function base() {
    return unwrap(document.baseURI) || C.url;
  }

  // The archive URL for `value` (a navigation when `mod` is ""), or
  // `value` itself when it is not an http(s) URL or is already inside.
  function rw(value, mod) {
    if (value === null || value === undefined) return value;
    var t = String(value).trim();
    if (!t || t.charAt(0) === "#") return value;
    if (/^(data|blob|javascript|about|mailto|tel|sms):/i.test(t)) return value;
    if (t.indexOf(origin + "/") === 0) {
      // Built from custody's own location: a path of the archived site.
      t = t.slice(origin.length);
    }
    if (t.indexOf(root) === 0) return t;
    if (t.indexOf("/replay/") === 0) return C.prefix + t;
    var abs;
    try {
      abs = new URL(t, base());
    } catch (e) {
      return value;
    }
    if (abs.protocol !== "http:" && abs.protocol !== "https:") return value;
    return root + C.timestamp + mod + "/" + abs.href;
  }

  // srcset, parsed by the WHATWG rules (commas inside a URL stay in it).
  function rwSrcset(value) {
    if (value === null || value === undefined) return value;
    var s = String(value), out = [], i = 0, n = s.length;
    while (i < n) {
      while (i < n && /[\s,]/.test(s.charAt(i))) i++;
      var start = i;
      while (i < n && !/\s/.test(s.charAt(i))) i++;
      var url = s.slice(start, i);
      var comma = /,$/.test(url);
      url = url.replace(/,+$/, "");
      var from = i;
      if (!comma) {
        var depth = 0;
        for (; i < n; i++) {
          var c = s.charAt(i);
          if (c === "(") depth++;
          else if (c === ")" && depth > 0) depth--;
          else if (c === "," && depth === 0) break;
        }
      }
      if (url) {
        var d = s.slice(from, i).trim();
        out.push(rw(url, EMBED) + (d ? " " + d : ""));
      }
    }
    return out.join(", ");
  }

  var URL_ATTRS = { src: 1, href: 1, poster: 1, data: 1, action: 1, background: 1, lowsrc: 1 };
  var SRCSET_ATTRS = { srcset: 1, imagesrcset: 1 };

  function rwAttr(el, name, value) {
    var n = String(name).toLowerCase();
    var tag = el && el.localName;
    if (SRCSET_ATTRS[n]) return rwSrcset(value);
    if (n === "xlink:href") return rw(value, EMBED);
    if (!URL_ATTRS[n]) return value;
    if (n === "data" && tag !== "object") return value;
    if (n === "action" && tag !== "form") return value;
    var navigates = (n === "href" && (tag === "a" || tag === "area")) || n === "action";
    return rw(value, navigates ? "" : EMBED);
  }

  var fetch0 = window.fetch;
  if (fetch0) {
    window.fetch = function (input, init) {
      if (typeof input === "string" || input instanceof URL) {
        input = rw(String(input), EMBED);
      } else if (input instanceof Request) {
        var u = rw(input.url, EMBED);
        if (u !== input.url) input = new Request(u, input);
      }
      return fetch0.call(this, input, init);
    };
  }

  var open0 = XMLHttpRequest.prototype.open;
  XMLHttpRequest.prototype.open = function () {
    var args = Array.prototype.slice.call(arguments);
    if (args.length > 1) args[1] = rw(args[1], EMBED);
    return open0.apply(this, args);
  };

  if (navigator.sendBeacon) {
    var beacon0 = navigator.sendBeacon.bind(navigator);
    navigator.sendBeacon = function (u, data) {
      return beacon0(rw(u, EMBED), data);
    };
  }

  if (window.EventSource) {
    var EventSource0 = window.EventSource;
    var EventSource1 = function (u, options) {
      return new EventSource0(rw(u, EMBED), options);
    };
    EventSource1.prototype = EventSource0.prototype;
    window.EventSource = EventSource1;
  }

  ["pushState", "replaceState"].forEach(function (m) {
    var f = history[m];
    history[m] = function (state, title, url) {
      if (arguments.length > 2 && url !== null && url !== undefined) {
        return f.call(history, state, title, rw(url, C.modifier));
      }
      return f.apply(history, arguments);
    };
  });

  var setAttribute0 = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    return setAttribute0.call(this, name, rwAttr(this, name, value));
  };
  var setAttributeNS0 = Element.prototype.setAttributeNS;
  Element.prototype.setAttributeNS = function (ns, name, value) {
    var local = String(name).split(":").pop().toLowerCase();
    return setAttributeNS0.call(this, ns, name, local === "href" ? rw(value, EMBED) : value);
  };

  [
    ["HTMLImageElement", "src"], ["HTMLImageElement", "srcset"],
    ["HTMLSourceElement", "src"], ["HTMLSourceElement", "srcset"],
    ["HTMLScriptElement", "src"], ["HTMLLinkElement", "href"],
    ["HTMLIFrameElement", "src"], ["HTMLFrameElement", "src"],
    ["HTMLMediaElement", "src"], ["HTMLVideoElement", "poster"],
    ["HTMLEmbedElement", "src"], ["HTMLObjectElement", "data"],
    ["HTMLTrackElement", "src"], ["HTMLInputElement", "src"],
    ["HTMLAnchorElement", "href"], ["HTMLAreaElement", "href"],
    ["HTMLFormElement", "action"], ["HTMLBaseElement", "href"]
  ].forEach(function (p) {
    var type = window[p[0]];
    var d = type && Object.getOwnPropertyDescriptor(type.prototype, p[1]);
    if (!d || !d.set) return;
    Object.defineProperty(type.prototype, p[1], {
      configurable: true,
      enumerable: d.enumerable,
      get: d.get,
      set: function (v) {
        d.set.call(this, rwAttr(this, p[1], v));
      }
    });
  });

  // Markup inserted as text (innerHTML, insertAdjacentHTML, document.write).
  var NAMES = ["src", "href", "srcset", "poster", "data", "action"];
  function fix(el) {
    if (!el || el.nodeType !== 1) return;
    for (var i = 0; i < NAMES.length; i++) {
      var v = el.getAttribute(NAMES[i]);
      if (v === null) continue;
      var nv = rwAttr(el, NAMES[i], v);
      if (nv !== v) setAttribute0.call(el, NAMES[i], nv);
    }
  }
  new MutationObserver(function (records) {
    records.forEach(function (r) {
      r.addedNodes.forEach(function (node) {
        fix(node);
        if (node.querySelectorAll) {
          node.querySelectorAll("[src],[href],[srcset],[poster],[data],[action]").forEach(fix);
        }
      });
    });
  }).observe(document, { childList: true, subtree: true });
})

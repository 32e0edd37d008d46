"use strict";
// Helpers shared by the monitor's pages. Whatever the server sends (node ids, model
// names, queries, messages) enters the page as text nodes or checked attributes,
// never as HTML. Every URL is relative: the pages work under a proxy's path prefix.
const Dom = (() => {
  const ATTRIBUTES = new Set(["class", "id", "title", "colspan", "type", "placeholder",
                              "value", "max", "scope", "aria-label", "aria-sort"]);

  function safeHref(value) {
    // relative links and http(s) only: never a javascript: or data: URL
    try {
      const url = new URL(String(value), document.baseURI);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (err) {
      return null;
    }
  }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "href") {
        const href = safeHref(value);
        if (href) node.setAttribute("href", href);
      } else if (key === "on") {
        for (const [kind, handler] of Object.entries(value)) node.addEventListener(kind, handler);
      } else if (key.startsWith("data-") || ATTRIBUTES.has(key)) {
        node.setAttribute(key, String(value));
      } else {
        throw new Error("Dom.el: attribute not allowed: " + key);
      }
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));  // a string: a text node
    }
    return node;
  }

  function replace(parent, children) {
    parent.replaceChildren(...children.filter((c) => c !== null && c !== undefined));
  }

  function missing(value) {
    return value === null || value === undefined || (typeof value === "number" && isNaN(value));
  }

  const format = {
    num(value, digits = 3) {
      if (missing(value) || value === "") return "–";
      const n = Number(value);
      if (!isFinite(n)) return String(value);
      return Math.abs(n) >= 1000 ? n.toFixed(0) : String(Number(n.toPrecision(digits)));
    },
    pct(value) {
      return missing(value) ? "–" : Number(value).toFixed(0) + " %";
    },
    bytes(n) {
      if (missing(n)) return "–";
      const units = ["B", "KiB", "MiB", "GiB", "TiB"];
      let i = 0;
      while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
      return (i ? n.toFixed(1) : String(n)) + " " + units[i];
    },
    age(seconds) {
      if (missing(seconds)) return "–";
      if (seconds < 10) return Math.max(0, seconds).toFixed(1) + " s";
      if (seconds < 120) return seconds.toFixed(0) + " s";
      return (seconds / 60).toFixed(0) + " min";
    },
    clock(epoch) {
      return missing(epoch) ? "–" : new Date(epoch * 1000).toLocaleTimeString("en-GB");
    },
  };

  // Run fn once within ms of the first call, however many calls come meanwhile.
  function coalesce(fn, ms) {
    let due = null;
    return () => {
      if (due === null) due = setTimeout(() => { due = null; fn(); }, ms);
    };
  }

  // A server-sent event stream; handlers by event kind; status: the element that says
  // whether the page is live. EventSource reconnects by itself (the server then sends
  // a fresh snapshot).
  function stream(path, handlers, status) {
    const source = new EventSource(path);
    const say = (text, kind) => {
      if (!status) return;
      status.textContent = text;
      status.className = "conn conn-" + kind;
    };
    source.onopen = () => say("live", "live");
    source.onerror = () => say("reconnecting", "down");
    for (const [kind, handler] of Object.entries(handlers)) {
      source.addEventListener(kind, (event) => handler(JSON.parse(event.data)));
    }
    return source;
  }

  // Show a failure on the page (and in the console, where tests look for errors).
  function fail(where, err) {
    console.error(where, err);
    document.body.prepend(el("p", {class: "error"}, where + ": " + err));
  }

  return {el, replace, format, coalesce, stream, fail, safeHref};
})();

// The demo pages' one helper: a WebSocket to the server that served the page, its state
// shown in #ws-state, and a #reconnect button once it is closed.
"use strict";

function pywsSocket(protocol, query, handlers) {
  const state = document.getElementById("ws-state");
  const again = document.getElementById("reconnect");
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const link = {
    ws: null,
    send(text) {
      if (link.ws && link.ws.readyState === WebSocket.OPEN) link.ws.send(text);
    },
    open() {
      const ws = new WebSocket(scheme + location.host + "/" + query, protocol);
      link.ws = ws;
      show("connecting", "connecting");
      again.hidden = true;
      ws.onopen = () => {
        show("open", "open");
        if (handlers.open) handlers.open();
      };
      ws.onmessage = (event) => handlers.message(event.data);
      ws.onclose = (event) => {
        if (link.ws !== ws) return; // an old socket, replaced by open()
        const reason = event.reason ? " " + event.reason : "";
        show("closed: " + event.code + reason, "closed");
        again.hidden = false;
        if (handlers.close) handlers.close(event);
      };
    },
    reopen() {
      const old = link.ws;
      link.open();
      if (old) old.close(1000, "reconnecting");
    },
  };

  function show(text, kind) {
    state.textContent = text;
    state.className = "ws-state " + kind;
  }

  again.addEventListener("click", () => link.open());
  link.open();
  return link;
}

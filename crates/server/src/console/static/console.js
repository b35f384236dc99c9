// The console's only script: no build step, no dependencies, nothing inline.
// - Attention: when the active prompt changes by itself (a new prompt arrives, the
//   shown one expires), the page reloads to show it.
// - Economy: new events are appended to the live feed as they happen.
"use strict";

(function () {
  const attention = document.getElementById("attention");
  if (attention) {
    const shown = attention.dataset.active || "";
    const check = async () => {
      try {
        const r = await fetch("/console/attention/state", { credentials: "same-origin" });
        if (!r.ok || !(r.headers.get("content-type") || "").includes("json")) {
          location.reload();
          return;
        }
        const state = await r.json();
        const now = state.active === null ? "" : String(state.active);
        if (now !== shown) {
          location.reload();
          return;
        }
      } catch (e) {
        // The server is restarting: try again on the next tick.
      }
      setTimeout(check, 1500);
    };
    setTimeout(check, 1500);
  }

  const feed = document.getElementById("feed");
  if (feed && window.EventSource) {
    const body = feed.querySelector("tbody");
    const types = [
      "bid_placed", "bid_rejected", "bid_withdrawn", "bid_raised", "bid_expired",
      "resources_allocated", "execution_started", "execution_finished",
      "credits_transferred", "credits_minted", "credits_burned",
      "prompt_submitted", "prompt_expired", "human_reward_issued",
      "agent_created", "agent_spawned", "agent_died", "message_sent", "price_update",
    ];
    const cell = (text) => {
      const td = document.createElement("td");
      td.textContent = text;
      return td;
    };
    const add = (msg) => {
      let e;
      try {
        e = JSON.parse(msg.data);
      } catch (err) {
        return;
      }
      const tr = document.createElement("tr");
      tr.appendChild(cell(String(e.id)));
      tr.appendChild(cell(e.cycle === null || e.cycle === undefined ? "" : String(e.cycle)));
      tr.appendChild(cell(e.type || msg.type));
      const agent = document.createElement("td");
      if (e.agent_id !== null && e.agent_id !== undefined) {
        const a = document.createElement("a");
        a.href = "/console/agents/" + encodeURIComponent(e.agent_id);
        a.textContent = "#" + e.agent_id;
        agent.appendChild(a);
      }
      tr.appendChild(agent);
      const data = cell(JSON.stringify(e.data));
      data.className = "data";
      tr.appendChild(data);
      tr.classList.add("new");
      body.insertBefore(tr, body.firstChild);
      while (body.children.length > 200) {
        body.removeChild(body.lastChild);
      }
    };
    const source = new EventSource(feed.dataset.stream);
    types.forEach((t) => source.addEventListener(t, add));
    source.onmessage = add;
  }
})();

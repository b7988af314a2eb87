// "Waiting for you": a session's open resume handles (its `waiting` list, CONTRACT §9), each saying which
// command types the flow expects and until when. Shown while the list is non-empty; values via textContent.
import { field, short } from "./dom.js";

export function renderWaiting(box, waiting) {
  box.hidden = waiting.length === 0;
  box.replaceChildren(...waiting.map((handle) => {
    const item = document.createElement("p");
    const title = document.createElement("strong");
    title.textContent = "waiting for you";
    item.append(
      title,
      "send ",
      field("expects", handle.expects.join(" or "), "expects", "the command types that resume this flow"),
      " to go on with ",
      field("flow", short(handle.correlation_id), "flow", `the command whose flow waits: ${handle.correlation_id}`),
      ` (${handle.status.toLowerCase()}, until ${new Date(handle.expires_at).toLocaleString()})`,
    );
    item.dataset.handle = handle.handle_id;
    return item;
  }));
}

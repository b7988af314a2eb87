// Running tasks of the open session: a progress bar per task from `event: task-progress` frames (live only,
// never replayed), settled when the task's result event arrives. Finished bars do not pile up: only the latest
// finished task stays (a moment, then it goes too), and a progress report that arrives after its result is ignored.
import { field, short } from "./dom.js";

const DONE_KEPT = 1; // finished bars shown at once
const DONE_LINGER_MS = 10000; // how long the last finished bar stays

export class TaskList {
  constructor(list, onUnreadable) {
    this.list = list;
    this.onUnreadable = onUnreadable;
    this.settled = new Set(); // command ids whose result arrived: a late progress report opens no bar
  }

  clear() {
    this.list.replaceChildren();
    this.settled.clear();
  }

  row(commandId) {
    const found = this.find(commandId);
    if (found) return found;
    const li = document.createElement("li");
    li.dataset.testid = "task";
    li.dataset.commandId = commandId;
    li.dataset.state = "running";
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    li.append(field("command_id", `task ${short(commandId)}`, "command_id", commandId), bar,
      field("message", "", "message"));
    this.list.append(li);
    return li;
  }

  find(commandId) { return [...this.list.children].find((li) => li.dataset.commandId === commandId); }

  progress(message) {
    let data;
    try { data = JSON.parse(message.data); } catch { return this.onUnreadable(message.data); }
    if (this.settled.has(data.command_id)) return; // a late report after the result
    const li = this.row(data.command_id);
    li.querySelector("progress").value = data.progress;
    li.dataset.progress = String(data.progress);
    li.querySelector('[data-field="message"]').textContent = `${data.progress}% ${data.message || ""}`.trim();
  }

  settle(commandId, eventType) {
    this.settled.add(commandId);
    const li = this.find(commandId);
    if (!li) return;
    li.dataset.state = "done";
    li.querySelector("progress").value = 100;
    li.querySelector('[data-field="message"]').textContent = eventType.split(".").pop();
    this.list.append(li); // the newest finished bar last
    const done = [...this.list.children].filter((row) => row.dataset.state === "done");
    for (const old of done.slice(0, Math.max(0, done.length - DONE_KEPT))) old.remove();
    setTimeout(() => li.remove(), DONE_LINGER_MS);
  }
}

// Running tasks of the open session: a progress bar per task from `event: task-progress` frames (live only,
// never replayed), settled when the task's result event arrives.
import { field, short } from "./dom.js";

export class TaskList {
  constructor(list, onUnreadable) {
    this.list = list;
    this.onUnreadable = onUnreadable;
  }

  clear() { this.list.replaceChildren(); }

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
    const li = this.row(data.command_id);
    if (li.dataset.state === "done") return; // a late report after the result
    li.querySelector("progress").value = data.progress;
    li.dataset.progress = String(data.progress);
    li.querySelector('[data-field="message"]').textContent = `${data.progress}% ${data.message || ""}`.trim();
  }

  settle(commandId, eventType) {
    const li = this.find(commandId);
    if (!li) return;
    li.dataset.state = "done";
    li.querySelector("progress").value = 100;
    li.querySelector('[data-field="message"]').textContent = eventType.split(".").pop();
  }
}

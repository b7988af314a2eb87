// Small DOM helpers shared by the console's modules; values go through textContent, never innerHTML.

export function field(label, value, name, title = "") {
  const span = document.createElement("span");
  span.className = `field ${name}`;
  span.dataset.field = name;
  span.title = title || label;
  span.textContent = value;
  return span;
}

export const short = (id) => (id ? id.slice(0, 8) : "none");

// An event name that may break after each dot on a narrow screen (<wbr>), not in the middle of a word.
export function dotted(span) {
  const parts = span.textContent.split(".");
  span.replaceChildren(...parts.flatMap((part, i) => (i === 0 ? [part] : [document.createElement("wbr"), `.${part}`])));
  return span;
}

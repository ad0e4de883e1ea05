// A small element builder and the screen's notices: no framework needed for forms and tables.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  for (const c of children.flat(Infinity)) if (c) el.append(c);
  return el;
}

// One notice line at the top of the main area: what just happened, or why it did not.
export function notify(text, kind = "ok") {
  const bar = document.getElementById("notice");
  if (!bar) return;
  bar.textContent = text;
  bar.className = `notice ${kind}`;
  bar.dataset.kind = kind;
}

// A form's submit button is disabled while its request runs, and the answer (or the refusal) is shown.
export async function busy(button, work) {
  button.disabled = true;
  try {
    return await work();
  } catch (err) {
    notify(`操作未成功：${err.message}`, "error");
    return undefined;
  } finally {
    button.disabled = false;
  }
}

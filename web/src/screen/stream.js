// The live event stream (server-sent events from /api/v1/live/events). The browser's EventSource cannot send
// the Authorization header, so the stream is read with fetch() and a ReadableStream, and parsed here.
import { token } from "../common/api.js";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Split a buffer into complete SSE blocks; returns [events, rest]. Each event: {event, data}.
export function parseBlocks(buffer) {
  const events = [];
  let at;
  while ((at = buffer.indexOf("\n\n")) >= 0) {
    const block = buffer.slice(0, at);
    buffer = buffer.slice(at + 2);
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue; // a keep-alive comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) events.push({ event, data: data.join("\n") });
  }
  return [events, buffer];
}

// Follow the stream for as long as the page lives: onEvent(case event), onState("open" | "closed" | "unauthorized").
// A dropped connection is re-opened with a growing pause (1 s … 15 s); a refused credential or the signal stops it.
export async function follow(onEvent, onState, signal) {
  let pause = 1000;
  while (!signal.aborted) {
    try {
      const res = await fetch("/api/v1/live/events", {
        // The wall's token if it has one, else the signed-in operator's cookie (sent with same-origin requests).
        headers: token() ? { Accept: "text/event-stream", Authorization: `Bearer ${token()}` } : { Accept: "text/event-stream" },
        credentials: "same-origin",
        cache: "no-store",
        signal,
      });
      if (res.status === 401 || res.status === 403) {
        onState("unauthorized");
        return;
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      onState("open");
      pause = 1000;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        let events;
        [events, buffer] = parseBlocks(buffer + value.replace(/\r\n/g, "\n"));
        for (const e of events) {
          if (e.event === "case") {
            try {
              onEvent(JSON.parse(e.data));
            } catch (err) {
              console.warn("live event not understood", err);
            }
          }
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      console.warn("live stream interrupted", err);
    }
    if (signal.aborted) return;
    onState("closed");
    await sleep(pause);
    pause = Math.min(pause * 2, 15000);
  }
}

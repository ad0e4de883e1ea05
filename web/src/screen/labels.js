// What the wall says, in Chinese: event types, and how an event is coloured in the feed.
import { EVENTS } from "../common/labels.js";

export { EVENTS };
const BAD = new Set(["case.overdue", "case.escalated", "case.returned", "case.reworked", "case.reopened", "case.warned"]);
const DONE = new Set(["case.closed", "case.resolved"]);

export function eventLabel(type) {
  return EVENTS[type] || type;
}

export function eventTone(type) {
  return BAD.has(type) ? "bad" : DONE.has(type) ? "done" : "";
}

// A rate 0–1 (or null) as the wall shows it: 96.5%.
export function percent(rate) {
  return rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(1)}%`;
}

// Following one turn of a battle over Server-Sent Events (GET /api/v1/battles/{id}/stream).
//
// EventSource reconnects by itself after a dropped connection and sends the last event id back as
// Last-Event-ID, so the service continues exactly after what we already have: we only say
// "reconnecting…" meanwhile. It gives up only when the server refuses the stream (e.g. 404: the battle
// is gone); then we ask the battle itself what became of it.
import { api } from "../lib/api.js";

const EVENTS = ["delta", "end", "error", "done"];
const RETRY_MS = 3000;

/**
 * follow(battleId, handlers) → {close()}. handlers: delta({side, text}), end({side}),
 * error({side, message}), done({status}), first() once the first event arrived, reconnecting(),
 * recovered(), restart() when the turn's text starts over, closed(battle|null) when the stream cannot be
 * reopened (battle = what GET /battles/{id} says, null when it is gone).
 */
export function follow(battleId, handlers) {
  const url = `/api/v1/battles/${encodeURIComponent(battleId)}/stream`;
  let source = null;
  let seenAny = false;
  let finished = false;
  let timer = null;

  function dispatch(name, event) {
    // The stream's own "error" events carry data; the EventSource's connection errors do not.
    if (name === "error" && !event.data) return;
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return; // a malformed frame is skipped rather than breaking the page
    }
    if (!seenAny) {
      seenAny = true;
      handlers.first?.();
    }
    handlers.recovered?.();
    if (name === "done") stop();
    handlers[name]?.(data);
  }

  function open() {
    source = new EventSource(url);
    for (const name of EVENTS) source.addEventListener(name, (event) => dispatch(name, event));
    source.addEventListener("open", () => handlers.recovered?.());
    source.addEventListener("error", (event) => {
      if (finished || event.data) return;
      if (source.readyState === EventSource.CONNECTING) {
        handlers.reconnecting?.(); // the browser retries on its own, with Last-Event-ID
      } else {
        source.close();
        handlers.reconnecting?.();
        checkBattle();
      }
    });
  }

  // The stream was refused: is the battle still there, and in what state?
  async function checkBattle() {
    if (finished) return;
    try {
      const battle = await api(`/battles/${encodeURIComponent(battleId)}`);
      if (battle.status === "generating") {
        // Still answering (e.g. the server restarted its stream): a fresh stream starts the turn over.
        handlers.restart?.();
        timer = setTimeout(open, RETRY_MS);
        return;
      }
      stop();
      handlers.closed?.(battle);
    } catch (error) {
      if (error.status === 0) {
        timer = setTimeout(checkBattle, RETRY_MS); // still offline: keep trying quietly
        return;
      }
      stop();
      handlers.closed?.(null);
    }
  }

  function stop() {
    finished = true;
    clearTimeout(timer);
    source?.close(); // after "done" the server ends the response; without close() the browser would reconnect
  }

  open();
  return { close: stop };
}

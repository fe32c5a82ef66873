import { endSession } from "./session";

/**
 * The dashboard's one websocket to /ws/metrics/, reconnecting with capped exponential backoff and
 * jitter. Pages render without it; they only listen to what it brings.
 */
/** "signed-out": the server closed with 4401 (no session, or it ended); "forbidden": 4403 (no permission). */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "signed-out" | "forbidden";

export interface LiveMessage {
  type: string;
  at?: string;
  seq?: number;
  data?: unknown;
  /** When this browser received it (ms since the epoch, this browser's clock): the server's `at` is on
   * another clock, so how old a figure on screen is, is measured from here. */
  receivedAt?: number;
}

type Listener = (message: LiveMessage) => void;
type StateListener = (state: ConnectionState) => void;

// Close codes the server uses when the session is not allowed to listen: retrying will not help.
const REFUSALS: Record<number, ConnectionState> = { 4401: "signed-out", 4403: "forbidden" };

/** The server sends a heartbeat every second: this long without any frame means the socket is dead. */
export const SILENCE_MS = 5000;

/**
 * A socket that carried frames for this long was a working connection: the backoff starts over after it.
 * One that failed sooner (accepted, a heartbeat, then the consumer failing at its first snapshot) counts
 * as a failed try.
 */
export const STABLE_MS = 10_000;

export function backoffDelay(attempt: number, baseMs = 500, maxMs = 15000, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** attempt);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export class LiveFeed {
  private socket: WebSocket | null = null;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private watchdog: ReturnType<typeof setInterval> | null = null;
  private lastFrameAt = 0;
  private openedAt = 0;
  private stopped = false;
  private listeners = new Set<Listener>();
  private last = new Map<string, LiveMessage>();
  private stateListeners = new Set<StateListener>();
  state: ConnectionState = "connecting";

  constructor(
    private url: string,
    private createSocket: (url: string) => WebSocket = (u) => new WebSocket(u),
    private silenceMs = SILENCE_MS,
  ) {}

  start(): void {
    this.stopped = false;
    if (typeof window !== "undefined") window.addEventListener("online", this.onOnline);
    if (typeof document !== "undefined") document.addEventListener("visibilitychange", this.onVisible);
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (typeof window !== "undefined") window.removeEventListener("online", this.onOnline);
    if (typeof document !== "undefined") document.removeEventListener("visibilitychange", this.onVisible);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.clearWatchdog();
    this.socket?.close();
    this.socket = null;
  }

  /** The latest message of a type this feed received, so a page opened again starts from it (with its age). */
  latest(type: string): LiveMessage | null {
    return this.last.get(type) ?? null;
  }

  onMessage(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onState(listener: StateListener): () => void {
    this.stateListeners.add(listener);
    listener(this.state);
    return () => this.stateListeners.delete(listener);
  }

  private setState(state: ConnectionState): void {
    this.state = state;
    this.stateListeners.forEach((listener) => listener(state));
  }

  /** The network is back (a laptop woke, Wi-Fi returned): try now rather than at the end of a long backoff. */
  private onOnline = (): void => {
    if (this.stopped || this.state !== "reconnecting" || !this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.connect();
  };

  /** A tab looked at again (a wall screen woken, a laptop opened) retries at once too. */
  private onVisible = (): void => {
    if (document.visibilityState === "visible") this.onOnline();
  };

  private connect(): void {
    this.timer = null;
    let socket: WebSocket;
    try {
      socket = this.createSocket(this.url);
    } catch {
      // A bad address (a ws:// live URL for an https page: SecurityError): thrown from App's effect it
      // unmounted the whole dashboard, and from a retry's timer it stopped the feed for good.
      this.retry();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      if (this.stopped || this.socket !== socket) return;
      this.openedAt = this.lastFrameAt = Date.now();
      this.setState("open");
      this.watch(socket);
    };
    socket.onmessage = (event: MessageEvent) => {
      if (this.stopped || this.socket !== socket) return;
      this.lastFrameAt = Date.now();
      let message: LiveMessage;
      try {
        message = JSON.parse(String(event.data)) as LiveMessage;
      } catch {
        return; // a malformed frame is dropped, not fatal
      }
      if (!message || typeof message !== "object") return;
      message.receivedAt = this.lastFrameAt;
      if (typeof message.type === "string") this.last.set(message.type, message);
      this.listeners.forEach((listener) => listener(message));
    };
    socket.onclose = (event: CloseEvent) => {
      if (this.stopped || this.socket !== socket) return;
      this.clearWatchdog();
      this.socket = null;
      const refusal = REFUSALS[event.code];
      if (event.code === 4401) endSession(); // signed out, or idle past the timeout: patient data goes too
      if (refusal) {
        this.setState(refusal);
        return;
      }
      this.settle();
      this.retry();
    };
  }

  /**
   * The backoff starts over only after a socket that carried frames for STABLE_MS. Reset at every open, a
   * server that accepts and at once closes (1013 while its channel layer is down) had every dashboard retry
   * twice a second; reset at the first frame, one that failed a moment after its first heartbeat did too.
   */
  private settle(): void {
    if (this.openedAt && this.lastFrameAt - this.openedAt >= STABLE_MS) this.attempt = 0;
    this.openedAt = 0;
  }

  private retry(): void {
    this.setState("reconnecting");
    this.timer = setTimeout(() => this.connect(), backoffDelay(this.attempt));
    this.attempt += 1;
  }

  /**
   * An open socket that has gone silent is dead: a sleeping laptop, a NAT or proxy that dropped the
   * connection, a server that hangs. The browser may not fire `close` for minutes, and until then the
   * badge said "Live" over figures that had stopped. It is given up and replaced.
   */
  private watch(socket: WebSocket): void {
    this.clearWatchdog();
    this.watchdog = setInterval(() => {
      if (this.socket !== socket || Date.now() - this.lastFrameAt <= this.silenceMs) return;
      this.clearWatchdog();
      this.socket = null; // its own close, whenever it comes, is then ignored
      this.settle();
      try {
        socket.close(4000, "silent");
      } catch {
        // closing a socket the browser already counts as closed
      }
      this.retry();
    }, 1000);
  }

  private clearWatchdog(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
  }
}

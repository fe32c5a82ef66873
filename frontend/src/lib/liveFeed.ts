/**
 * The dashboard's one websocket to /ws/metrics/, reconnecting with capped exponential backoff and
 * jitter. Pages render without it; they only listen to what it brings.
 */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "forbidden";

export interface LiveMessage {
  type: string;
  at?: string;
  seq?: number;
  data?: unknown;
}

type Listener = (message: LiveMessage) => void;
type StateListener = (state: ConnectionState) => void;

// Close codes the server uses when the session is not allowed to listen: retrying will not help.
const FORBIDDEN_CODES = new Set([4401, 4403]);

export function backoffDelay(attempt: number, baseMs = 500, maxMs = 15000, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** attempt);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export class LiveFeed {
  private socket: WebSocket | null = null;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  private listeners = new Set<Listener>();
  private stateListeners = new Set<StateListener>();
  state: ConnectionState = "connecting";

  constructor(
    private url: string,
    private createSocket: (url: string) => WebSocket = (u) => new WebSocket(u),
  ) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.socket?.close();
    this.socket = null;
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

  private connect(): void {
    const socket = this.createSocket(this.url);
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.setState("open");
    };
    socket.onmessage = (event: MessageEvent) => {
      try {
        const message = JSON.parse(String(event.data)) as LiveMessage;
        this.listeners.forEach((listener) => listener(message));
      } catch {
        // a malformed frame is dropped, not fatal
      }
    };
    socket.onclose = (event: CloseEvent) => {
      if (this.stopped || this.socket !== socket) return;
      if (FORBIDDEN_CODES.has(event.code)) {
        this.setState("forbidden");
        return;
      }
      this.setState("reconnecting");
      this.timer = setTimeout(() => this.connect(), backoffDelay(this.attempt));
      this.attempt += 1;
    };
  }
}
